package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/criurpc"
)

// criuService is `criu service`: CRIU's RPC served on a listening unix
// socket (SOCK_SEQPACKET) instead of one given socket, each connection a
// session of its own, served by a `crsub swrk` of its own (as CRIU forks a
// worker per connection): the fds a request names are the connecting
// process's, as with swrk. -d lets the service run on in the background,
// its pid in --pidfile; --status-fd gets a \0 once connections are taken.
// SIGTERM stops it; sessions under way finish.
func criuService(args []string, stdout, stderr io.Writer) error {
	fs := newProgramFlags("criu", "service", "[--address SOCKET] [-W DIR] [-d] [--pidfile F] [-o LOG] [--status-fd FD]", stderr)
	address := fs.String("address", "criu_service.socket", "the socket to listen on (relative to the work directory)")
	workDir := fs.StringP("work-dir", "W", "", "directory for the socket, pidfile and log")
	daemon := fs.BoolP("daemon", "d", false, "run on in the background once listening")
	pidfile := fs.String("pidfile", "", "write the service's pid to FILE (relative to the work directory)")
	logFile := fs.StringP("log-file", "o", "", "write the sessions' standard error to FILE (relative to the work directory)")
	statusFd := fs.Int("status-fd", -1, "write a \\0 to FD once listening")
	fs.IntP("verbosity", "v", 2, "accepted: each request names its own log and level")
	listenFd := fs.Int("listen-fd", -1, "")
	fs.MarkHidden("listen-fd")
	if err := parseCriu(fs, args, stdout); err != nil {
		return err
	}
	if *workDir != "" {
		if err := os.Chdir(*workDir); err != nil {
			return fmt.Errorf("work directory: %w", err)
		}
	}
	var l *net.UnixListener
	if *listenFd >= 0 {
		// The background service, started by -d with the socket made.
		fl, err := net.FileListener(os.NewFile(uintptr(*listenFd), "criu-service"))
		if err != nil {
			return fmt.Errorf("fd %d: %w", *listenFd, err)
		}
		l = fl.(*net.UnixListener)
	} else {
		// A socket left by a service that was killed stands in the way.
		if st, err := os.Lstat(*address); err == nil && st.Mode()&os.ModeSocket != 0 {
			os.Remove(*address)
		}
		var err error
		if l, err = net.ListenUnix("unixpacket", &net.UnixAddr{Name: *address, Net: "unixpacket"}); err != nil {
			return err
		}
	}
	defer l.Close()
	log := stderr
	if *logFile != "" {
		f, err := openLog(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		log = f
	}
	if *daemon {
		return startService(l, args[1:], *pidfile, *statusFd)
	}
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("pidfile: %w", err)
		}
	}
	if *statusFd >= 0 {
		if err := ready(*statusFd); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for {
		c, err := l.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			if *listenFd >= 0 {
				os.Remove(*address)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if err := serveConnection(self, c, log); err != nil {
			fmt.Fprintf(log, "criu service: %v\n", err)
		}
	}
}

// serveConnection hands one connection to a swrk of its own, and reaps it
// in the background.
func serveConnection(self string, c *net.UnixConn, log io.Writer) error {
	f, err := c.File()
	c.Close()
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(self, "swrk", "3")
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting a session: %w", err)
	}
	go cmd.Wait()
	return nil
}

// startService runs the service on in the background, a process of its
// own session taking the listening socket l, and returns once it runs:
// its pid in pidfile, then the \0 on statusFd.
func startService(l *net.UnixListener, args []string, pidfile string, statusFd int) error {
	// The socket is the background service's from now on.
	l.SetUnlinkOnClose(false)
	f, err := l.File()
	if err != nil {
		return err
	}
	defer f.Close()
	var rest []string
	for _, a := range args {
		if a != "-d" && a != "--daemon" {
			rest = append(rest, a)
		}
	}
	// In the work directory already.
	cmd, err := inBackground(f, append(append([]string{"service"}, rest...), "--status-fd", "-1", "--pidfile", "", "-W", ".")...)
	if err != nil {
		return fmt.Errorf("starting the service: %w", err)
	}
	if pidfile != "" {
		if err := os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
			cmd.Process.Kill()
			return fmt.Errorf("pidfile: %w", err)
		}
	}
	if statusFd >= 0 {
		return ready(statusFd)
	}
	return nil
}

// inBackground runs crsub as criu with args, in a session of its own,
// handing it the listening socket l (--listen-fd 3): CRIU's -d, the
// listening done before the caller returns.
func inBackground(l *os.File, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append(args, "--listen-fd", "3")...)
	// CRIU's command line answers by the name it is run as.
	cmd.Args[0] = "criu"
	cmd.ExtraFiles = []*os.File{l}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd, cmd.Start()
}

// openLog opens a log file to append to.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// ready writes CRIU's \0 to the status fd and closes it.
func ready(fd int) error {
	f := os.NewFile(uintptr(fd), "status-fd")
	defer f.Close()
	if _, err := f.Write([]byte{0}); err != nil {
		return fmt.Errorf("status fd %d: %w", fd, err)
	}
	return nil
}

// criuPageServer is `criu page-server`: it takes one dump's image, sent by
// `criu dump --page-server` (or a runtime's dump with ps), into the images
// directory, where the restore is made. With -d it goes on in the
// background once listening.
func criuPageServer(args []string, stdout, stderr io.Writer) error {
	fs := newProgramFlags("criu", "page-server", "-D DIR --port PORT [--address ADDR] [--prev-images-dir DIR] [-d]", stderr)
	images := fs.StringP("images-dir", "D", ".", "directory to write the image in ("+criurpc.ImageName+")")
	address := fs.String("address", "", "address to listen on (default: every one)")
	port := fs.Int("port", 0, "TCP port to listen on")
	prev := fs.String("prev-images-dir", "", "directory of the image taken before, relative to the images directory: the parent of an incremental dump")
	daemon := fs.BoolP("daemon", "d", false, "go on in the background once listening")
	logFile := fs.StringP("log-file", "o", "", "write errors to FILE")
	fs.IntP("verbosity", "v", 2, "accepted")
	connFd := fs.Int("fd", -1, "")
	fs.MarkHidden("fd")
	listenFd := fs.Int("listen-fd", -1, "")
	fs.MarkHidden("listen-fd")
	if err := parseCriu(fs, args, stdout); err != nil {
		return err
	}
	if *logFile != "" {
		f, err := openLog(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		stderr = f
	}
	var conn *os.File
	switch {
	case *connFd >= 0:
		conn = os.NewFile(uintptr(*connFd), "page-server")
	case *port <= 0 && *listenFd < 0:
		return usageError{"needs --port"}
	default:
		var l net.Listener
		var err error
		if *listenFd >= 0 {
			l, err = net.FileListener(os.NewFile(uintptr(*listenFd), "page-server"))
		} else {
			l, err = net.Listen("tcp", net.JoinHostPort(*address, strconv.Itoa(*port)))
		}
		if err != nil {
			return err
		}
		if *daemon && *listenFd < 0 {
			// The listening socket is the background server's.
			f, err := l.(*net.TCPListener).File()
			l.Close()
			if err != nil {
				return err
			}
			defer f.Close()
			args := []string{"page-server", "-D", *images, "--prev-images-dir", *prev}
			if *logFile != "" {
				args = append(args, "-o", *logFile)
			}
			_, err = inBackground(f, args...)
			return err
		}
		c, err := l.Accept()
		l.Close()
		if err != nil {
			return err
		}
		if conn, err = c.(*net.TCPConn).File(); err != nil {
			return err
		}
		c.Close()
	}
	defer conn.Close()
	// In the directory: a parent named relative to it is found from there
	// (its path may be a magic link, /proc/self/fd/N, which joining
	// paths would break).
	if err := os.Chdir(*images); err != nil {
		return fmt.Errorf("images directory: %w", err)
	}
	if err := criurpc.ServePages(".", conn, *prev); err != nil {
		fmt.Fprintf(stderr, "Error (crsub page server): %v\n", err)
		return exitStatus(exitFailure)
	}
	return nil
}
