#!/bin/bash
# redis: an unmodified redis-server (Debian's) with data and a client
# connected from outside the checkpoint: after restart it still has the
# data and answers on the client's same connection (redis.check).
. "${BASH_SOURCE%/*}/cr.sh"
command -v redis-server >/dev/null || ksft_exit_skip "redis-server is not installed"
command -v nft >/dev/null || ksft_exit_skip "nft (nftables) is not installed"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "$port" >"$CR_DIR/port"
# The client: detached (not our child), keeps one connection through the
# checkpoint and the restart; .poke creates $CR_DIR/restored.
(
	(
		exec </dev/null >"$CR_DIR/client.out" 2>&1
		setsid python3 - "$port" "$CR_DIR" <<'PY'
import os, socket, sys, time
port, d = int(sys.argv[1]), sys.argv[2]
for _ in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        break
    except OSError:
        time.sleep(0.05)
def cmd(*args):
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    return s.recv(4096)
before = cmd(b"SET", b"greeting", b"hello from before")
open(d + "/ready.tmp", "w").close()
os.rename(d + "/ready.tmp", d + "/ready")
for _ in range(600):
    if os.path.exists(d + "/restored"):
        break
    time.sleep(0.05)
got = cmd(b"GET", b"greeting")
n = cmd(b"INCR", b"n")
with open(d + "/verdict.tmp", "w") as f:
    f.write("%r %r %r\n" % (before, got, n))
os.rename(d + "/verdict.tmp", d + "/verdict")
PY
	) &
)
exec redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --dir "$CR_DIR"
