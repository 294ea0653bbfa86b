#!/bin/bash
# sleep_1000: an unmodified /bin/sleep, checkpointed in clock_nanosleep and
# checked from outside after restart (sleep_1000.check).
. "${BASH_SOURCE%/*}/cr.sh"
command -v sleep >/dev/null || ksft_exit_skip "no sleep binary"
ksft_print_msg "exec sleep 1000 as pid $$"
cr_ready_after_exec sleep 230	# SYS_clock_nanosleep
exec sleep 1000
