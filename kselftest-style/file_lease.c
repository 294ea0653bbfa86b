// SPDX-License-Identifier: MIT
/*
 * file_lease: leases (F_SETLEASE) of open file descriptions come back with
 * their type; a description without one gets none.
 */
#define _GNU_SOURCE

#include "cr.h"

int main(void)
{
	int rd, wr, none, l;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);
	rd = open(cr_path("leased-read"), O_RDONLY | O_CREAT, 0600);
	wr = open(cr_path("leased-write"), O_WRONLY | O_CREAT, 0600);
	none = open(cr_path("not-leased"), O_RDONLY | O_CREAT, 0600);
	if (rd < 0 || wr < 0 || none < 0)
		ksft_exit_fail_msg("open: %s", strerror(errno));
	if (fcntl(rd, F_SETLEASE, F_RDLCK) || fcntl(wr, F_SETLEASE, F_WRLCK))
		ksft_exit_fail_msg("F_SETLEASE: %s", strerror(errno));

	cr_ready();
	cr_wait_sigterm();

	l = fcntl(rd, F_GETLEASE);
	ksft_test_result(l == F_RDLCK, "read lease kept (%d)", l);
	l = fcntl(wr, F_GETLEASE);
	ksft_test_result(l == F_WRLCK, "write lease kept (%d)", l);
	l = fcntl(none, F_GETLEASE);
	ksft_test_result(l == F_UNLCK, "no lease where there was none (%d)", l);
	ksft_finished();
}
