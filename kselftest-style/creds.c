// SPDX-License-Identifier: MIT
/*
 * creds: ids, supplementary groups, every capability set (effective,
 * permitted, inheritable, bounding, ambient) and the audit login uid come
 * back as they were: /proc/self/status and /proc/self/loginuid read the
 * same after restart.
 */
#define _GNU_SOURCE
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include "cr.h"

static long loginuid(void)
{
	char buf[32] = "";
	int fd = open("/proc/self/loginuid", O_RDONLY);

	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0)
		return -2;
	close(fd);
	return atol(buf);
}

int main(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	gid_t groups[] = { 5, 6, 4242 };
	char before[4096], after[4096];
	int fd;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);

	fd = open("/proc/self/loginuid", O_WRONLY);
	if (fd < 0 || write(fd, "4242", 4) != 4)
		ksft_exit_skip("cannot set the audit login uid: %s\n", strerror(errno));
	close(fd);
	if (setgroups(3, groups) || setresgid(100, 101, 102) || setresuid(0, 0, 1000))
		ksft_exit_fail_msg("setup: ids: %s", strerror(errno));
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0))
		ksft_exit_fail_msg("setup: dropping from the bounding set: %s", strerror(errno));
	if (syscall(SYS_capget, &hdr, data))
		ksft_exit_fail_msg("setup: capget: %s", strerror(errno));
	data[0].inheritable = 1u << CAP_KILL | 1u << CAP_NET_RAW;
	data[0].effective &= ~(1u << CAP_CHOWN);
	data[0].permitted &= ~(1u << CAP_FOWNER);
	data[0].effective &= ~(1u << CAP_FOWNER);
	data[1].effective &= ~(1u << (CAP_SYSLOG - 32));
	if (syscall(SYS_capset, &hdr, data))
		ksft_exit_fail_msg("setup: capset: %s", strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0))
		ksft_exit_fail_msg("setup: ambient: %s", strerror(errno));
	cr_cred_lines("/proc/self/status", before, sizeof(before));
	ksft_print_msg("setup ok: loginuid %ld\n", loginuid());

	cr_ready();
	cr_wait_sigterm();

	cr_cred_lines("/proc/self/status", after, sizeof(after));
	ksft_test_result(!strncmp(before, after, strstr(before, "CapInh:") - before), "ids and groups kept");
	if (strcmp(before, after))
		ksft_print_msg("before:\n%s\nafter:\n%s\n", before, after);
	ksft_test_result(!strcmp(strstr(before, "CapInh:"), strstr(after, "CapInh:")), "capability sets kept");
	ksft_test_result(loginuid() == 4242, "loginuid kept (%ld)", loginuid());
	ksft_finished();
}
