// SPDX-License-Identifier: MIT
/*
 * unix_removed_name: unix sockets whose names no longer lead to them, as
 * a daemon's do once its socket file was removed or replaced, or once it
 * bound a relative name and changed directory (zdtm del_standalone_un,
 * sk-unix01, fifo_upon_unix_socket00/01):
 *
 *   fd 40: a listener bound to $CR_DIR/gone/srv; the file and the
 *          directory gone were removed; fd 41 is a client connected to
 *          it before, fd 42 its accepted end
 *   fd 43: a datagram server bound to the relative name "srvlog", whose
 *          file was replaced by a FIFO (fd 45, read-write); fd 44 a
 *          client connected to it
 *   fd 46: a datagram server bound to the relative name "rel", kept
 *
 * after which the subject moved to /. After restart: each socket has its
 * name (getsockname), the listener's file is removed (fstat of
 * SIOCUNIXFILE: no link) and it accepts a connection made through that
 * file, the client still reaches the log server, the FIFO is in its
 * place, neither gone nor gone/srv exists, and $CR_DIR/rel still leads to
 * fd 46.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "cr.h"

#ifndef SIOCUNIXFILE
#define SIOCUNIXFILE (SIOCPROTOPRIVATE + 0)
#endif

static socklen_t named(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path))
		ksft_exit_fail_msg("setup: %s is too long", path);
	strcpy(a->sun_path, path);
	return sizeof(*a);
}

static void sock_at(int type, int at)
{
	int s = socket(AF_UNIX, type, 0);

	if (s < 0 || dup2(s, at) != at)
		ksft_exit_fail_msg("setup: socket: %s", strerror(errno));
	close(s);
}

static int name_is(int s, const char *want)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);

	if (getsockname(s, (struct sockaddr *)&a, &len) || len <= offsetof(struct sockaddr_un, sun_path))
		return 0;
	a.sun_path[len - offsetof(struct sockaddr_un, sun_path) - 1] = 0;
	if (strcmp(a.sun_path, want))
		ksft_print_msg("fd %d is bound to %s, want %s", s, a.sun_path, want);
	return !strcmp(a.sun_path, want);
}

int main(void)
{
	struct sockaddr_un a;
	struct stat st;
	char srv[108], buf[16];
	int file, c, acc, ok;

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);

	snprintf(srv, sizeof(srv), "%s", cr_path("gone/srv"));
	if (mkdir(cr_path("gone"), 0755))
		ksft_exit_fail_msg("setup: mkdir: %s", strerror(errno));
	sock_at(SOCK_STREAM, 40);
	sock_at(SOCK_STREAM, 41);
	if (bind(40, (struct sockaddr *)&a, named(&a, srv)) || listen(40, 8) ||
	    connect(41, (struct sockaddr *)&a, sizeof(a)) || dup2(accept(40, NULL, NULL), 42) != 42)
		ksft_exit_fail_msg("setup: the listener: %s", strerror(errno));
	if (unlink(srv) || rmdir(cr_path("gone")))
		ksft_exit_fail_msg("setup: removing %s: %s", srv, strerror(errno));

	sock_at(SOCK_DGRAM, 43);
	sock_at(SOCK_DGRAM, 44);
	sock_at(SOCK_DGRAM, 46);
	if (chdir(cr_dir()) || bind(43, (struct sockaddr *)&a, named(&a, "srvlog")) ||
	    connect(44, (struct sockaddr *)&a, sizeof(a)) || unlink("srvlog") || mkfifo("srvlog", 0600) ||
	    dup2(open("srvlog", O_RDWR), 45) != 45 || bind(46, (struct sockaddr *)&a, named(&a, "rel")) || chdir("/"))
		ksft_exit_fail_msg("setup: the datagram servers: %s", strerror(errno));
	ksft_print_msg("setup ok");

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(name_is(40, srv) && name_is(43, "srvlog") && name_is(46, "rel"), "the sockets keep their names");
	file = ioctl(40, SIOCUNIXFILE);
	ksft_test_result(file >= 0 && fstat(file, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_nlink == 0,
			 "the listener's file is removed (fd %d, %lu links)", file, file >= 0 ? (unsigned long)st.st_nlink : 0UL);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(buf, sizeof(buf), "%d", file);
	ok = file >= 0 && c >= 0 && chdir("/proc/self/fd") == 0 &&
	     connect(c, (struct sockaddr *)&a, named(&a, buf)) == 0 && chdir("/") == 0;
	acc = ok ? accept4(40, NULL, NULL, SOCK_NONBLOCK) : -1;
	ksft_test_result(acc >= 0 && write(41, "x", 1) == 1 && read(42, buf, 1) == 1,
			 "the listener accepts through its file, its connection still talks");
	ksft_test_result(send(44, "dg", 2, 0) == 2 && recv(43, buf, sizeof(buf), MSG_DONTWAIT) == 2,
			 "the client still reaches the log server");
	ksft_test_result(stat(cr_path("srvlog"), &st) == 0 && S_ISFIFO(st.st_mode) && write(45, "f", 1) == 1 &&
			 read(45, buf, 1) == 1 && buf[0] == 'f', "the FIFO is in place of the log server's name");
	ksft_test_result(access(cr_path("gone"), F_OK) && errno == ENOENT, "the removed directory stays removed");
	c = socket(AF_UNIX, SOCK_DGRAM, 0);
	ksft_test_result(c >= 0 && sendto(c, "r", 1, 0, (struct sockaddr *)&a, named(&a, cr_path("rel"))) == 1 &&
			 recv(46, buf, sizeof(buf), MSG_DONTWAIT) == 1, "%s leads to the relative name's socket", cr_path("rel"));
	ksft_finished();
}
