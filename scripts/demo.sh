#!/usr/bin/env bash
# make demo: start a small logging server, checkpoint it, restart it, and
# show it continuing where it was, with the same pid.
set -euo pipefail
crsub=${1:-bin/crsub}
dir=$(mktemp -d /tmp/crsub-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
cc -O1 -o "$dir/logserver" examples/logserver/logserver.c

# Close every fd this shell inherited beyond stdio, so none leaks into the
# server (a pipe to whatever started make would make its image external).
for fd in /proc/$$/fd/*; do
	fd=${fd##*/}
	if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "start a logging server (it keeps its tick counter only in memory)"
# Only the fds it needs: no descriptor of this shell leaks into it.
setsid "$dir/logserver" </dev/null >>"$dir/server.log" 2>&1 &
pid=$!
pids+=("$pid")
sleep 1
tail -n 2 "$dir/server.log"

say "checkpoint it into $dir/image (the server is killed once the image is safely on disk)"
"$crsub" checkpoint --pid "$pid" -o "$dir/image" --stats text
wait "$pid" 2>/dev/null || true
if kill -0 "$pid" 2>/dev/null; then echo "the server is still running" >&2; exit 1; fi
echo "pid $pid is gone; the log stops at:"
tail -n 1 "$dir/server.log"

say "what the image holds (crsub show)"
"$crsub" show "$dir/image" | sed -n '1,12p;/File descriptors/,$p'

say "restart it"
"$crsub" restart -i "$dir/image" --detach --pidfile "$dir/pidfile"
echo "restored as pid $(cat "$dir/pidfile")"
sleep 1
tail -n 3 "$dir/server.log"
if [ "$(cat "$dir/pidfile")" != "$pid" ]; then echo "the pid changed" >&2; exit 1; fi
say "the server continues counting from where it was, with the same pid"
rm -rf "$dir"
