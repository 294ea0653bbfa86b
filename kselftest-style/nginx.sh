#!/bin/bash
# nginx: an unmodified nginx (Debian's), a master and two worker processes
# running as www-data with shared memory, epoll and a listening socket,
# restored as a tree and still serving (nginx.check).
. "${BASH_SOURCE%/*}/cr.sh"
command -v nginx >/dev/null || ksft_exit_skip "nginx is not installed"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "$port" >"$CR_DIR/port"
mkdir -p "$CR_DIR/www" && echo "served by nginx, restored" >"$CR_DIR/www/index.html"
# The workers run as www-data: they must reach the files.
chmod o+x "${CR_DIR%/*}" && chmod 755 "$CR_DIR" "$CR_DIR/www" && chmod 644 "$CR_DIR/www/index.html"
cat >"$CR_DIR/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 2;
pid $CR_DIR/nginx.pid;
error_log $CR_DIR/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $CR_DIR;
	proxy_temp_path $CR_DIR;
	fastcgi_temp_path $CR_DIR;
	server { listen 127.0.0.1:$port; root $CR_DIR/www; }
}
CONF
# Ready once both workers run and it answers (a detached watcher).
pid=$$
(
	(
		exec </dev/null >/dev/null 2>&1
		for _ in $(seq 400); do
			if [[ $(cat /proc/$pid/task/*/children 2>/dev/null | wc -w) == 2 ]] &&
				python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)"; then
				: >"$CR_DIR/ready.tmp" && mv "$CR_DIR/ready.tmp" "$CR_DIR/ready"
				exit 0
			fi
			sleep 0.05
		done
	) &
)
exec nginx -c "$CR_DIR/nginx.conf"
