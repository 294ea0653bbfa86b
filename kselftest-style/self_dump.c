// SPDX-License-Identifier: MIT
/*
 * self_dump - a process that checkpoints itself through CRIU's RPC, as
 * libcriu's criu_dump() without a pid does: it starts `crsub swrk` on one
 * end of a SOCK_SEQPACKET pair (outside its own tree: the intermediate
 * child exits, as daemon(3) in libcriu), asks for a DUMP of itself and
 * waits for the answer. The checkpoint kills it; after the restart it must
 * read, on the same fd, the answer CRIU's restore gives: success, dumped
 * and restored; then the end of the stream (the answer's sender is gone).
 * self_dump.checkpoint hands it crsub's path (over the fifo it waits on)
 * and takes the image crsub wrote in CR_DIR/imgdir.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cr.h"

/* A protobuf varint, a field tag or a value. */
static size_t put_varint(uint8_t *b, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		b[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b[n++] = (uint8_t)v;
	return n;
}

static int get_varint(const uint8_t *b, size_t len, size_t *at, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; *at < len && shift < 64; shift += 7) {
		uint8_t c = b[(*at)++];

		*v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return 0;
	}
	return -1;
}

/*
 * Reads the varint fields of message b (one level), and the first
 * length-delimited field numbered sub into subb and sublen.
 */
static int fields(const uint8_t *b, size_t len, uint64_t vals[16], int sub, const uint8_t **subb, size_t *sublen)
{
	size_t at = 0;

	memset(vals, 0xff, 16 * sizeof(vals[0]));
	while (at < len) {
		uint64_t tag, v;

		if (get_varint(b, len, &at, &tag))
			return -1;
		switch (tag & 7) {
		case 0:
			if (get_varint(b, len, &at, &v))
				return -1;
			if ((tag >> 3) < 16)
				vals[tag >> 3] = v;
			break;
		case 2:
			if (get_varint(b, len, &at, &v) || v > len - at)
				return -1;
			if ((int)(tag >> 3) == sub && subb) {
				*subb = b + at;
				*sublen = v;
			}
			at += v;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

int main(void)
{
	char crsub[4096], path[4096], fdarg[16], *nl;
	uint8_t req[128], opts[64], resp[4096];
	size_t n = 0, o = 0;
	int sk[2], dir, go, fd_after;
	ssize_t got;
	pid_t mid;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);

	snprintf(path, sizeof(path), "%s/go", cr_dir());
	if (mkfifo(path, 0600))
		ksft_exit_fail_msg("setup: mkfifo: %s\n", strerror(errno));
	snprintf(path, sizeof(path), "%s/imgdir", cr_dir());
	if (mkdir(path, 0700))
		ksft_exit_fail_msg("setup: mkdir: %s\n", strerror(errno));
	dir = open(path, O_DIRECTORY | O_RDONLY);
	if (dir < 0)
		ksft_exit_fail_msg("setup: %s: %s\n", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/go", cr_dir());
	go = open(path, O_RDWR);
	if (go < 0)
		ksft_exit_fail_msg("setup: %s: %s\n", path, strerror(errno));

	/*
	 * Without a checkpoint (run.sh --no-cr) nobody names crsub: the
	 * runner's SIGTERM ends the wait.
	 */
	sigset_t term;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	cr_ready_in(SYS_read);
	sigprocmask(SIG_UNBLOCK, &term, NULL);
	got = read(go, crsub, sizeof(crsub) - 1);
	sigprocmask(SIG_BLOCK, &term, NULL);
	if (got < 0 && errno == EINTR && cr_got_sigterm)
		ksft_exit_skip("not checkpointed: nobody named crsub\n");
	if (got <= 0)
		ksft_exit_fail_msg("reading crsub's path: %s\n", strerror(errno));
	crsub[got] = 0;
	nl = strchr(crsub, '\n');
	if (nl)
		*nl = 0;
	close(go);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sk))
		ksft_exit_fail_msg("socketpair: %s\n", strerror(errno));
	mid = fork();
	if (mid < 0)
		ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	if (mid == 0) {
		/* Out of the tree: crsub's parent is gone by the checkpoint. */
		if (fork() != 0)
			_exit(0);
		close(sk[0]);
		snprintf(fdarg, sizeof(fdarg), "%d", sk[1]);
		execl(crsub, crsub, "swrk", fdarg, (char *)NULL);
		_exit(127);
	}
	close(sk[1]);
	if (waitpid(mid, NULL, 0) != mid)
		ksft_exit_fail_msg("waitpid: %s\n", strerror(errno));

	/* criu_opts: images_dir_fd (1), log_level (9) 4, log_file (10). */
	opts[o++] = 1 << 3;
	o += put_varint(opts + o, (uint64_t)dir);
	opts[o++] = 9 << 3;
	opts[o++] = 4;
	opts[o++] = 10 << 3 | 2;
	opts[o++] = 8;
	memcpy(opts + o, "dump.log", 8);
	o += 8;
	/* criu_req: type (1) DUMP, opts (2). */
	req[n++] = 1 << 3;
	req[n++] = 1;
	req[n++] = 2 << 3 | 2;
	n += put_varint(req + n, o);
	memcpy(req + n, opts, o);
	n += o;
	if (send(sk[0], req, n, 0) != (ssize_t)n)
		ksft_exit_fail_msg("send: %s\n", strerror(errno));

	/* Killed in here by the checkpoint; the restart goes on from it. */
	got = recv(sk[0], resp, sizeof(resp), 0);
	if (got < 0)
		ksft_exit_fail_msg("recv: %s\n", strerror(errno));

	uint64_t vals[16], dvals[16];
	const uint8_t *dump = NULL;
	size_t dlen = 0;
	int ok = got > 0 && !fields(resp, (size_t)got, vals, 3, &dump, &dlen);

	if (ok && vals[2] != 1) {
		const uint8_t *msg = NULL;
		size_t mlen = 0;

		fields(resp, (size_t)got, vals, 9, &msg, &mlen);
		ksft_print_msg("the dump failed: %.*s\n", (int)mlen, msg ? (const char *)msg : "");
	}
	ksft_test_result(ok && vals[1] == 1 && vals[2] == 1, "the answer is a successful DUMP");
	ok = ok && dump && !fields(dump, dlen, dvals, 0, NULL, NULL);
	ksft_test_result(ok && dvals[1] == 1, "it says restored (this is the restarted process)");
	if (!ok || dvals[1] != 1)
		/* Answered by a checkpoint that did not take it: no restart comes. */
		ksft_exit_fail_msg("answered without being checkpointed\n");
	got = recv(sk[0], resp, sizeof(resp), MSG_DONTWAIT);
	ksft_test_result(got == 0, "then the stream ends (got %zd)", got);
	fd_after = fcntl(dir, F_GETFD);
	ksft_test_result(fd_after >= 0, "the images directory fd is still open");

	cr_wait_sigterm();
	ksft_finished();
}
