// SPDX-License-Identifier: MIT
/*
 * veth_tcp: a container made with unshare (new network, UTS, IPC, mount
 * and pid namespaces; the subject is its parent, as `unshare --fork` is,
 * and forks its init; a root of its own, a bind mount of / pivot_root'ed
 * to, and a proc its init mounted) with a veth to the host: eth0 inside (MTU 1400,
 * an address of a /30 of 10.215.0.0/16 of its own, by pid), crvh<pid> on
 * the host with the other address. The init serves TCP on eth0's address;
 * a client on the host, outside the checkpointed tree (forked twice, its
 * parent gone), connects and keeps sending 8-byte counters, 50 a second,
 * across the checkpoint and the restart. The init checks they come in
 * order and echoes each; the client checks the echoes.
 *
 * After the restart the subject checks from inside: lo up, eth0 up with its
 * MTU and address, the route through it (to 192.0.2.0/24), the hostname.
 * Then the init goes on until 20 more counters came, sends a stop mark,
 * and the client answers with its verdict (how many echoes it checked, or
 * that one was wrong), which the init reports: bytes both ways after the
 * restart, nothing lost or reset.
 *
 * The same subject is restarted three ways: as it was (veth_tcp: crsub
 * makes the host end again), into a fresh veth pair (veth_tcp_link: the
 * .prerestart makes it and gives the host end the address, the restart
 * gets --link eth0=THAT), and into a network namespace made by
 * `ip netns add` holding a veth the .prerestart moved in and addressed
 * (veth_tcp_netns: --netns /run/netns/NAME; lo left down there for crsub
 * to bring up as it was). The .prerestart writes the restart's extra
 * arguments into $CR_DIR/restart-args and what to remove afterwards into
 * $CR_DIR/cleanup (both read by run.sh).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include "cr.h"
#include "netif.h"

#define PORT 7101
#define HOSTNAME "crsub-veth"
#define STOP 0xffffffffffffffffULL
#define VERDICT (1ULL << 63)
#define FAILED (1ULL << 62)
#define MORE 20			/* counters the init waits for after the restart */
#define CLIENT_LIFETIME 300	/* s: the client ends by itself at the latest then */

static char ctraddr[32], hostaddr[32];

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int send_u64(int s, uint64_t v)
{
	return send(s, &v, sizeof(v), MSG_NOSIGNAL) == sizeof(v) ? 0 : -1;
}

static int recv_u64(int s, uint64_t *v)
{
	return recv(s, v, sizeof(*v), MSG_WAITALL) == sizeof(*v) ? 0 : -1;
}

/*
 * The client, on the host: counters out every 20 ms, echoes checked as they
 * come; on the stop mark its verdict goes back and it ends. It ends too on
 * any error (the init then sees the connection end) or after its lifetime.
 */
static void client(int go)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	uint64_t next = 0, expect = 0, v;
	long long end = now_ms() + CLIENT_LIFETIME * 1000LL, last = 0;
	struct pollfd p = { .events = POLLIN };
	char c;
	int s;

	p.fd = go;
	if (poll(&p, 1, 20000) != 1 || read(go, &c, 1) != 1)
		_exit(0);
	close(go);
	inet_pton(AF_INET, ctraddr, &sa.sin_addr);
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (void *)&sa, sizeof(sa))) {
		ksft_print_msg("client: connect %s:%d: %s\n", ctraddr, PORT, strerror(errno));
		_exit(1);
	}
	p.fd = s;
	while (now_ms() < end) {
		long long t = now_ms();

		if (t - last >= 20) {
			if (send_u64(s, next)) {
				ksft_print_msg("client: send: %s\n", strerror(errno));
				_exit(1);
			}
			next++;
			last = t;
		}
		if (poll(&p, 1, 20) != 1)
			continue;
		if (recv_u64(s, &v)) {
			ksft_print_msg("client: at %lld ms: recv after %llu echoes: %s\n", now_ms(), (unsigned long long)expect,
				       errno ? strerror(errno) : "end of stream");
			_exit(1);
		}
		if (v == STOP) {
			send_u64(s, VERDICT | expect);
			shutdown(s, SHUT_WR);
			/* Until the init closes: its last read must not see a reset. */
			while (poll(&p, 1, 5000) == 1 && read(s, &v, sizeof(v)) > 0)
				;
			_exit(0);
		}
		if (v != expect) {
			ksft_print_msg("client: echo %llu, expected %llu\n", (unsigned long long)v, (unsigned long long)expect);
			send_u64(s, VERDICT | FAILED | expect);
			_exit(1);
		}
		expect++;
	}
	ksft_print_msg("client: gave up after %d s\n", CLIENT_LIFETIME);
	_exit(1);
}

/* What the init reports to the subject. */
struct report {
	uint64_t received;	/* counters received in order */
	uint64_t after;		/* of which after the subject asked */
	uint64_t verdict;	/* the client's, 0 if none came */
	int in_order, pid1;
	char hostname[64];
	char why[128];
};

/* The init: serves one connection until told to finish, then reports. */
static int init(int lfd, int ctl, int out)
{
	struct report r = { .in_order = 1 };
	uint64_t v, mark = 0;
	int s, finishing = 0, stopped = 0;
	long long deadline = 0;
	char c;

	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = ctl, .events = POLLIN } };
	if (poll(p, 1, 20000) != 1 || (s = accept(lfd, NULL, NULL)) < 0) {
		snprintf(r.why, sizeof(r.why), "no connection from the client");
		goto report;
	}
	close(lfd);
	p[0].fd = s;
	for (;;) {
		int timeout = finishing ? (int)(deadline - now_ms()) : -1;

		if (finishing && timeout <= 0) {
			snprintf(r.why, sizeof(r.why), "timed out: %llu counters after the restart, verdict %#llx",
				 (unsigned long long)r.after, (unsigned long long)r.verdict);
			goto report;
		}
		if (poll(p, finishing ? 1 : 2, timeout) <= 0)
			continue;
		if (!finishing && p[1].revents) {
			if (read(ctl, &c, 1) != 1)
				_exit(1);	/* the subject is gone */
			finishing = 1;
			mark = r.received;
			deadline = now_ms() + 30000;
			continue;
		}
		if (!p[0].revents)
			continue;
		if (recv_u64(s, &v)) {
			snprintf(r.why, sizeof(r.why), "recv after %llu counters: %s", (unsigned long long)r.received,
				 errno ? strerror(errno) : "end of stream");
			goto report;
		}
		if (v & VERDICT) {
			r.verdict = v;
			break;
		}
		if (stopped)
			continue;	/* sent before the client saw the stop mark */
		if (v != r.received)
			r.in_order = 0;
		r.received++;
		if (r.received == 10 && write(out, "A", 1) != 1)
			_exit(1);
		if (send_u64(s, v)) {
			snprintf(r.why, sizeof(r.why), "send: %s", strerror(errno));
			goto report;
		}
		if (finishing && r.received - mark == MORE) {
			if (send_u64(s, STOP)) {
				snprintf(r.why, sizeof(r.why), "send stop: %s", strerror(errno));
				goto report;
			}
			stopped = 1;
		}
	}
report:
	if (finishing)
		r.after = r.received - mark;
	r.pid1 = getpid() == 1;
	gethostname(r.hostname, sizeof(r.hostname) - 1);
	if (write(out, &r, sizeof(r)) != sizeof(r))
		return 1;
	return 0;
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	int pid = getpid(), host, lfd, go[2], ctl[2], out[2], mtu = 0, one = 1, status;
	char cmd[2048], peer[IFNAMSIZ], newroot[4096], dev[4200], c;
	struct report r;
	pid_t x, initpid;

	cr_init();
	ksft_print_header();
	ksft_set_plan(8);
	if (system("command -v ip >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1"))
		ksft_exit_skip("needs ip (iproute2) and nsenter");
	snprintf(peer, sizeof(peer), "crvh%d", pid);
	snprintf(hostaddr, sizeof(hostaddr), "10.215.%d.%d", (pid >> 6) & 255, (pid & 63) * 4 + 1);
	snprintf(ctraddr, sizeof(ctraddr), "10.215.%d.%d", (pid >> 6) & 255, (pid & 63) * 4 + 2);

	/* The client: forked twice, so that it is no process of the tree. */
	if (pipe(go))
		ksft_exit_fail_msg("setup: pipe: %s", strerror(errno));
	x = fork();
	if (x < 0)
		ksft_exit_fail_msg("setup: fork: %s", strerror(errno));
	if (x == 0) {
		if (fork() == 0) {
			close(go[1]);
			client(go[0]);
		}
		_exit(0);
	}
	if (waitpid(x, NULL, 0) != x)
		ksft_exit_fail_msg("setup: waitpid: %s", strerror(errno));
	close(go[0]);

	host = open("/proc/self/ns/net", O_RDONLY);
	/* The pid namespace last: its first child (a shell of system()) would be its init. */
	if (host < 0 || unshare(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNS))
		ksft_exit_fail_msg("setup: unshare: %s", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) || sethostname(HOSTNAME, strlen(HOSTNAME)))
		ksft_exit_fail_msg("setup: mount/sethostname: %s", strerror(errno));
	snprintf(cmd, sizeof(cmd),
		 "set -e; ip link set lo up; "
		 "ip link add eth0 mtu 1400 type veth peer name %s netns /proc/%d/fd/%d; "
		 "ip addr add %s/30 dev eth0; ip link set eth0 up; ip route add 192.0.2.0/24 via %s dev eth0; "
		 "nsenter --net=/proc/%d/fd/%d sh -c 'ip addr add %s/30 dev %s && ip link set %s up'",
		 peer, pid, host, ctraddr, hostaddr, pid, host, hostaddr, peer, peer);
	if (system(cmd))
		ksft_exit_fail_msg("setup: %s", cmd);
	close(host);

	inet_pton(AF_INET, ctraddr, &sa.sin_addr);
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) || bind(lfd, (void *)&sa, sizeof(sa)) ||
	    listen(lfd, 1))
		ksft_exit_fail_msg("setup: listen on %s:%d: %s", ctraddr, PORT, strerror(errno));
	/* Its connection waits in the listener's queue for the init. */
	if (write(go[1], "g", 1) != 1)
		ksft_exit_fail_msg("setup: the client is gone");
	close(go[1]);

	/* A root of its own: a bind mount of / alone, with the host's /dev. */
	snprintf(newroot, sizeof(newroot), "%s", cr_path("root"));
	snprintf(dev, sizeof(dev), "%s/dev", newroot);
	if (mkdir(newroot, 0755) || mount("/", newroot, NULL, MS_BIND, NULL) || mount("/dev", dev, NULL, MS_BIND, NULL) ||
	    chdir(newroot) || syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) || chdir(cr_dir()))
		ksft_exit_fail_msg("setup: a root of its own: %s", strerror(errno));

	if (unshare(CLONE_NEWPID))
		ksft_exit_fail_msg("setup: unshare(CLONE_NEWPID): %s", strerror(errno));
	if (pipe(ctl) || pipe(out))
		ksft_exit_fail_msg("setup: pipe: %s", strerror(errno));
	initpid = fork();
	if (initpid < 0)
		ksft_exit_fail_msg("setup: fork: %s", strerror(errno));
	if (initpid == 0) {
		close(ctl[1]);
		close(out[0]);
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
			_exit(1);
		_exit(init(lfd, ctl[0], out[1]));
	}
	close(lfd);
	close(ctl[0]);
	close(out[1]);
	{
		struct pollfd p = { .fd = out[0], .events = POLLIN };

		if (poll(&p, 1, 10000) != 1 || read(out[0], &c, 1) != 1 || c != 'A')
			ksft_exit_fail_msg("setup: the client's first counters did not come");
	}
	{
		int f = open(cr_path("addr"), O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dprintf(f, "%s %s %s %d\n", ctraddr, hostaddr, peer, pid);
		close(f);
	}
	ksft_print_msg("setup ok: eth0 %s, host end %s %s, the client sending\n", ctraddr, peer, hostaddr);

	cr_ready();
	cr_wait_sigterm();

	int s = socket(AF_INET, SOCK_DGRAM, 0);
	ksft_test_result(link_up(s, "lo", NULL) && has_addr("lo", "127.0.0.1"), "lo is up with 127.0.0.1");
	int eth0_up = link_up(s, "eth0", &mtu);
	ksft_test_result(eth0_up && mtu == 1400 && has_addr("eth0", ctraddr), "eth0 is up, MTU 1400 (%d), %s", mtu, ctraddr);
	snprintf(cmd, sizeof(cmd), "ip route show 192.0.2.0/24 | grep -q 'via %s dev eth0'", hostaddr);
	ksft_test_result(!system(cmd), "the route to 192.0.2.0/24 via %s", hostaddr);
	if (write(ctl[1], "v", 1) != 1)
		ksft_exit_fail_msg("the init is gone");
	memset(&r, 0, sizeof(r));
	{
		struct pollfd p = { .fd = out[0], .events = POLLIN };
		ssize_t n = poll(&p, 1, 40000) == 1 ? read(out[0], &r, sizeof(r)) : -1;

		if (n != sizeof(r))
			snprintf(r.why, sizeof(r.why), "no report from the init");
	}
	if (r.why[0])
		ksft_print_msg("init: %s\n", r.why);
	ksft_test_result(r.pid1 && !strcmp(r.hostname, HOSTNAME), "the init is pid 1 of its namespace, hostname %s", r.hostname);
	ksft_test_result(r.in_order, "the init got the counters in order (%llu)", (unsigned long long)r.received);
	ksft_test_result(r.after >= MORE, "%llu counters came after the restart", (unsigned long long)r.after);
	ksft_test_result(r.verdict & VERDICT && !(r.verdict & FAILED), "the client's verdict: echoes right");
	ksft_test_result((r.verdict & ~(VERDICT | FAILED)) == r.received,
			 "the client checked %llu echoes of %llu", (unsigned long long)(r.verdict & ~(VERDICT | FAILED)),
			 (unsigned long long)r.received);
	close(ctl[1]);
	waitpid(initpid, &status, 0);
	ksft_finished();
}
