#!/bin/bash
# make_j2: `make -j2` of a small C project, checkpointed mid-build (a tree of
# make, shells, cc and cc1, with make's jobserver and its writer-less stdin
# pipe for recipes) and finishing after restart with the right program
# (make_j2.check).
. "${BASH_SOURCE%/*}/cr.sh"
command -v make >/dev/null && command -v cc >/dev/null || ksft_exit_skip "no make or cc"
proj=$CR_DIR/proj
mkdir -p "$proj" || ksft_exit_fail_msg "mkdir failed"
files=10 funcs=150
for ((i = 1; i <= files; i++)); do
	{
		for ((j = 1; j <= funcs; j++)); do echo "static int v${i}_$j(int x) { return x * $j + $i; }"; done
		echo "int f$i(int x) { int s = 0;"
		for ((j = 1; j <= funcs; j++)); do echo "s += v${i}_$j(x);"; done
		echo "return s; }"
	} >"$proj/f$i.c"
done
{
	echo '#include <stdio.h>'
	for ((i = 1; i <= files; i++)); do echo "int f$i(int);"; done
	echo 'int main(void) { long s = 0;'
	for ((i = 1; i <= files; i++)); do echo "s += f$i(1);"; done
	echo 'printf("%ld\n", s); return 0; }'
} >"$proj/main.c"
printf '%s\n' 'OBJS := main.o $(patsubst %.c,%.o,$(wildcard f*.c))' 'prog: $(OBJS)' \
	'	cc -o $@ $^' '%.o: %.c' '	sleep 0.2; cc -O2 -c -o $@ $<' >"$proj/Makefile"
echo "$files $funcs" >"$CR_DIR/shape"
# Ready once the build is under way: two objects done, jobs running.
pid=$$
(
	(
		exec </dev/null >/dev/null 2>&1
		for _ in $(seq 400); do
			n=$(ls "$proj"/*.o 2>/dev/null | wc -l)
			if ((n >= 2)) && [[ -n $(cat /proc/$pid/task/*/children 2>/dev/null) ]]; then
				: >"$CR_DIR/ready.tmp" && mv "$CR_DIR/ready.tmp" "$CR_DIR/ready"
				exit 0
			fi
			sleep 0.05
		done
	) &
)
exec make -s -C "$proj" -j2
