package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

func runShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("show", "[--json] [--records] IMAGE|-", stderr)
	asJSON := fs.Bool("json", false, "print the image's contents as JSON, for scripts")
	records := fs.Bool("records", false, "list the raw records: offset, type, length, objref, dependencies")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"needs exactly one IMAGE (or - for standard input)"}
	}
	in, closeIn, err := openInput(fs.Arg(0))
	if err != nil {
		return err
	}
	defer closeIn()
	inv, err := ckpt.Inspect(in)
	if err != nil {
		return err
	}
	switch {
	case *asJSON:
		if !*records {
			inv.Records = nil
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(inv)
	case *records:
		return printRecords(stdout, inv)
	default:
		dir := ""
		if fs.Arg(0) != "-" {
			dir = filepath.Dir(fs.Arg(0))
		}
		return printInventory(stdout, inv, dir)
	}
}

// openInput opens an image file, or standard input for "-".
func openInput(name string) (io.Reader, func(), error) {
	if name == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func printRecords(w io.Writer, inv *ckpt.Inventory) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tOFFSET\tTYPE\tLENGTH\tPAYLOAD\tOBJREF\tDEPS")
	for _, r := range inv.Records {
		obj := "-"
		if r.Objref != 0 {
			obj = fmt.Sprint(r.Objref)
		}
		deps := make([]string, len(r.Deps))
		for i, d := range r.Deps {
			deps[i] = fmt.Sprint(d)
		}
		fmt.Fprintf(tw, "%d\t%#x\t%s\t%d\t%d\t%s\t%s\n", r.Index, r.Offset, r.Type, r.Length, r.PayloadLen, obj, strings.Join(deps, ","))
	}
	return tw.Flush()
}

// chainStatus says whether an incremental image's parent chain is there
// and intact.
func chainStatus(h ckpt.Header, dir string) string {
	path := h.Parent
	if !filepath.IsAbs(path) && dir != "" {
		path = filepath.Join(dir, path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "MISSING: " + err.Error()
	}
	ix, ph, err := ckpt.OpenChain(path)
	if err != nil {
		return "BROKEN: " + err.Error()
	}
	defer ix.Close()
	if st.Size() != h.ParentSize || !ph.Created.Equal(h.ParentCreated) {
		return "MISMATCHED: that file is another image"
	}
	return fmt.Sprintf("ok, a chain of %d image(s) holding %d pages", len(ix.Chain), ix.Pages())
}

func printInventory(w io.Writer, inv *ckpt.Inventory, imageDir string) error {
	h := inv.Header
	fmt.Fprintf(w, "crsub image, format %s, %d bytes, %d records\n", inv.Version, inv.Bytes, len(inv.Records))
	fmt.Fprintf(w, "  created  %s by %s\n", h.Created.Format("2006-01-02 15:04:05.000 MST"), h.Writer)
	fmt.Fprintf(w, "  machine  %s, Linux %s, page size %d", h.Arch, h.KernelRelease, h.PageSize)
	if h.XStateSize != 0 {
		fmt.Fprintf(w, ", xstate %d bytes (xfeatures %#x)", h.XStateSize, h.XFeatures)
	}
	fmt.Fprintln(w)
	if h.Parent != "" {
		fmt.Fprintf(w, "  parent   %s (%d bytes, created %s): %s\n", h.Parent, h.ParentSize, h.ParentCreated.Format("2006-01-02 15:04:05.000"), chainStatus(h, imageDir))
	}

	fmt.Fprintln(w, "\nTask tree:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  PID\tPPID\tPGID\tSID\tTHREADS\tCOMM")
	for _, p := range inv.Tree.Processes {
		comm := p.Comm
		if p.Zombie {
			comm += " (zombie)"
		}
		if p.SharesFdTable {
			comm += " (shares its parent's fd table)"
		}
		fmt.Fprintf(tw, "  %d\t%d\t%d\t%d\t%d\t%s\n", p.Pid, p.Ppid, p.Pgid, p.Sid, len(p.Tids), comm)
	}
	tw.Flush()
	printNamespaces(w, inv)

	for _, pv := range inv.Processes {
		printProcess(w, inv.Header.PageSize, pv, namespacesOf(pv.Process, inv))
	}
	return nil
}

// printProcess prints a process; namespaces says which of the image's
// namespaces it is in.
func printProcess(w io.Writer, pageSize int, pv *ckpt.ProcessView, namespaces string) {
	p := pv.Process
	fmt.Fprintf(w, "\nProcess %d (%s)\n", p.Pid, p.Comm)
	fmt.Fprintf(w, "  cwd %s, root %s, umask %04o, personality %#x\n", p.Cwd, p.Root, p.Umask, p.Personality)
	if namespaces != "" {
		fmt.Fprintf(w, "  namespaces: %s\n", namespaces)
	}
	if p.Ctty != nil {
		fmt.Fprintf(w, "  controlling terminal: the pty on fd %d, foreground group %d\n", p.Ctty.Fd, p.Ctty.Pgrp)
	}
	fmt.Fprintf(w, "  uid %v, gid %v\n", p.Creds.Uid, p.Creds.Gid)
	var state []string
	if p.Stopped {
		state = append(state, "stopped by a signal")
	}
	if p.CwdDeleted {
		state = append(state, "working directory removed")
	}
	if p.ChildSubreaper {
		state = append(state, "child subreaper")
	}
	if p.OOMScoreAdj != 0 {
		state = append(state, fmt.Sprintf("oom_score_adj %d", p.OOMScoreAdj))
	}
	if len(state) > 0 {
		fmt.Fprintf(w, "  %s\n", strings.Join(state, ", "))
	}
	for which, it := range p.Itimers {
		if it.ValueUsec != 0 || it.IntervalUsec != 0 {
			fmt.Fprintf(w, "  %s: next in %v, interval %v\n", []string{"ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF"}[which],
				time.Duration(it.ValueUsec)*time.Microsecond, time.Duration(it.IntervalUsec)*time.Microsecond)
		}
	}
	for _, pt := range p.PosixTimers {
		fmt.Fprintf(w, "  POSIX timer %d: clock %d, signal %d, notify %d, next in %v, interval %v\n", pt.ID, pt.ClockID, pt.Signal, pt.Notify,
			time.Duration(pt.ValueNsec), time.Duration(pt.IntervalNsec))
	}
	if pv.MM != nil {
		exe := pv.MM.Exe.Path
		if pv.MM.ExeGhost != 0 {
			exe += " (removed; kept in the image)"
		}
		fmt.Fprintf(w, "  exe %s\n  brk %#x-%#x, args %#x-%#x, env %#x-%#x\n", exe, pv.MM.StartBrk, pv.MM.Brk, pv.MM.ArgStart, pv.MM.ArgEnd, pv.MM.EnvStart, pv.MM.EnvEnd)
	}

	fmt.Fprintln(w, "  Threads:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "    TID\tRIP\tRSP\tSIGMASK\tPENDING\tSTATE")
	for _, t := range pv.Threads {
		var rip, rsp uint64
		if len(t.Regs) > 19 {
			rip, rsp = t.Regs[16], t.Regs[19]
		}
		state := "running"
		if t.Syscall != nil {
			state = fmt.Sprintf("in syscall %d, returned %d", t.Syscall.Nr, t.Syscall.Ret)
		}
		if c := t.Creds; c != nil {
			state += fmt.Sprintf("; uid %v, gid %v of its own", c.Uid, c.Gid)
		}
		fmt.Fprintf(tw, "    %d\t%#x\t%#x\t%s\t%d\t%s\n", t.Tid, rip, rsp, sigset(t.SigMask), len(t.Pending), state)
	}
	tw.Flush()

	fmt.Fprintln(w, "  Memory map:")
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "    START\tEND\tPROT\tSHARING\tKIND\tSTORED\tBACKING")
	var stored uint64
	for _, v := range pv.VMAs {
		backing := ""
		if v.File != nil {
			backing = fmt.Sprintf("%s @%#x", v.File.Path, v.Pgoff)
		}
		if g := v.GuardPages(); g > 0 {
			backing = strings.TrimSpace(fmt.Sprintf("%s (%d guard pages)", backing, g))
		}
		sharing := "private"
		if v.Flags&unix.MAP_SHARED != 0 {
			sharing = "shared"
		}
		n := v.Stored
		stored += n
		fmt.Fprintf(tw, "    %#x\t%#x\t%s\t%s\t%s\t%d/%d\t%s\n", v.Start, v.End, protString(v.Prot), sharing, v.Kind, n, (v.End-v.Start)/uint64(max(pageSize, 1)), backing)
	}
	tw.Flush()
	fmt.Fprintf(w, "    %d pages stored (%d KiB)\n", stored, stored*uint64(pageSize)/1024)

	fmt.Fprintln(w, "  File descriptors:")
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "    FD\tKIND\tFLAGS\tOFFSET\tCLOEXEC\tTARGET")
	for _, fd := range pv.Fds {
		f := fd.File
		target := f.Path
		switch {
		case f.Supplied:
			target = "(supplied at restart)"
		case f.Eventfd != nil:
			target = fmt.Sprintf("count %d", f.Eventfd.Count)
			if f.Eventfd.Semaphore {
				target += ", semaphore"
			}
		case f.Timerfd != nil:
			target = fmt.Sprintf("clock %d, next in %v, interval %v", f.Timerfd.ClockID, time.Duration(f.Timerfd.Value), time.Duration(f.Timerfd.Interval))
		case f.Signalfd != nil:
			target = "signals " + sigset(f.Signalfd.Sigmask)
		case f.Inotify != nil:
			target = fmt.Sprintf("%d watches", len(f.Inotify.Watches))
		case f.Kind == ckpt.FileEpoll:
			target = epollTarget(pv, fd.Objref)
		case f.Socket != nil && f.Socket.Family == unix.AF_UNIX && f.Socket.State == "connected":
			target = fmt.Sprintf("unix connected, end %d of its pair", f.Socket.PairEnd)
		case f.Socket != nil && f.Socket.Family == unix.AF_UNIX:
			target = "unix " + f.Socket.State
			if f.Socket.Local != "" {
				target += " " + f.Socket.Local
			}
		case f.Socket != nil:
			target = fmt.Sprintf("%s %s", f.Socket.State, f.Socket.Local)
			if f.Socket.Peer != "" {
				target += " -> " + f.Socket.Peer
			}
		case f.Kind == ckpt.FilePipe && fd.Pipe != nil:
			target = fmt.Sprintf("pipe:[%d] %s end, %d bytes buffered", fd.Pipe.Inode, f.PipeEnd, fd.Buffered)
		}
		if f.Deleted {
			target += " (deleted)"
		}
		if f.External {
			target += " [external: " + f.ExternalReason + "]"
		}
		fmt.Fprintf(tw, "    %d\t%s\t%s\t%d\t%v\t%s\n", fd.Fd, f.Kind, openFlags(f.Flags), f.Pos, fd.Cloexec, target)
	}
	tw.Flush()

	if s := pv.Signals; s != nil {
		fmt.Fprintln(w, "  Signal dispositions:")
		for _, a := range s.Actions {
			h := fmt.Sprintf("handler %#x", a.Handler)
			switch a.Handler {
			case 0:
				h = "default"
			case 1:
				h = "ignored"
			}
			fmt.Fprintf(w, "    %-9s %s, flags %#x, mask %s\n", signalName(a.Signo), h, a.Flags, sigset(a.Mask))
		}
		if len(s.SharedPending) > 0 {
			names := make([]string, len(s.SharedPending))
			for i, si := range s.SharedPending {
				names[i] = signalName(si.Signo)
			}
			fmt.Fprintf(w, "    pending (process-wide): %s\n", strings.Join(names, " "))
		}
	}
}

// epollTarget lists what an epoll instance watches, by the fd numbers the
// files have in the process.
func epollTarget(pv *ckpt.ProcessView, epoll ckpt.Objref) string {
	var parts []string
	for _, w := range pv.EpollWatches {
		if w.Epoll != epoll {
			continue
		}
		where := "no fd"
		for _, fd := range pv.Fds {
			if fd.Objref == w.Target {
				where = fmt.Sprintf("fd %d", fd.Fd)
				break
			}
		}
		parts = append(parts, fmt.Sprintf("%s events %#x data %#x", where, w.Events, w.Data))
	}
	if len(parts) == 0 {
		return "no watches"
	}
	return "watches " + strings.Join(parts, "; ")
}

func protString(prot int) string {
	b := []byte("---")
	if prot&unix.PROT_READ != 0 {
		b[0] = 'r'
	}
	if prot&unix.PROT_WRITE != 0 {
		b[1] = 'w'
	}
	if prot&unix.PROT_EXEC != 0 {
		b[2] = 'x'
	}
	return string(b)
}

func openFlags(flags int) string {
	var parts []string
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		parts = append(parts, "rdonly")
	case unix.O_WRONLY:
		parts = append(parts, "wronly")
	case unix.O_RDWR:
		parts = append(parts, "rdwr")
	}
	for _, f := range []struct {
		bit  int
		name string
	}{{unix.O_APPEND, "append"}, {unix.O_NONBLOCK, "nonblock"}, {unix.O_DIRECT, "direct"}, {unix.O_SYNC, "sync"}, {unix.O_NOATIME, "noatime"}, {unix.O_PATH, "path"}} {
		if flags&f.bit == f.bit {
			parts = append(parts, f.name)
		}
	}
	return strings.Join(parts, ",")
}

func sigset(mask uint64) string {
	if mask == 0 {
		return "-"
	}
	var names []string
	for sig := 1; sig <= 64; sig++ {
		if mask&(1<<(sig-1)) != 0 {
			names = append(names, signalName(sig))
		}
	}
	return strings.Join(names, ",")
}

// signalName names a signal, realtime ones relative to SIGRTMIN (32 in the
// kernel's numbering).
func signalName(sig int) string {
	if name := unix.SignalName(syscall.Signal(sig)); name != "" {
		return name
	}
	if sig >= 32 && sig <= 64 {
		return fmt.Sprintf("SIGRTMIN+%d", sig-32)
	}
	return fmt.Sprintf("SIG%d", sig)
}
