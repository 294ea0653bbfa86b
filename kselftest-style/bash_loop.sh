#!/bin/bash
# bash_loop: bash itself is the subject: a while-loop appending a counter to
# $CR_DIR/counter every 50 ms, checked from outside (bash_loop.check). No
# child process may exist at the checkpoint, so the loop uses builtins only
# and sleeps with `read -t` on an idle fifo (fd 3) instead of sleep(1).
. "${BASH_SOURCE%/*}/cr.sh"
mkfifo "$CR_DIR/tick" || ksft_exit_fail_msg "mkfifo failed"
exec 3<>"$CR_DIR/tick" 4>>"$CR_DIR/counter"
i=0
while :; do
	echo "$i" >&4
	i=$((i + 1))
	if ((i == 10)); then
		mapfile -t got <"$CR_DIR/counter"
		[[ ${#got[@]} == 10 && ${got[0]} == 0 && ${got[9]} == 9 ]] ||
			ksft_exit_fail_msg "setup: counter file holds ${got[*]:0:20}"
		ksft_print_msg "setup ok: pid $$ counting"
		cr_ready
	fi
	read -r -t 0.05 -u 3 _
done
