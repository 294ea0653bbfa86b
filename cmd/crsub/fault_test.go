//go:build faultinject

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/fault"
	"github.com/crsub/crsub/restart"
)

// perPoint bounds how many of a phase's calls (or writes) are failed,
// one run each: the first three, the last two and some between (sample).
// CRSUB_FAULTS_PER_PHASE=N sets another bound, for a longer sweep by hand
// (the matrix is then not checked).
var perPoint = defaultPerPoint

func init() {
	if n, err := strconv.Atoi(os.Getenv("CRSUB_FAULTS_PER_PHASE")); err == nil && n > 0 {
		perPoint = n
	}
}

// faultKind is one way a call or write fails.
type faultKind struct {
	name  string // as the matrix says it
	site  fault.Site
	err   error
	short bool
}

var (
	injectedFails = faultKind{"injected call fails (ENOMEM)", fault.SiteInjected, unix.ENOMEM, false}
	// Not EIO, which some calls answer for what they do not know
	// (PTRACE_GET_RSEQ_CONFIGURATION on a kernel without rseq), nor any
	// errno a caller takes for something it may go on after.
	ownCallFails = faultKind{"crsub's own call fails (ENOTRECOVERABLE)", fault.SiteCall, unix.ENOTRECOVERABLE, false}
	writeFaults  = []faultKind{
		{"image write fails (ENOSPC)", fault.SiteWrite, unix.ENOSPC, false},
		{"image write fails (EIO)", fault.SiteWrite, unix.EIO, false},
		{"image write short, then ENOSPC", fault.SiteWrite, unix.ENOSPC, true},
		{"image write short, no error", fault.SiteWrite, nil, true},
	}
)

const defaultPerPoint = 8

// kindsAt lists the faults tried at a site.
func kindsAt(site fault.Site) []faultKind {
	switch site {
	case fault.SiteInjected:
		return []faultKind{injectedFails}
	case fault.SiteCall:
		return []faultKind{ownCallFails}
	}
	return writeFaults
}

// matrix collects, per operation, phase and fault, the outcomes seen.
type matrix map[[3]string]map[string]bool

func (m matrix) add(op, phase, fault, result string) {
	k := [3]string{op, phase, fault}
	if m[k] == nil {
		m[k] = map[string]bool{}
	}
	m[k][result] = true
}

// outcomeSeparator parts the outcomes of a row of the table: an outcome has
// semicolons of its own.
const outcomeSeparator = " **or** "

// parseTable reads back a table that table wrote.
func parseTable(table string) matrix {
	m := matrix{}
	for i, line := range strings.Split(strings.TrimSpace(table), "\n") {
		cells := strings.Split(strings.TrimSuffix(strings.TrimPrefix(line, "| "), " |"), " | ")
		if i < 2 || len(cells) != 4 {
			continue
		}
		for _, r := range strings.Split(cells[3], outcomeSeparator) {
			m.add(cells[0], cells[1], cells[2], r)
		}
	}
	return m
}

// within says whether every row of m is in doc, with outcomes doc lists,
// and every row of doc in m. A row's outcomes depend on which calls the
// sweep's sample hit: a sweep may see some of a row's outcomes, never one
// the document does not list.
func (m matrix) within(doc matrix) bool {
	if len(m) != len(doc) {
		return false
	}
	for k, results := range m {
		if doc[k] == nil {
			return false
		}
		for r := range results {
			if !doc[k][r] {
				return false
			}
		}
	}
	return true
}

// table is the matrix in Markdown, in the order the phases come.
func (m matrix) table(order map[string]int) string {
	keys := make([][3]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		if order[a[0]+"/"+a[1]] != order[b[0]+"/"+b[1]] {
			return order[a[0]+"/"+a[1]] < order[b[0]+"/"+b[1]]
		}
		if a[1] != b[1] {
			return a[1] < b[1]
		}
		return a[2] < b[2]
	})
	var b strings.Builder
	b.WriteString("| operation | phase | fault | result |\n| --- | --- | --- | --- |\n")
	for _, k := range keys {
		results := make([]string, 0, len(m[k]))
		for r := range m[k] {
			results = append(results, r)
		}
		sort.Strings(results)
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", k[0], k[1], k[2], strings.Join(results, outcomeSeparator))
	}
	return b.String()
}

// points lists the phases a site saw events in, in a stable order.
func points(counts map[fault.Point]int, order map[string]int, op string) []fault.Point {
	var out []fault.Point
	for p, n := range counts {
		if p.Phase != "" && n > 0 {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if order[op+"/"+a.Phase] != order[op+"/"+b.Phase] {
			return order[op+"/"+a.Phase] < order[op+"/"+b.Phase]
		}
		if a.Phase != b.Phase {
			return a.Phase < b.Phase
		}
		return a.Site < b.Site
	})
	return out
}

// phaseOrder numbers the phases of each operation in the order they run.
var phaseOrder = func() map[string]int {
	m := map[string]int{}
	for i, p := range []string{"preparing", "freezing", "collecting", "writing", "committing", "writing out the image", "releasing"} {
		m["checkpoint/"+p] = i
		m["checkpoint --leave-running/"+p] = i
		m["checkpoint --leave-running --copy-on-write/"+p] = i
		m["checkpoint --leave-running --pre-copy/"+p] = i
		m["checkpoint --leave-running, into tmpfs/"+p] = i
	}
	for i, p := range []string{"planning", "record namespace", "record cgroups", "creating the root task", "entering its namespaces", "record process", "record thread", "record signals", "record mm",
		"record vma", "record pages", "record file", "record pipe", "record unix-pair", "record fd", "rebuilding its memory",
		"ending the session helpers", "standing in for gone group leaders", "creating zombies", "joining its process group", "ending the stand-ins",
		"restoring the controlling terminal", "rebuilding its state", "releasing", "reading the image", "waiting for its pid"} {
		m["restart/"+p] = i
	}
	return m
}()

// TestFaults fails, one at a time, the system calls and image writes of a
// checkpoint and a restart of a parent and a child with threads, memory, a
// file, a pipe and a socket pair, cuts the image at every record, and
// takes the pids the restart needs. A failed checkpoint must leave the
// subject running as it was, as it sees itself and from outside, with no
// image left; a failed restart must leave no process, fd, mapping or
// file, and say where it failed. The outcomes are docs/reliability.md's
// matrix; CRSUB_UPDATE_MATRIX=1 writes it there.
func TestFaults(t *testing.T) {
	faultSweeps(t, "", "TestFaults")
}

// TestNamespaceFaults is TestFaults with the subject in UTS, IPC, network
// and mount namespaces of its own: a failed restart must leave none of
// them either; the image has their records to fail and cut.
func TestNamespaceFaults(t *testing.T) {
	faultSweeps(t, "crsub-faults-"+strconv.Itoa(os.Getpid()), "TestNamespaceFaults")
}

// TestSubstituteFaults fails the calls of restarts of TestFaults's image
// that give the subject substitutes for its standard fds (--fd): a
// listening unix socket, a file it creates, an exec command. A failed
// restart must leave none of them: no socket file, no file, no command
// running. The first three and last two calls of each phase are failed
// (the phases and records are TestFaults's: its sweep covers them).
func TestSubstituteFaults(t *testing.T) {
	crtest.RequireRoot(t)
	defer fault.Reset()
	adoptOrphans(t)
	s := startFaultSubject(t, crtest.Build(t, faultSubject), "")
	s.selfCheck(t, "at start")
	img := filepath.Join(t.TempDir(), "img")
	if err := runCheckpoint([]string{"--pid", strconv.Itoa(s.p.Pid), "-o", img, "-q"}, io.Discard, io.Discard); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	s.p.Wait()
	waitPidsGone(t, s.pids, "after the checkpoint")
	// The command keeps a shell (whose command line names the directory)
	// until its input ends.
	s.restoredFiles = []string{"sock", "out"}
	subs := []string{
		"--fd", "0=unix-listen:" + filepath.Join(s.dir, "sock"),
		"--fd", "1=file:" + filepath.Join(s.dir, "out") + ",append",
		"--fd", "2=exec:while read -r line; do :; done # " + s.dir,
	}
	m := matrix{}
	perPhase := min(perPoint, 5)
	if perPoint != defaultPerPoint {
		perPhase = perPoint
	}
	t.Run("restart", func(t *testing.T) { restartSweep(t, s, img, subs, perPhase, m) })
	if t.Failed() {
		return
	}
	fault.Reset()
	if err := runRestart(append([]string{"-i", img, "-q", "--detach"}, subs...), io.Discard, io.Discard); err != nil {
		t.Fatalf("restart after the sweep: %v", err)
	}
	s.selfCheck(t, "restored after the sweep")
	endRestored(t, s)
	if perPoint == defaultPerPoint && os.Getenv("CRSUB_FAULTS") == "" {
		checkMatrix(t, "TestSubstituteFaults", m, phaseOrder)
	}
}

// faultSweeps runs the sweeps on the subject (in namespaces named
// hostname, unless empty) and checks the outcomes against the matrix
// docs/reliability.md has for test.
func faultSweeps(t *testing.T, hostname, test string) {
	crtest.RequireRoot(t)
	defer fault.Reset()
	adoptOrphans(t)
	bin := crtest.Build(t, faultSubject)
	holder := crtest.Build(t, pidHolder)
	s := startFaultSubject(t, bin, hostname)
	s.selfCheck(t, "at start")
	m := matrix{}
	imgDir := t.TempDir()
	img := filepath.Join(imgDir, "img")
	start := time.Now()

	t.Run("checkpoint", func(t *testing.T) {
		for _, mode := range []checkpointMode{{leave: true}, {leave: true, tmpfs: true}, {}, {leave: true, copyOnWrite: true}, {leave: true, preCopy: true}} {
			checkpointSweep(t, s, img, mode, m)
		}
	})
	if t.Failed() {
		return
	}
	t.Logf("checkpoint sweep: %v", time.Since(start))

	// The image the restarts are failed on.
	fault.Reset()
	if err := runCheckpoint([]string{"--pid", strconv.Itoa(s.p.Pid), "-o", img, "-q"}, io.Discard, io.Discard); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	s.p.Wait()
	waitPidsGone(t, s.pids, "after the checkpoint")
	start = time.Now()
	t.Run("restart", func(t *testing.T) { restartSweep(t, s, img, nil, perPoint, m) })
	t.Logf("restart sweep: %v", time.Since(start))
	start = time.Now()
	t.Run("cut", func(t *testing.T) { cutSweep(t, s, img, m) })
	t.Logf("cut sweep: %v", time.Since(start))
	start = time.Now()
	t.Run("pid", func(t *testing.T) { pidSweep(t, s, img, holder, m) })
	t.Logf("pid sweep: %v", time.Since(start))
	if t.Failed() {
		return
	}

	// After all that, the image restores, and the subject finds itself
	// whole.
	fault.Reset()
	if err := runRestart([]string{"-i", img, "-q", "--detach"}, io.Discard, io.Discard); err != nil {
		t.Fatalf("restart after the sweeps: %v", err)
	}
	s.selfCheck(t, "restored after the sweeps")
	endRestored(t, s)

	if perPoint == defaultPerPoint && os.Getenv("CRSUB_FAULTS") == "" {
		checkMatrix(t, test, m, phaseOrder)
	}
}

// checkpointMode is how a checkpoint of the sweep is run.
type checkpointMode struct {
	leave bool
	// copyOnWrite writes the copy's pages into the holes the image file
	// left for them (WriteAt), after the thaw.
	copyOnWrite bool
	// preCopy copies the memory into the image's memory file while the
	// subject runs, and lifts the write tracking after the thaw.
	preCopy bool
	// tmpfs writes the image into /dev/shm: left running, it is written
	// in place while frozen rather than held in memory.
	tmpfs bool
}

// checkpointSweep fails each sampled call and write of a checkpoint, in
// one mode, and checks after each that the subject is as it was.
func checkpointSweep(t *testing.T, s *subjectRun, img string, mode checkpointMode, m matrix) {
	op := "checkpoint"
	args := []string{"--pid", strconv.Itoa(s.p.Pid), "-o", img, "-q"}
	leave := mode.leave
	if leave {
		op += " --leave-running"
		args = append(args, "--leave-running")
	}
	if mode.copyOnWrite {
		op += " --copy-on-write"
		args = append(args, "--copy-on-write")
	}
	if mode.preCopy {
		op += " --pre-copy"
		args = append(args, "--pre-copy")
	}
	if mode.tmpfs {
		shm, err := os.MkdirTemp("/dev/shm", "crsub-faults")
		if err != nil {
			t.Skip("no /dev/shm:", err)
		}
		defer os.RemoveAll(shm)
		op += ", into tmpfs"
		img = filepath.Join(shm, "img")
		args[3] = img
	}
	dir := filepath.Dir(img)
	before, own := s.settledStates(t), ownState(t)
	// Counting. A checkpoint that kills the subject once it is written is
	// made to fail at its very last call, the rename of the image into
	// place; every run of the sweep keeps that backstop, so that a call
	// miscounted cannot let one kill the subject.
	fault.Reset()
	var backstop []fault.Fault
	if !leave {
		backstop = []fault.Fault{{Site: fault.SiteCall, Phase: "committing", N: 3, Err: unix.EIO}}
		fault.Arm(backstop...)
	}
	err := runCheckpoint(args, io.Discard, io.Discard)
	counts := fault.Counts()
	if leave && err != nil || !leave && (err == nil || fault.Fired() == nil || fault.Fired().What != "rename") {
		t.Fatalf("%s, counting: %v (fired %+v)", op, err, fault.Fired())
	}
	os.Remove(img)
	s.expectAsBefore(t, before, op+", counting")
	for _, pt := range points(counts, phaseOrder, op) {
		for _, kind := range kindsAt(pt.Site) {
			for _, n := range sample(counts[pt], perPoint) {
				f := fault.Fault{Site: pt.Site, Phase: pt.Phase, N: n, Err: kind.err, Short: kind.short}
				what := fmt.Sprintf("%s, %s #%d of %s", op, kind.name, n, pt.Phase)
				if !selected(what) {
					continue
				}
				fault.Arm(append([]fault.Fault{f}, backstop...)...)
				err := runCheckpoint(args, io.Discard, io.Discard)
				var hit *fault.Hit
				reachedEnd := false
				for _, h := range fault.Hits() {
					if h.Fault == 0 {
						hit = &h
					} else {
						reachedEnd = true
					}
				}
				fault.Reset()
				if err == nil && !leave {
					t.Fatalf("%s (%+v): the checkpoint succeeded past the backstop", what, hit)
				}
				var result string
				switch {
				case hit == nil:
					// Fewer events this time: the run says nothing of
					// this fault.
					t.Logf("%s: not reached (%d events counted)", what, counts[pt])
					os.Remove(img)
					continue
				case err == nil || reachedEnd:
					result = "no effect: the checkpoint works around it"
					t.Logf("%s (%s): worked around", what, hit.What)
					if kind.site == fault.SiteWrite && kind.err != nil {
						t.Errorf("%s (%s): the checkpoint succeeded", what, hit.What)
					}
					if leave {
						// What it wrote must be whole.
						if ierr := inspectImage(img); ierr != nil {
							t.Errorf("%s (%s): the checkpoint succeeded, but its image: %v", what, hit.What, ierr)
						}
					}
					os.Remove(img)
				default:
					result = "fails; the target runs on as before, no image"
					if kind.err != nil && !errors.Is(err, kind.err) {
						t.Errorf("%s (%s): the error lost its cause %v: %v", what, hit.What, kind.err, err)
					}
				}
				if names := filesIn(t, dir); len(names) != 0 {
					t.Errorf("%s (%s): left %v in the image's directory", what, hit.What, names)
					for _, n := range names {
						os.Remove(filepath.Join(dir, n))
					}
				}
				s.expectAsBefore(t, before, what+" ("+hit.What+")")
				if diff := cmp.Diff(own, ownState(t)); diff != "" {
					t.Errorf("%s (%s): crsub is left with more (-before +after):\n%s", what, hit.What, diff)
				}
				s.selfCheck(t, what+" ("+hit.What+")")
				m.add(op, pt.Phase, kind.name, result)
				if t.Failed() {
					return
				}
			}
		}
	}
}

// inspectImage reads an image through, checking every record.
func inspectImage(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = ckpt.Inspect(f)
	return err
}

// selected says whether a run is among those CRSUB_FAULTS (a substring
// of their description) selects: all of them by default.
func selected(what string) bool {
	only := os.Getenv("CRSUB_FAULTS")
	if only != "" && strings.Contains(what, only) {
		fmt.Fprintln(os.Stderr, what) // on its way, should it hang
	}
	return strings.Contains(what, only)
}

// restartSweep fails each sampled call of a restart (up to perPhase of
// each phase), run with extra arguments, and checks after each that
// nothing of it is left.
func restartSweep(t *testing.T, s *subjectRun, img string, extra []string, perPhase int, m matrix) {
	args := append([]string{"-i", img, "-q", "--detach"}, extra...)
	fault.Reset()
	if err := runRestart(args, io.Discard, io.Discard); err != nil {
		t.Fatalf("restart, counting: %v", err)
	}
	counts := fault.Counts()
	endRestored(t, s)
	leftovers := newLeftovers(t, s)
	for _, pt := range points(counts, phaseOrder, "restart") {
		for _, kind := range kindsAt(pt.Site) {
			for _, n := range sample(counts[pt], perPhase) {
				what := fmt.Sprintf("restart, %s #%d of %s", kind.name, n, pt.Phase)
				if !selected(what) {
					continue
				}
				fault.Arm(fault.Fault{Site: pt.Site, Phase: pt.Phase, N: n, Err: kind.err})
				err := runRestart(args, io.Discard, io.Discard)
				hit := fault.Fired()
				fault.Reset()
				var result string
				switch {
				case hit == nil:
					t.Logf("%s: not reached (%d events counted)", what, counts[pt])
					if err == nil {
						endRestored(t, s)
					}
					continue
				case err == nil:
					// A failure the restart works around must not show
					// in what it restored.
					result = "no effect: the restart works around it"
					s.selfCheck(t, what+" ("+hit.What+"), tolerated")
					endRestored(t, s)
				default:
					result = "fails; nothing left, " + restartNames(t, what+" ("+hit.What+")", err, pt.Phase, kind.err)
				}
				leftovers.check(t, what+" ("+hit.What+")")
				m.add("restart", pt.Phase, kind.name, result)
				if t.Failed() {
					return
				}
			}
		}
	}
}

// restartNames checks that a restart's error keeps its cause and names
// the phase it failed in, and says how it names it.
func restartNames(t *testing.T, what string, err error, phase string, cause error) string {
	t.Helper()
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("%s: the error lost its cause %v: %v", what, cause, err)
	}
	var rec *restart.RecordError
	var task *restart.TaskError
	switch {
	case strings.HasPrefix(phase, "record "):
		if !errors.As(err, &rec) || "record "+rec.Type.String() != phase {
			t.Errorf("%s: the error does not name the %s: %v", what, phase, err)
			return "?"
		}
		return "the error names the record"
	case errors.As(err, &task):
		if task.Phase != phase {
			t.Errorf("%s: the error names phase %q: %v", what, task.Phase, err)
		}
		return "the error names the process and the phase"
	}
	if phase == "planning" {
		// Before any task: nothing to name but the call.
		return "the error names the call"
	}
	if strings.Contains(err.Error(), phase+": ") {
		// A step of the whole restart, after every task is rebuilt.
		return "the error names the phase"
	}
	t.Errorf("%s: the error names no phase: %v", what, err)
	return "?"
}

// leftovers is what a failed restart must leave as it found it.
type leftovers struct {
	s     *subjectRun
	own   selfState
	files []string
}

func newLeftovers(t *testing.T, s *subjectRun) *leftovers {
	return &leftovers{s: s, own: ownState(t), files: filesIn(t, s.dir)}
}

func (l *leftovers) check(t *testing.T, what string) {
	t.Helper()
	waitPidsGone(t, l.s.pids, what)
	// An exec substitute's command names the subject's directory; it
	// ends with the pipe from the restart.
	for deadline := time.Now().Add(5 * time.Second); len(helpers(l.s.dir)) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%s: exec substitutes' commands left: %v", what, helpers(l.s.dir))
			killHelpers(l.s.dir)
			break
		}
	}
	if left := namedUTS(l.s.hostname); len(left) != 0 {
		t.Errorf("%s: in or holding the restart's uts namespace: %v", what, left)
	}
	if diff := cmp.Diff(l.own, ownState(t)); diff != "" {
		t.Errorf("%s: crsub is left with more (-before +after):\n%s", what, diff)
	}
	if diff := cmp.Diff(l.files, filesIn(t, l.s.dir)); diff != "" {
		t.Errorf("%s: files left (-before +after):\n%s", what, diff)
	}
}

// endRestored kills a restored subject and reaps its root, a child of
// this process (the restart's).
func endRestored(t *testing.T, s *subjectRun) {
	t.Helper()
	// An exec substitute's command, a child of this process (the
	// restart's), ends with its input: reaped here.
	helperPids := helpers(s.dir)
	defer waitPidsGone(t, helperPids, "the exec substitutes' commands")
	for _, pid := range s.pids {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	var ws unix.WaitStatus
	_, _ = unix.Wait4(s.pids[0], &ws, 0, nil)
	waitPidsGone(t, s.pids, "killing the restored subject")
	for _, name := range s.restoredFiles {
		os.Remove(filepath.Join(s.dir, name))
	}
}

// perCut bounds how many records the image is cut at (at the start and
// in the middle of each): the first and last of each type, and evenly
// spaced ones among the others.
const perCut = 24

// cutSweep restarts the image cut short at the start and in the middle
// of records of every type.
func cutSweep(t *testing.T, s *subjectRun, img string, m matrix) {
	whole, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ckpt.Inspect(bytes.NewReader(whole))
	if err != nil {
		t.Fatal(err)
	}
	cutImg := filepath.Join(t.TempDir(), "cut")
	leftovers := newLeftovers(t, s)
	type cut struct {
		at    int64
		index int
		kind  string
	}
	chosen := map[int]bool{}
	first, last := map[string]int{}, map[string]int{}
	for i, r := range inv.Records {
		if _, ok := first[r.Type]; !ok {
			first[r.Type] = i
		}
		last[r.Type] = i
	}
	for _, i := range first {
		chosen[i] = true
	}
	for _, i := range last {
		chosen[i] = true
	}
	for _, n := range sample(len(inv.Records), perCut-len(chosen)) {
		chosen[n-1] = true
	}
	var cuts []cut
	for i, r := range inv.Records {
		if chosen[i] {
			cuts = append(cuts, cut{r.Offset, r.Index, "image cut at a record's start"}, cut{r.Offset + r.Length/2, r.Index, "image cut inside a record"})
		}
	}
	cuts = append(cuts, cut{int64(len(whole)) - 1, -1, "image cut inside its trailer"})
	t.Logf("%d cuts", len(cuts))
	for _, c := range cuts {
		if err := os.WriteFile(cutImg, whole[:c.at], 0o600); err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("restart, image cut at %d (record %d)", c.at, c.index)
		err := runRestart([]string{"-i", cutImg, "-q", "--detach"}, io.Discard, io.Discard)
		if err == nil {
			t.Fatalf("%s: the restart succeeded", what)
		}
		var corrupt *ckpt.CorruptError
		result := "fails; nothing left, the error names the record and offset"
		phase := "reading the image"
		switch {
		case !errors.As(err, &corrupt):
			t.Errorf("%s: not a corruption error: %v", what, err)
		case c.index >= 0 && corrupt.Record != c.index:
			t.Errorf("%s: the error names record %d: %v", what, corrupt.Record, err)
		case !strings.Contains(err.Error(), "truncated") && !errors.Is(err, io.ErrUnexpectedEOF):
			t.Errorf("%s: the error does not say the image is cut short: %v", what, err)
		}
		leftovers.check(t, what)
		m.add("restart", phase, c.kind, result)
		if t.Failed() {
			return
		}
	}
}

// pidSweep has a pid of the image held by another process before the
// restart, or taken while the restart waits for a zombie to free it.
func pidSweep(t *testing.T, s *subjectRun, img, holder string, m matrix) {
	leftovers := newLeftovers(t, s)
	for _, tc := range []struct {
		kind string
		args []string
	}{
		{"pid held by a live process", []string{"live"}},
		{"pid freed by a zombie, then taken", []string{"later", "", "300"}},
	} {
		for i, pid := range s.pids {
			what := fmt.Sprintf("restart, %s: pid %d", tc.kind, pid)
			args := slices.Clone(tc.args)
			args = append(args[:1], append([]string{strconv.Itoa(pid)}, args[min(2, len(args)):]...)...)
			cmd := exec.Command(holder, args...)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(out, make([]byte, 5)); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("%s: the holder did not take the pid", what)
			}
			start := time.Now()
			err = runRestart([]string{"-i", img, "-q", "--detach", "--pid-wait", "5s"}, io.Discard, io.Discard)
			took := time.Since(start)
			cmd.Process.Signal(unix.SIGTERM)
			cmd.Wait()
			var inUse *restart.PidInUseError
			if !errors.As(err, &inUse) || inUse.Pid != pid {
				t.Errorf("%s: %v; want pid %d in use", what, err, pid)
			}
			if len(tc.args) > 1 && took < 300*time.Millisecond {
				t.Errorf("%s: failed after %v, before the zombie was reaped", what, took)
			}
			phase := "creating the root task"
			if i > 0 {
				phase = "record process"
				var rec *restart.RecordError
				if !errors.As(err, &rec) || rec.Type != ckpt.TypeProcess {
					t.Errorf("%s: the error does not name the process record: %v", what, err)
				}
			}
			// The holder's child dies with it.
			waitPidsGone(t, []int{pid}, what+", the holder ended")
			leftovers.check(t, what)
			m.add("restart", phase, tc.kind, "fails; nothing left, the error names the pid and its holder")
		}
	}
}

// checkMatrix compares the matrix with the one docs/reliability.md has for
// test (m.within), or writes it there with CRSUB_UPDATE_MATRIX=1: this
// sweep's rows, each with the outcomes the document listed for it too.
func checkMatrix(t *testing.T, test string, m matrix, order map[string]int) {
	t.Helper()
	matrixStart, matrixEnd := "<!-- matrix: generated by "+test+" -->\n", "<!-- end of matrix -->\n"
	path := filepath.Join("..", "..", "docs", "reliability.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(doc), matrixStart)
	current, after, ok2 := strings.Cut(rest, matrixEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s has no matrix between %q and %q", path, matrixStart, matrixEnd)
	}
	documented := parseTable(current)
	if m.within(documented) {
		return
	}
	if os.Getenv("CRSUB_UPDATE_MATRIX") != "" {
		for k, results := range m {
			for r := range documented[k] {
				results[r] = true
			}
		}
		if err := os.WriteFile(path, []byte(before+matrixStart+m.table(order)+matrixEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's matrix is out of date (run with CRSUB_UPDATE_MATRIX=1 to write it) (-doc +now):\n%s", path, cmp.Diff(current, m.table(order)))
}
