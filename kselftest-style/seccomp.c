// SPDX-License-Identifier: MIT
/*
 * seccomp: a process under a seccomp filter (getppid answers EPERM) must
 * still be under it after restart: a restart that silently dropped a
 * sandbox would be a security hole.
 */
#define _GNU_SOURCE
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include "cr.h"

static int status_field(const char *key)
{
	char line[256];
	int v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = atoi(line + strlen(key) + 1);
	if (f)
		fclose(f);
	return v;
}

int main(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };
	long r;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		ksft_exit_fail_msg("installing the filter: %s", strerror(errno));
	errno = 0;
	r = syscall(SYS_getppid);
	if (r != -1 || errno != EPERM)
		ksft_exit_fail_msg("the filter does not work before the checkpoint");
	ksft_print_msg("setup ok: getppid refused by the filter");

	cr_ready();
	cr_wait_sigterm();

	errno = 0;
	r = syscall(SYS_getppid);
	ksft_test_result(r == -1 && errno == EPERM, "getppid is still refused with EPERM (%ld, %s)", r, strerror(errno));
	ksft_test_result(status_field("Seccomp:") == 2 && status_field("Seccomp_filters:") == 1, "one seccomp filter in force");
	ksft_test_result(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs still set");
	ksft_finished();
}
