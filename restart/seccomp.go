package restart

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/remote"
)

// Seccomp filters belong to threads: a thread starts with the filters of
// the thread that created it, sharing them, and adds its own. The main
// thread installs its filters oldest first; a thread whose filters are not
// all the main thread's is created at the point where they part, and
// installs the rest itself. The threads that shared filters share them
// again (as far as the filters tell: two threads that installed the same
// filter each share it now), so a later SECCOMP_FILTER_FLAG_TSYNC finds
// them as it did.

// Seccomp modes (SECCOMP_MODE_*) and seccomp(2) operations.
const (
	seccompModeStrict    = 1
	seccompModeFilter    = 2
	seccompSetModeFilter = 1
)

// threadFilters are the filters thread th has, oldest first: its own,
// none (strict mode, or no seccomp), or the process's.
func threadFilters(p *ckpt.Process, th *ckpt.Thread) [][]byte {
	switch {
	case th.SeccompFilters != nil:
		return th.SeccompFilters
	case th.Seccomp != seccompModeFilter:
		return nil
	}
	return p.SeccompFilters
}

// commonFilters is how many filters, oldest first, a and b have alike.
func commonFilters(a, b [][]byte) int {
	n := 0
	for n < len(a) && n < len(b) && slices.Equal(a[n], b[n]) {
		n++
	}
	return n
}

// installSeccomp installs the main thread's seccomp filters, oldest first,
// as the process itself would have (with no_new_privs already restored,
// or as root), and creates the threads whose filters are not the main
// thread's, each where its filters part from the main thread's; each then
// installs its own.
func (t *task) installSeccomp() error {
	main := t.process.SeccompFilters
	var apart []*thread
	partAt := map[int][]*thread{}
	for _, x := range t.threads {
		own := threadFilters(t.process, x.image)
		if len(own) == len(main) && commonFilters(own, main) == len(main) {
			continue
		}
		n := commonFilters(own, main)
		partAt[n] = append(partAt[n], x)
		apart = append(apart, x)
	}
	for i := 0; i <= len(main); i++ {
		if err := t.createThreads(partAt[i]); err != nil {
			return err
		}
		if i == len(main) {
			break
		}
		if err := t.installFilter(t.remote, main[i]); err != nil {
			return fmt.Errorf("seccomp filter %d: %w", i, err)
		}
	}
	for _, x := range apart {
		own := threadFilters(t.process, x.image)
		for i := commonFilters(own, main); i < len(own); i++ {
			if err := t.installFilter(x.remote, own[i]); err != nil {
				return fmt.Errorf("thread %d: seccomp filter %d: %w", x.image.Tid, i, err)
			}
		}
	}
	return nil
}

// installFilter installs BPF program f in thread r.
func (t *task) installFilter(r *remote.Remote, f []byte) error {
	if len(f) == 0 || len(f)%8 != 0 || len(f)/8 > 4096 {
		return fmt.Errorf("%d bytes is no BPF program", len(f))
	}
	// struct sock_fprog: u16 len, padding, then a pointer to the
	// instructions, which follow it in the scratch buffer.
	prog := make([]byte, 16, 16+len(f))
	putLE32(prog, uint32(len(f)/8))
	putLE64(prog[8:], t.scratch+16)
	if _, err := t.Scratch(append(prog, f...)); err != nil {
		return err
	}
	if _, err := r.Syscall(unix.SYS_SECCOMP, seccompSetModeFilter, 0, t.scratch); err != nil {
		return fmt.Errorf("installing it: %w", err)
	}
	return nil
}

// setSeccompStrict puts thread r in seccomp strict mode if its image th
// says it was.
func setSeccompStrict(r *remote.Remote, th *ckpt.Thread) error {
	if th.Seccomp != seccompModeStrict {
		return nil
	}
	if _, err := r.Syscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, seccompModeStrict); err != nil {
		return fmt.Errorf("seccomp strict mode: %w", err)
	}
	return nil
}
