#!/bin/bash
# podman: Debian's podman checkpoints and restores a container through
# crsub, installed as `criu` in PATH (a link in a directory put first): a
# busybox container (an image podman imports from a rootfs tarball, nothing
# pulled) with a counter appending to a file of its rootfs, a hostname, and
# busybox httpd on its loopback. `podman container checkpoint` then
# `restore`, and `checkpoint --export` then, the container removed,
# `restore --import` under a new name (a migration): each time the counter
# goes on from where it was, podman says running, the hostname is kept and
# HTTP answers, and the logs are crsub's. The work is done before the
# subject is ready (podman.ready-timeout); the runner's own checkpoint of
# this shell, waiting, follows, and podman.check reports.
#
# The configuration that runs podman here (root, no CAP_SYS_RESOURCE,
# cgroups v1 with a v2 hierarchy beside them), in a containers.conf of its
# own (CONTAINERS_CONF) and a storage of its own (--root/--runroot):
#   - default_ulimits with nofile and nproc no higher than podman's own
#     hard limits. Without them podman asks the runtime for
#     RLIMIT_NOFILE 1048576 (root's default), which raising the hard limit
#     needs CAP_SYS_RESOURCE for; with nofile alone it asks for
#     RLIMIT_NPROC 1048576. podman lowers its own RLIMIT_NPROC to
#     kernel.pid_max at start, so nproc is at most that. `--ulimit host`
#     does not help: as root, no ulimit means containers.conf's defaults.
#   - runtime runc: crun 1.8.1 refuses to run anything ("cgroups in hybrid
#     mode not supported, drop all controllers from cgroupv2": hugetlb is
#     on the v2 hierarchy), and Debian builds it without CRIU (no
#     `crun checkpoint`).
#   - cgroup_manager cgroupfs (no systemd here).
# CR_PODMAN_RUNTIME names another runtime for podman to use (a crun built
# with libcriu, run in a mount namespace without /sys/fs/cgroup/unified).
. "${BASH_SOURCE%/*}/cr.sh"
# The cleanup below must run whatever fails; the EXIT trap goes at exec.
[[ -x ${CRSUB:-} ]] || ksft_exit_skip "CRSUB is not set to crsub"
missing=()
command -v podman >/dev/null || missing+=(podman)
[[ -n ${CR_PODMAN_RUNTIME:-} ]] || command -v runc >/dev/null || missing+=(runc)
[[ -x /bin/busybox ]] || missing+=(busybox-static)
if ((${#missing[@]})); then
	command -v apt-get >/dev/null || ksft_exit_skip "no apt-get to install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$CR_DIR/apt.log" 2>&1 ||
		ksft_exit_fail_msg "apt-get install ${missing[*]} failed (see $CR_DIR/apt.log)"
fi
ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' || ksft_exit_skip "/bin/busybox is not static (busybox-static)"

# podman and the runtime find crsub as criu first in PATH.
mkdir -p "$CR_DIR/bin" && ln -s "$CRSUB" "$CR_DIR/bin/criu"
export PATH=$CR_DIR/bin:$PATH
nproc=$(ulimit -Hu)
pidmax=$(cat /proc/sys/kernel/pid_max)
[[ $nproc == unlimited ]] || ((nproc > pidmax)) && nproc=$pidmax
nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=1048576
cat >"$CR_DIR/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "${CR_PODMAN_RUNTIME:-runc}"
CONF
export CONTAINERS_CONF=$CR_DIR/containers.conf
P=(podman --root "$CR_DIR/storage" --runroot "$CR_DIR/run")

cleanup() {
	"${P[@]}" rm -f -a -t 0 >/dev/null 2>&1
	"${P[@]}" rmi -a -f >/dev/null 2>&1
	# containers/storage keeps its overlay directory mounted.
	local m
	for m in $(awk -v d="$CR_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		umount -l "$m"
	done
}
trap cleanup EXIT

cr_tap podman "$CR_DIR/podman.log"

# The image: busybox, its applets, a page to serve.
root=$CR_DIR/rootfs
mkdir -p "$root"/{bin,etc,proc,sys,dev,tmp,www} && cp /bin/busybox "$root/bin/" &&
	for a in sh sleep httpd wget hostname cat awk; do ln -s busybox "$root/bin/$a"; done &&
	echo "served from a restored container" >"$root/www/index.html" &&
	tar -C "$root" -cf "$CR_DIR/rootfs.tar" . ||
	ksft_exit_fail_msg "cannot make the rootfs tarball"
"${P[@]}" import "$CR_DIR/rootfs.tar" localhost/crsub-busybox >>"$CR_DIR/podman.log" 2>&1 ||
	ksft_exit_fail_msg "podman import failed (see $CR_DIR/podman.log)"

host=crsub-$$
name=crsub-ksft-$$
if ! "${P[@]}" run -d --name "$name" --hostname "$host" localhost/crsub-busybox /bin/sh -c \
	'httpd -f -p 127.0.0.1:8080 -h /www & i=0; while :; do i=$((i + 1)); echo $i >>/count; sleep 0.1; done' \
	>>"$CR_DIR/podman.log" 2>&1; then
	ksft_exit_skip "podman run fails here with this configuration: $(tail -n1 "$CR_DIR/podman.log")"
fi

# check NAME COUNT0: the container runs, its counter goes on from at least
# COUNT0 without starting again (consecutive lines), it keeps its hostname,
# and serves.
check() {
	local c=$1 n0=$2 st seq last got
	st=$("${P[@]}" inspect -f '{{.State.Status}}' "$c" 2>&1)
	cr_result "$([[ $st == running ]]; echo $?)" "$c: podman says running ($st)"
	sleep 0.5
	seq=$("${P[@]}" exec "$c" cat /count 2>&1)
	last=$(tail -n1 <<<"$seq")
	cr_result "$(awk 'NR > 1 && $1 != prev + 1 {bad = 1} {prev = $1} END {exit bad || NR == 0}' <<<"$seq" &&
		((last > n0)); echo $?)" "$c: counter went on from $n0 to $last, never starting again"
	got=$("${P[@]}" exec "$c" hostname 2>&1)
	cr_result "$([[ $got == "$host" ]]; echo $?)" "$c: hostname $got"
	got=$("${P[@]}" exec "$c" wget -qO- http://127.0.0.1:8080/ 2>&1)
	cr_result "$([[ $got == "served from a restored container" ]]; echo $?)" "$c: httpd on its loopback answers ($got)"
}
# bycrsub NAME LOG: the log in the container's directory is crsub's. A
# copy is kept as $CR_DIR/requests/NAME.LOG (podman removes it with the
# container): its request line is podman's request as crsub read it, from
# which criurpc/testdata/podman-*.txtpb were recorded.
bycrsub() {
	local log
	log=$("${P[@]}" inspect -f '{{.StaticDir}}' "$1")/$2
	cr_result "$(grep -q 'level=DEBUG msg=request' "$log" 2>/dev/null; echo $?)" "$1: $2 is crsub's"
	mkdir -p "$CR_DIR/requests" && cp "$log" "$CR_DIR/requests/$1.$2" 2>/dev/null
}
count() { "${P[@]}" exec "$1" cat /count 2>/dev/null | tail -n1; }

for _ in $(seq 100); do
	[[ $(count "$name") -ge 10 ]] && "${P[@]}" exec "$name" wget -qO- http://127.0.0.1:8080/ >/dev/null 2>&1 && break
	sleep 0.1
done

# 1. checkpoint and restore in place
n0=$(count "$name")
cr_timed checkpoint "${P[@]}" container checkpoint --keep "$name"
cr_result $? "podman container checkpoint $name"
st=$("${P[@]}" inspect -f '{{.State.Status}}' "$name" 2>&1)
cr_result "$([[ $st == exited ]]; echo $?)" "$name: exited after the checkpoint ($st)"
bycrsub "$name" dump.log
cr_timed restore "${P[@]}" container restore --keep "$name"
cr_result $? "podman container restore $name"
bycrsub "$name" restore.log
check "$name" "$n0"

# 2. export, remove, import under another name
n0=$(count "$name")
cr_timed checkpoint "${P[@]}" container checkpoint --export "$CR_DIR/export.tar.gz" "$name"
cr_result $? "podman container checkpoint --export"
"${P[@]}" rm "$name" >>"$CR_DIR/podman.log" 2>&1
cr_result $? "podman rm $name"
cr_timed restore "${P[@]}" container restore --keep --import "$CR_DIR/export.tar.gz" --name "$name-2"
cr_result $? "podman container restore --import --name $name-2"
bycrsub "$name-2" restore.log
check "$name-2" "$n0"

if ((FAILED)); then
	cat "$CR_DIR/podman.log" >>"$TAP"
fi
cleanup
trap - EXIT
cr_ready_after_exec sleep
exec sleep 1000
