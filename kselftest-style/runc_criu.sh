#!/bin/bash
# runc_criu: the busybox container of runc_container.sh checkpointed and
# restored by runc itself with crsub as its criu (`runc --criu crsub`, CRIU's
# RPC through `crsub swrk`; runc_criu.checkpoint, runc_criu.restart): the
# counter goes on, runc reports it running, its hostname is kept, its
# loopback is up as it was (CRIU leaves it down: criu#590) and httpd answers
# on it, its mounts are as before (runc_criu.check). `runc restore` stays in
# the foreground, the restored init's parent.
. "${BASH_SOURCE%/*}/cr.sh"
. "${BASH_SOURCE%/*}/runc_lib.bash"
runc_subject
