// SPDX-License-Identifier: MIT
/*
 * rseq_section: two threads run restartable sequences through the rseq area
 * the C library registered for them (as librseq and tcmalloc do), each
 * section a busy loop of milliseconds, so that the checkpoint stops them
 * inside one. A thread interrupted in a section must resume at its abort
 * handler: the kernel guards a section only while its descriptor is in the
 * rseq area, and clears it when the thread returns to user mode outside the
 * section. After restart no section may have reached its end with the
 * descriptor gone (it would have committed unguarded), every thread must
 * still be registered (a second registration fails with EBUSY) and keep
 * running sections.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include "cr.h"

#define WORKERS 2
#define SPIN 2000000L /* a section: about a millisecond */

struct worker {
	pthread_t thread;
	volatile long commits, aborts, unguarded;
	volatile int registered; /* 1 yes, 0 no, -1 unknown yet */
};

static struct worker workers[WORKERS];
static volatile int stop;

static struct rseq *own_rseq(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/*
 * section runs one restartable sequence: it publishes its descriptor in the
 * rseq area, spins, and reads the descriptor back as its last instruction
 * inside. It returns 1 if it ended with the descriptor in place, 0 if the
 * descriptor was gone (cleared by the kernel, which then should have sent
 * it to the abort handler), -1 if it was aborted.
 */
static int section(struct rseq *rs)
{
	uint64_t seen = 0;
	volatile uint64_t *field = (volatile uint64_t *)&rs->rseq_cs;

	__asm__ __volatile__ goto(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"		/* version, flags */
		".quad 1f, (2f - 1f), 4f\n\t"	/* start, post-commit offset, abort */
		".popsection\n\t"
		"leaq 3b(%%rip), %%rax\n\t"
		"movq %%rax, (%[field])\n\t"
		"1:\n\t"
		"movq %[spin], %%rcx\n\t"
		"5:\n\t"
		"decq %%rcx\n\t"
		"jnz 5b\n\t"
		"movq (%[field]), %%rax\n\t"
		"movq %%rax, (%[seen])\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		".byte 0x0f, 0xb9, 0x3d\n\t"	/* signature: nopl <sig>(%%rip) */
		".long 0x53053053\n\t"
		"4:\n\t"
		"jmp %l[aborted]\n\t"
		".popsection\n\t"
		:
		: [field] "r"(field), [seen] "r"(&seen), [spin] "r"(SPIN)
		: "memory", "cc", "rax", "rcx"
		: aborted);
	return seen != 0;
aborted:
	return -1;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	struct rseq *rs = own_rseq();

	while (!stop) {
		switch (section(rs)) {
		case 1:
			w->commits++;
			break;
		case 0:
			w->unguarded++;
			break;
		default:
			w->aborts++;
		}
	}
	/* Registered again with the same area and signature: EBUSY. */
	errno = 0;
	w->registered = syscall(SYS_rseq, rs, __rseq_size < 32 ? 32 : __rseq_size, 0, RSEQ_SIG) == -1 &&
			errno == EBUSY;
	return NULL;
}

int main(void)
{
	long before[WORKERS], unguarded = 0;
	int i, registered = 1, progressed = 1;

	cr_init();
	ksft_print_header();
	if (__rseq_size == 0)
		ksft_exit_skip("the C library registered no rseq area (glibc.pthread.rseq=0?)\n");
	ksft_set_plan(3);
	for (i = 0; i < WORKERS; i++)
		if (pthread_create(&workers[i].thread, NULL, run, &workers[i]))
			ksft_exit_fail_msg("pthread_create\n");
	for (i = 0; i < WORKERS; i++)
		while (workers[i].commits + workers[i].aborts < 3)
			usleep(1000);
	for (i = 0; i < WORKERS; i++)
		if (workers[i].unguarded)
			ksft_exit_fail_msg("a section ended unguarded before any checkpoint\n");
	ksft_print_msg("setup ok: %d threads in rseq sections of %ld iterations\n", WORKERS, SPIN);

	cr_ready();
	cr_wait_sigterm();

	for (i = 0; i < WORKERS; i++)
		before[i] = workers[i].commits + workers[i].aborts;
	/* A few more sections each, all after the restart. */
	usleep(200000);
	stop = 1;
	for (i = 0; i < WORKERS; i++) {
		pthread_join(workers[i].thread, NULL);
		unguarded += workers[i].unguarded;
		registered &= workers[i].registered == 1;
		progressed &= workers[i].commits + workers[i].aborts > before[i];
		ksft_print_msg("thread %d: %ld sections committed, %ld aborted, %ld ended unguarded\n", i,
			       workers[i].commits, workers[i].aborts, workers[i].unguarded);
	}
	ksft_test_result(unguarded == 0, "no section ended with its descriptor cleared\n");
	ksft_test_result(registered, "every thread still has its rseq area registered\n");
	ksft_test_result(progressed, "every thread runs sections after the restart\n");
	ksft_finished();
}
