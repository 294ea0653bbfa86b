#!/bin/bash
# go_http: a Go HTTP server nobody here wrote the runtime of — many threads,
# the netpoller (epoll + eventfd), signals and futexes — restored and still
# counting hits on its listening socket (go_http.check).
. "${BASH_SOURCE%/*}/cr.sh"
here=${BASH_SOURCE%/*}
(cd "$here/go_http" && go build -o "$CR_DIR/go_http" .) || ksft_exit_fail_msg "go build failed"
exec "$CR_DIR/go_http"
