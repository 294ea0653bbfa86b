#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run.sh - crsub whole-system checkpoint/restart tests, kernel-selftests style.
#
# usage: run.sh [-v] [-k] [--no-cr] [--all] [-l] [NAME...]
#
#   NAME...   run these subjects (e.g. mem_patterns sleep_1000.sh), enabled
#             in SUBJECTS or not; default: the subjects enabled in SUBJECTS
#   --all     every subject, including the ones commented out in SUBJECTS
#   --no-cr   no checkpoint/restart: ready, poke, SIGTERM/check only
#             (self-test of the suite; needs no crsub)
#   -v        also print the runner's steps and crsub's output for passes
#   -k        keep every subject's temp dir (failed ones are always kept)
#   -l        list the subjects that would run, and exit
#
# Environment: CRSUB (default ../bin/crsub next to this directory),
# CR_READY_TIMEOUT (10 s), CR_TIMEOUT (60 s, each crsub run and each exit
# wait), CR_CHECK_TIMEOUT (30 s, .poke/.check snippets), TMPDIR.
#
# Protocol: see README.md. Output: TAP 13; exit 0 if nothing failed.

set -u
shopt -s nullglob

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CRSUB=${CRSUB:-$HERE/../bin/crsub}
case $CRSUB in	# relative: to the current dir, else to the repository root
/*) ;;
*/*) [[ -e $PWD/$CRSUB || ! -e $HERE/../$CRSUB ]] && CRSUB=$PWD/$CRSUB || CRSUB=$(cd "$HERE/.." && pwd)/$CRSUB ;;
*) CRSUB=$(command -v "$CRSUB" || echo "$CRSUB") ;;
esac
export CRSUB	# .prerestart/.poke/.check snippets may run crsub themselves
READY_TIMEOUT=${CR_READY_TIMEOUT:-10}
CR_TIMEOUT=${CR_TIMEOUT:-60}
CHECK_TIMEOUT=${CR_CHECK_TIMEOUT:-30}
GONE_TIMEOUT=5		# the target must vanish this fast once checkpoint returned

VERBOSE=0 KEEP=0 NOCR=0 ALL=0 LIST=0
NAMES=()

usage() { sed -n '4,21s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit "${1:-0}"; }

while (($#)); do
	case $1 in
	-v | --verbose) VERBOSE=1 ;;
	-k | --keep) KEEP=1 ;;
	--no-cr) NOCR=1 ;;
	--all) ALL=1 ;;
	-l | --list) LIST=1 ;;
	-h | --help) usage 0 ;;
	--) shift; NAMES+=("$@"); break ;;
	-*) echo "run.sh: unknown option $1" >&2; usage 2 >&2 ;;
	*) NAMES+=("$1") ;;
	esac
	shift
done

# ---------------------------------------------------------------- subjects

# A subject NAME is NAME.c (built to bin/NAME) or NAME.sh (run with bash).
is_subject() {
	case $1 in
	run.sh | cr.sh | *[!A-Za-z0-9_.-]* | "") return 1 ;;
	*.sh) [[ -f $HERE/$1 ]] ;;
	*) [[ -f $HERE/$1.c ]] ;;
	esac
}

# Canonical name: "foo" for foo.c, "foo.sh" for foo.sh.
canon() {
	local n=${1%.c}
	if [[ $n != *.sh && ! -f $HERE/$n.c && -f $HERE/$n.sh ]]; then
		n=$n.sh
	fi
	echo "$n"
}

subjects_enabled() {
	local line
	[[ -f $HERE/SUBJECTS ]] || return 0
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line%%#*}
		read -r line _ <<<"$line"
		[[ -n $line ]] && canon "$line"
	done <"$HERE/SUBJECTS"
}

subjects_all() {
	local line f
	{
		if [[ -f $HERE/SUBJECTS ]]; then
			while IFS= read -r line || [[ -n $line ]]; do
				line=${line#"${line%%[![:space:]#]*}"}	# strip leading blanks and #
				read -r line _ <<<"${line%%#*}"
				[[ -n $line ]] && is_subject "$(canon "$line")" && canon "$line"
			done <"$HERE/SUBJECTS"
		fi
		for f in "$HERE"/*.c; do f=${f##*/}; echo "${f%.c}"; done
		for f in "$HERE"/*.sh; do f=${f##*/}; is_subject "$f" && echo "$f"; done
	} | awk '!seen[$0]++'
}

if ((${#NAMES[@]})); then
	mapfile -t LIST_NAMES < <(for n in "${NAMES[@]}"; do canon "$n"; done)
elif ((ALL)); then
	mapfile -t LIST_NAMES < <(subjects_all)
else
	mapfile -t LIST_NAMES < <(subjects_enabled)
fi
if ((LIST)); then
	((${#LIST_NAMES[@]})) && printf '%s\n' "${LIST_NAMES[@]}"
	exit 0
fi

# ---------------------------------------------------------------- processes

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/crsub-kselftest.XXXXXX") || exit 1
SUBJ_PID=""	# the subject as started by us (our child)
CRSUB_PID=""	# the running crsub (our child)
TARGET=""	# pid of the subject (restored by crsub, or SUBJ_PID)
TREE=""	# the subject's processes when it was told to end: leftovers are killed

# bash reports "PID Killed ..." for background jobs that died by a signal;
# keep that noise (and any other stderr of the runner) out of the TAP stream.
exec 3>&2 2>>"$ROOT/stderr"

# Wall-clock deadlines (microseconds): `deadline SECS` prints one,
# `expired END` is true once it has passed.
deadline() { echo $((${EPOCHREALTIME/./} + $1 * 1000000)); }
expired() { ((${EPOCHREALTIME/./} >= $1)); }

proc_state() {	# state letter of pid $1, empty if gone
	local l
	{ read -r l <"/proc/$1/stat"; } 2>/dev/null || return 0
	l=${l##*) }
	echo "${l%% *}"
}

alive() {
	local s
	s=$(proc_state "$1")
	[[ -n $s && $s != Z && $s != X ]]
}

proc_comm() { cat "/proc/$1/comm" 2>/dev/null; }
# signal state + tracer, from /proc/PID/status: "SigBlk SigIgn SigCgt TracerPid"
proc_sigstate() {
	awk '$1 ~ /^(SigBlk|SigIgn|SigCgt|TracerPid):$/ { s = s $1 $2 " " } END { print s }' \
		"/proc/$1/status" 2>/dev/null
}
proc_syscall() { local s; { read -r s _ <"/proc/$1/syscall"; } 2>/dev/null && echo "$s"; }

# runner notes, stamped with seconds since the subject started
note() {
	local ms=$(((${EPOCHREALTIME/./} - T0_US) / 1000))
	printf '[%d.%03d] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >>"$D/runner.log"
}

# wait_child PID SECS: wait for our child to exit; WAIT_RC = its status.
wait_child() {
	local pid=$1 end
	end=$(deadline "$2")
	while ! expired "$end"; do
		if ! alive "$pid"; then
			wait "$pid"
			WAIT_RC=$?
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# The given pids and all their descendants (from the ppid links in /proc).
with_descendants() {
	(($#)) || return 0
	local -A kids=()
	local f l pid ppid
	local -a todo=("$@") out=()
	for f in /proc/[0-9]*/stat; do
		{ read -r l <"$f"; } 2>/dev/null || continue
		pid=${f#/proc/}
		pid=${pid%/stat}
		l=${l##*) }
		read -r _ ppid _ <<<"$l"
		kids[$ppid]+=" $pid"
	done
	while ((${#todo[@]})); do
		pid=${todo[0]}
		todo=("${todo[@]:1}")
		[[ -n $pid ]] || continue
		out+=("$pid")
		todo+=(${kids[$pid]:-})
	done
	echo "${out[@]}"
}

# Kill what this subject run started (and anything it forked), wait until
# it is gone.
kill_all() {
	local p n pids
	pids=$(with_descendants $TARGET $SUBJ_PID $CRSUB_PID $TREE)
	for p in $pids; do
		alive "$p" && kill -KILL "$p" 2>/dev/null
	done
	for p in $pids; do
		n=$(deadline 2)
		while alive "$p" && ! expired "$n"; do sleep 0.05; done
	done
	for p in "$SUBJ_PID" "$CRSUB_PID"; do
		[[ -n $p ]] && wait "$p" 2>/dev/null
	done
	TARGET="" SUBJ_PID="" CRSUB_PID="" TREE=""
}

# What a .prerestart made for the restart (a network namespace, links) and
# wrote down in $CR_DIR/cleanup goes once the subject is.
cleanup_made() {
	[[ -n ${D:-} && -f $D/cleanup ]] || return 0
	TARGET=""
	run_snippet "$D/cleanup" "$D/runner.log" || note "cleanup exit=$?"
	mv "$D/cleanup" "$D/cleanup.done"
}

on_exit() {
	kill_all
	if ((KEEP == 0)); then
		rm -f "$ROOT/stderr"
		rmdir "$ROOT" 2>/dev/null
	fi
}
on_signal() {
	echo "# interrupted by SIG$1, cleaning up"
	kill_all
	cleanup_made
	[[ -n ${D:-} && -d $D ]] && echo "# kept: $D"
	exit $((128 + $2))
}
trap on_exit EXIT
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM
trap 'on_signal HUP 1' HUP

# In a child before exec: close every inherited fd above 2 (the runner's
# own, and whatever the caller leaked), so subjects start with 0, 1, 2 only.
close_fds() {
	local f n
	for f in /proc/$BASHPID/fd/*; do
		n=${f##*/}
		((n > 2)) && eval "exec $n>&-"
	done 2>/dev/null
}

# proc_pgid PID: the process group of PID (field 5 of /proc/PID/stat).
proc_pgid() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	st=${st##*) }
	set -- $st
	echo "$3"
}

# run_snippet FILE LOG: bash FILE with $PID/$CR_DIR, bounded; returns status.
run_snippet() {
	local pid end
	end=$(deadline "$CHECK_TIMEOUT")
	(
		trap - INT QUIT
		close_fds
		export PID=$TARGET CR_DIR=$D
		exec bash "$1"
	) </dev/null >>"$2" 2>&1 &
	pid=$!
	while ! expired "$end"; do
		if ! alive "$pid"; then
			wait "$pid"
			return
		fi
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid"
	echo "# ${1##*/}: TIMEOUT after ${CHECK_TIMEOUT}s" >>"$2"
	return 124
}

# start_crsub LOG ARGS...: crsub in the background as our child.
start_crsub() {
	local log=$1
	shift
	(
		trap - INT QUIT
		close_fds
		exec "$CRSUB" "$@"
	) </dev/null >>"$log" 2>&1 &
	CRSUB_PID=$!
}

# start_snippet LOG FILE: bash FILE in the background as our child, in
# crsub's place (a container runtime checkpointing or restoring through
# crsub), with $PID, $CR_DIR and $CRSUB.
start_snippet() {
	local log=$1 file=$2
	(
		trap - INT QUIT
		close_fds
		export PID=$TARGET CR_DIR=$D
		exec bash "$file"
	) </dev/null >>"$log" 2>&1 &
	CRSUB_PID=$!
}

# ---------------------------------------------------------------- one subject

# Sets RESULT (ok|fail|skip) and REASON.
run_one() {
	local name=$1 cmd hint="" orig_comm orig_sig n st rc
	local poke=$HERE/${1%.sh}.poke check=$HERE/${1%.sh}.check
	local prerestart=$HERE/${1%.sh}.prerestart restart_args=$HERE/${1%.sh}.restart-args
	local checkpoint_args=$HERE/${1%.sh}.checkpoint-args
	local checkpoint_cmd=$HERE/${1%.sh}.checkpoint restart_cmd=$HERE/${1%.sh}.restart
	local extra=() cextra=() line f ready_timeout=$READY_TIMEOUT
	RESULT=fail REASON=""
	# A subject whose setup takes long (podman.sh) says how long, in s.
	[[ -r $HERE/${1%.sh}.ready-timeout ]] && read -r ready_timeout <"$HERE/${1%.sh}.ready-timeout"

	if ! is_subject "$name"; then
		REASON="no such subject"
		return
	fi
	if [[ $name == *.sh ]]; then
		cmd=(bash "$HERE/$name")
	else
		cmd=("$HERE/bin/$name")
		if [[ ! -x ${cmd[0]} ]]; then
			REASON="not built (make -C ${HERE##*/})"
			return
		fi
	fi
	if ((!NOCR)) && [[ ! -x $CRSUB ]]; then
		REASON="crsub not executable: $CRSUB"
		return
	fi
	: >"$D/log"

	# 1. start, wait for ready (or an early exit)
	(
		trap - INT QUIT
		close_fds
		cd "$D" || exit 1
		export CR_DIR=$D
		exec "${cmd[@]}"
	) </dev/null >>"$D/log" 2>&1 &
	SUBJ_PID=$! TARGET=$!
	note "started $name as pid $TARGET"
	n=$(deadline "$ready_timeout")
	while [[ ! -e $D/ready ]]; do
		if ! alive "$SUBJ_PID"; then
			wait "$SUBJ_PID"
			rc=$?
			SUBJ_PID="" TARGET=""
			if ((rc == 4)); then
				RESULT=skip
			else
				REASON="exited before ready (exit=$rc)"
			fi
			return
		fi
		if expired "$n"; then
			REASON="TIMEOUT: no ready file after ${ready_timeout}s"
			return
		fi
		sleep 0.05
	done

	# 2. wait until it blocks where it said (ready holds a syscall number).
	# A subject may name another process to checkpoint in CR_DIR/target
	# (a container's init it started), and must end once that one is gone.
	read -r hint <"$D/ready" 2>/dev/null
	if [[ -s $D/target ]]; then
		read -r TARGET <"$D/target"
		note "target: pid $TARGET"
	fi
	n=$(deadline "$READY_TIMEOUT")
	while :; do
		st=$(proc_state "$TARGET")
		if [[ -n $hint ]]; then
			[[ $st == S && $(proc_syscall "$TARGET") == "$hint" ]] && break
		else
			[[ $st == S ]] && break
		fi
		if ! alive "$TARGET" || expired "$n"; then
			REASON="did not block ${hint:+in syscall $hint }after ready (state ${st:-gone}, syscall $(proc_syscall "$TARGET"))"
			return
		fi
		sleep 0.05
	done
	orig_comm=$(proc_comm "$TARGET")
	orig_sig=$(proc_sigstate "$TARGET")
	note "ready: pid $TARGET comm '$orig_comm' blocked${hint:+ in syscall $hint}"
	note "ready: $orig_sig"

	if ((!NOCR)); then
		# 3. checkpoint: writes the image and kills the target. A subject
		# may ask for extra arguments (--pre-copy), one per line; with
		# --leave-running the runner kills the target itself afterwards.
		if [[ -f $checkpoint_args ]]; then
			while IFS= read -r line; do
				[[ -z $line || $line == \#* ]] && continue
				cextra+=("${line//\$CR_DIR/$D}")
			done <"$checkpoint_args"
		fi
		if [[ -f $checkpoint_cmd ]]; then
			start_snippet "$D/checkpoint.log" "$checkpoint_cmd"
		else
			start_crsub "$D/checkpoint.log" checkpoint --pid "$TARGET" -o "$D/img" "${cextra[@]}"
		fi
		if ! wait_child "$CRSUB_PID" "$CR_TIMEOUT"; then
			REASON="TIMEOUT: crsub checkpoint still running after ${CR_TIMEOUT}s"
			return
		fi
		rc=$WAIT_RC CRSUB_PID=""
		note "checkpoint exit=$rc"
		if ((rc != 0)); then
			REASON="crsub checkpoint failed (exit=$rc)"
			return
		fi
		if [[ " ${cextra[*]} " == *" --leave-running "* ]]; then
			# The checkpoint let it run on: it must still be there, and
			# goes now, so that restart has its pid.
			if [[ ! -e /proc/$TARGET ]] || [[ $(proc_state "$TARGET") == Z ]]; then
				REASON="target gone after a --leave-running checkpoint"
				return
			fi
			kill -KILL "$TARGET" 2>/dev/null
		fi
		if ! wait_child "$SUBJ_PID" "$GONE_TIMEOUT"; then
			REASON="target still alive ${GONE_TIMEOUT}s after checkpoint"
			return
		fi
		note "target reaped: status $WAIT_RC (137 = SIGKILL)"
		SUBJ_PID=""
		if [[ -e /proc/$TARGET ]]; then
			REASON="pid $TARGET still exists after checkpoint"
			TARGET=""
			return
		fi
		if [[ ! -e $D/img ]]; then
			REASON="checkpoint wrote no image $D/img"
			return
		fi
		if ((VERBOSE)) && [[ -f $D/img ]]; then	# a runtime's is a directory
			timeout -k 2 "$CHECK_TIMEOUT" "$CRSUB" show "$D/img" >"$D/show.log" 2>&1 </dev/null
		fi

		# 4. restart: crsub stays the parent. Wait for the same pid to be
		# back and settled (same comm, sleeping, untraced, same signal
		# masks/handlers), so our SIGTERM cannot land mid-restore.
		# A subject may change the world between checkpoint and restart
		# (rotate its log) and restart with extra arguments (--fd N=SPEC),
		# one per line, $CR_DIR expanded.
		if [[ -f $prerestart ]]; then
			run_snippet "$prerestart" "$D/runner.log"
			rc=$?
			note "prerestart exit=$rc"
			if ((rc != 0)); then
				REASON="${prerestart##*/} failed (exit=$rc)"
				return
			fi
		fi
		for f in "$restart_args" "$D/restart-args"; do
			[[ -f $f ]] || continue
			while IFS= read -r line; do
				[[ -z $line || $line == \#* ]] && continue
				extra+=("${line//\$CR_DIR/$D}")
			done <"$f"
		done
		if [[ -f $restart_cmd ]]; then
			start_snippet "$D/restart.log" "$restart_cmd"
		else
			start_crsub "$D/restart.log" restart -i "$D/img" "${extra[@]}"
		fi
		n=$(deadline "$READY_TIMEOUT")
		while :; do
			if [[ -e /proc/$TARGET && $(proc_comm "$TARGET") == "$orig_comm" &&
				$(proc_state "$TARGET") == S && $(proc_sigstate "$TARGET") == "$orig_sig" ]]; then
				break
			fi
			if ! alive "$CRSUB_PID"; then
				wait "$CRSUB_PID"
				rc=$?
				CRSUB_PID=""
				REASON="crsub restart exited (exit=$rc) before pid $TARGET was back"
				return
			fi
			if expired "$n"; then
				if [[ ! -e /proc/$TARGET ]]; then
					REASON="TIMEOUT: pid $TARGET not restored after ${READY_TIMEOUT}s"
					return
				fi
				if [[ $(proc_comm "$TARGET") != "$orig_comm" ]]; then
					REASON="pid $TARGET restored as '$(proc_comm "$TARGET")', expected '$orig_comm'"
					return
				fi
				note "restored pid $TARGET not settled, going on: state $(proc_state "$TARGET"), $(proc_sigstate "$TARGET")"
				break
			fi
			sleep 0.05
		done
		note "restored: pid $TARGET under crsub pid $CRSUB_PID"
	fi

	# 5. poke
	if [[ -f $poke ]]; then
		run_snippet "$poke" "$D/runner.log"
		rc=$?
		note "poke exit=$rc"
		if ((rc != 0)); then
			REASON="${poke##*/} failed (exit=$rc)"
			return
		fi
	fi

	# 6. verify: from outside (.check) or by the subject itself (SIGTERM)
	local waitpid=${CRSUB_PID:-$SUBJ_PID} what="subject"
	[[ -n $CRSUB_PID ]] && what="crsub restart"
	if [[ -f $check ]]; then
		run_snippet "$check" "$D/check.log"
		rc=$?
		# Checked from outside, the subject's end is only cleanup: a subject
		# leading its own process group (a shell pipeline) goes with it, and
		# children it leaves behind (multiprocessing workers blocked on a
		# queue whose writer died) are killed once it is gone.
		TREE=$(with_descendants "$TARGET")
		if [[ $(proc_pgid "$TARGET") == "$TARGET" ]]; then
			kill -TERM -- "-$TARGET" 2>/dev/null
		else
			kill -TERM "$TARGET" 2>/dev/null
		fi
		if ! wait_child "$waitpid" "$CR_TIMEOUT"; then
			REASON="TIMEOUT: $what did not exit within ${CR_TIMEOUT}s of SIGTERM"
			return
		fi
		note "$what exit=$WAIT_RC after SIGTERM"
		CRSUB_PID="" SUBJ_PID=""
		if alive "$TARGET"; then
			REASON="pid $TARGET outlived $what"
			return
		fi
		TARGET=""
		case $rc in
		0) RESULT=ok ;;
		4) RESULT=skip ;;
		*) REASON="${check##*/} failed (exit=$rc)" ;;
		esac
		return
	fi
	TREE=$(with_descendants "$TARGET")
	kill -TERM "$TARGET" 2>/dev/null
	if ! wait_child "$waitpid" "$CR_TIMEOUT"; then
		REASON="TIMEOUT: $what did not exit within ${CR_TIMEOUT}s of SIGTERM"
		return
	fi
	rc=$WAIT_RC CRSUB_PID="" SUBJ_PID=""
	note "$what exit=$rc"
	if alive "$TARGET"; then
		REASON="pid $TARGET outlived $what"
		return
	fi
	TARGET=""
	case $rc in
	0) RESULT=ok ;;
	4) RESULT=skip ;;
	*) REASON="exit=$rc" ;;
	esac
}

prefix() { [[ -s $2 ]] && sed -e "s/^/# $1/" "$2"; }

# ---------------------------------------------------------------- main

echo "TAP version 13"
echo "1..${#LIST_NAMES[@]}"
((NOCR)) && echo "# --no-cr: no checkpoint/restart, the subjects only get poked and SIGTERMed"
((NOCR)) || echo "# crsub: $CRSUB"
((${#LIST_NAMES[@]})) || echo "# no subjects enabled in SUBJECTS (use --all or names)"

PASS=0 FAIL=0 SKIP=0 I=0
for name in "${LIST_NAMES[@]}"; do
	I=$((I + 1))
	D=$ROOT/${name%.sh}
	rm -rf "$D"
	mkdir -p "$D"
	echo "# selftests: crsub: $name"
	T0_US=${EPOCHREALTIME/./}
	run_one "$name"
	kill_all
	# What a subject made outside CR_DIR goes, whatever the result.
	[[ -f $HERE/${name%.sh}.cleanup ]] && run_snippet "$HERE/${name%.sh}.cleanup" "$D/runner.log"
	cleanup_made
	prefix "" "$D/log"
	prefix "" "$D/check.log"
	if [[ $RESULT == fail ]] || ((VERBOSE)); then
		note "done"
		prefix "runner: " "$D/runner.log"
		prefix "checkpoint: " "$D/checkpoint.log"
		prefix "show: " "$D/show.log"
		prefix "restart: " "$D/restart.log"
	fi
	case $RESULT in
	ok) PASS=$((PASS + 1)); echo "ok $I selftests: crsub: $name" ;;
	skip) SKIP=$((SKIP + 1)); echo "ok $I selftests: crsub: $name # SKIP" ;;
	*) FAIL=$((FAIL + 1)); echo "not ok $I selftests: crsub: $name # $REASON" ;;
	esac
	if [[ $RESULT == fail ]] || ((KEEP)); then
		echo "# kept: $D"
	else
		rm -rf "$D"
	fi
done

# anything unexpected the runner itself printed on stderr
grep -Ev '^.*: line [0-9]+: +[0-9]+ (Killed|Terminated)' "$ROOT/stderr" | sed -e 's/^/# runner stderr: /' >&3
echo "# Totals: pass:$PASS fail:$FAIL xfail:0 xpass:0 skip:$SKIP error:0"
((FAIL == 0))
