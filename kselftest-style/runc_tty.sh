#!/bin/bash
# runc_tty: a terminal container (process.terminal true) run detached,
# its console's master held by a console socket (console_socket.py, as
# runc's recvtty would), checkpointed and restored by runc with crsub as
# its criu (`runc --criu crsub checkpoint`, `restore -d --console-socket`:
# CRIU's orphan_pts_master, the new master sent to runc in the
# orphan-pts-master notification and passed on to the socket). Once
# restored, the container's shell answers on the new master (a command
# written, its output read) on the pty number it had in its own devpts
# (/dev/pts/0), with the terminal settings it had (an interrupt character
# of ^G, a window of 33x77), its controlling terminal, its pid; runc says
# running; its counter goes on. The work is done before the subject is
# ready (runc_tty.ready-timeout); the runner's own checkpoint of this
# shell, waiting, follows, and runc_tty.check reports (as podman.sh).
. "${BASH_SOURCE%/*}/cr.sh"
. "${BASH_SOURCE%/*}/runc_lib.bash"
[[ -x ${CRSUB:-} ]] || ksft_exit_skip "CRSUB is not set to crsub"
PY=$(command -v python3) || ksft_exit_skip "no python3 for the console socket"
"$PY" -c 'import socket; socket.recv_fds' 2>/dev/null || ksft_exit_skip "$PY has no socket.recv_fds (3.9+)"

name=crsub-tty-$$
bundle=$CR_DIR/bundle
runc_bundle "$bundle" "$name"
ln -sf busybox "$bundle/rootfs/bin/stty"
# shellcheck disable=SC2016 # the container shell's
jq --arg script '(i=0; while :; do echo $i >>/counter; i=$((i+1)); sleep 0.1; done) & while read -r l; do eval "$l"; done' \
	'.process.terminal = true | .process.args = ["sh", "-c", $script]' \
	"$bundle/config.json" >"$bundle/config.json.new" && mv "$bundle/config.json.new" "$bundle/config.json" ||
	ksft_exit_fail_msg "setup: config.json"

cr_tap runc_tty "$CR_DIR/runc.log"

sock=$CR_DIR/console.sock
"$PY" "${BASH_SOURCE%/*}/console_socket.py" "$sock" "$CR_DIR" </dev/null >"$CR_DIR/console_socket.log" 2>&1 &
console=$!
cleanup() {
	runc delete -f "$name" >/dev/null 2>&1
	kill "$console" 2>/dev/null
	wait "$console" 2>/dev/null
	find /sys/fs/cgroup -mindepth 1 -depth -type d -name "$name" -exec rmdir {} + 2>/dev/null
}
trap cleanup EXIT
for _ in $(seq 100); do [[ -e $CR_DIR/console.ready ]] && break; sleep 0.05; done
[[ -e $CR_DIR/console.ready ]] || ksft_exit_fail_msg "setup: the console socket did not start ($(cat "$CR_DIR/console_socket.log"))"

# say LINE: a line typed on the console's newest master. answer TAG: the
# line the container printed starting with TAG, once it has (10 s).
say() { printf '%s\n' "$1" >"$CR_DIR/tty.in"; }
answer() {
	local got
	for _ in $(seq 200); do
		got=$(tr -d '\r' <"$CR_DIR/tty.out" | grep -a "^$1 " | tail -n1)
		[[ -n $got ]] && break
		sleep 0.05
	done
	echo "$got"
}
masters() { grep -ac '^== master ' "$CR_DIR/tty.out"; }
# The shell reports what the test checks: a sum it computed (the line
# echoed as typed has the expression), its termios, window and terminal.
report='$((6*7)) $(stty -g) $(stty size) $(readlink /proc/self/fd/0)'

cd "$bundle" || ksft_exit_fail_msg "setup: cd $bundle"
runc run -d --console-socket "$sock" "$name" >>"$CR_DIR/runc.log" 2>&1 ||
	ksft_exit_fail_msg "runc run -d --console-socket failed: $(tail -n1 "$CR_DIR/runc.log")"
say "stty intr ^G rows 33 cols 77; echo before-$report"
before=$(answer before-42)
pid=$(runc_init_pid "$name")
[[ -n $before && -n $pid ]] || ksft_exit_fail_msg "the container did not answer on its console (pid '${pid}'): $(tr -d '\r' <"$CR_DIR/tty.out")"
cr_result "$([[ $before == *" 33 77 /dev/pts/0" ]]; echo $?)" "before: the shell answers on its console: $before"
ctty=$(awk '{print $7}' "/proc/$pid/stat")
for _ in $(seq 100); do [[ $(wc -l <rootfs/counter) -ge 5 ]] && break; sleep 0.05; done

cr_timed checkpoint runc --criu "$CRSUB" checkpoint --image-path "$CR_DIR/runc-img" --work-path "$CR_DIR/runc-work" "$name"
cr_result $? "runc --criu crsub checkpoint"
n0=$(wc -l <rootfs/counter)
cr_timed restore runc --criu "$CRSUB" restore -d --console-socket "$sock" --image-path "$CR_DIR/runc-img" --work-path "$CR_DIR/runc-work" "$name"
cr_result $? "runc --criu crsub restore -d --console-socket"
for _ in $(seq 100); do (($(masters) >= 2)) && break; sleep 0.05; done
cr_result "$( (($(masters) == 2)); echo $?)" "the console socket got a new master ($(masters) in all)"
got=$(runc_init_pid "$name")
cr_result "$([[ $got == "$pid" ]]; echo $?)" "runc reports it running as pid ${got:-none} ($pid)"
say "echo after-$report"
after=$(answer after-42)
cr_result "$([[ -n $after && ${after#after-} == "${before#before-}" ]]; echo $?)" \
	"after: the shell answers on the new master, with its termios, window and pty number (${after:-nothing})"
got=$(awk '{print $7}' "/proc/$pid/stat" 2>/dev/null)
cr_result "$([[ $got == "$ctty" && $got != 0 ]]; echo $?)" "its controlling terminal is the new pty (tty_nr $got, was $ctty)"
f=rootfs/counter
for _ in $(seq 60); do (($(wc -l <"$f") >= n0 + 5)) && break; sleep 0.05; done
n=$(wc -l <"$f")
bad=$(awk 'NR - 1 != $1 {print "line " NR ": " $0; exit}' "$f")
cr_result "$( ((n >= n0 + 5)) && [[ -z $bad ]]; echo $?)" "the counter goes on from 0 by one ($n0 -> $n lines${bad:+; $bad})"

if ((FAILED)); then
	{
		echo "# tty.out:"
		tr -d '\r' <"$CR_DIR/tty.out" | sed 's/^/#   /'
		sed 's/^/#   /' "$CR_DIR/runc.log"
		grep -a 'Error' "$CR_DIR/runc-work/restore.log" 2>/dev/null | sed 's/^/#   /'
	} >>"$TAP"
fi
cd "$CR_DIR" || exit 1
cleanup
trap - EXIT
cr_ready_after_exec sleep
exec sleep 1000
