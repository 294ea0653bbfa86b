// SPDX-License-Identifier: MIT
/*
 * sched_state: a process that lowered its priority (nice 5), runs on CPU 0
 * only, takes the idle I/O class, raised its oom_score_adj and made itself
 * a child subreaper keeps all of it across checkpoint/restart.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include "cr.h"

static int oom_score_adj(void)
{
	char buf[16] = { 0 };
	int fd = open("/proc/self/oom_score_adj", O_RDONLY);

	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		return -9999;
	close(fd);
	return atoi(buf);
}

int main(void)
{
	cpu_set_t set;
	int fd, reaper = 0;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (setpriority(PRIO_PROCESS, 0, 5) || sched_setaffinity(0, sizeof(set), &set) ||
	    syscall(SYS_ioprio_set, 1, 0, 3 << 13) || fd < 0 || write(fd, "250", 3) != 3 ||
	    prctl(PR_SET_CHILD_SUBREAPER, 1))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	close(fd);

	cr_ready();
	cr_wait_sigterm();

	errno = 0;
	ksft_test_result(getpriority(PRIO_PROCESS, 0) == 5 && !errno, "nice 5 (%d)", getpriority(PRIO_PROCESS, 0));
	CPU_ZERO(&set);
	ksft_test_result(!sched_getaffinity(0, sizeof(set), &set) && CPU_COUNT(&set) == 1 && CPU_ISSET(0, &set),
			 "CPU 0 only (%d CPUs)", CPU_COUNT(&set));
	ksft_test_result(syscall(SYS_ioprio_get, 1, 0) >> 13 == 3, "idle I/O class (%ld)", syscall(SYS_ioprio_get, 1, 0) >> 13);
	ksft_test_result(oom_score_adj() == 250, "oom_score_adj 250 (%d)", oom_score_adj());
	prctl(PR_GET_CHILD_SUBREAPER, &reaper);
	ksft_test_result(reaper == 1, "child subreaper (%d)", reaper);
	ksft_finished();
}
