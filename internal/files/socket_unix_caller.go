package files

import (
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// A tree that asks the checkpointing program to checkpoint it (CRIU's
// self-dump) waits for the answer on a socket whose other end is that
// program's, outside the tree. Its end is recorded as a socket whose peer
// is gone, with the answer a restarted tree must read queued on it: the
// restart makes it as any such socket (restoreUnixUnbound), one end of a
// pair whose other end sends the answer and is closed. What the tree had
// queued for the program (nothing: it sent its request and waits) is
// dropped, and the program's end is not recorded.
func dumpCallerEnd(c *DumpContext, fd *Fd, what string, d sys.UnixDiag) (ckpt.Objref, error) {
	if fd.Socket.Type == unix.SOCK_DGRAM {
		return 0, fmt.Errorf("%s: the checkpoint's caller talks over a datagram socket", what)
	}
	sock := &ckpt.Socket{Family: unix.AF_UNIX, Type: fd.Socket.Type, State: "disconnected", Shutdown: d.Shutdown}
	queued, sizes, anc, deps, err := dumpQueue(c, fd.Socket.Type, []queuedMessage{{data: c.CallerReply}})
	if err != nil {
		return 0, fmt.Errorf("%s: the caller's answer: %w", what, err)
	}
	sock.Messages, sock.Ancillary, sock.Queued = sizes, anc, int64(len(queued))
	readSocketOptions(int(fd.Copy.Fd()), sock)
	f := ckpt.File{Kind: ckpt.FileUnixBound, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFileWithPayload(fd, ref, deps, &f, sock.Queued, func(w io.Writer) error {
		_, err := w.Write(queued)
		return err
	})
}
