// SPDX-License-Identifier: MIT
/*
 * unix_scm: messages queued at unix sockets carry files and credentials.
 * A datagram pair queues "pipe" with the read end of a pipe the process
 * closed since (it keeps the write end), then "file" with an fd on a
 * regular file it still holds (the same open file description); a stream
 * pair queues a chunk carrying two fds, then bytes without; a
 * seqpacket pair whose receiver has SO_PASSCRED queues a message with the
 * process's credentials, then a message with an epoll instance the
 * process closed since, watching the pipe's kept write end (zdtm scm05).
 * A datagram pair bound to abstract names queues, at each end, both of its
 * own ends (zdtm scm06: sockets in flight that have fds in flight).
 * After restart every message is read back with what it carries: the pipe
 * still connects to the kept write end, the file shares its offset with
 * the kept fd, the credentials are the process's, the epoll instance still
 * watches the write end; the looped pair's ends come back from each queue,
 * named as they were, each with what it still has queued.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "cr.h"

static int send_with(int sk, const char *msg, int *fds, int nfds, int creds)
{
	char ctl[CMSG_SPACE(sizeof(int) * 4) + CMSG_SPACE(sizeof(struct ucred))] = { 0 };
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = strlen(msg) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = 0 };
	struct cmsghdr *c = (struct cmsghdr *)ctl;

	if (nfds) {
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		h.msg_controllen += CMSG_SPACE(sizeof(int) * nfds);
		c = (struct cmsghdr *)(ctl + h.msg_controllen);
	}
	if (creds) {
		struct ucred u = { .pid = getpid(), .uid = getuid(), .gid = getgid() };

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof(u));
		memcpy(CMSG_DATA(c), &u, sizeof(u));
		h.msg_controllen += CMSG_SPACE(sizeof(u));
	}
	if (!h.msg_controllen)
		h.msg_control = NULL;
	return sendmsg(sk, &h, 0) == (ssize_t)strlen(msg) ? 0 : -1;
}

/* recv_with reads one message (or up to len bytes of a stream) and the
 * fds and credentials it carries. */
static ssize_t recv_with(int sk, char *buf, size_t len, int *fds, int *nfds, struct ucred *u)
{
	char ctl[CMSG_SPACE(sizeof(int) * 4) + CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	ssize_t n = recvmsg(sk, &h, MSG_DONTWAIT);

	*nfds = 0;
	if (n < 0)
		return n;
	buf[n] = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
		if (c->cmsg_type == SCM_RIGHTS) {
			*nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(c), sizeof(int) * *nfds);
		} else if (c->cmsg_type == SCM_CREDENTIALS && u)
			memcpy(u, CMSG_DATA(c), sizeof(*u));
	}
	return n;
}

int main(void)
{
	int dg[2], st[2], sq[2], lp[2], p[2], file, fds[4], nfds, one = 1, ok, ep;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	socklen_t alen;
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 0x5eed };
	char buf[64], path[4096];
	struct ucred u = { 0 };

	cr_init();
	ksft_print_header();
	ksft_set_plan(8);

	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) || socketpair(AF_UNIX, SOCK_STREAM, 0, st) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) || pipe(p))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/data", getenv("CR_DIR") ? getenv("CR_DIR") : ".");
	file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (file < 0 || write(file, "0123456789", 10) != 10 || lseek(file, 2, SEEK_SET) != 2)
		ksft_exit_fail_msg("setup: file: %s", strerror(errno));
	if (send_with(dg[0], "pipe", &p[0], 1, 0) || send_with(dg[0], "file", &file, 1, 0))
		ksft_exit_fail_msg("setup: dgram: %s", strerror(errno));
	close(p[0]);
	fds[0] = file;
	fds[1] = p[1];
	if (send_with(st[0], "two", fds, 2, 0) || send_with(st[0], "tail", NULL, 0, 0))
		ksft_exit_fail_msg("setup: stream: %s", strerror(errno));
	if (setsockopt(sq[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) || send_with(sq[0], "creds", NULL, 0, 1))
		ksft_exit_fail_msg("setup: seqpacket: %s", strerror(errno));
	ep = epoll_create1(0);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev) || send_with(sq[0], "epoll", &ep, 1, 0) || close(ep))
		ksft_exit_fail_msg("setup: epoll: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, lp))
		ksft_exit_fail_msg("setup: loop: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "crsub-scm-%d-%d", getpid(), i);
		if (bind(lp[i], (struct sockaddr *)&addr, sizeof(addr)))
			ksft_exit_fail_msg("setup: loop: bind: %s", strerror(errno));
	}
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			if (send_with(lp[i], "loop", &lp[j], 1, 0))
				ksft_exit_fail_msg("setup: loop: %s", strerror(errno));
	ksft_print_msg("setup ok: fds and credentials queued");

	cr_ready();
	cr_wait_sigterm();

	ok = recv_with(dg[1], buf, sizeof(buf) - 1, fds, &nfds, NULL) == 4 && !strcmp(buf, "pipe") && nfds == 1;
	if (ok) {
		ok = write(p[1], "through", 7) == 7 && read(fds[0], buf, sizeof(buf)) == 7 && !memcmp(buf, "through", 7);
		p[0] = fds[0]; /* kept: the pipe gets written to again */
	}
	ksft_test_result(ok, "dgram: the pipe read end a message carries reads what the kept write end writes");
	ok = recv_with(dg[1], buf, sizeof(buf) - 1, fds, &nfds, NULL) == 4 && !strcmp(buf, "file") && nfds == 1;
	ksft_test_result(ok && lseek(fds[0], 0, SEEK_CUR) == 2 && lseek(fds[0], 5, SEEK_SET) == 5 && lseek(file, 0, SEEK_CUR) == 5,
			 "dgram: the file a message carries shares its open file description with the kept fd");
	ok = recv_with(st[1], buf, 3, fds, &nfds, NULL) == 3 && !strcmp(buf, "two") && nfds == 2;
	ksft_test_result(ok && lseek(fds[0], 0, SEEK_CUR) == 5 && write(fds[1], "x", 1) == 1,
			 "stream: the chunk carries the file and the pipe's write end (%d fds)", nfds);
	ok = recv_with(st[1], buf, sizeof(buf) - 1, fds, &nfds, NULL) == 4 && !strcmp(buf, "tail") && nfds == 0;
	ksft_test_result(ok, "stream: the bytes after it, without fds");
	ok = recv_with(sq[1], buf, sizeof(buf) - 1, fds, &nfds, &u) == 5 && !strcmp(buf, "creds");
	ksft_test_result(ok && u.pid == getpid() && u.uid == getuid() && u.gid == getgid(),
			 "seqpacket: the credentials come with the message (pid %d)", u.pid);
	ok = recv_with(sq[1], buf, sizeof(buf) - 1, fds, &nfds, NULL) == 5 && !strcmp(buf, "epoll") && nfds == 1;
	memset(&ev, 0, sizeof(ev));
	ksft_test_result(ok && epoll_wait(fds[0], &ev, 1, 0) == 1 && ev.events == EPOLLOUT && ev.data.u64 == 0x5eed &&
			 epoll_ctl(fds[0], EPOLL_CTL_DEL, p[1], NULL) == 0,
			 "seqpacket: the epoll instance a message carries still watches the pipe's write end");
	/* Each end queues both ends; read end 0's first message (end 0
	 * itself), then through the end it carries second (end 1), end 1's. */
	ok = 1;
	for (int i = 0; i < 2 && ok; i++) {
		int first, second;

		ok = recv_with(lp[i], buf, sizeof(buf) - 1, &first, &nfds, NULL) == 4 && nfds == 1 &&
		     recv_with(lp[i], buf, sizeof(buf) - 1, &second, &nfds, NULL) == 4 && nfds == 1;
		for (int k = 0; k < 2 && ok; k++) {
			int got = k ? second : first;

			alen = sizeof(addr);
			memset(&addr, 0, sizeof(addr));
			ok = getsockname(got, (struct sockaddr *)&addr, &alen) == 0 && addr.sun_path[0] == 0 &&
			     atoi(strrchr(addr.sun_path + 1, '-') + 1) == k;
		}
	}
	ksft_test_result(ok, "loop: each end's queue carries both ends, named as they were");
	ok = send_with(lp[0], "again", NULL, 0, 0) == 0 && recv_with(lp[1], buf, sizeof(buf) - 1, fds, &nfds, NULL) == 5 &&
	     !strcmp(buf, "again") && recv_with(lp[1], buf, sizeof(buf) - 1, fds, &nfds, NULL) < 0 && errno == EAGAIN;
	ksft_test_result(ok, "loop: the pair still connects its ends, nothing else queued");
	ksft_finished();
}
