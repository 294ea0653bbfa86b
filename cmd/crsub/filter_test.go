package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/imagefilter"
	"github.com/crsub/crsub/restart"
)

// filterCLI runs `crsub filter`. The command is called directly until
// main.go registers it; then run([]string{"filter", ...}) is equivalent.
func filterCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runFilter(args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestFilterNoRulesCopies(t *testing.T) {
	img, _ := sampleImage(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.WriteFile(in, img, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := filterCLI(t, "-i", in, "-o", out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img, got) {
		t.Errorf("output differs from the input")
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("output mode: %v %v, want 0600", st.Mode(), err)
	}
	if want := "crsub filter: no rules: image copied unchanged\n"; errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
}

func TestFilterReplace(t *testing.T) {
	img, want := sampleImage(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	os.WriteFile(in, img, 0o600)
	_, errOut, err := filterCLI(t, "-i", in, "-o", out, "--replace", "0", "--drop", "4242:1")
	if err != nil {
		t.Fatal(err)
	}
	const summary = "crsub filter: dropped fd 1 of pid 4242; replaced fd 0 of pid 4242 (1 file supplied at restart); removed 3 records and 5 bytes of payload\n"
	if errOut != summary {
		t.Errorf("stderr %q, want %q", errOut, summary)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ckpt.Inspect(f)
	if err != nil {
		t.Fatal(err)
	}
	// fd 1, its log file and the pipe are gone; fd 0 is bound to a supplied
	// file that keeps the read end's metadata.
	pv := want.Processes[0]
	end := pv.Fds[0]
	end.File.Supplied, end.Pipe, end.Buffered = true, nil, 0
	pv.Fds = []ckpt.FdView{end}
	want.Bytes = got.Bytes
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(ckpt.ProcessView{}), cmpopts.IgnoreFields(ckpt.Inventory{}, "Records")); diff != "" {
		t.Errorf("filtered image (-want +got):\n%s", diff)
	}
}

func TestFilterToStdout(t *testing.T) {
	img, _ := sampleImage(t)
	in := filepath.Join(t.TempDir(), "in")
	os.WriteFile(in, img, 0o600)
	out, _, err := filterCLI(t, "-i", in, "-o", "-", "--replace", "1")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ckpt.Inspect(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if fds := inv.Processes[0].Fds; len(fds) != 2 || !fds[1].File.Supplied {
		t.Errorf("fds %+v, want fd 1 supplied", fds)
	}
}

func TestFilterFailureLeavesNoFile(t *testing.T) {
	img, _ := sampleImage(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	os.WriteFile(in, img, 0o600)
	_, _, err := filterCLI(t, "-i", in, "-o", out, "--drop", "9")
	var re *imagefilter.RuleError
	if !errors.Is(err, imagefilter.ErrNoMatch) || !errors.As(err, &re) || re.Rule != (imagefilter.Rule{Fd: 9, Action: imagefilter.Drop}) || re.Pid != 4242 {
		t.Errorf("got %v, want the rule for fd 9 of pid 4242 unmatched", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the input", len(entries))
	}
}

func TestFilterUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"-i", "x"},
		{"-o", "x"},
		{"-i", "x", "-o", "y", "--drop", "fd3"},
		{"-i", "x", "-o", "y", "--replace", "0:1"},
		{"-i", "x", "-o", "y", "extra"},
		{"-i", "x", "-o", "y", "--bogus"},
	} {
		_, _, err := filterCLI(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("crsub filter %v: %v, want a usage error", args, err)
		}
	}
	if _, _, err := filterCLI(t, "-i", "/nonexistent/image", "-o", "-"); err == nil {
		t.Error("a missing input: no error")
	}
}

// An output that is not a regular file (a FIFO here, /dev/null in use) is
// written where it is, not replaced by a renamed file.
func TestFilterToFIFO(t *testing.T) {
	img, _ := sampleImage(t)
	dir := t.TempDir()
	in, fifo := filepath.Join(dir, "in"), filepath.Join(dir, "fifo")
	if err := os.WriteFile(in, img, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- b
	}()
	if _, _, err := filterCLI(t, "-i", in, "-o", fifo); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, img) {
		t.Errorf("read %d bytes from the FIFO, want the %d-byte image", len(b), len(img))
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("after the filter %s is %v (%v), no longer a FIFO", fifo, st.Mode(), err)
	}
}

func TestRestartErrorNamesOtherProcesses(t *testing.T) {
	shared := &imagefilter.SharedError{Pid: 10, Fd: 251, Others: []imagefilter.ProcessFd{{Pid: 10, Fd: 3}, {Pid: 11, Fd: 251}}}
	err := restartError(&restart.SubstituteError{Pid: 10, Fd: 251, Root: 10, Err: shared})
	want := "fd 251 of pid 10 shares its open file with fd 3, fd 251 of pid 11; replace them together: add --fd 3=SPEC (or --inherit-fd 3), --fd 11:251=SPEC"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
	if !errors.Is(err, imagefilter.ErrShared) {
		t.Errorf("%v does not wrap ErrShared", err)
	}
}
