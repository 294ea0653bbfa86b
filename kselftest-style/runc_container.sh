#!/bin/bash
# runc_container: a runc container (busybox, runc spec's namespaces and
# mounts: a pivot_root'ed rootfs, proc, sysfs, devpts, mqueue, cgroups,
# paths masked with /dev/null, read-only ones, a /dev tmpfs with device
# nodes, its own cgroups) checkpointed from the host by its init's pid and
# restarted by crsub: the counter in its rootfs goes on, its hostname is
# kept, httpd answers in its network namespace and its mounts are as before
# (runc_container.check). The subject is `runc run` in the foreground, the
# init's parent; the target is the init (CR_DIR/target). runc ends with
# it at the checkpoint and removes the container.
. "${BASH_SOURCE%/*}/cr.sh"
. "${BASH_SOURCE%/*}/runc_lib.bash"
runc_subject
