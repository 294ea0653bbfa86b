#!/bin/bash
# pipeline: a 3-stage shell pipeline, bash -c 'generator | cat | grep',
# checkpointed and restarted as a process tree: every line must arrive
# exactly once, in order (pipeline.check).
. "${BASH_SOURCE%/*}/cr.sh"
mkfifo "$CR_DIR/tick" || ksft_exit_fail_msg "mkfifo failed"
# Its own session (setsid execs in place: the subject is no group leader),
# so that the runner's final SIGTERM to the group takes all stages down.
exec setsid bash -c '
	i=0
	exec 3<>"$1"
	while :; do
		echo "$i"
		i=$((i + 1))
		if ((i == 40)); then : >"$3"; fi
		read -r -t 0.01 -u 3 _
	done | cat | grep --line-buffered '^' >>"$2"
' pipeline "$CR_DIR/tick" "$CR_DIR/out" "$CR_DIR/ready"
