#!/bin/bash
# go_http_user: go_http run as nobody (uid and gid 65534, no groups): a
# multi-threaded process that is not root, whose threads a restart must make
# before it gives them the image's credentials (go_http_user.check).
. "${BASH_SOURCE%/*}/cr.sh"
here=${BASH_SOURCE%/*}
(cd "$here/go_http" && go build -o "$CR_DIR/go_http" .) || ksft_exit_fail_msg "go build failed"
# The server writes its port and the ready file into $CR_DIR.
chmod 0777 "$CR_DIR" && chmod 0711 "$(dirname "$CR_DIR")" || ksft_exit_fail_msg "chmod $CR_DIR"
exec setpriv --reuid 65534 --regid 65534 --clear-groups "$CR_DIR/go_http"
