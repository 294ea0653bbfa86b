package criurpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/crsub/crsub/criurpc/rpcpb"
)

// Config is what a session needs from the program running it.
type Config struct {
	// Stderr receives the log of a request that asks for it there
	// (log_to_stderr), and the output of action scripts.
	Stderr io.Writer
	// ConfigFiles are CRIU configuration files whose options lie beneath
	// every request's (DefaultConfigFiles, then the criu command line's
	// --config), in order; a request's config_file is over them.
	ConfigFiles []string
	// ActionScripts are programs run at each phase a runtime is notified
	// of (CRIU's --action-script), before it is: the phase's name in
	// CRTOOLS_SCRIPT_ACTION, the images directory in CRTOOLS_IMAGE_DIR,
	// the tree's root pid, once there is one, in CRTOOLS_INIT_PID. A
	// script that fails fails the phase.
	ActionScripts []string
}

// session answers one runtime's requests.
type session struct {
	cfg Config
	// conn is the runtime's socket; nil on the criu command line, where
	// nobody is there to notify.
	conn *conn
	// peer is the process whose fds a request names (images_dir_fd,
	// work_dir_fd): the runtime, or crsub itself on the command line.
	peer int
	// req is the request being served, for the log.
	req *rpcpb.CriuReq
	// callerGone says the runtime checkpointed itself and was killed
	// with its tree: nobody is left to answer.
	callerGone bool
	// initPid is the root of the tree being checkpointed or restored, once
	// known: what action scripts are told.
	initPid int
}

// Serve answers the requests of the runtime at the other end of sock, a
// SOCK_SEQPACKET socket (what `criu swrk FD` is given), as CRIU's swrk
// does: one request, or more when the runtime asks to keep the session
// open (VERSION, FEATURE_CHECK) or pre-dumps before a dump. A request that
// is malformed, of an unknown type or asks for what crsub does not do is
// answered with success=false and a message naming it. Serve returns the
// error of the last request (a *RequestError), nil if it succeeded.
func Serve(ctx context.Context, sock *os.File, cfg Config) error {
	c, err := newConn(sock)
	if err != nil {
		return err
	}
	defer c.Close()
	peer, err := c.peerPid()
	if err != nil {
		return err
	}
	s := &session{cfg: cfg, conn: c, peer: peer}
	var last error
	var prev rpcpb.CriuReqType
	for {
		req, err := c.recv()
		if errors.Is(err, io.EOF) {
			// The runtime is done, as after a pre-dump that runc ends
			// by closing its end.
			return last
		}
		if errors.Is(err, errMalformed) {
			s.reply(failure(rpcpb.CriuReqType_EMPTY, err))
			return &RequestError{Type: rpcpb.CriuReqType_EMPTY, Err: err}
		}
		if err != nil {
			return err
		}
		var resp *rpcpb.CriuResp
		switch {
		case isPreDump(prev) && req.GetType() != rpcpb.CriuReqType_PRE_DUMP && req.GetType() != rpcpb.CriuReqType_DUMP:
			last = fmt.Errorf("a %s request after a pre-dump: only another pre-dump or the dump may follow", req.GetType())
			resp = failure(req.GetType(), last)
		case req.GetKeepOpen() && !keepsOpen(req.GetType()):
			last = &RefusedError{Field: "keep_open", Reason: fmt.Sprintf("a %s request ends the session, as with CRIU", req.GetType())}
			resp = failure(req.GetType(), last)
		default:
			resp, last = s.Handle(ctx, req)
		}
		if s.callerGone {
			return nil
		}
		if err := s.reply(resp); err != nil {
			return err
		}
		if last != nil {
			last = &RequestError{Type: req.GetType(), Err: last}
		}
		prev = req.GetType()
		switch {
		case last == nil && req.GetKeepOpen():
		case last == nil && isPreDump(req.GetType()):
			// CRIU waits for the next pre-dump or the dump.
		default:
			return last
		}
	}
}

// RequestError is the error of a request Serve answered with a failure.
type RequestError struct {
	Type rpcpb.CriuReqType
	Err  error
}

func (e *RequestError) Error() string { return fmt.Sprintf("%s: %v", e.Type, e.Err) }
func (e *RequestError) Unwrap() error { return e.Err }

// NewCommandLine returns a session for the criu command line: the fds a
// request names are crsub's own, and there is no runtime to notify.
func NewCommandLine(cfg Config) *Session {
	return &Session{s: &session{cfg: cfg, peer: os.Getpid()}}
}

// Session serves the requests of the criu command line one at a time.
type Session struct{ s *session }

// Handle serves one request and returns its response, and the error that
// made it fail.
func (s *Session) Handle(ctx context.Context, req *rpcpb.CriuReq) (*rpcpb.CriuResp, error) {
	return s.s.Handle(ctx, req)
}

func keepsOpen(t rpcpb.CriuReqType) bool {
	return t == rpcpb.CriuReqType_VERSION || t == rpcpb.CriuReqType_FEATURE_CHECK
}

func isPreDump(t rpcpb.CriuReqType) bool { return t == rpcpb.CriuReqType_PRE_DUMP }

// Handle serves one request.
func (s *session) Handle(ctx context.Context, req *rpcpb.CriuReq) (*rpcpb.CriuResp, error) {
	t := req.GetType()
	s.req = req
	if err := unknownFields("criu_req", req.ProtoReflect().GetUnknown()); err != nil {
		return failure(t, err), err
	}
	switch t {
	case rpcpb.CriuReqType_VERSION:
		return &rpcpb.CriuResp{Type: t.Enum(), Success: ptr(true), Version: version()}, nil
	case rpcpb.CriuReqType_FEATURE_CHECK:
		return &rpcpb.CriuResp{Type: t.Enum(), Success: ptr(true), Features: features(req.GetFeatures())}, nil
	case rpcpb.CriuReqType_CHECK:
		// Its options are refused or taken as any request's, as CRIU's.
		if _, err := s.parse(t, req.GetOpts()); err != nil {
			return failure(t, err), err
		}
		if err := check(); err != nil {
			return failure(t, err), err
		}
		return &rpcpb.CriuResp{Type: t.Enum(), Success: ptr(true)}, nil
	case rpcpb.CriuReqType_DUMP, rpcpb.CriuReqType_PRE_DUMP, rpcpb.CriuReqType_SINGLE_PRE_DUMP:
		r, err := s.parse(t, req.GetOpts())
		if err == nil {
			err = s.dump(ctx, r)
		}
		if err != nil {
			return failure(t, err), err
		}
		resp := &rpcpb.CriuResp{Type: t.Enum(), Success: ptr(true)}
		if t == rpcpb.CriuReqType_DUMP {
			resp.Dump = &rpcpb.CriuDumpResp{Restored: ptr(false)}
		}
		return resp, nil
	case rpcpb.CriuReqType_PAGE_SERVER, rpcpb.CriuReqType_PAGE_SERVER_CHLD:
		r, err := s.parse(t, req.GetOpts())
		if err == nil {
			var pid, port int
			if pid, port, err = s.startPageServer(r); err == nil {
				ps := &rpcpb.CriuPageServerInfo{Pid: ptr(int32(pid))}
				if port != 0 {
					ps.Port = ptr(int32(port))
				}
				return &rpcpb.CriuResp{Type: t.Enum(), Success: ptr(true), Ps: ps}, nil
			}
		}
		return failure(t, err), err
	case rpcpb.CriuReqType_RESTORE:
		r, err := s.parse(t, req.GetOpts())
		if err == nil {
			var pid int
			if pid, err = s.restore(ctx, r); err == nil {
				return &rpcpb.CriuResp{Type: t.Enum(), Success: ptr(true), Restore: &rpcpb.CriuRestoreResp{Pid: ptr(int32(pid))}}, nil
			}
		}
		// As CRIU, a failed restore's pid is -1.
		resp := failure(t, err)
		resp.Restore = &rpcpb.CriuRestoreResp{Pid: ptr(int32(-1))}
		return resp, err
	}
	err := &RefusedError{Field: "type", Reason: fmt.Sprintf("%s requests are not supported by crsub", t)}
	if t == rpcpb.CriuReqType_EMPTY || t == rpcpb.CriuReqType_NOTIFY {
		// Not a request at all: answered as CRIU answers an invalid one.
		return failure(rpcpb.CriuReqType_EMPTY, err), err
	}
	return failure(t, err), err
}

// parse is ParseRequest, with a refusal also in the log the request asks
// for, where the runtime looks for what went wrong.
func (s *session) parse(t rpcpb.CriuReqType, opts *rpcpb.CriuOpts) (*Request, error) {
	merged, defaults, err := withDefaults(t, opts, s.cfg.ConfigFiles)
	var r *Request
	if err == nil {
		r, err = ParseRequest(t, merged)
	}
	if err == nil {
		if defaults.logPath != "" && opts.GetLogFile() == "" && !r.logPath {
			r.LogFile, r.logPath = defaults.logPath, true
		}
		r.ActionScripts = append(defaults.actionScripts, r.ActionScripts...)
		return r, nil
	}
	logOnly := &Request{Type: t, ImagesDirFd: int(opts.GetImagesDirFd()), ImagesDir: opts.GetImagesDir(), WorkDirFd: -1,
		LogFile: opts.GetLogFile(), LogLevel: int(opts.GetLogLevel()), LogToStderr: opts.GetLogToStderr()}
	if opts.WorkDirFd != nil {
		logOnly.WorkDirFd = int(opts.GetWorkDirFd())
	}
	if strings.Contains(logOnly.LogFile, "/") {
		logOnly.LogFile = ""
	}
	if w, werr := s.workspace(logOnly); werr == nil {
		w.failed(err)
		w.close()
	}
	return nil, err
}

// reply sends a response; on the command line there is no one to send it to.
func (s *session) reply(resp *rpcpb.CriuResp) error {
	if s.conn == nil {
		return nil
	}
	return s.conn.send(resp, -1)
}

// failure is the response to a request that failed: success false, the
// error's message, and its errno where it has one (EBADRQC for a field
// crsub does not honour, as CRIU answers options it cannot take).
func failure(t rpcpb.CriuReqType, err error) *rpcpb.CriuResp {
	resp := &rpcpb.CriuResp{Type: t.Enum(), Success: ptr(false)}
	if err == nil {
		return resp
	}
	resp.CrErrmsg = ptr(err.Error())
	var errno syscall.Errno
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		resp.CrErrno = ptr(int32(syscall.EBADRQC))
	case errors.As(err, &errno):
		resp.CrErrno = ptr(int32(errno))
	}
	return resp
}

// notify tells the runtime a phase is reached (CRIU's action scripts over
// RPC) and waits for its answer; a runtime that reports failure fails the
// phase. pid is sent when not 0, fd passed along when not negative.
func (s *session) notify(r *Request, log *slog.Logger, script string, pid, fd int) error {
	if pid != 0 {
		s.initPid = pid
	}
	if err := s.runActionScripts(r, log, script); err != nil {
		return err
	}
	if !r.Notify || s.conn == nil {
		return nil
	}
	log.Debug("notifying the runtime", "script", script, "pid", pid)
	n := &rpcpb.CriuNotify{Script: ptr(script)}
	if pid != 0 {
		n.Pid = ptr(int32(pid))
	}
	if err := s.conn.send(&rpcpb.CriuResp{Type: rpcpb.CriuReqType_NOTIFY.Enum(), Success: ptr(true), Notify: n}, fd); err != nil {
		return err
	}
	ack, err := s.conn.recv()
	if err != nil {
		return fmt.Errorf("waiting for the runtime's answer to %s: %w", script, err)
	}
	if ack.GetType() != rpcpb.CriuReqType_NOTIFY || !ack.GetNotifySuccess() {
		return fmt.Errorf("the runtime reported its %s action failed", script)
	}
	if script == "query-ext-files" {
		// The runtime may answer with more external resources.
		if _, err := ParseRequest(r.Type, &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(-1)), External: ack.GetOpts().GetExternal()}); err != nil {
			return err
		}
	}
	return nil
}

// runActionScripts runs the action scripts of the session and of the
// request for phase action, one after the other, in the images directory
// (crsub's working directory while it serves a request).
func (s *session) runActionScripts(r *Request, log *slog.Logger, action string) error {
	scripts := append(slices.Clip(s.cfg.ActionScripts), r.ActionScripts...)
	if len(scripts) == 0 || action == "query-ext-files" || action == "orphan-pts-master" {
		// As CRIU: those two ask the runtime for something (files,
		// a terminal's master), which a script cannot answer.
		return nil
	}
	env := append(os.Environ(), "CRTOOLS_SCRIPT_ACTION="+action, fmt.Sprintf("CRTOOLS_IMAGE_DIR=/proc/%d/cwd", os.Getpid()))
	if s.initPid != 0 {
		env = append(env, "CRTOOLS_INIT_PID="+strconv.Itoa(s.initPid))
	}
	for _, path := range scripts {
		log.Debug("running an action script", "action", action, "script", path)
		cmd := exec.Command(path)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = s.cfg.Stderr, s.cfg.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("action script %s for %s: %w", path, action, err)
		}
	}
	return nil
}

// openPeerDir opens a directory the peer has open as fd.
func (s *session) openPeerDir(fd int) (*os.File, error) {
	return os.OpenFile("/proc/"+strconv.Itoa(s.peer)+"/fd/"+strconv.Itoa(fd), os.O_RDONLY|syscall.O_DIRECTORY, 0)
}

func ptr[T any](v T) *T { return &v }
