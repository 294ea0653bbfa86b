#!/bin/bash
# shell_tree: a shell with 8 background loops, each writing a line per round
# to the tree's stdout and starting a short-lived `sleep` every 50 ms. Every
# process shares one open file on fd 1 (out.log, inherited). Checkpointed
# while children come and go: one may end between being listed and being
# seized. Restarted after the log was rotated away (shell_tree.prerestart)
# with a substitute for the root's fd 1 alone (shell_tree.restart-args):
# every loop's fd 1 shares it (shell_tree.check). Its umask (027, not the
# runner's) is the one the new log must be created with.
. "${BASH_SOURCE%/*}/cr.sh"
# Its own session, so that the runner's final SIGTERM to the group takes
# every loop down.
exec setsid bash -c '
	umask 027
	exec >>"$1"
	for n in 1 2 3 4 5 6 7 8; do
		(
			i=0
			while :; do
				echo "$n $i"
				i=$((i + 1))
				sleep 0.05
			done
		) &
	done
	sleep 0.5
	: >"$2"
	wait
' shell_tree "$CR_DIR/out.log" "$CR_DIR/ready"
