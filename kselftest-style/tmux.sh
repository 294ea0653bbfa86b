#!/bin/bash
# tmux: an unmodified tmux server (Debian's) holding a pty whose slave is an
# interactive bash's controlling terminal, with less open on it. Restored,
# less still takes keys, the shell keeps its variables and its job control
# (tmux.check).
. "${BASH_SOURCE%/*}/cr.sh"
command -v tmux >/dev/null || ksft_exit_skip "tmux is not installed"
sock=$CR_DIR/tmux.sock
# Ready once the session's shell has run its first command (a detached
# client; the server is this process).
(
	(
		exec </dev/null >/dev/null 2>&1
		for _ in $(seq 400); do
			# Not before the server below listens: a client finding no
			# server starts one of its own on the socket, and the
			# server then exits for want of it.
			if [[ -S $sock ]] && tmux -S "$sock" new-session -d -x 80 -y 24 "bash --norc --noprofile" 2>/dev/null; then
				tmux -S "$sock" send-keys 'x=41' Enter
				# A pager open at checkpoint time: less reads the keyboard
				# from /dev/tty.
				tmux -S "$sock" send-keys 'less /etc/os-release' Enter
				for _ in $(seq 100); do
					tmux -S "$sock" capture-pane -p | grep -q 'PRETTY_NAME' && break
					sleep 0.05
				done
				sleep 0.2
				: >"$CR_DIR/ready.tmp" && mv "$CR_DIR/ready.tmp" "$CR_DIR/ready"
				exit 0
			fi
			sleep 0.05
		done
	) &
)
exec tmux -S "$sock" -f /dev/null -D
