#!/usr/bin/env bash
# make demo: the job crsub exists for. A small server logs to a file and
# answers on a TCP port. We checkpoint it, rotate its log away, and restart
# it - same pid, same in-memory counters - writing to a fresh log and
# listening on a new port. Every step is checked: the demo exits non-zero if
# anything it shows did not happen, and removes what it created either way.
set -euo pipefail
crsub=${1:-bin/crsub}
[[ -x $crsub ]] || { echo "demo: no crsub at $crsub (run make build)" >&2; exit 1; }

if [[ -t 1 ]]; then B=$'\033[1m' R=$'\033[1;31m' G=$'\033[1;32m' N=$'\033[0m'; else B="" R="" G="" N=""; fi
say() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
ok() { printf '   %sok%s  %s\n' "$G" "$N" "$*"; }
fail() {
	printf '\n%sdemo FAILED: %s%s\n' "$R" "$*" "$N" >&2
	for f in "$dir"/server.log*; do printf -- '--- %s (last lines)\n' "${f##*/}"; tail -n 5 "$f"; done >&2
	exit 1
}
indent() { sed 's/^/     /'; }
# run COMMAND...: show it (crsub's path shortened), run it, indent its output.
run() {
	local shown="$*"
	printf '   $ %s\n' "${shown//$crsub/crsub}"
	"$@" 2>&1 | indent
}

dir=$(mktemp -d /tmp/crsub-demo.XXXXXX)
log=$dir/server.log
pid=""
cleanup() {
	if [[ -n $pid ]]; then kill -9 "$pid" 2>/dev/null || true; fi
	rm -rf "$dir"
	exec 2>/dev/null	# no "Killed" notice for the checkpointed server at exit
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Close every fd this shell inherited beyond stdio, so none leaks into the
# server (a pipe to whatever started make would make its image external).
for fd in /proc/$$/fd/*; do
	fd=${fd##*/}
	if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
done

cc -O1 -o "$dir/logserver" examples/logserver/logserver.c
crsub=$(cd "$(dirname "$crsub")" && pwd)/$(basename "$crsub")
cd "$dir"	# the commands shown below use names relative to it
log=server.log

# wait_until SECS COMMAND...: poll until COMMAND succeeds.
wait_until() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < end)) || return 1
		sleep 0.1
	done
}
# ask PORT: connect to 127.0.0.1:PORT (bash's /dev/tcp), print the reply.
ask() {
	local c reply=""
	{ exec {c}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	read -r -t 5 reply <&"$c" || true
	exec {c}>&-
	printf '%s\n' "$reply"
}
refuses() { ! (exec {c}<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# last_tick FILE: the number in the last "tick N" line of FILE
last_tick() { sed -n 's/.*: tick \([0-9]*\)$/\1/p' "$1" | tail -n 1; }
first_tick() { sed -n 's/.*: tick \([0-9]*\)$/\1/p' "$1" | head -n 1; }
# reply_field WORD REPLY: the number after WORD in "tick T, connection C"
reply_field() { sed -n "s/.*$1 \([0-9]*\).*/\1/p" <<<"$2"; }

say "1. Start a small server (examples/logserver/logserver.c)"
echo "   One epoll loop: a tick line every 200 ms to its log (stdout), and on a TCP port"
echo "   it answers each connection with its tick and connection counts, kept in memory only."
printf '   $ setsid ./logserver </dev/null >>server.log 2>&1 &\n'
setsid ./logserver </dev/null >>"$log" 2>&1 &
pid=$!
wait_until 5 grep -q "listening on" "$log" || fail "the server did not start"
[[ $(cat "/proc/$pid/comm" 2>/dev/null) == logserver ]] || fail "pid $pid is not the server"
port1=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
sleep 1
reply=$(ask "$port1") || fail "could not connect to port $port1"
echo "   connect to 127.0.0.1:$port1 -> $reply"
reply=$(ask "$port1") || fail "could not connect to port $port1"
echo "   connect to 127.0.0.1:$port1 -> $reply"
[[ $(reply_field connection "$reply") == 2 ]] || fail "unexpected reply '$reply'"
echo "   server.log:"
tail -n 4 "$log" | indent
ok "pid $pid logs to server.log and serves port $port1"

say "2. Checkpoint it into an image file (the server is killed once the image is on disk)"
run "$crsub" checkpoint --pid "$pid" -o image --stats text || fail "crsub checkpoint failed"
wait "$pid" 2>/dev/null || true	# reap it: it was our child
[[ ! -e /proc/$pid ]] || fail "pid $pid still exists after the checkpoint"
refuses "$port1" || fail "port $port1 still answers"
tick_before=$(last_tick "$log")
lines_before=$(wc -l <"$log")
ok "pid $pid is gone, port $port1 is closed; the log stops at tick $tick_before"
echo "   its file descriptors, as the image records them (crsub show):"
"$crsub" show image | sed -n '/File descriptors:/,/Signal dispositions:/{/Signal dispositions:/!p}' | indent

say "3. Rotate the log, as logrotate would"
run mv "$log" "$log.1"

# A free port for the new socket: the first one after the old that refuses.
port2=$((port1 < 65000 ? port1 + 1 : 20000))
until refuses "$port2"; do port2=$((port2 + 1)); done

say "4. Restart it, giving fds 1 and 2 a fresh server.log and fd 3 a new listening socket"
run "$crsub" restart -i image --detach --pidfile pidfile \
	--fd "1=file:$dir/$log,append,create" --fd "2=file:$dir/$log,append,create" \
	--fd "3=tcp-listen:127.0.0.1:$port2" || fail "crsub restart failed"
restored=$(cat pidfile)
[[ $restored == "$pid" ]] || fail "restored as pid $restored, not $pid"
[[ $(cat "/proc/$pid/comm" 2>/dev/null) == logserver ]] || fail "pid $pid is not running logserver"
echo "   pid $pid's fds now:"
for fd in 1 2 3; do printf '     %s -> %s\n' "$fd" "$(readlink "/proc/$pid/fd/$fd")"; done
ok "restored as the same pid $pid"

say "5. It answers on the new port, its counters going on from where they were"
reply=$(ask "$port2") || fail "could not connect to the new port $port2"
echo "   connect to 127.0.0.1:$port2 -> $reply"
tick=$(reply_field tick "$reply") conn=$(reply_field connection "$reply")
[[ $conn == 3 ]] || fail "connection count is '$conn', want 3 (it was 2 before the checkpoint)"
[[ -n $tick ]] && ((tick > tick_before && tick <= tick_before + 25)) ||
	fail "tick is '$tick', want just after $tick_before (no restart from 0)"
refuses "$port1" || fail "the old port $port1 answers"
ok "connection 3 at tick $tick: nothing forgotten; the old port $port1 stays closed"

say "6. Its log lines land in the new server.log; server.log.1 got nothing more"
wait_until 5 grep -q "answered connection 3" "$log" || fail "no 'answered connection 3' in the new log"
sleep 0.5
echo "   server.log.1 (rotated) ends:"
tail -n 2 "$log.1" | indent
echo "   server.log (new) begins:"
head -n 3 "$log" | indent
[[ $(wc -l <"$log.1") == "$lines_before" ]] || fail "the rotated log grew after the restart"
first=$(first_tick "$log")
[[ $first == $((tick_before + 1)) ]] || fail "the new log starts at tick '$first', want $((tick_before + 1))"
ok "ticks 0..$tick_before in server.log.1, $first.. in server.log, all from pid $pid"

kill "$pid"
wait_until 5 eval '[[ ! -e /proc/$pid || $(cut -d" " -f3 /proc/$pid/stat) == Z ]]' || fail "pid $pid did not stop"
pid=""
say "Done: same process, same pid and counters, a fresh log and a new port. Cleaned up $dir."
