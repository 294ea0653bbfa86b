package restart_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
)

// guarded makes guard pages (MADV_GUARD_INSTALL) in a region of 64 written
// pages: 10 and 11 at once, 40 on SIGUSR2 (then it creates "guarded"). On
// SIGUSR1 it checks every other page's contents and that exactly the guard
// pages fault, and writes "ok" or what is wrong to "verdict".
const guarded = `#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#define PS 4096
#define PAGES 64
static sigjmp_buf jump;
static volatile sig_atomic_t check, more;
static void on_segv(int s) { (void)s; siglongjmp(jump, 1); }
static void on_usr1(int s) { (void)s; check = 1; }
static void on_usr2(int s) { (void)s; more = 1; }
static int guard(int i) { return i == 10 || i == 11 || i == 40; }
int main(void) {
	unsigned char *p = mmap(0, PAGES * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < PAGES; i++) memset(p + i * PS, i + 1, PS);
	if (madvise(p + 10 * PS, 2 * PS, MADV_GUARD_INSTALL)) { perror("MADV_GUARD_INSTALL"); return 1; }
	struct sigaction sa = { .sa_handler = on_segv, .sa_flags = SA_NODEFER };
	sigaction(SIGSEGV, &sa, 0);
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	/* The signals are taken only inside sigsuspend, so none is lost
	   between the test of the flags and the wait. */
	sigset_t both, wait;
	sigemptyset(&both);
	sigaddset(&both, SIGUSR1);
	sigaddset(&both, SIGUSR2);
	sigprocmask(SIG_BLOCK, &both, &wait);
	sigdelset(&wait, SIGUSR1);
	sigdelset(&wait, SIGUSR2);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		while (!check && !more) sigsuspend(&wait);
		if (more) {
			more = 0;
			madvise(p + 40 * PS, PS, MADV_GUARD_INSTALL);
			close(open("guarded", O_CREAT | O_WRONLY, 0600));
			continue;
		}
		check = 0;
		char msg[128] = "ok";
		for (int i = PAGES - 1; i >= 0; i--) {
			volatile unsigned char *at = p + i * PS + 7;
			int faulted = 0;
			unsigned char got = 0;
			if (sigsetjmp(jump, 1) == 0) got = *at; else faulted = 1;
			if (faulted != guard(i)) snprintf(msg, sizeof msg, "page %d: %s", i, faulted ? "faults" : "does not fault");
			else if (!faulted && got != i + 1) snprintf(msg, sizeof msg, "page %d holds %d", i, got);
		}
		FILE *f = fopen("verdict.tmp", "w");
		fprintf(f, "%s\n", msg);
		fclose(f);
		rename("verdict.tmp", "verdict");
	}
}
`

// Guard pages hold nothing to copy (reading one faults), so a checkpoint
// leaves them out of the image and the restart makes them guard pages
// again; with pre-copy, also one made a guard page after a round copied it.
func TestGuardPages(t *testing.T) {
	crtest.RequireRoot(t)
	bin := crtest.Build(t, guarded)
	for _, preCopy := range []int{0, 2} {
		name := "plain"
		if preCopy > 0 {
			name = "pre-copy"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, bin)
			if preCopy == 0 {
				p.Signal(syscall.SIGUSR2)
				crtest.WaitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "guarded")); return err == nil }, "guard page 40")
			}
			crtest.WaitBlocked(t, p.Pid)
			opts := checkpoint.DefaultOptions()
			opts.PreCopy = preCopy
			opts.PreCopyRound = func(round int, _ uint64) {
				if round == 1 {
					p.Signal(syscall.SIGUSR2)
					crtest.WaitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "guarded")); return err == nil }, "guard page 40")
					crtest.WaitBlocked(t, p.Pid)
				}
			}
			img, err := checkpoint.Snapshot(context.Background(), p.Pid, opts)
			if err != nil {
				p.Kill()
				p.Wait()
				t.Fatal(err)
			}
			p.Wait()
			rp := restartFrom(t, img.Reader())
			if v := verdict(t, rp.Pid, dir); !strings.HasPrefix(v, "ok") {
				t.Fatalf("restored process: %s", v)
			}
		})
	}
}
