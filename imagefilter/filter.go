package imagefilter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"

	"github.com/crsub/crsub/ckpt"
)

// Options controls a filter run. Start from DefaultOptions.
type Options struct {
	// Log receives a debug line for every record removed or rewritten, and
	// a warning when the header record could not be copied byte for byte;
	// nil means silent.
	Log *slog.Logger
	// TempDir is where the payloads of held records wait, in a file that
	// is unlinked as soon as it is created; "" means os.TempDir().
	TempDir string
	// ReplaceShared lets a Replace rule cover the fds that come after its
	// own in the image and share its open file description (the same fd
	// of the children a process forked, stderr opened as 2>&1): they go
	// on sharing what replaces it. Without it each needs a rule of its
	// own. A sharer before the ruled fd still needs one: its fd entry is
	// written by then.
	ReplaceShared bool
}

// DefaultOptions returns silent options spooling to os.TempDir().
func DefaultOptions() Options { return Options{TempDir: os.TempDir()} }

// Report says what a filter run did.
type Report struct {
	// Dropped and Replaced are the rules applied, in the order given, with
	// Pid filled in for rules that named the root process.
	Dropped, Replaced []Rule
	// RemovedRecords counts the input's records that the output lacks:
	// dropped fd entries, file and pipe records that nothing surviving
	// needed, and records that depended on removed objects.
	RemovedRecords int
	// RemovedBytes counts the payload bytes gone with them and with the
	// files now supplied.
	RemovedBytes int64
	// Supplied counts the file records rewritten as supplied at restart.
	Supplied int
	// HeaderRewritten reports that the header record could not be copied
	// byte for byte: the image was written by a newer format version, and
	// header fields this version does not know are lost.
	HeaderRewritten bool
}

// headerCheckLimit bounds what is kept of the input to compare its header
// record with the re-encoded one; real header records are a few hundred
// bytes.
const headerCheckLimit = 1 << 16

// Filter copies the image src to dst, applying rules. Without rules the
// output is the input, byte for byte. On error, dst may hold part of an
// image ending in an error record that says why, which every reader
// rejects; write to a temporary file and rename it to commit.
func Filter(dst io.Writer, src io.Reader, rules []Rule, opts Options) (*Report, error) {
	f, err := newFilter(rules, opts)
	if err != nil {
		return nil, err
	}
	defer f.spool.close()
	return f.run(dst, src)
}

type objState int

const (
	held    objState = iota // read, not yet written: waiting for a surviving dependent
	emitted                 // written
	removed                 // left out; its dependents go too
)

// object is what the filter remembers of a record that defines an objref.
// Only held objects keep metadata, so memory is bounded by the metadata of
// what is held plus a few words per objref.
type object struct {
	ref    ckpt.Objref
	index  int
	offset int64
	typ    ckpt.Type
	state  objState
	why    string // for a removed object, why; for an emitted one, for whom

	// While held.
	deps       []ckpt.Objref
	meta       []byte
	spooled    bool
	payloadOff int64
	payloadLen int64

	// File records: the fds that refer to it so far.
	uncovered []fdRef      // fds without a rule
	covered   []*ruleState // rules of fds that have one
	dropped   bool         // one of its fds was dropped
	supplied  bool         // rewritten as supplied
}

func (o *object) String() string {
	return fmt.Sprintf("record %d (%s) at offset %d", o.index, o.typ, o.offset)
}

// doomed reports a held file all of whose fds so far were dropped: the
// first record other than an fd that depends on it decides it is gone.
func (o *object) doomed() bool { return o.state == held && o.dropped && !o.supplied }

type ruleState struct {
	Rule
	pid     int // the pid it applies to, once known
	matched bool
}

type filter struct {
	opts      Options
	log       *slog.Logger
	rules     []*ruleState
	byFd      map[fdRef]*ruleState
	rootRules bool

	treeSeen bool
	pids     map[int]bool

	objects map[ckpt.Objref]*object
	held    []*object // in input order; entries no longer held are skipped
	nHeld   int
	spool   spool

	w   *ckpt.Writer
	buf *bufio.Writer
	rep Report

	inRecords, outRecords int
	inBytes, outBytes     int64
}

func newFilter(rules []Rule, opts Options) (*filter, error) {
	f := &filter{opts: opts, log: opts.Log, byFd: map[fdRef]*ruleState{}, objects: map[ckpt.Objref]*object{}}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.spool.dir = opts.TempDir
	for _, r := range rules {
		switch {
		case r.Action != Drop && r.Action != Replace:
			return nil, fmt.Errorf("rule for fd %d: unknown action %d", r.Fd, int(r.Action))
		case r.Fd < 0 || r.Pid < 0:
			return nil, fmt.Errorf("rule %s: negative pid or fd", r)
		}
		rs := &ruleState{Rule: r, pid: r.Pid}
		f.rules = append(f.rules, rs)
		if r.Pid == 0 {
			f.rootRules = true
			continue
		}
		if err := f.index(rs); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// index makes a rule findable by its fd, refusing two rules for one fd.
func (f *filter) index(rs *ruleState) error {
	key := fdRef{rs.pid, rs.Fd}
	if other := f.byFd[key]; other != nil {
		return fmt.Errorf("two rules for fd %d of pid %d: %s and %s", rs.Fd, rs.pid, other.Rule.Action, rs.Rule.Action)
	}
	f.byFd[key] = rs
	return nil
}

func (f *filter) run(dst io.Writer, src io.Reader) (*Report, error) {
	rec := &prefixRecorder{r: src, limit: headerCheckLimit}
	rd, err := ckpt.NewReader(rec)
	if err != nil {
		return nil, err
	}
	original := rec.stop(rd.Offset())

	// The writer re-encodes the header record from its decoded form (ckpt
	// has no way to copy it raw); capture what it writes to check that it
	// matches the input.
	f.buf = bufio.NewWriterSize(dst, 1<<16)
	hc := &headerCapture{w: f.buf}
	if f.w, err = ckpt.NewWriter(hc, rd.Header()); err != nil {
		return nil, fmt.Errorf("writing the header record: %w", err)
	}
	if !bytes.Equal(hc.buf, original) {
		f.rep.HeaderRewritten = true
		major, minor := rd.Version()
		f.log.Warn("the header record is re-encoded: fields this version does not know are lost", "format", fmt.Sprintf("%d.%d", major, minor))
	}
	if err := hc.flush(); err != nil {
		return nil, fmt.Errorf("writing the header record: %w", err)
	}

	for {
		r, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return f.fail(err)
		}
		if err := f.record(r); err != nil {
			return f.fail(err)
		}
	}
	if err := f.finish(); err != nil {
		return f.fail(err)
	}
	if err := f.w.Close(); err != nil {
		return nil, err
	}
	if err := f.buf.Flush(); err != nil {
		return nil, fmt.Errorf("writing the image: %w", err)
	}
	f.rep.RemovedRecords = f.inRecords - f.outRecords
	f.rep.RemovedBytes = f.inBytes - f.outBytes
	return &f.rep, nil
}

// fail ends the output with an error record, so that a restart reading it
// through a pipe reports the cause rather than a bare truncation.
func (f *filter) fail(err error) (*Report, error) {
	_ = f.w.Abort(err)
	_ = f.buf.Flush()
	return nil, err
}

func (f *filter) record(r *ckpt.Record) error {
	f.inRecords++
	f.inBytes += r.PayloadLen
	if len(f.rules) == 0 {
		return f.copy(r)
	}
	switch r.Type {
	case ckpt.TypeTree:
		if !f.treeSeen {
			if err := f.tree(r); err != nil {
				return err
			}
		}
	case ckpt.TypeFd:
		return f.fd(r)
	}
	return f.generic(r)
}

func recordError(r *ckpt.Record, err error) error {
	return fmt.Errorf("record %d (%s) at offset %d: %w", r.Index, r.Type, r.Offset, err)
}

// tree learns the processes, and which one rules without a pid mean.
func (f *filter) tree(r *ckpt.Record) error {
	var t ckpt.Tree
	if err := r.Decode(&t); err != nil {
		return err
	}
	f.treeSeen = true
	f.pids = map[int]bool{}
	for _, p := range t.Processes {
		f.pids[p.Pid] = true
	}
	for _, rs := range f.rules {
		if rs.Pid != 0 {
			continue
		}
		if len(t.Processes) == 0 {
			return recordError(r, &RuleError{Rule: rs.Rule, Err: &detailError{"the image's task tree is empty", ErrNoMatch}})
		}
		rs.pid = t.Processes[0].Pid
		if err := f.index(rs); err != nil {
			return err
		}
	}
	return nil
}

// fd applies the rules to an fd-table entry.
func (f *filter) fd(r *ckpt.Record) error {
	var fd ckpt.Fd
	if err := r.Decode(&fd); err != nil {
		return err
	}
	if !slices.Contains(r.Deps, fd.File) {
		return recordError(r, fmt.Errorf("fd %d of pid %d names file objref %d but does not depend on it", fd.Fd, fd.Pid, fd.File))
	}
	if f.rootRules && !f.treeSeen {
		return recordError(r, fmt.Errorf("fd %d of pid %d comes before the task tree, which names the root process that rules without a pid refer to", fd.Fd, fd.Pid))
	}
	rs := f.byFd[fdRef{fd.Pid, fd.Fd}]
	file := f.objects[fd.File]
	if file == nil {
		// Only a header record could have defined it.
		return recordError(r, fmt.Errorf("fd %d of pid %d refers to objref %d, which no record before it defines", fd.Fd, fd.Pid, fd.File))
	}
	if rs == nil {
		if len(file.covered) > 0 {
			c := file.covered[0]
			if f.opts.ReplaceShared && c.Action == Replace && file.supplied {
				f.log.Debug("an fd shares a replaced file", "record", r.Index, "pid", fd.Pid, "fd", fd.Fd, "rule", c.Rule.String())
				return f.generic(r)
			}
			return recordError(r, &RuleError{Rule: c.Rule, Pid: c.pid, Err: sharedError(c.pid, c.Fd, []fdRef{{fd.Pid, fd.Fd}})})
		}
		file.uncovered = append(file.uncovered, fdRef{fd.Pid, fd.Fd})
		return f.generic(r)
	}
	ruleErr := func(err error) error { return recordError(r, &RuleError{Rule: rs.Rule, Pid: rs.pid, Err: err}) }
	if len(file.uncovered) > 0 {
		return ruleErr(sharedError(fd.Pid, fd.Fd, file.uncovered))
	}
	if file.typ != ckpt.TypeFile {
		return ruleErr(fmt.Errorf("fd %d of pid %d refers to objref %d, a %s record, not a file", fd.Fd, fd.Pid, fd.File, file.typ))
	}
	file.covered = append(file.covered, rs)
	rs.matched = true
	switch rs.Action {
	case Drop:
		file.dropped = true
		f.remove(r, "dropped by rule "+rs.Rule.String())
		return nil
	case Replace:
		switch {
		case file.state == removed:
			return ruleErr(fmt.Errorf("the open file of fd %d of pid %d (%s) is already removed: %s", fd.Fd, fd.Pid, file, file.why))
		case file.state == emitted && !file.supplied:
			return ruleErr(fmt.Errorf("the open file of fd %d of pid %d (%s) is already written whole, for %s, which depends on it before the fd table names it", fd.Fd, fd.Pid, file, file.why))
		case file.state == held:
			if err := f.supply(file); err != nil {
				return err
			}
			f.log.Debug("replacing an fd", "record", r.Index, "offset", r.Offset, "pid", fd.Pid, "fd", fd.Fd, "rule", rs.Rule.String(), "file", file.index)
		}
	}
	return f.generic(r)
}

// supply rewrites a held file record as supplied at restart: same objref and
// metadata, so the restart knows the access mode and flags the substitute
// must have, but no payload and no dependencies, so what only it needed
// (its pipe, its contents) becomes garbage.
func (f *filter) supply(o *object) error {
	meta, err := suppliedMeta(o.meta)
	if err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	if err := f.unspool(o); err != nil {
		return err
	}
	o.meta, o.deps, o.supplied = meta, nil, true
	f.rep.Supplied++
	return nil
}

// suppliedMeta marks file metadata as supplied. Metadata this version fully
// understands is re-encoded in its usual form; anything else is edited key
// by key, so that a newer writer's fields survive.
func suppliedMeta(meta []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(meta, &m); err != nil {
		return nil, fmt.Errorf("file metadata: %w", err)
	}
	if m == nil {
		return nil, errors.New("file metadata is null")
	}
	var file ckpt.File
	dec := json.NewDecoder(bytes.NewReader(meta))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err == nil {
		file.Supplied, file.External, file.ExternalReason = true, false, ""
		return json.Marshal(&file)
	}
	m["supplied"] = json.RawMessage("true")
	delete(m, "external")
	delete(m, "external_reason")
	return json.Marshal(m)
}

// collectible reports a record held back until something depends on it:
// only objects that exist for others to refer to (see the package comment).
func collectible(r *ckpt.Record) bool {
	switch r.Type {
	case ckpt.TypeFile, ckpt.TypePipe, ckpt.TypeUnixPair, ckpt.TypePty:
		return r.Objref != 0
	}
	return false
}

// generic handles any record by its dependencies alone.
func (f *filter) generic(r *ckpt.Record) error {
	for _, d := range r.Deps {
		if o := f.objects[d]; o != nil && o.state == removed {
			f.remove(r, fmt.Sprintf("it depends on objref %d of %s, removed", d, o))
			return nil
		}
	}
	if collectible(r) {
		return f.hold(r)
	}
	closure := f.closure(r.Deps)
	var doomed []*object
	for _, o := range closure {
		if o.doomed() {
			doomed = append(doomed, o)
		}
	}
	if len(doomed) > 0 {
		for _, o := range doomed {
			f.kill(o, fmt.Sprintf("its fds were dropped, and record %d (%s) depends on it", r.Index, r.Type))
		}
		f.remove(r, fmt.Sprintf("it depends on %s, removed with its dropped fds", doomed[0]))
		return nil
	}
	for _, o := range closure {
		if err := f.emit(o, r); err != nil {
			return err
		}
	}
	return f.copy(r)
}

// copy writes a record as read, its payload streaming through.
func (f *filter) copy(r *ckpt.Record) error {
	if err := f.w.CopyRecord(r, nil, nil); err != nil {
		var ce *ckpt.CorruptError
		if errors.As(err, &ce) {
			return err
		}
		return recordError(r, fmt.Errorf("writing it: %w", err))
	}
	f.outRecords++
	f.outBytes += r.PayloadLen
	if r.Objref != 0 && len(f.rules) > 0 {
		f.objects[r.Objref] = &object{ref: r.Objref, index: r.Index, offset: r.Offset, typ: r.Type, state: emitted}
	}
	return nil
}

// remove leaves a record out; an object it defines is gone for its
// dependents too.
func (f *filter) remove(r *ckpt.Record, why string) {
	f.log.Debug("removing a record", "record", r.Index, "type", r.Type.String(), "offset", r.Offset, "why", why)
	if r.Objref != 0 {
		f.objects[r.Objref] = &object{ref: r.Objref, index: r.Index, offset: r.Offset, typ: r.Type, state: removed, why: why}
	}
}

// hold keeps an object record back until something surviving needs it.
func (f *filter) hold(r *ckpt.Record) error {
	o := &object{ref: r.Objref, index: r.Index, offset: r.Offset, typ: r.Type, state: held,
		deps: slices.Clone(r.Deps), meta: bytes.Clone(r.Meta)}
	if r.PayloadLen > 0 {
		off, err := f.spool.put(r.Payload(), r.PayloadLen)
		if err != nil {
			var ce *ckpt.CorruptError
			if errors.As(err, &ce) {
				return err
			}
			return recordError(r, fmt.Errorf("holding its payload: %w", err))
		}
		o.spooled, o.payloadOff, o.payloadLen = true, off, r.PayloadLen
	}
	f.objects[r.Objref] = o
	if f.nHeld*2 < len(f.held) {
		// Forget the objects no longer held, now that nothing iterates.
		f.held = slices.DeleteFunc(f.held, func(h *object) bool { return h.state != held })
	}
	f.held = append(f.held, o)
	f.nHeld++
	return nil
}

// closure returns the held objects among deps and, transitively, among
// theirs, in input order: the order in which they can be written.
func (f *filter) closure(deps []ckpt.Objref) []*object {
	var out []*object
	seen := map[*object]bool{}
	stack := slices.Clone(deps)
	for len(stack) > 0 {
		ref := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		o := f.objects[ref]
		if o == nil || o.state != held || seen[o] {
			continue
		}
		seen[o] = true
		out = append(out, o)
		stack = append(stack, o.deps...)
	}
	slices.SortFunc(out, func(a, b *object) int { return a.index - b.index })
	return out
}

// emit writes a held object just before dependent, the record that needs it.
func (f *filter) emit(o *object, dependent *ckpt.Record) error {
	var fill func(io.Writer) error
	if o.spooled {
		fill = func(w io.Writer) error {
			_, err := io.Copy(w, f.spool.reader(o.payloadOff, o.payloadLen))
			return err
		}
	}
	if err := f.w.WriteWithPayload(o.typ, o.ref, o.deps, json.RawMessage(o.meta), o.payloadLen, fill); err != nil {
		return fmt.Errorf("%s: writing it: %w", o, err)
	}
	f.outRecords++
	f.outBytes += o.payloadLen
	o.why = fmt.Sprintf("record %d (%s)", dependent.Index, dependent.Type)
	return f.unhold(o, emitted)
}

// kill removes a held object and, transitively, the held objects that
// depend on it.
func (f *filter) kill(o *object, why string) {
	o.why = why
	f.log.Debug("removing a record", "record", o.index, "type", o.typ.String(), "offset", o.offset, "why", why)
	_ = f.unhold(o, removed)
	for changed := true; changed; {
		changed = false
		for _, h := range f.held {
			if h.state != held {
				continue
			}
			for _, d := range h.deps {
				if dep := f.objects[d]; dep != nil && dep.state == removed {
					h.why = fmt.Sprintf("it depends on objref %d of %s, removed", d, dep)
					f.log.Debug("removing a record", "record", h.index, "type", h.typ.String(), "offset", h.offset, "why", h.why)
					_ = f.unhold(h, removed)
					changed = true
					break
				}
			}
		}
	}
}

// unhold ends an object's wait, freeing its metadata and payload.
func (f *filter) unhold(o *object, to objState) error {
	o.state = to
	o.meta, o.deps = nil, nil
	f.nHeld--
	return f.unspool(o)
}

func (f *filter) unspool(o *object) error {
	if !o.spooled {
		return nil
	}
	o.spooled, o.payloadLen = false, 0
	if err := f.spool.release(); err != nil {
		return err
	}
	return nil
}

// finish checks that every rule matched and discards what is still held.
func (f *filter) finish() error {
	var errs []error
	for _, rs := range f.rules {
		if !rs.matched {
			errs = append(errs, &RuleError{Rule: rs.Rule, Pid: rs.pid, Err: f.noMatch(rs)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, o := range f.held {
		if o.state == held {
			f.log.Debug("removing a record", "record", o.index, "type", o.typ.String(), "offset", o.offset, "why", "no surviving record depends on it")
			o.state = removed
		}
	}
	f.held, f.nHeld = nil, 0
	for _, rs := range f.rules {
		r := rs.Rule
		r.Pid = rs.pid
		if r.Action == Drop {
			f.rep.Dropped = append(f.rep.Dropped, r)
		} else {
			f.rep.Replaced = append(f.rep.Replaced, r)
		}
	}
	return nil
}

func (f *filter) noMatch(rs *ruleState) error {
	msg := "the image has no such fd"
	switch {
	case !f.treeSeen && rs.Pid == 0:
		msg = "the image has no task tree, so no root process"
	case f.treeSeen && !f.pids[rs.pid]:
		msg = "the image has no such process"
	}
	return &detailError{msg, ErrNoMatch}
}

// prefixRecorder keeps the first bytes read from the input: the original
// preamble and header record, to compare with their re-encoding.
type prefixRecorder struct {
	r     io.Reader
	buf   []byte
	limit int
}

func (p *prefixRecorder) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if keep := min(n, p.limit-len(p.buf)); keep > 0 {
		p.buf = append(p.buf, b[:keep]...)
	}
	return n, err
}

// stop ends recording and returns the first n bytes, or nil if they were
// not all kept.
func (p *prefixRecorder) stop(n int64) []byte {
	p.limit = 0
	b := p.buf
	p.buf = nil
	if int64(len(b)) < n {
		return nil
	}
	return b[:n]
}

// headerCapture holds what the writer writes until flush, then passes
// writes through.
type headerCapture struct {
	w       io.Writer
	buf     []byte
	passing bool
}

func (h *headerCapture) Write(b []byte) (int, error) {
	if h.passing {
		return h.w.Write(b)
	}
	h.buf = append(h.buf, b...)
	return len(b), nil
}

func (h *headerCapture) flush() error {
	h.passing = true
	_, err := h.w.Write(h.buf)
	h.buf = nil
	return err
}
