// SPDX-License-Identifier: MIT
/*
 * threads_creds: a multi-threaded process that is not root, one of whose
 * threads has credentials of its own. Credentials are per thread: the C
 * library's setresuid(2) changes every thread's, the raw system call only
 * the caller's. Here one thread sets its ids to 99 with the raw call while
 * root; the main thread then drops its own to 1000 (groups 1000 and 2000, no
 * capabilities) and creates two more threads, which inherit those. After
 * restart every thread must have its tid and exactly the credentials it had
 * (the Uid..CapAmb lines of its /proc/self/task/TID/status), as each thread
 * also sees with getresuid(2) and getresgid(2) in itself.
 */
#define _GNU_SOURCE
#include <libgen.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "cr.h"

#define THREADS 3 /* the thread with ids of its own, then two inheriting */

struct worker {
	pthread_t thread;
	uid_t want_uid;
	gid_t want_gid;
	pid_t tid_before, tid_after;
	char status_before[1024], status_after[1024];
	int ids_before_ok, ids_after_ok;
	volatile int ready;
};

static struct worker workers[THREADS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go_on;

/* The credential lines of the calling thread's status. */
static void own_status(char *out, size_t n)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", gettid());
	cr_cred_lines(path, out, n);
}

/* Whether the calling thread's ids are all uid and gid, asked of itself. */
static int own_ids_are(uid_t uid, gid_t gid)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;

	if (syscall(SYS_getresuid, &r, &e, &s) || syscall(SYS_getresgid, &gr, &ge, &gs))
		return 0;
	return r == uid && e == uid && s == uid && gr == gid && ge == gid && gs == gid;
}

static void *run(void *arg)
{
	struct worker *w = arg;

	if (w == &workers[0]) {
		/* Raw calls: this thread's ids alone. */
		if (syscall(SYS_setgroups, 0, NULL) || syscall(SYS_setresgid, w->want_gid, w->want_gid, w->want_gid) ||
		    syscall(SYS_setresuid, w->want_uid, w->want_uid, w->want_uid))
			ksft_exit_fail_msg("setup: the odd thread's ids: %s\n", strerror(errno));
	}
	w->tid_before = gettid();
	w->ids_before_ok = own_ids_are(w->want_uid, w->want_gid);
	own_status(w->status_before, sizeof(w->status_before));
	w->ready = 1;
	pthread_mutex_lock(&mu);
	while (!go_on)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	w->tid_after = gettid();
	w->ids_after_ok = own_ids_are(w->want_uid, w->want_gid);
	own_status(w->status_after, sizeof(w->status_after));
	return NULL;
}

static void start(int i, uid_t uid, gid_t gid)
{
	workers[i].want_uid = uid;
	workers[i].want_gid = gid;
	if (pthread_create(&workers[i].thread, NULL, run, &workers[i]))
		ksft_exit_fail_msg("pthread_create\n");
	while (!workers[i].ready)
		usleep(1000);
}

int main(void)
{
	gid_t groups[] = { 1000, 2000 };
	char main_before[1024], main_after[1024], parent[4096];
	int i, tids = 1, ids = 1, status = 1, main_ok;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);
	/*
	 * The subject writes $CR_DIR/ready after it is no longer root: it may
	 * write in its directory and pass through the runner's.
	 */
	snprintf(parent, sizeof(parent), "%s", cr_dir());
	if (chmod(cr_dir(), 0777) || chmod(dirname(parent), 0711))
		ksft_exit_fail_msg("chmod %s: %s\n", cr_dir(), strerror(errno));
	start(0, 99, 99);
	if (syscall(SYS_setgroups, 2, groups) || syscall(SYS_setresgid, 1000, 1000, 1000) ||
	    syscall(SYS_setresuid, 1000, 1000, 1000))
		ksft_exit_fail_msg("setup: the main thread's ids: %s\n", strerror(errno));
	for (i = 1; i < THREADS; i++)
		start(i, 1000, 1000);
	own_status(main_before, sizeof(main_before));
	for (i = 0; i < THREADS; i++)
		if (!workers[i].ids_before_ok)
			ksft_exit_fail_msg("setup: thread %d does not have ids %d\n", i, workers[i].want_uid);
	if (!strcmp(workers[0].status_before, main_before) || strcmp(workers[1].status_before, main_before))
		ksft_exit_fail_msg("setup: the threads' credentials are not as set\n");
	ksft_print_msg("setup ok: main thread and two threads uid 1000, one thread uid 99\n");

	cr_ready();
	cr_wait_sigterm();

	main_ok = own_ids_are(1000, 1000);
	own_status(main_after, sizeof(main_after));
	pthread_mutex_lock(&mu);
	go_on = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (i = 0; i < THREADS; i++) {
		pthread_join(workers[i].thread, NULL);
		tids &= workers[i].tid_before == workers[i].tid_after;
		ids &= workers[i].ids_after_ok;
		if (strcmp(workers[i].status_before, workers[i].status_after)) {
			status = 0;
			ksft_print_msg("thread %d before:\n%s", i, workers[i].status_before);
			ksft_print_msg("thread %d after:\n%s", i, workers[i].status_after);
		}
	}
	if (strcmp(main_before, main_after)) {
		status = 0;
		ksft_print_msg("main thread before:\n%safter:\n%s", main_before, main_after);
	}
	ksft_test_result(tids, "every thread kept its tid\n");
	ksft_test_result(main_ok, "the main thread's ids are 1000, asked of itself\n");
	ksft_test_result(ids, "each other thread's ids are its own (99, 1000, 1000), asked of itself\n");
	ksft_test_result(status, "every thread's credentials read as before in its status\n");
	ksft_finished();
}
