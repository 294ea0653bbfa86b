// SPDX-License-Identifier: MIT
/*
 * file_lease: leases (F_SETLEASE) of open file descriptions come back with
 * their type; a description without one gets none. A write lease someone
 * was breaking to read comes back still breaking, and the break's SIGIO,
 * taken before the checkpoint, is not sent again.
 */
#define _GNU_SOURCE

#include "cr.h"

static volatile sig_atomic_t sigios;
static void on_sigio(int sig) { (void)sig; sigios++; }

int main(void)
{
	int rd, wr, none, brk, l, b;

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);
	signal(SIGIO, on_sigio);
	rd = open(cr_path("leased-read"), O_RDONLY | O_CREAT, 0600);
	wr = open(cr_path("leased-write"), O_WRONLY | O_CREAT, 0600);
	none = open(cr_path("not-leased"), O_RDONLY | O_CREAT, 0600);
	if (rd < 0 || wr < 0 || none < 0)
		ksft_exit_fail_msg("open: %s", strerror(errno));
	if (fcntl(rd, F_SETLEASE, F_RDLCK) || fcntl(wr, F_SETLEASE, F_WRLCK))
		ksft_exit_fail_msg("F_SETLEASE: %s", strerror(errno));
	brk = open(cr_path("breaking"), O_RDWR | O_CREAT, 0600);
	if (brk < 0 || fcntl(brk, F_SETLEASE, F_WRLCK))
		ksft_exit_fail_msg("breaking: %s", strerror(errno));
	b = open(cr_path("breaking"), O_RDONLY | O_NONBLOCK);
	if (b >= 0 || errno != EWOULDBLOCK)
		ksft_exit_fail_msg("setup: the read open did not start a break (%d, %s)", b, strerror(errno));
	for (int i = 0; i < 100 && !sigios; i++)
		usleep(10000);
	if (sigios != 1)
		ksft_exit_fail_msg("setup: %d SIGIO for the break, want 1", (int)sigios);

	cr_ready();
	cr_wait_sigterm();

	l = fcntl(rd, F_GETLEASE);
	ksft_test_result(l == F_RDLCK, "read lease kept (%d)", l);
	l = fcntl(wr, F_GETLEASE);
	ksft_test_result(l == F_WRLCK, "write lease kept (%d)", l);
	l = fcntl(none, F_GETLEASE);
	ksft_test_result(l == F_UNLCK, "no lease where there was none (%d)", l);
	l = fcntl(brk, F_GETLEASE);
	b = open(cr_path("breaking"), O_RDONLY | O_NONBLOCK);
	ksft_test_result(l == F_RDLCK && b < 0 && errno == EWOULDBLOCK,
			 "the lease being broken is still being broken to read (%d)", l);
	usleep(50000);
	ksft_test_result(sigios == 1, "the break's SIGIO came once, before the checkpoint (%d)", (int)sigios);
	l = fcntl(brk, F_SETLEASE, F_UNLCK);
	b = open(cr_path("breaking"), O_RDONLY | O_NONBLOCK);
	ksft_test_result(l == 0 && b >= 0, "letting the lease go ends the break: a reader opens it");
	ksft_finished();
}
