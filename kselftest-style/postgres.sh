#!/bin/bash
# postgres: an unmodified PostgreSQL server (postmaster, checkpointer,
# walwriter, autovacuum and other children; System V and POSIX shared
# memory; listening on a unix socket and a TCP port) with a table; after
# restart it still has the rows and takes new ones (postgres.check).
# Skipped where PostgreSQL or the postgres user is missing.
. "${BASH_SOURCE%/*}/cr.sh"
pgbin=""
for d in /usr/lib/postgresql/*/bin; do
	[[ -x $d/postgres && -x $d/initdb ]] && pgbin=$d
done
[[ -n $pgbin ]] || ksft_exit_skip "PostgreSQL is not installed"
command -v psql >/dev/null || ksft_exit_skip "psql is not installed"
id postgres >/dev/null 2>&1 || ksft_exit_skip "no postgres user"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "$port" >"$CR_DIR/port"
# The postgres user must reach its directory.
chmod o+x "$CR_DIR" "$(dirname "$CR_DIR")"
mkdir -p "$CR_DIR/pg" && chown postgres "$CR_DIR/pg"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
as_pg "$pgbin/initdb" -D "$CR_DIR/pg/data" -A trust -U postgres >"$CR_DIR/initdb.log" 2>&1 ||
	ksft_exit_fail_msg "initdb failed: $(tail -n 3 "$CR_DIR/initdb.log")"
# Ready once it has the table (a detached helper, not our child).
(
	(
		exec </dev/null >"$CR_DIR/setup.log" 2>&1
		for _ in $(seq 400); do
			if psql -h "$CR_DIR/pg" -p "$port" -U postgres -qc \
				"create table t (x int); insert into t values (1), (2), (3);"; then
				: >"$CR_DIR/ready.tmp" && mv "$CR_DIR/ready.tmp" "$CR_DIR/ready"
				exit 0
			fi
			sleep 0.05
		done
	) &
)
exec setpriv --reuid=postgres --regid=postgres --init-groups "$pgbin/postgres" -D "$CR_DIR/pg/data" \
	-k "$CR_DIR/pg" -p "$port" -c listen_addresses=127.0.0.1 -c logging_collector=off
