package restart_test

import (
	"testing"

	"github.com/crsub/crsub/internal/crtest"
)

// posixTimers has a periodic timer (every 20 ms, SIGUSR2, counted by a
// handler), and a disarmed one whose sigev_value is 0x5eed. On SIGUSR1 it
// checks both by their ids, counts the ticks of 200 ms and writes a report.
const posixTimers = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go, ticks;
static void on_usr1(int s) { (void)s; go = 1; }
static void on_usr2(int s, siginfo_t *si, void *c) { (void)s; (void)c; if (si->si_code == SI_TIMER) ticks++; }
int main(void) {
	timer_t periodic, idle;
	struct sigaction sa = { .sa_sigaction = on_usr2, .sa_flags = SA_SIGINFO | SA_RESTART };
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGUSR1, on_usr1);
	struct sigevent a = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2 };
	struct sigevent b = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2, .sigev_value.sival_ptr = (void *)0x5eed };
	if (timer_create(CLOCK_MONOTONIC, &a, &periodic) || timer_create(CLOCK_REALTIME, &b, &idle)) return 1;
	struct itimerspec its = { { 0, 20000000 }, { 0, 20000000 } };
	timer_settime(periodic, 0, &its, NULL);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	struct itimerspec p, i;
	int ep = timer_gettime(periodic, &p), ei = timer_gettime(idle, &i);
	int before = ticks;
	struct timespec ts = { 0, 200000000 };
	while (nanosleep(&ts, &ts)) ;
	FILE *f = fopen("report", "w");
	fprintf(f, "periodic=%d interval=%ld idle=%d armed=%d ticking=%d", ep, p.it_interval.tv_nsec, ei, i.it_value.tv_sec || i.it_value.tv_nsec, ticks - before >= 4);
	fclose(f);
	for (;;) pause();
}
`

// timer_create timers come back with their ids, settings and signals.
func TestPosixTimers(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, posixTimers))
	rp := checkpointAndRestart(t, p)
	if got := askReport(t, rp, dir, "report"); got != "periodic=0 interval=20000000 idle=0 armed=0 ticking=1" {
		t.Fatalf("restored process: %q", got)
	}
}

// expiredItimer arms ITIMER_REAL every 50 ms with SIGALRM blocked, so the
// first expiry leaves the signal pending and the timer not re-armed (the
// kernel re-arms it when the signal is taken). On SIGUSR1 it unblocks
// SIGALRM and counts the alarms of 400 ms.
const expiredItimer = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go, alarms;
static void on_usr1(int s) { (void)s; go = 1; }
static void on_alrm(int s) { (void)s; alarms++; }
int main(void) {
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	sigprocmask(SIG_BLOCK, &alrm, NULL);
	signal(SIGALRM, on_alrm);
	signal(SIGUSR1, on_usr1);
	struct itimerval it = { { 0, 50000 }, { 0, 50000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	struct timespec ts = { 0, 200000000 };
	nanosleep(&ts, NULL);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	sigprocmask(SIG_UNBLOCK, &alrm, NULL);
	ts.tv_nsec = 400000000;
	while (nanosleep(&ts, &ts)) ;
	FILE *f = fopen("report", "w");
	fprintf(f, "%s", alarms >= 4 ? "periodic" : "stopped");
	fclose(f);
	for (;;) pause();
}
`

// An ITIMER_REAL that expired while its signal was blocked keeps going
// after restart once the signal is taken.
func TestExpiredItimerKeepsGoing(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, expiredItimer))
	rp := checkpointAndRestart(t, p)
	if got := askReport(t, rp, dir, "report"); got != "periodic" {
		t.Fatalf("restored timer: %s", got)
	}
}
