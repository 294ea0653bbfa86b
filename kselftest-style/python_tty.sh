#!/bin/bash
# python_tty: a python3 counter printing to a terminal (a pty) that is gone
# by restart time, restarted with its stdio redirected: fd 0 to /dev/null,
# fd 1 and 2 to $CR_DIR/out.txt (python_tty.restart-args).
#
# The pty master is held by a small detached python3 (setsid + double fork:
# not our child, so not part of the checkpoint). It writes the slave path to
# $CR_DIR/tty and its pid to $CR_DIR/holder.pid, and drains the master into
# $CR_DIR/tty.txt. It exits when $CR_DIR disappears, after 60 s, or when
# python_tty.check kills it.
#
# This script then becomes the subject: exec python3 with the pty slave as
# fds 0, 1, 2 and nothing else. python_tty.prerestart checks that a restart
# without substitutes fails and names the fds; python_tty.check checks that
# the counter goes on in out.txt from where the terminal left it.
. "${BASH_SOURCE%/*}/cr.sh"
if [[ -x /usr/bin/python3 ]]; then
	py=/usr/bin/python3
else
	py=$(command -v python3) || ksft_exit_skip "no python3"
	py=$("$py" -c 'import sys; print(sys.executable)') || ksft_exit_fail_msg "python3 does not run"
fi

# The master holder; argv: CR_DIR (python_tty.check finds it by that).
holder='
import os, select, sys, time, tty
d = sys.argv[1]
os.setsid()
m, s = os.openpty()          # both non-inheritable; the slave opened O_NOCTTY
tty.setraw(s)                # no echo, no \n -> \r\n
with open(os.path.join(d, "holder.pid"), "w") as f:
    f.write("%d\n" % os.getpid())
with open(os.path.join(d, "tty.tmp"), "w") as f:
    f.write(os.ttyname(s) + "\n")
os.rename(os.path.join(d, "tty.tmp"), os.path.join(d, "tty"))
out = open(os.path.join(d, "tty.txt"), "ab", buffering=0)
end = time.monotonic() + 60
while time.monotonic() < end and os.path.isdir(d):
    r, _, _ = select.select([m], [], [], 0.1)
    if r:
        try:
            out.write(os.read(m, 4096))
        except OSError:      # EIO: no slave open (we keep one, so unexpected)
            time.sleep(0.1)
'
# Double fork: the subshell exits at once, the holder is reparented away.
(
	exec "$py" -c "$holder" "$CR_DIR" </dev/null >>"$CR_DIR/holder.log" 2>&1 &
)
for _ in $(seq 100); do
	[[ -s $CR_DIR/tty ]] && break
	sleep 0.05
done
read -r tty <"$CR_DIR/tty" 2>/dev/null || ksft_exit_fail_msg "setup: the pty holder wrote no slave path (holder.log: $(cat "$CR_DIR/holder.log" 2>/dev/null))"
[[ -c $tty ]] || ksft_exit_fail_msg "setup: $tty is not a character device"
ksft_print_msg "pty slave $tty; exec python3 as pid $$ with it as stdio"

# The subject: prints 0, 1, 2... to the terminal every 50 ms. Its messages
# for the runner go to $CR_DIR/log, opened and closed each time (no fd kept).
exec "$py" -c '
import os, sys, time
d, tty = os.environ["CR_DIR"], sys.argv[1]
def note(msg):
    with open(os.path.join(d, "log"), "a") as f:
        f.write(msg + "\n")
def bail(msg):
    note("Bail out! setup: " + msg)
    sys.exit(1)
for fd in (0, 1, 2):
    if not os.isatty(fd) or os.ttyname(fd) != tty:
        bail("fd %d is not %s" % (fd, tty))
for fd in range(3, 1024):
    try:
        os.fstat(fd)
    except OSError:
        continue
    bail("stray fd %d (%s)" % (fd, os.readlink("/proc/self/fd/%d" % fd)))
i = 0
while True:
    print(i, flush=True)
    i += 1
    if i == 10:
        want = [str(n) for n in range(10)]
        for _ in range(60):
            try:
                got = open(os.path.join(d, "tty.txt")).read().replace("\r", "").split()
            except OSError:
                got = []
            if got == want:
                break
            time.sleep(0.05)
        else:
            bail("the terminal received %r" % got[:20])
        note("# setup ok: pid %d counting on %s" % (os.getpid(), tty))
        open(os.path.join(d, "ready.tmp"), "w").close()
        os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
    time.sleep(0.05)
' "$tty" <"$tty" >"$tty" 2>&1
