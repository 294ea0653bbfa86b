// SPDX-License-Identifier: MIT
/*
 * aio_ring: AIO contexts (io_setup(2)) kept with their rings. A two-page
 * ring has gone round once (its tail behind its head) with 100 completed
 * events not yet collected; a one-page ring holds 3; a child forked after
 * them (rings are not inherited) has a ring of its own, which may sit at
 * the address of one of its parent's. After restart each context is where
 * it was, its head and tail as they were, io_getevents returns the waiting
 * events in order with their data, and new requests complete.
 */
#define _GNU_SOURCE
#include <linux/aio_abi.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "cr.h"

struct aio_ring {
	unsigned id, nr, head, tail, magic, compat_features, incompat_features, header_length;
	struct io_event events[];
};

static char byte;
static int null_fd;

/* submit has n requests complete at once (a write to /dev/null), with data first, first+1... */
static int submit(aio_context_t ctx, int n, uint64_t first)
{
	struct iocb cb, *cbp = &cb;
	int i;

	for (i = 0; i < n; i++) {
		memset(&cb, 0, sizeof(cb));
		cb.aio_data = first + i;
		cb.aio_lio_opcode = IOCB_CMD_PWRITE;
		cb.aio_fildes = null_fd;
		cb.aio_buf = (uint64_t)(uintptr_t)&byte;
		cb.aio_nbytes = 1;
		if (syscall(SYS_io_submit, ctx, 1, &cbp) != 1)
			return -1;
	}
	return 0;
}

/* collect takes n events and checks their data is first, first+1... */
static int collect(aio_context_t ctx, int n, uint64_t first)
{
	struct io_event ev[128];
	struct timespec ts = { 5, 0 };
	int i, got = 0;

	while (got < n) {
		int want = n - got > 128 ? 128 : n - got;
		long r = syscall(SYS_io_getevents, ctx, want, want, ev, &ts);

		if (r <= 0)
			return -1;
		for (i = 0; i < r; i++)
			if (ev[i].data != first + got + i || ev[i].res != 1)
				return -1;
		got += r;
	}
	return 0;
}

static aio_context_t setup(unsigned n)
{
	aio_context_t ctx = 0;

	if (syscall(SYS_io_setup, n, &ctx))
		ksft_exit_fail_msg("setup: io_setup(%u): %s", n, strerror(errno));
	return ctx;
}

struct state {
	unsigned head, tail, nr;
};

static struct state state_of(aio_context_t ctx)
{
	volatile struct aio_ring *r = (void *)ctx;

	return (struct state){ r->head, r->tail, r->nr };
}

static int same(struct state a, struct state b) { return a.head == b.head && a.tail == b.tail && a.nr == b.nr; }

/* The child's ring: 5 events waiting; after SIGUSR1, checked like the root's. */
static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }

static int child(int ready_fd)
{
	aio_context_t ctx = setup(8);
	struct state before;
	sigset_t m;

	if (submit(ctx, 5, 500))
		return 10;
	before = state_of(ctx);
	if (write(ready_fd, &ctx, sizeof(ctx)) != sizeof(ctx))
		return 11;
	sigprocmask(SIG_BLOCK, NULL, &m);
	sigdelset(&m, SIGUSR1);
	while (!usr1)
		sigsuspend(&m);
	if (!same(before, state_of(ctx)))
		return 12;
	if (collect(ctx, 5, 500) || submit(ctx, 1, 600) || collect(ctx, 1, 600))
		return 13;
	return syscall(SYS_io_destroy, ctx) ? 14 : 0;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	aio_context_t big, small, kid_ctx;
	struct state big0, small0;
	sigset_t set;
	int p[2], st;
	pid_t kid;

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);
	null_fd = open("/dev/null", O_WRONLY);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (null_fd < 0 || sigaction(SIGUSR1, &sa, NULL) || sigprocmask(SIG_BLOCK, &set, NULL) || pipe(p))
		ksft_exit_fail_msg("setup: %s", strerror(errno));

	big = setup(64);   /* two pages: 255 events */
	small = setup(1);  /* one page: 127 events */
	if (state_of(big).nr != 255 || state_of(small).nr != 127)
		ksft_exit_skip("rings of %u and %u events: sized for more CPUs than this test expects", state_of(big).nr, state_of(small).nr);
	/* Round once: 200 in and out, then 100 more wait, the tail behind the head. */
	if (submit(big, 100, 0) || collect(big, 100, 0) || submit(big, 100, 100) || collect(big, 100, 100) ||
	    submit(big, 100, 200) || submit(small, 3, 1000))
		ksft_exit_fail_msg("setup: io_submit/io_getevents: %s", strerror(errno));
	big0 = state_of(big);
	small0 = state_of(small);
	if (big0.tail >= big0.head || big0.head != 200 || small0.tail != 3)
		ksft_exit_fail_msg("setup: head %u tail %u, not gone round", big0.head, big0.tail);
	kid = fork();
	if (kid < 0)
		ksft_exit_fail_msg("setup: fork: %s", strerror(errno));
	if (kid == 0)
		_exit(child(p[1]));
	if (read(p[0], &kid_ctx, sizeof(kid_ctx)) != sizeof(kid_ctx))
		ksft_exit_fail_msg("setup: the child did not start");
	ksft_print_msg("rings at %#llx, %#llx, the child's at %#llx", (unsigned long long)big, (unsigned long long)small,
		       (unsigned long long)kid_ctx);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(same(big0, state_of(big)) && same(small0, state_of(small)),
			 "both rings where they were, head and tail as they were");
	ksft_test_result(collect(big, 100, 200) == 0, "the ring that went round gives its 100 waiting events in order");
	ksft_test_result(collect(small, 3, 1000) == 0, "the small ring gives its 3");
	ksft_test_result(submit(big, 50, 300) == 0 && collect(big, 50, 300) == 0 && submit(small, 1, 2000) == 0 && collect(small, 1, 2000) == 0,
			 "new requests complete on both");
	kill(kid, SIGUSR1);
	st = -1;
	waitpid(kid, &st, 0);
	ksft_test_result(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's own ring kept too (status %#x)", st);
	ksft_test_result(syscall(SYS_io_destroy, big) == 0 && syscall(SYS_io_destroy, small) == 0, "io_destroy of both");
	ksft_finished();
}
