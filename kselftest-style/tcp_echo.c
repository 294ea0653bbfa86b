// SPDX-License-Identifier: MIT
/*
 * tcp_echo: a TCP echo server with three established connections from a
 * client outside the checkpoint (tcp_echo_client.py, started detached),
 * which streams through the checkpoint and the restart and must receive
 * every byte back exactly once (tcp_echo.check reads its verdict).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "cr.h"

/* The kselftest-style directory: the subject runs as DIR/bin/tcp_echo. */
static void script_path(char *out, size_t n, const char *argv0)
{
	char *slash;

	snprintf(out, n, "%s", argv0);
	slash = strrchr(out, '/');
	if (slash)
		*slash = 0;
	snprintf(out + strlen(out), n - strlen(out), "/../tcp_echo_client.py");
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct pollfd pfd[3];
	sigset_t unblocked;
	char script[4096], port[16], buf[65536];
	int l, i, one = 1;

	(void)argc;
	cr_init();
	ksft_print_header();
	ksft_set_plan(1);
	/* Without the network lock the peer is reset in the gap: nothing to test. */
	if (system("command -v nft >/dev/null 2>&1"))
		ksft_exit_skip("nft (nftables) is not installed");
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) || bind(l, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(l, 8) || getsockname(l, (struct sockaddr *)&sa, &len))
		ksft_exit_fail_msg("listen: %s", strerror(errno));
	snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));
	script_path(script, sizeof(script), argv[0]);
	if (fork() == 0) {
		/* Detached: not our child, not in the checkpoint. */
		setsid();
		if (fork() == 0) {
			for (i = 3; i < 1024; i++)
				close(i);
			execlp("python3", "python3", script, port, cr_dir(), "4", (char *)NULL);
			_exit(127);
		}
		_exit(0);
	}
	while (wait(NULL) > 0)
		;
	for (i = 0; i < 3; i++) {
		pfd[i].fd = accept(l, NULL, NULL);
		pfd[i].events = POLLIN;
		if (pfd[i].fd < 0)
			ksft_exit_fail_msg("accept: %s", strerror(errno));
	}
	close(l);
	ksft_print_msg("setup ok: 3 connections on port %s", port);
	sigprocmask(SIG_BLOCK, NULL, &unblocked);
	sigdelset(&unblocked, SIGTERM);
	cr_ready_in(SYS_ppoll);
	while (!cr_got_sigterm) {
		int n = ppoll(pfd, 3, NULL, &unblocked);

		if (n < 0 && errno == EINTR)
			continue;
		for (i = 0; i < 3; i++) {
			ssize_t k;

			if (!(pfd[i].revents & (POLLIN | POLLHUP)))
				continue;
			k = read(pfd[i].fd, buf, sizeof(buf));
			if (k <= 0) {
				pfd[i].fd = -pfd[i].fd - 1; /* the client is done */
				continue;
			}
			if (write(pfd[i].fd, buf, k) != k)
				ksft_exit_fail_msg("echo: %s", strerror(errno));
		}
	}
	ksft_test_result_pass("served until SIGTERM");
	ksft_finished();
}
