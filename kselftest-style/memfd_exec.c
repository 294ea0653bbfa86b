// SPDX-License-Identifier: MIT
/*
 * memfd_exec: a memfd keeps its mode bits, and can still be executed
 * (execveat AT_EMPTY_PATH) after restart while the process holds it open
 * read-write, mapped shared and writable, and reopened read-only: no
 * writer the program did not have is left behind (ETXTBSY).
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "cr.h"

static const char script[] = "#!/bin/true\n";

static int exec_status(int fd)
{
	static const char *const argv[] = { "true", NULL }, *const envp[] = { NULL };
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
		_exit(100 + errno);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

int main(void)
{
	struct stat st;
	char path[64];
	char *map;
	int fd, ro, st_before, st_after;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);
	fd = memfd_create("crsub-exec", 0);
	if (fd < 0 || write(fd, script, sizeof(script) - 1) != sizeof(script) - 1 || fchmod(fd, 0751))
		ksft_exit_fail_msg("memfd: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY);
	map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ro < 0 || map == MAP_FAILED)
		ksft_exit_fail_msg("reopen/mmap: %s", strerror(errno));
	st_before = exec_status(fd);
	if (st_before != 0)
		ksft_exit_fail_msg("setup: execveat of the memfd exits %d", st_before);

	cr_ready();
	cr_wait_sigterm();

	if (fstat(fd, &st))
		st.st_mode = 0;
	ksft_test_result(st.st_mode == (S_IFREG | 0751), "mode %o kept", st.st_mode);
	st_after = exec_status(fd);
	ksft_test_result(st_after == 0, "execveat of the memfd: exit %d (100+errno if it failed)", st_after);
	ksft_test_result(!memcmp(map, script, sizeof(script) - 1) && (fcntl(ro, F_GETFL) & O_ACCMODE) == O_RDONLY,
			 "mapping and read-only reopen intact");
	ksft_finished();
}
