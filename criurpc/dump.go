package criurpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/atomicfile"
)

// dump serves DUMP and PRE_DUMP. A pre-dump is a whole checkpoint of the
// tree, left running: the dump that names it as its parent image then
// stores only the pages that changed since, which is what CRIU's pre-dump
// is for (its memory tracking is replaced by comparing the pages).
//
// The runtime hears of each phase as from CRIU: pre-dump before anything,
// network-lock and network-unlock around the checkpoint of a tree in a
// network namespace of its own, query-ext-files (its answer may add
// external resources), and post-dump once the image is complete, before
// the tree is killed; a failure there leaves it running.
func (s *session) dump(ctx context.Context, r *Request) (err error) {
	if r.Pid <= 0 {
		if s.conn == nil {
			return &RefusedError{Field: "pid", Reason: "needs a tree to checkpoint"}
		}
		// The runtime checkpoints itself (libcriu's criu_dump() without
		// a pid).
		r.Pid = s.peer
	}
	self := s.conn != nil && r.Pid == s.peer
	s.initPid = r.Pid
	var caller uint64
	var reply []byte
	if s.conn != nil {
		// A tree holding the runtime's end of this socket (itself, or a
		// child it gave the socket to) reads there, after a restart, the
		// answer CRIU's restore gives it: dumped, and restored.
		if caller, err = s.conn.inode(); err != nil {
			return err
		}
		if reply, err = proto.Marshal(&rpcpb.CriuResp{Type: r.Type.Enum(), Success: ptr(true), Dump: &rpcpb.CriuDumpResp{Restored: ptr(true)}}); err != nil {
			return err
		}
	}
	w, err := s.workspace(r)
	if err != nil {
		return err
	}
	defer w.close()
	defer func() {
		if err != nil {
			w.failed(err)
		}
	}()
	log := w.log
	preDump := r.Type != rpcpb.CriuReqType_DUMP
	if !preDump {
		if err := s.notify(r, log, "pre-dump", 0, -1); err != nil {
			return err
		}
		// A process that cannot be looked at is the checkpoint's to
		// refuse, in its own words: no network lock for it.
		if ownNet, err := sameNamespace(r.Pid, "net"); err == nil && !ownNet {
			if err := s.notify(r, log, "network-lock", 0, -1); err != nil {
				return err
			}
			defer func() {
				if err != nil || r.LeaveRunning {
					if uerr := s.notify(r, log, "network-unlock", 0, -1); uerr != nil {
						err = errors.Join(err, uerr)
					}
				}
			}()
		}
		if err := s.notify(r, log, "query-ext-files", 0, -1); err != nil {
			return err
		}
	}
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	opts := checkpoint.DefaultOptions()
	opts.Log = log
	opts.LeaveRunning = r.LeaveRunning || preDump
	opts.Caller, opts.CallerReply = caller, reply
	name := ImageName
	var send *sending
	if r.PageServer != nil {
		// The image goes to the page server; the copy kept here is for
		// the next dump to compare with.
		name = SentImageName
		conn, err := s.pageServerConn(r.PageServer)
		if err != nil {
			return fmt.Errorf("page server: %w", err)
		}
		defer conn.Close()
		send = &sending{conn: conn}
	}
	if r.ParentImage != "" {
		// Relative to the images directory, crsub's working directory:
		// the image records it so, and the two directories can move
		// together (podman exports both).
		opts.Parent = filepath.Join(r.ParentImage, name)
		if same, err := os.Stat(r.ParentImage); err == nil {
			if here, err := os.Stat("."); err == nil && os.SameFile(same, here) {
				return &RefusedError{Field: "parent_img", Reason: fmt.Sprintf("%s is the images directory itself: its image is the one this dump replaces", r.ParentImage)}
			}
		}
	}
	img, err := atomicfile.Create(name)
	if err != nil {
		return err
	}
	defer img.Abort()
	var out io.Writer = img.File
	if send != nil {
		send.local = img.File
		out = send
	}
	opts.Commit = func() error {
		if send != nil {
			if err := send.finish(); err != nil {
				return err
			}
		}
		if err := img.Commit(); err != nil {
			return err
		}
		if err := writeInventory(); err != nil {
			return err
		}
		if preDump {
			return nil
		}
		return s.notify(r, log, "post-dump", 0, -1)
	}
	st, err := checkpoint.Checkpoint(ctx, r.Pid, out, opts)
	if err != nil {
		return err
	}
	if self && !opts.LeaveRunning {
		// Killed with the tree: no one to answer.
		s.callerGone = true
	}
	if r.DisplayStats {
		log.Warn(fmt.Sprintf("Frozen time: %d us, total %d us, %d pages written", st.Frozen.Microseconds(), st.Total.Microseconds(), st.PagesStored))
	}
	if err := writeStats(w, statsDump, &rpcpb.StatsEntry{Dump: dumpStats(st)}); err != nil {
		// The tree is checkpointed (and, unless left running, gone):
		// statistics are not worth failing it for.
		log.Warn("cannot write the statistics", "err", err)
	}
	return nil
}

// sameNamespace says whether process pid is in crsub's namespace of a kind
// ("net", "mnt"…).
func sameNamespace(pid int, kind string) (bool, error) {
	var mine, its os.FileInfo
	var err error
	if mine, err = os.Stat("/proc/self/ns/" + kind); err != nil {
		return false, err
	}
	if its, err = os.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, kind)); err != nil {
		return false, err
	}
	return os.SameFile(mine, its), nil
}
