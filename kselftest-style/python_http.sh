#!/bin/bash
# python_http: `python3 -m http.server` serving a directory, restored and
# still serving on its port (python_http.check).
. "${BASH_SOURCE%/*}/cr.sh"
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3) || ksft_exit_skip "no python3"
mkdir -p "$CR_DIR/www" && echo "served by crsub's subject" >"$CR_DIR/www/index.txt"
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "$port" >"$CR_DIR/port"
# Ready once it answers (a detached watcher, not our child).
(
	(
		exec </dev/null >/dev/null 2>&1
		for _ in $(seq 400); do
			if "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/index.txt', timeout=1)"; then
				: >"$CR_DIR/ready.tmp" && mv "$CR_DIR/ready.tmp" "$CR_DIR/ready"
				exit 0
			fi
			sleep 0.05
		done
	) &
)
cd "$CR_DIR/www" && exec "$py" -m http.server "$port" --bind 127.0.0.1
