// Package criurpc answers CRIU's RPC, the interface container runtimes use
// to checkpoint and restore: runc, crun (through libcriu), podman (through
// them) and go-criu exec `criu swrk FD` and exchange criu_req and
// criu_resp protobuf messages with it on a SOCK_SEQPACKET socket. crsub
// answers as that criu (`crsub swrk FD`, or crsub run as criu).
//
// The package translates requests into the same checkpoint.Options and
// restart.Options the crsub command and the library use; the engine knows
// no runtime protocol. ParseRequest holds the rule for every criu_opts
// field (request.go): taken into a Request, accepted without effect for
// a reason written beside it (mostly what CRIU must be allowed to do and
// crsub always does), or refused by name. A refusal, like any failure, is
// a criu_resp with success false and cr_errmsg naming the field; nothing
// has been touched then.
//
// A dump writes crsub's one image, ImageName, in the images directory the
// runtime names (images_dir_fd, an fd of the runtime reached through
// /proc/PID/fd), and the log and CRIU's stats-dump file (which podman
// reads) in the work directory. A pre-dump is a checkpoint left running;
// the dump whose parent_img names it stores only the pages that changed.
// A restore reads the image from the images directory; inherit_fd gives
// the runtime's fds in place of the image's files by CRIU's keys
// (pipe:[INODE], …); rst_sibling makes the restored tree the runtime's
// child; cg_root moves it to the cgroups the runtime made. With
// notify_scripts the runtime hears of each phase (pre-dump, post-dump,
// setup-namespaces, post-restore, …) as CRIU tells it, and a failure it
// reports fails the phase.
//
// A container's namespaces (mount, pid, network…) are the engine's to
// checkpoint and make again; a restore puts the tree into what its runtime
// made for it (container.go): the root filesystem it mounted (root), its
// bind-mounted files at their new places (ext_mnt; a cgroup hierarchy's
// mount follows cg_root), and the namespaces it passes (inherit_fd
// extRootNetNS, join_ns), a network namespace taken as the runtime
// configured it. Veth pairs a runtime asks for (veths, external
// veth[IN]:OUT) are made on the host and their inner ends given to the
// engine as the image's links (veth.go); external netdev[IN]:HOSTLINK
// gives a host link the runtime made. With orphan_pts_master, a terminal
// whose master the runtime held (runc's console socket) comes back as a
// new pty of the container's devpts, numbered as before, with its
// settings, and its master goes to the runtime in the orphan-pts-master
// notification (restart.Options.NewTerminal). A dump also leaves CRIU's inventory.img beside the image,
// which podman takes for a complete checkpoint.
package criurpc
