# SPDX-License-Identifier: MIT
# cr.sh - helpers for shell subjects (NAME.sh) and NAME.check / NAME.poke
# snippets; the shell side of cr.h. Source it: . "${BASH_SOURCE%/*}/cr.sh"

# --- TAP 13 in shell (same output as kselftest.h)
KSFT_NUM=0 KSFT_PASS=0 KSFT_FAIL=0 KSFT_SKIP=0
ksft_print_header() { echo "TAP version 13"; }
ksft_set_plan() { echo "1..$1"; }
ksft_print_msg() { echo "# $*"; }
# ksft_test_result STATUS DESCRIPTION...: ok if STATUS is 0
ksft_test_result() {
	local st=$1
	shift
	KSFT_NUM=$((KSFT_NUM + 1))
	if [[ $st == 0 ]]; then
		KSFT_PASS=$((KSFT_PASS + 1))
		echo "ok $KSFT_NUM $*"
	else
		KSFT_FAIL=$((KSFT_FAIL + 1))
		echo "not ok $KSFT_NUM $*"
	fi
}
ksft_finished() {
	echo "# Totals: pass:$KSFT_PASS fail:$KSFT_FAIL xfail:0 xpass:0 skip:$KSFT_SKIP error:0"
	((KSFT_FAIL == 0)) && exit 0
	exit 1
}
ksft_exit_skip() { echo "1..0 # SKIP $*"; exit 4; }
ksft_exit_fail_msg() { echo "Bail out! $*"; exit 1; }

# --- results found before ready: a subject that checkpoints and restores
# its own work before it is ready (NAME.ready-timeout) writes its results
# to $CR_DIR/NAME.tap, which NAME.check reports (cr_report_tap NAME).
# cr_tap NAME LOG: starts them (FAILED says whether any failed); LOG takes
# the output of the commands cr_timed runs.
cr_tap() {
	TAP=$CR_DIR/$1.tap CR_TAP_LOG=$2 FAILED=0 CR_TAP_NUM=0
	: >"$TAP"
}
# cr_result STATUS DESCRIPTION: ok if STATUS is 0.
cr_result() {
	CR_TAP_NUM=$((CR_TAP_NUM + 1))
	if [[ $1 == 0 ]]; then echo "ok $CR_TAP_NUM $2" >>"$TAP"; else echo "not ok $CR_TAP_NUM $2" >>"$TAP"; FAILED=1; fi
}
cr_note() { echo "# $*" >>"$TAP"; }
# cr_timed LABEL CMD...: runs CMD, notes how long it took.
cr_timed() {
	local label=$1 t0=$EPOCHREALTIME rc
	shift
	"$@" >>"$CR_TAP_LOG" 2>&1
	rc=$?
	cr_note "$label: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f s", b - a}') (exit $rc)"
	return $rc
}
# cr_report_tap NAME: NAME.check's report of what NAME.sh found.
cr_report_tap() {
	local tap=$CR_DIR/$1.tap
	ksft_print_header
	[[ -s $tap ]] || ksft_exit_fail_msg "$1.sh left no results"
	ksft_set_plan "$(grep -c '^\(not \)\{0,1\}ok ' "$tap")"
	cat "$tap"
	grep -q '^not ok ' "$tap" && exit 1
	exit 0
}

# --- readiness
# cr_ready: for a bash subject that blocks right after. Builtins only (no
# child process may exist at the checkpoint): an empty ready file, so the
# runner just waits for the subject to sleep (state S).
cr_ready() { : >"$CR_DIR/ready"; }

# cr_ready_after_exec COMM [SYSCALL]: for `cr_ready_after_exec sleep 230;
# exec sleep 1000`. A detached watcher (not our child: double fork) writes
# the ready file (atomically, holding SYSCALL) once this pid runs COMM and is
# blocked in SYSCALL (or just sleeping); it gives up after 20 s.
cr_ready_after_exec() {
	local comm=$1 nr=${2:-} pid=$$
	(
		(
			exec </dev/null >/dev/null 2>&1
			for _ in $(seq 400); do
				if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] &&
					[[ $(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) == S ]] &&
					[[ -z $nr || $(cut -d' ' -f1 "/proc/$pid/syscall" 2>/dev/null) == "$nr" ]]; then
					echo "$nr" >"$CR_DIR/ready.tmp" && mv "$CR_DIR/ready.tmp" "$CR_DIR/ready"
					exit 0
				fi
				sleep 0.05
			done
		) &
	)
}

# --- shared checks
proc_field() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" 2>/dev/null; }

# cr_check_counter FILE PID: FILE gets one increasing number per line from
# PID. It must keep growing now, start at 0, and never go back or jump by
# more than 3 (no restart from 0, no lost steps beyond a couple).
cr_check_counter() {
	local f=$1 pid=$2 n0 n i prev=-1 bad="" st
	local -a lines
	ksft_print_header
	ksft_set_plan 4
	n0=$(wc -l <"$f")
	n=$n0
	for _ in $(seq 100); do
		n=$(wc -l <"$f")
		((n >= n0 + 10)) && break
		sleep 0.05
	done
	st=$(proc_field "$pid" State)
	ksft_test_result "$([[ -e /proc/$pid && $st != T* && $st != t* ]]; echo $?)" \
		"pid $pid alive and not stopped (${st:-gone})"
	ksft_test_result "$( ((n >= n0 + 10)); echo $?)" "counter keeps growing ($n0 -> $n lines)"
	mapfile -t lines < <(head -n "$n" "$f")
	ksft_test_result "$([[ ${lines[0]:-} == 0 ]]; echo $?)" "starts at 0 (${lines[0]:-empty})"
	for ((i = 0; i < ${#lines[@]}; i++)); do
		if [[ ! ${lines[i]} =~ ^[0-9]+$ ]] || ((i > 0 && (lines[i] <= prev || lines[i] > prev + 3))); then
			bad="line $((i + 1)): '${lines[i]}' after '$prev'"
			break
		fi
		prev=${lines[i]}
	done
	[[ -n $bad ]] && ksft_print_msg "bad step at $bad"
	ksft_test_result "$([[ -z $bad ]]; echo $?)" "steps of 1..3 only, no restart from 0 (${#lines[@]} lines, last $prev)"
	ksft_finished
}
