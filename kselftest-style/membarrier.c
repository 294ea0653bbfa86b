// SPDX-License-Identifier: MIT
/*
 * membarrier: the membarrier(2) registrations of the address space survive
 * checkpoint/restart: MEMBARRIER_CMD_GET_REGISTRATIONS gives the same set,
 * and the private expedited barriers, which fail with EPERM in an address
 * space not registered for them, still work.
 */
#define _GNU_SOURCE
#include <linux/membarrier.h>

#include "cr.h"

#ifndef MEMBARRIER_CMD_GET_REGISTRATIONS
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)
#endif

static int membarrier(int cmd)
{
	return syscall(__NR_membarrier, cmd, 0, 0);
}

static const struct {
	const char *name;
	int reg, run;
} cmds[] = {
	{ "GLOBAL_EXPEDITED", MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, MEMBARRIER_CMD_GLOBAL_EXPEDITED },
	{ "PRIVATE_EXPEDITED", MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, MEMBARRIER_CMD_PRIVATE_EXPEDITED },
	{ "PRIVATE_EXPEDITED_SYNC_CORE", MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
	  MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE },
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

int main(void)
{
	int supported, want = 0, got;
	size_t i;

	cr_init();
	ksft_print_header();
	ksft_set_plan(NCMDS + 1);
	supported = membarrier(MEMBARRIER_CMD_QUERY);
	if (supported < 0 || membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS) < 0)
		ksft_exit_skip("membarrier or MEMBARRIER_CMD_GET_REGISTRATIONS not supported: %s\n", strerror(errno));
	/* SYNC_CORE left unregistered: it must stay so (EPERM) */
	for (i = 0; i < NCMDS - 1; i++) {
		if (!(supported & cmds[i].reg))
			continue;
		if (membarrier(cmds[i].reg))
			ksft_exit_fail_msg("setup: REGISTER_%s: %s", cmds[i].name, strerror(errno));
		want |= cmds[i].reg;
	}
	if (membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS) != want)
		ksft_exit_fail_msg("setup: registrations are not %#x", want);

	cr_ready();
	cr_wait_sigterm();

	got = membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS);
	ksft_test_result(got == want, "registrations %#x (want %#x)", got, want);
	for (i = 0; i < NCMDS; i++) {
		int ok;

		if (!(supported & cmds[i].reg)) {
			ksft_test_result_skip("%s: not supported by the kernel", cmds[i].name);
			continue;
		}
		if (want & cmds[i].reg)
			ok = membarrier(cmds[i].run) == 0;
		else
			ok = membarrier(cmds[i].run) < 0 && errno == EPERM;
		ksft_test_result(ok, "%s %s", cmds[i].name, want & cmds[i].reg ? "works" : "is still unregistered (EPERM)");
	}
	ksft_finished();
}
