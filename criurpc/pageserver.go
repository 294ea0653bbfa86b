package criurpc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/atomicfile"
	"github.com/crsub/crsub/internal/sys"
)

// A page server (CRIU's, for live migration: phaul, go-criu) takes the
// pages of a dump elsewhere, over a socket, while the dump keeps the rest.
// crsub's image is one stream, so its page server takes the whole image:
// a dump given one (ps) sends it the image as it writes it, and the
// server writes it as the image of its own images directory, where the
// restore is made. Dumps incremental to a parent image (pre-dumps, then
// the dump) stay so on both sides: the dump compares its pages with its
// own copy of the parent chain, kept in its images directory as
// SentImageName, and the server records its own previous image (its
// parent_img) as the parent, having checked it is the same image. Once
// the server has the image whole and named, it answers "ok": the dump
// waits for that before post-dump, where a migration restores.

// SentImageName is the image a dump sent to a page server, kept in the
// dump's images directory for the next dump to compare with (the image
// the restore reads is the page server's, ImageName).
const SentImageName = "crsub-sent.img"

// PageServer is a ps entry: where a dump sends its image, or where a page
// server takes one from. Fd is a connected socket of the runtime's (-1 if
// none); else Address and Port.
type PageServer struct {
	Fd      int
	Address string
	Port    int
}

func pageServerRule(r *Request, v protoreflect.Value) error {
	m := v.Message()
	fields := m.Descriptor().Fields()
	ps := &PageServer{Fd: -1}
	if f := fields.ByName("fd"); m.Has(f) {
		ps.Fd = int(m.Get(f).Int())
	}
	ps.Address = m.Get(fields.ByName("address")).String()
	ps.Port = int(m.Get(fields.ByName("port")).Int())
	if ps.Fd < 0 && ps.Port <= 0 {
		return &RefusedError{Reason: "names neither a connected socket (fd) nor a port"}
	}
	r.PageServer = ps
	return nil
}

// pageServerConn returns the socket ps names: the runtime's fd (as
// images_dir_fd is), or crsub's own at that number where the runtime has
// none (CRIU's swrk takes the one it inherited; on the command line the
// fd is crsub's), or a TCP connection made to its address and port.
func (s *session) pageServerConn(ps *PageServer) (*os.File, error) {
	f, runtimes, err := s.pageServerSocket(ps)
	if err != nil || runtimes {
		// The runtime's socket keeps its own settings.
		return f, err
	}
	// The dump writes to it while the tree is frozen: a server that stops
	// taking the image must not hold the tree so for good.
	tv := unix.NsecToTimeval(pageServerTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(int(f.Fd()), unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		f.Close()
		return nil, os.NewSyscallError("setsockopt", err)
	}
	return f, nil
}

// pageServerTimeout bounds each write of the image to a page server crsub
// connected to, and the wait for any page server's answer (which comes
// once the image is written and synced on its side).
const pageServerTimeout = 5 * time.Minute

// pageServerSocket returns the socket ps names, and whether it is the
// runtime's.
func (s *session) pageServerSocket(ps *PageServer) (_ *os.File, runtimes bool, _ error) {
	if ps.Fd >= 0 {
		if s.conn != nil {
			f, err := peerFd(s.peer, ps.Fd)
			if err == nil {
				return f, true, nil
			}
			if !errors.Is(err, unix.EBADF) {
				return nil, false, fmt.Errorf("ps fd %d: %w", ps.Fd, err)
			}
		}
		var st unix.Stat_t
		if err := unix.Fstat(ps.Fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return nil, false, fmt.Errorf("ps fd %d is not a socket of the runtime's, nor of crsub's", ps.Fd)
		}
		fd, err := unix.FcntlInt(uintptr(ps.Fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, false, os.NewSyscallError("fcntl", err)
		}
		return os.NewFile(uintptr(fd), "page-server"), false, nil
	}
	addr := net.JoinHostPort(ps.Address, strconv.Itoa(ps.Port))
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, false, err
	}
	defer c.Close()
	f, err := c.(*net.TCPConn).File()
	return f, false, err
}

// sending is a dump's image on its way to a page server: written to the
// socket and to the local copy alike.
type sending struct {
	conn  *os.File
	local io.Writer
}

func (w *sending) Write(b []byte) (int, error) {
	if _, err := w.conn.Write(b); err != nil {
		return 0, fmt.Errorf("sending the image to the page server: %w", err)
	}
	return w.local.Write(b)
}

// finish waits for the page server to say it has the image whole and
// named. The image ends itself (its trailer): the socket stays open both
// ways, as a runtime sends each of its dumps over the one socket.
func (w *sending) finish() error {
	fds := []unix.PollFd{{Fd: int32(w.conn.Fd()), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(pageServerTimeout.Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("poll", err)
		}
		if n == 0 {
			return fmt.Errorf("the page server did not answer in %v", pageServerTimeout)
		}
		break
	}
	// One line: the runtime may hold the other end open too, so the
	// end of the stream may never come.
	answer, err := bufio.NewReader(io.LimitReader(w.conn, 4096)).ReadString('\n')
	if err != nil && answer == "" {
		return fmt.Errorf("waiting for the page server: %w", err)
	}
	if a := strings.TrimSpace(answer); a != "ok" {
		if a == "" {
			a = "closed without an answer"
		}
		return fmt.Errorf("the page server: %s", a)
	}
	return nil
}

// startPageServer serves PAGE_SERVER and PAGE_SERVER_CHLD: a process of
// its own takes the image from the socket r names, or from the first
// connection to the port it names (any free one if none: CRIU's default),
// into the images directory. The port listens before the answer goes,
// which gives the server's pid and port.
func (s *session) startPageServer(r *Request) (pid, port int, err error) {
	w, err := s.workspace(r)
	if err != nil {
		return 0, 0, err
	}
	defer w.close()
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	args := []string{"page-server", "-D", "/proc/self/fd/3"}
	files := []*os.File{w.images}
	if ps := r.PageServer; ps != nil && ps.Fd >= 0 {
		conn, err := s.pageServerConn(ps)
		if err != nil {
			return 0, 0, err
		}
		defer conn.Close()
		args = append(args, "--fd", "4")
		files = append(files, conn)
	} else {
		addr := ":0"
		if ps != nil {
			addr = net.JoinHostPort(ps.Address, strconv.Itoa(ps.Port))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return 0, 0, fmt.Errorf("page server: %w", err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		f, err := l.(*net.TCPListener).File()
		l.Close()
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		args = append(args, "--listen-fd", "4")
		files = append(files, f)
	}
	if r.ParentImage != "" {
		args = append(args, "--prev-images-dir", r.ParentImage)
	}
	if w.logFile != nil {
		args = append(args, "-o", "/proc/self/fd/5")
		files = append(files, w.logFile)
	}
	cmd := exec.Command(self, args...)
	// Run as criu (CRIU's command line answers by the name it is run as).
	cmd.Args[0] = "criu"
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("starting the page server: %w", err)
	}
	w.log.Info("page server started", "pid", cmd.Process.Pid, "port", port)
	go cmd.Wait()
	return cmd.Process.Pid, port, nil
}

// peerFd takes fd n of process pid.
func peerFd(pid, n int) (*os.File, error) {
	pidfd, err := sys.PidfdOpen(pid)
	if err != nil {
		return nil, err
	}
	defer pidfd.Close()
	fd, err := sys.PidfdGetfd(pidfd, n)
	if err != nil {
		return nil, err
	}
	return fd.File("page-server"), nil
}

// ServePages is a page server's work: it reads one image from conn into
// ImageName in directory dir and answers "ok" once it is whole and named,
// or the error. An image incremental to a parent is recorded as
// incremental to the server's image in parent (a directory relative to
// dir; see serverParent when none is given), which must be the image the
// dump compared with.
func ServePages(dir string, conn *os.File, parent string) (err error) {
	defer func() {
		answer := "ok\n"
		if err != nil {
			answer = "error: " + err.Error() + "\n"
		}
		if _, werr := conn.Write([]byte(answer)); werr != nil && err == nil {
			err = fmt.Errorf("answering the dump: %w", werr)
		}
	}()
	rd, err := ckpt.NewReader(conn)
	if err != nil {
		return fmt.Errorf("the image: %w", err)
	}
	rd.StopAtTrailer()
	h := rd.Header()
	if h.Parent != "" {
		path, size, err := serverParent(dir, parent, h)
		if err != nil {
			return err
		}
		h.Parent, h.ParentSize = path, size
	}
	out, err := atomicfile.Create(filepath.Join(dir, ImageName))
	if err != nil {
		return err
	}
	defer out.Abort()
	bw := bufio.NewWriterSize(out, 1<<20)
	w, err := ckpt.NewWriter(bw, h)
	if err != nil {
		return err
	}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("the image: %w", err)
		}
		if err := w.CopyRecord(rec, nil, nil); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return out.Commit()
}

// serverParent finds, for an incremental image h, the image of the
// server's directory dir it is incremental to: the server's earlier image
// in directory parent (relative to dir) when it was given one; else the
// image the dump names, found from dir (the server's own image beside
// it first): a page server writing into the dump's own directories, as
// CRIU's snapshot tests make it. It must be the image the dump compared
// with (its creation time), and is recorded relative to dir as given.
func serverParent(dir, parent string, h ckpt.Header) (path string, size int64, err error) {
	candidates := []string{filepath.Join(filepath.Dir(h.Parent), ImageName), h.Parent}
	if parent != "" {
		candidates = []string{filepath.Join(parent, ImageName)}
	}
	var tried []string
	for _, c := range candidates {
		at := c
		if !filepath.IsAbs(at) {
			at = filepath.Join(dir, at)
		}
		size, created, err := imageIdentity(at)
		switch {
		case err != nil:
			tried = append(tried, err.Error())
		case !created.Equal(h.ParentCreated):
			tried = append(tried, fmt.Sprintf("%s (made %s) is not the one the dump was made against (made %s)", c, created.Format(time.RFC3339Nano), h.ParentCreated.Format(time.RFC3339Nano)))
		default:
			return c, size, nil
		}
	}
	return "", 0, fmt.Errorf("parent image: %s", strings.Join(tried, "; "))
}

// imageIdentity is what a child image knows its parent by: its size and
// the time it was made.
func imageIdentity(path string) (int64, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, time.Time{}, err
	}
	rd, err := ckpt.NewReader(bufio.NewReader(f))
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return st.Size(), rd.Header().Created, nil
}
