package substitute

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// OpenOptions is what the checkpoint image says about the fd being replaced.
type OpenOptions struct {
	// Flags are the image fd's file status flags, as F_GETFL reports them.
	// The access mode (O_RDONLY, O_WRONLY, O_RDWR), O_APPEND and O_NONBLOCK
	// carry over to the substitute unless its spec says otherwise; other
	// bits are ignored.
	Flags int
	// FDFlags are the image fd's fd flags, as F_GETFD reports them;
	// FD_CLOEXEC carries over.
	FDFlags int
	// DialTimeout bounds name resolution and connecting for tcp, udp, unix
	// and tcp-listen with a host name. Zero means no limit.
	DialTimeout time.Duration
	// Creator is whom a file spec creates its missing file for (a write
	// mode creates it unless the spec says nocreate, as a shell's >> does
	// after a log rotation). Nil: the calling process, its umask and ids.
	Creator *Creator
	// Held starts an exec source's command held back: its shell waits on
	// a pipe from the caller and runs the command only once
	// [Hold.Release] is called. If the caller dies first, or closes the
	// [Hold], the shell sees the pipe's end and exits having run nothing:
	// a restart killed before its tasks run leaves no helper behind. (A
	// parent-death signal would not do: it would outlive the release,
	// being kept across execve, and would not reach the command's own
	// children.)
	Held bool
}

// Creator is the process a created file is made for: the file gets mode
// 0666 less Umask (unless the spec gives mode=) and is owned by UID and
// GID, as if the process had opened it itself.
type Creator struct {
	Umask    os.FileMode
	UID, GID int
}

// DefaultOpenOptions describes a plain read-write, blocking, inheritable fd,
// for use when there is no image to ask, with a 10 s DialTimeout.
func DefaultOpenOptions() OpenOptions {
	return OpenOptions{Flags: unix.O_RDWR, DialTimeout: 10 * time.Second}
}

// Opened describes what a Source opened.
type Opened struct {
	Kind Kind
	Spec string // Source.String()
	Desc string // what was opened, for logs: "listening on 127.0.0.1:39113"
	// Addr is the socket's local address: for tcp-listen with port 0 it
	// holds the port the kernel picked, as does Port. Peer is the connected
	// socket's remote address. Both are empty for non-sockets.
	Addr, Peer string
	Port       int
	// Flags are the fd's status flags as F_GETFL reports them (with
	// O_LARGEFILE on 64-bit), and CloseOnExec its FD_CLOEXEC, as the fd is
	// handed over.
	Flags       int
	CloseOnExec bool
	// Process runs an exec source's command. It is a child of the calling
	// process, which must Wait for it unless it execs into the program.
	Process *os.Process
	// Hold holds Process back from running the command, with
	// OpenOptions.Held; nil otherwise.
	Hold *Hold
	// undo removes what Open made in the file system; nil if nothing.
	undo func()
}

// Undo removes what opening made in the file system, if it is still
// what was made: the socket file a unix-listen bind made, the file a
// write mode created for a Creator. For a caller that gives the fd up
// (a restart that fails); the fd is the caller's to close.
func (o Opened) Undo() {
	if o.undo != nil {
		o.undo()
	}
}

// Hold is what holds a held exec source's command back: the write end of
// the pipe its shell waits on.
type Hold struct {
	gate *os.File
}

// Release lets the command run and lets go of the hold.
func (h *Hold) Release() error {
	_, err := h.gate.Write([]byte{'\n'})
	if cerr := h.gate.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("releasing the exec command: %w", err)
	}
	return nil
}

// Close lets go of the hold without releasing the command, whose shell
// then exits without running it. After Release it does nothing.
func (h *Hold) Close() {
	_ = h.gate.Close()
}

// opened is an open source plus what must be undone besides closing the fd.
type opened struct {
	fd   int
	info Opened
	// made is the file opening made (the unix-listen socket file bind
	// created, the file a write mode created), with its identity, so that
	// a rollback removes it and not a file someone put there later.
	made     string
	madeStat unix.Stat_t
}

// Open opens s for real, shaped after the image fd described by opts, and
// returns the new fd, owned by the caller. The fd is a bare number, not an
// *os.File, because os.File would register a non-blocking fd with the Go
// poller and its Fd method clears O_NONBLOCK, undoing the image's flags.
// Errors are *[SpecError] for an invalid s and *[OpenError] otherwise.
func (s Source) Open(opts OpenOptions) (int, Opened, error) {
	if reason := s.check(); reason != "" {
		return -1, Opened{}, &SpecError{Spec: s.String(), Reason: reason}
	}
	o, err := s.open(opts)
	if err != nil {
		return -1, Opened{}, &OpenError{Target: -1, Spec: s.String(), Err: err}
	}
	if opts.FDFlags&unix.FD_CLOEXEC == 0 {
		// Opened close-on-exec so no concurrent fork could inherit it early.
		if _, err := unix.FcntlInt(uintptr(o.fd), unix.F_SETFD, 0); err != nil {
			o.release(0)
			return -1, Opened{}, &OpenError{Target: -1, Spec: s.String(), Err: err}
		}
	}
	if o.made != "" {
		o.info.undo = func() { removeMade(o) }
	}
	return o.fd, o.info, nil
}

// open opens s; the fd is always close-on-exec, whatever opts says, and the
// caller applies opts.FDFlags when it hands the fd over.
func (s Source) open(opts OpenOptions) (*opened, error) {
	need := opts.Flags & unix.O_ACCMODE
	if need == unix.O_ACCMODE {
		return nil, fmt.Errorf("image flags %#o have no valid access mode", opts.Flags)
	}
	if acc := s.Access.flag(); acc >= 0 {
		need = acc
	}
	o := &opened{fd: -1, info: Opened{Kind: s.Kind, Spec: s.String(), CloseOnExec: opts.FDFlags&unix.FD_CLOEXEC != 0}}
	var err error
	switch s.Kind {
	case KindFile, KindNull:
		err = s.openFile(o, need, opts)
	case KindTCPListen:
		err = s.listenTCP(o, opts)
	case KindUnixListen:
		err = s.listenUnix(o, opts)
	case KindTCP, KindUDP, KindUnix:
		err = s.dial(o, opts)
	case KindFD:
		err = s.dupLauncherFD(o, need, opts)
	case KindExec:
		err = s.startExec(o, need, opts)
	default:
		err = fmt.Errorf("unknown kind %q", string(s.Kind))
	}
	if err == nil {
		o.info.Flags, err = unix.FcntlInt(uintptr(o.fd), unix.F_GETFL, 0)
	}
	if err != nil {
		o.release(0)
		return nil, err
	}
	return o, nil
}

func (s Source) openFile(o *opened, acc int, opts OpenOptions) error {
	path := s.Path
	if s.Kind == KindNull {
		path = os.DevNull
	}
	if acc == unix.O_RDONLY && (s.Append || s.Trunc) {
		return errors.New("append and trunc need write access but the checkpointed fd was read-only; add wo or rw")
	}
	// O_NOCTTY: a terminal given as a file must not become the launcher's
	// controlling terminal.
	flags := acc | opts.Flags&(unix.O_APPEND|unix.O_NONBLOCK) | unix.O_CLOEXEC | unix.O_NOCTTY
	if s.Append {
		flags |= unix.O_APPEND
	}
	if s.Trunc {
		flags |= unix.O_TRUNC
	}
	create := s.creates(acc)
	fd, made, err := openOrCreate(path, flags, create, s.Mode, opts.Creator)
	if err != nil {
		return err
	}
	o.fd = fd
	if made && unix.Fstat(fd, &o.madeStat) == nil {
		o.made = path
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if create {
		flags |= unix.O_CREAT
	}
	o.info.Desc = fmt.Sprintf("%s (%s)", path, flagWords(flags))
	return nil
}

// creates reports whether s creates its file when missing: a write mode
// does, as a shell's >> and systemd's append: do, unless s says nocreate.
func (s Source) creates(acc int) bool {
	return s.Create || (!s.NoCreate && acc != unix.O_RDONLY && s.Kind == KindFile)
}

// openOrCreate opens path with flags, creating it first if create says
// so. A file it creates for a creator gets the creator's mode and owner,
// set on the fd before anyone else can open it with another.
// It says whether it made the file, when it can tell (for a creator).
func openOrCreate(path string, flags int, create bool, mode os.FileMode, c *Creator) (int, bool, error) {
	if !create {
		fd, err := unix.Open(path, flags, 0)
		if err != nil {
			return -1, false, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, false, nil
	}
	if c == nil {
		perm := uint32(mode)
		if perm == 0 {
			perm = 0o666
		}
		fd, err := unix.Open(path, flags|unix.O_CREAT, perm)
		if err != nil {
			return -1, false, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, false, nil
	}
	// O_EXCL tells whether this open made the file, so that an existing
	// file keeps its mode and owner. A file removed between the two opens
	// is made again; one made between them is opened.
	for range 3 {
		fd, err := unix.Open(path, flags|unix.O_CREAT|unix.O_EXCL, 0)
		if err == nil {
			perm := mode
			if perm == 0 {
				perm = 0o666 &^ c.Umask
			}
			if err := adopt(fd, perm, c); err != nil {
				unix.Close(fd)
				_ = unix.Unlink(path)
				return -1, false, &fs.PathError{Op: "create", Path: path, Err: err}
			}
			return fd, true, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return -1, false, &fs.PathError{Op: "create", Path: path, Err: err}
		}
		fd, err = unix.Open(path, flags, 0)
		if !errors.Is(err, unix.ENOENT) {
			if err != nil {
				return -1, false, &fs.PathError{Op: "open", Path: path, Err: err}
			}
			return fd, false, nil
		}
	}
	return -1, false, &fs.PathError{Op: "create", Path: path, Err: errors.New("removed and made again while being opened, three times")}
}

// adopt gives a file just created for c its mode and owner. With mode=,
// the umask applies as with open(2); c's, not the caller's.
func adopt(fd int, perm os.FileMode, c *Creator) error {
	if err := unix.Fchown(fd, c.UID, c.GID); err != nil {
		return os.NewSyscallError("fchown", err)
	}
	if err := unix.Fchmod(fd, uint32(perm&^c.Umask)); err != nil {
		return os.NewSyscallError("fchmod", err)
	}
	return nil
}

// listenTCP creates the socket by hand rather than with net.Listen to choose
// SO_REUSEADDR and the backlog, and to report bind's own error: a taken
// address must fail, never fall back to another port or address.
func (s Source) listenTCP(o *opened, opts OpenOptions) error {
	ip, err := resolve(s.Host, opts.DialTimeout)
	if err != nil {
		return err
	}
	// A bracketed address gets an IPv6 socket even if it is v4-mapped: that
	// is what the spec wrote, and what getsockname will show the program.
	var family int
	var sa unix.Sockaddr
	if ip.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: s.Port, Addr: ip.As4()}
	} else {
		sa6 := &unix.SockaddrInet6{Port: s.Port, Addr: ip.As16()}
		if z := ip.Zone(); z != "" {
			ifi, err := net.InterfaceByName(z)
			if err != nil {
				return fmt.Errorf("zone %q: %w", z, err)
			}
			sa6.ZoneId = uint32(ifi.Index)
		}
		family, sa = unix.AF_INET6, sa6
	}
	if o.fd, err = socket(family, opts); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(o.fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(o.fd, sa); err != nil {
		return err // the spec already names the address: "address already in use" says it all
	}
	if err := unix.Listen(o.fd, backlog(s.Backlog)); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	local, err := unix.Getsockname(o.fd)
	if err != nil {
		return fmt.Errorf("getsockname: %w", err)
	}
	switch a := local.(type) {
	case *unix.SockaddrInet4:
		o.info.Port = a.Port
		o.info.Addr = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		o.info.Port = a.Port
		o.info.Addr = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).WithZone(ip.Zone()), uint16(a.Port)).String()
	}
	o.info.Desc = "listening on " + o.info.Addr
	return nil
}

func (s Source) listenUnix(o *opened, opts OpenOptions) error {
	var err error
	if o.fd, err = socket(unix.AF_UNIX, opts); err != nil {
		return err
	}
	// x/sys/unix maps a leading '@' to the abstract namespace.
	if err := unix.Bind(o.fd, &unix.SockaddrUnix{Name: s.Path}); err != nil {
		return err // never unlink what is there: it may be a live server's socket
	}
	if !strings.HasPrefix(s.Path, "@") && unix.Lstat(s.Path, &o.madeStat) == nil {
		o.made = s.Path
	}
	if err := unix.Listen(o.fd, backlog(0)); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	o.info.Addr = s.Path
	o.info.Desc = "listening on " + s.Path
	return nil
}

func socket(family int, opts OpenOptions) (int, error) {
	typ := unix.SOCK_STREAM | unix.SOCK_CLOEXEC
	if opts.Flags&unix.O_NONBLOCK != 0 {
		typ |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(family, typ, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	return fd, nil
}

func backlog(n int) int {
	if n == 0 {
		return unix.SOMAXCONN
	}
	return n
}

// resolve turns a listen host into one address, preferring IPv4 as
// net.ResolveTCPAddr does, because a listener binds exactly one.
func resolve(host string, timeout time.Duration) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip, nil
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ip := range ips {
		if ip.Is4() || ip.Is4In6() {
			return ip.Unmap(), nil
		}
	}
	return ips[0], nil
}

// dial connects with the net package, for its resolver and timeouts, then
// keeps a duplicate of the socket and lets the net.Conn go.
func (s Source) dial(o *opened, opts OpenOptions) error {
	network, addr := map[Kind]string{KindTCP: "tcp", KindUDP: "udp", KindUnix: "unix"}[s.Kind], s.Path
	if s.Kind != KindUnix {
		addr = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	}
	conn, err := (&net.Dialer{Timeout: opts.DialTimeout}).Dial(network, addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return op.Err // the spec already says what was dialled
		}
		return err
	}
	defer conn.Close()
	raw, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	var dupErr error
	if err := raw.Control(func(fd uintptr) {
		o.fd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return err
	}
	if dupErr != nil {
		o.fd = -1
		return fmt.Errorf("dup: %w", dupErr)
	}
	o.info.Addr, o.info.Peer = conn.LocalAddr().String(), conn.RemoteAddr().String()
	if a, ok := conn.LocalAddr().(interface{ AddrPort() netip.AddrPort }); ok {
		o.info.Port = int(a.AddrPort().Port())
	}
	o.info.Desc = "connected to " + o.info.Peer
	// Go made the socket non-blocking for its poller; the image decides.
	return setFlag(o.fd, unix.O_NONBLOCK, opts.Flags&unix.O_NONBLOCK != 0)
}

// dupLauncherFD shares the launcher's open file description, so status-flag
// changes made here (O_NONBLOCK per the image, O_APPEND if the image had
// it) are visible through the launcher's fd as well.
func (s Source) dupLauncherFD(o *opened, need int, opts OpenOptions) error {
	fl, err := unix.FcntlInt(uintptr(s.FD), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("launcher fd %d: %w", s.FD, err)
	}
	if have := fl & unix.O_ACCMODE; !serves(have, need) {
		e := &AccessError{Have: have, Need: need, what: fmt.Sprintf("launcher fd %d", s.FD)}
		if s.Access == InheritAccess {
			e.hint = fmt.Sprintf("the checkpointed fd's mode; write fd:%d,%s to accept %s", s.FD, map[int]string{unix.O_RDONLY: "ro", unix.O_WRONLY: "wo"}[have], accessName(have))
		}
		return e
	}
	if o.fd, err = unix.FcntlInt(uintptr(s.FD), unix.F_DUPFD_CLOEXEC, 0); err != nil {
		o.fd = -1
		return fmt.Errorf("dup launcher fd %d: %w", s.FD, err)
	}
	if err := setFlag(o.fd, unix.O_NONBLOCK, opts.Flags&unix.O_NONBLOCK != 0); err != nil {
		return err
	}
	if opts.Flags&unix.O_APPEND != 0 {
		if err := setFlag(o.fd, unix.O_APPEND, true); err != nil {
			return err
		}
	}
	target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(s.FD))
	o.info.Desc = fmt.Sprintf("launcher fd %d (%s)", s.FD, target)
	return nil
}

// startExec starts COMMAND reading a new pipe and keeps the write end. The
// shell gets its own process group, so a Ctrl-C meant for the program does
// not kill the log shipper before it has drained the pipe; its stderr is
// the launcher's, so its complaints are seen.
func (s Source) startExec(o *opened, need int, opts OpenOptions) error {
	if need == unix.O_RDONLY {
		return &AccessError{Have: unix.O_WRONLY, Need: need, what: "an exec pipe"}
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	o.fd = p[1]
	r := os.NewFile(uintptr(p[0]), "exec pipe")
	defer r.Close()
	cmd := exec.Command("/bin/sh", "-c", s.Command)
	if opts.Held {
		gate, release, err := os.Pipe()
		if err != nil {
			return err
		}
		defer gate.Close()
		o.info.Hold = &Hold{gate: release}
		// The shell reads fd 3 until the release's newline; at its end
		// (nothing written: the caller closed it or died) it exits.
		// Then it becomes the command's shell, as an unheld one is.
		cmd = exec.Command("/bin/sh", "-c", `read -r go <&3 || exit 0; exec 3<&-; exec /bin/sh -c "$1"`, "sh", s.Command)
		cmd.ExtraFiles = []*os.File{gate}
	}
	cmd.Stdin, cmd.Stderr = r, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	o.info.Process = cmd.Process
	o.info.Desc = fmt.Sprintf("pipe to pid %d: sh -c %q", cmd.Process.Pid, s.Command)
	return setFlag(o.fd, unix.O_NONBLOCK, opts.Flags&unix.O_NONBLOCK != 0)
}

func setFlag(fd, flag int, on bool) error {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("F_GETFL: %w", err)
	}
	nfl := fl &^ flag
	if on {
		nfl |= flag
	}
	if nfl != fl {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, nfl); err != nil {
			return fmt.Errorf("F_SETFL: %w", err)
		}
	}
	return nil
}

func flagWords(flags int) string {
	words := []string{map[int]string{unix.O_RDONLY: "ro", unix.O_WRONLY: "wo", unix.O_RDWR: "rw"}[flags&unix.O_ACCMODE]}
	for _, f := range []struct {
		bit  int
		word string
	}{{unix.O_APPEND, "append"}, {unix.O_NONBLOCK, "nonblock"}, {unix.O_CREAT, "create"}, {unix.O_TRUNC, "trunc"}} {
		if flags&f.bit != 0 {
			words = append(words, f.word)
		}
	}
	return strings.Join(words, ",")
}

// release undoes open: it closes the fd, stops an exec command (letting it
// drain the pipe for up to grace) and removes a socket file bind created.
func (o *opened) release(grace time.Duration) {
	if o.fd >= 0 {
		unix.Close(o.fd)
		o.fd = -1
	}
	if h := o.info.Hold; h != nil {
		h.Close()
		o.info.Hold = nil
	}
	if p := o.info.Process; p != nil {
		stop(p, grace)
		o.info.Process = nil
	}
	removeMade(o)
}

// stop waits for p, which sees EOF once every write end is closed, and
// kills it if it has not exited after grace. Signalling goes through the
// os.Process (a pidfd), so a reaped pid that was reused is never hit.
func stop(p *os.Process, grace time.Duration) {
	done := make(chan struct{})
	go func() {
		p.Wait() // an error means someone else reaped it: that is fine too
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		p.Kill()
		<-done
	}
}

func removeMade(o *opened) {
	if o.made == "" {
		return
	}
	var st unix.Stat_t
	if unix.Lstat(o.made, &st) == nil && st.Dev == o.madeStat.Dev && st.Ino == o.madeStat.Ino {
		unix.Unlink(o.made)
	}
	o.made = ""
}
