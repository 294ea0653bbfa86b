# SPDX-License-Identifier: MIT
# runc_lib.bash - a busybox container for runc_container.sh and
# runc_criu.sh, and what their checks share; sourced after cr.sh.
#
# runc_bundle DIR NAME: an OCI bundle in DIR (Debian's busybox-static as its
# rootfs, `runc spec`'s defaults: pid, net, ipc, uts and mount namespaces,
# proc, sysfs, devpts, mqueue, cgroup mounts, masked and read-only paths) for
# a container with hostname NAME whose init (a busybox shell) brings its
# loopback up, starts httpd on 127.0.0.1:80 and writes a counter to
# /counter in its rootfs every 0.1 s. It ends on SIGTERM (pid 1 of its pid
# namespace: a signal from outside needs a handler).
# Installs runc and busybox-static with apt-get where missing; skips
# without apt-get.
runc_bundle() {
	local dir=$1 name=$2 a
	local -a missing=()
	command -v runc >/dev/null || missing+=(runc)
	command -v jq >/dev/null || missing+=(jq)
	[[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
	if ((${#missing[@]})); then
		command -v apt-get >/dev/null || ksft_exit_skip "${missing[*]} not installed and no apt-get to install them"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
			ksft_exit_fail_msg "setup: apt-get install ${missing[*]} failed"
	fi
	mkdir -p "$dir/rootfs/bin" "$dir/rootfs/www" || ksft_exit_fail_msg "setup: mkdir $dir"
	cp /bin/busybox "$dir/rootfs/bin/busybox" || ksft_exit_fail_msg "setup: busybox"
	for a in sh httpd sleep ip hostname; do ln -sf busybox "$dir/rootfs/bin/$a"; done
	echo "served by busybox httpd in $name" >"$dir/rootfs/www/index.html"
	(cd "$dir" && runc spec) || ksft_exit_fail_msg "setup: runc spec"
	# shellcheck disable=SC2016 # $i is the container shell's
	jq --arg name "$name" --arg script \
		'exec </dev/null >/log 2>&1; trap "exit 0" TERM; ip link set lo up; httpd -p 127.0.0.1:80 -h /www; i=0; while :; do echo $i >>/counter; i=$((i+1)); sleep 0.1; done' \
		'.process.terminal = false | .process.args = ["sh", "-c", $script] | .root.readonly = false | .hostname = $name' \
		"$dir/config.json" >"$dir/config.json.new" && mv "$dir/config.json.new" "$dir/config.json" ||
		ksft_exit_fail_msg "setup: config.json"
}

# runc_init_pid NAME: the host pid of container NAME's init, once runc
# reports it running.
runc_init_pid() {
	runc state "$1" 2>/dev/null | jq -r 'select(.status == "running") | .pid' 2>/dev/null
}

# runc_http PID: the body the container's httpd serves, asked from inside
# its network namespace (the host's bash joining it).
runc_http() {
	# shellcheck disable=SC2016 # the inner bash's
	timeout 10 nsenter -n -t "$1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/80 && printf "GET / HTTP/1.0\r\n\r\n" >&3 && sed "1,/^\r\$/d" <&3' 2>&1
}

# runc_subject: the subject, `runc run` of the bundle in the foreground:
# the init's parent, which ends when the init does and removes the
# container. A detached watcher writes the init's pid to CR_DIR/target,
# its mounts to CR_DIR/mountinfo.before, and the ready file once the init
# serves and counts.
runc_subject() {
	local name=crsub-ks-$$
	runc_bundle "$CR_DIR/bundle" "$name"
	echo "$name" >"$CR_DIR/name"
	(
		(
			exec </dev/null >/dev/null 2>&1
			local init
			for _ in $(seq 400); do
				# Cheap looks first: the machine may be busy.
				init=$(cat "$CR_DIR/init.pid" 2>/dev/null)
				if [[ -n $init && -s $CR_DIR/bundle/rootfs/counter ]] &&
					[[ $(runc_http "$init") == "served by busybox httpd in $name" ]]; then
					cat "/proc/$init/mountinfo" >"$CR_DIR/mountinfo.before"
					echo "$init" >"$CR_DIR/target"
					: >"$CR_DIR/ready.tmp" && mv "$CR_DIR/ready.tmp" "$CR_DIR/ready"
					exit 0
				fi
				sleep 0.05
			done
		) &
	)
	cd "$CR_DIR/bundle" && exec runc run --pid-file "$CR_DIR/init.pid" "$name"
}

# runc_check PID: TAP results (4) of the container whose init is PID: it
# counts on in its rootfs, from 0 by one, has its hostname, its httpd
# answers in its network namespace; and (1) its mount tree is the one it
# had (but for mount ids and device numbers).
runc_check() {
	local pid=$1 name f n0 n prev=-1 bad="" v got d
	name=$(cat "$CR_DIR/name")
	f=$CR_DIR/bundle/rootfs/counter
	n0=$(wc -l <"$f")
	for _ in $(seq 60); do (($(wc -l <"$f") >= n0 + 5)) && break; sleep 0.05; done
	n=$(wc -l <"$f")
	ksft_test_result "$( ((n >= n0 + 5)); echo $?)" "the counter goes on ($n0 -> $n lines)"
	while read -r v; do
		if [[ ! $v =~ ^[0-9]+$ ]] || ((v != prev + 1)); then bad="'$v' after $prev"; break; fi
		prev=$v
	done <"$f"
	ksft_test_result "$([[ -z $bad ]]; echo $?)" "counts from 0 by one, never again from 0 (${bad:-last $prev})"
	got=$(nsenter -u -t "$pid" hostname)
	ksft_test_result "$([[ $got == "$name" ]]; echo $?)" "hostname kept ($got)"
	got=$(runc_http "$pid")
	ksft_test_result "$([[ $got == "served by busybox httpd in $name" ]]; echo $?)" "httpd answers inside its network namespace ($got)"
	d=$(diff <(cut -d' ' -f4- "$CR_DIR/mountinfo.before" | sort) <(cut -d' ' -f4- "/proc/$pid/mountinfo" | sort))
	[[ -n $d ]] && ksft_print_msg "mountinfo: $d"
	ksft_test_result "$([[ -z $d ]]; echo $?)" "mounts as before ($(wc -l <"/proc/$pid/mountinfo") of them)"
}
