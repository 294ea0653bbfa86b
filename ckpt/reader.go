package ckpt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"reflect"
)

// Record is one record as read from an image. Meta holds the undecoded
// metadata; the payload, if any, is read through Payload before the next
// call to Reader.Next (which otherwise skips it, still verifying it).
type Record struct {
	Index      int   // position in the stream; the header record is 0
	Offset     int64 // byte offset of the record header
	Type       Type
	Objref     Objref
	Deps       []Objref
	Meta       []byte
	PayloadLen int64

	payload *payloadReader
}

// PayloadOffset is the byte offset of the payload in the stream: with
// PayloadLen, where a tool can find the payload again in an image file.
func (r *Record) PayloadOffset() int64 {
	return r.Offset + recordHeaderSize + 8*int64(len(r.Deps)) + int64(len(r.Meta))
}

// Decode decodes the metadata into v.
func (r *Record) Decode(v any) error {
	if err := json.Unmarshal(r.Meta, v); err != nil {
		return fmt.Errorf("record %d (%s) at offset %d: metadata: %w", r.Index, r.Type, r.Offset, err)
	}
	if bytes.Contains(r.Meta, []byte(`"\u0000`)) {
		unescape(reflect.ValueOf(v))
	}
	return nil
}

// Payload returns the record's payload. Reading it to the end verifies its
// checksum; a mismatch is returned as a *CorruptError by the final Read.
func (r *Record) Payload() io.Reader {
	if r.payload == nil {
		return eofReader{}
	}
	return r.payload
}

// PayloadBytes reads the whole payload into memory, refusing one larger than
// max bytes so a forged length cannot exhaust memory.
func (r *Record) PayloadBytes(max int64) ([]byte, error) {
	if r.PayloadLen > max {
		return nil, fmt.Errorf("record %d (%s): payload of %d bytes exceeds the limit of %d", r.Index, r.Type, r.PayloadLen, max)
	}
	b := make([]byte, r.PayloadLen)
	if _, err := io.ReadFull(r.Payload(), b); err != nil {
		return nil, err
	}
	// Reach EOF so the checksum is checked now rather than by Next.
	if _, err := r.Payload().Read(nil); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

// Reader reads an image front to back.
type Reader struct {
	r       *bufio.Reader
	offset  int64
	index   int
	header  Header
	minor   int
	defined map[Objref]bool
	current *Record
	done    bool
	scratch [recordHeaderSize]byte
	// copyBuf moves payloads for WriteTo, one payload at a time.
	copyBuf []byte
	// goesOn says the stream may carry more after the image.
	goesOn bool
}

// StopAtTrailer makes Next end at a verified trailer without looking
// further: the stream may go on after the image (a socket carrying one
// image after another, or an answer to it), and the end of the stream
// may never come.
func (r *Reader) StopAtTrailer() { r.goesOn = true }

// NewReader reads the preamble and the header record.
func NewReader(r io.Reader) (*Reader, error) {
	cr := &Reader{r: bufio.NewReaderSize(r, 1<<16), defined: make(map[Objref]bool)}
	pre := make([]byte, preambleSize)
	if _, err := io.ReadFull(cr.r, pre); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("empty stream: %w", ErrNotImage)
		}
		return nil, cr.corrupt(-1, 0, fmt.Errorf("reading preamble: %w", unexpected(err)))
	}
	cr.offset = preambleSize
	if string(pre[:8]) != Magic {
		return nil, fmt.Errorf("bad magic %q: %w", pre[:8], ErrNotImage)
	}
	// The version first: another major version may use the reserved bytes.
	major := binary.LittleEndian.Uint16(pre[8:])
	cr.minor = int(binary.LittleEndian.Uint16(pre[10:]))
	if major != MajorVersion {
		return nil, fmt.Errorf("image format %d.%d, this reader supports %d.x: %w", major, cr.minor, MajorVersion, ErrVersion)
	}
	if reserved := binary.LittleEndian.Uint32(pre[12:]); reserved != 0 {
		return nil, cr.corrupt(-1, 0, fmt.Errorf("reserved preamble field is %#x, want 0", reserved))
	}
	rec, err := cr.Next()
	if err != nil {
		if err == io.EOF {
			err = cr.corrupt(0, 0, errors.New("no header record"))
		}
		return nil, err
	}
	if rec.Type != TypeHeader {
		return nil, cr.corrupt(rec.Index, rec.Type, errors.New("first record is not a header"))
	}
	if err := rec.Decode(&cr.header); err != nil {
		return nil, cr.corrupt(rec.Index, rec.Type, err)
	}
	return cr, nil
}

// Header is the image's header record.
func (r *Reader) Header() Header { return r.header }

// Offset is the number of bytes consumed so far; after Next returned
// io.EOF, the size of the whole image.
func (r *Reader) Offset() int64 { return r.offset }

// Version is the image's format version.
func (r *Reader) Version() (major, minor int) { return MajorVersion, r.minor }

// Next returns the next record, or io.EOF after a verified trailer. Records
// of unknown types are returned too (Type.Known reports false); callers skip
// them. Error records written by a failed checkpoint come back as errors.
func (r *Reader) Next() (*Record, error) {
	if r.done {
		return nil, io.EOF
	}
	if r.current != nil && r.current.payload != nil {
		if err := r.current.payload.drain(); err != nil {
			return nil, err
		}
	}
	r.current = nil
	start := r.offset
	if _, err := io.ReadFull(r.r, r.scratch[:]); err != nil {
		if err == io.EOF {
			return nil, r.corrupt(r.index, 0, errors.New("stream ends without a trailer (truncated image)"))
		}
		return nil, r.corrupt(r.index, 0, fmt.Errorf("reading record header: %w", unexpected(err)))
	}
	r.offset += recordHeaderSize
	var h recordHeader
	h.unmarshal(r.scratch[:])
	if reserved := binary.LittleEndian.Uint32(r.scratch[36:]); reserved != 0 {
		return nil, r.corruptAt(start, r.index, h.Type, fmt.Errorf("reserved header field is %#x, want 0", reserved))
	}
	if h.Flags&^knownFlags != 0 {
		return nil, r.corruptAt(start, r.index, h.Type, fmt.Errorf("unknown flags %#x", h.Flags))
	}
	if h.NumDeps > MaxDeps {
		return nil, r.corruptAt(start, r.index, h.Type, fmt.Errorf("%d dependencies exceed the limit of %d", h.NumDeps, MaxDeps))
	}
	if h.MetaLen > MaxMetaSize {
		return nil, r.corruptAt(start, r.index, h.Type, fmt.Errorf("metadata length %d exceeds the limit of %d", h.MetaLen, MaxMetaSize))
	}
	if h.Flags&flagPayload == 0 && h.PayloadLen != 0 {
		return nil, r.corruptAt(start, r.index, h.Type, errors.New("payload length without payload flag"))
	}
	if h.PayloadLen > 1<<62 {
		return nil, r.corruptAt(start, r.index, h.Type, fmt.Errorf("payload length %d is impossible", h.PayloadLen))
	}
	rest, err := r.readBounded(int(h.NumDeps)*8 + int(h.MetaLen))
	if err != nil {
		return nil, r.corruptAt(start, r.index, h.Type, fmt.Errorf("reading dependencies and metadata: %w", err))
	}
	depBytes, meta := rest[:h.NumDeps*8], rest[h.NumDeps*8:]
	if got := headerCRC(r.scratch[:], depBytes, meta); got != h.CRC {
		return nil, r.corruptAt(start, r.index, h.Type, fmt.Errorf("header checksum %#08x, want %#08x", got, h.CRC))
	}
	rec := &Record{Index: r.index, Offset: start, Type: h.Type, Objref: h.Objref, Meta: meta, PayloadLen: int64(h.PayloadLen)}
	if h.NumDeps > 0 {
		rec.Deps = make([]Objref, h.NumDeps)
		for i := range rec.Deps {
			rec.Deps[i] = Objref(binary.LittleEndian.Uint64(depBytes[8*i:]))
		}
	}
	for _, d := range rec.Deps {
		if !r.defined[d] {
			return nil, r.corruptAt(start, r.index, h.Type, fmt.Errorf("depends on objref %d, which no earlier record defines", d))
		}
	}
	if h.Objref != 0 {
		if r.defined[h.Objref] {
			return nil, r.corruptAt(start, r.index, h.Type, fmt.Errorf("redefines objref %d", h.Objref))
		}
		r.defined[h.Objref] = true
	}
	if h.Flags&flagPayload != 0 {
		rec.payload = &payloadReader{r: r, rec: rec, left: int64(h.PayloadLen)}
	}
	r.index++
	r.current = rec
	switch h.Type {
	case TypeTrailer:
		return nil, r.finish(rec, start)
	case TypeError:
		var e ErrorRecord
		_ = rec.Decode(&e)
		return nil, fmt.Errorf("image record %d is an error record, left by the tool that wrote the image: %s", rec.Index, e.Message)
	}
	return rec, nil
}

func (r *Reader) finish(rec *Record, start int64) error {
	var tr Trailer
	if err := rec.Decode(&tr); err != nil {
		return r.corruptAt(start, rec.Index, rec.Type, err)
	}
	if tr.Records != rec.Index || tr.Bytes != start {
		return r.corruptAt(start, rec.Index, rec.Type, fmt.Errorf("trailer counts %d records and %d bytes, the stream had %d records and %d bytes", tr.Records, tr.Bytes, rec.Index, start))
	}
	if rec.payload != nil {
		if err := rec.payload.drain(); err != nil {
			return err
		}
	}
	if !r.goesOn {
		if _, err := r.r.Peek(1); err != io.EOF {
			return r.corrupt(rec.Index+1, 0, errors.New("data after the trailer"))
		}
	}
	r.done = true
	return io.EOF
}

// readBounded reads n bytes without trusting n for the allocation: memory
// grows only as data actually arrives.
func (r *Reader) readBounded(n int) ([]byte, error) {
	const chunk = 1 << 20
	if n <= chunk {
		b := make([]byte, n)
		k, err := io.ReadFull(r.r, b)
		r.offset += int64(k)
		return b, unexpected(err)
	}
	var b []byte
	for len(b) < n {
		step := min(chunk, n-len(b))
		old := len(b)
		b = append(b, make([]byte, step)...)
		k, err := io.ReadFull(r.r, b[old:])
		r.offset += int64(k)
		if err != nil {
			return nil, unexpected(err)
		}
	}
	return b, nil
}

func (r *Reader) corrupt(index int, t Type, err error) error {
	return &CorruptError{Offset: r.offset, Record: index, Type: t, Err: err}
}

func (r *Reader) corruptAt(offset int64, index int, t Type, err error) error {
	return &CorruptError{Offset: offset, Record: index, Type: t, Err: err}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

type payloadReader struct {
	r        *Reader
	rec      *Record
	left     int64
	crc      uint32
	verified bool
	err      error
}

func (p *payloadReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.left == 0 {
		if err := p.verify(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.r.r.Read(b)
	p.r.offset += int64(n)
	p.left -= int64(n)
	p.crc = crc32.Update(p.crc, castagnoli, b[:n])
	if err != nil {
		p.err = p.r.corrupt(p.rec.Index, p.rec.Type, fmt.Errorf("reading payload: %w", unexpected(err)))
		return n, p.err
	}
	return n, nil
}

// WriteTo lets io.Copy move the payload without an intermediate buffer of
// its own choosing.
func (p *payloadReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	// One buffer for all payloads, the reader's: a fresh 256 KiB one per
	// payload made restoring a process with 20000 small areas allocate and
	// clear 5 GiB.
	if p.r.copyBuf == nil {
		p.r.copyBuf = make([]byte, 1<<18)
	}
	buf := p.r.copyBuf
	for {
		n, err := p.Read(buf)
		if n > 0 {
			k, werr := w.Write(buf[:n])
			total += int64(k)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (p *payloadReader) verify() error {
	if p.verified {
		return nil
	}
	var b [payloadCRCSize]byte
	if _, err := io.ReadFull(p.r.r, b[:]); err != nil {
		p.err = p.r.corrupt(p.rec.Index, p.rec.Type, fmt.Errorf("reading payload checksum: %w", unexpected(err)))
		return p.err
	}
	p.r.offset += payloadCRCSize
	if want := binary.LittleEndian.Uint32(b[:]); want != p.crc {
		p.err = p.r.corruptAt(p.rec.Offset, p.rec.Index, p.rec.Type, fmt.Errorf("payload checksum %#08x, want %#08x", p.crc, want))
		return p.err
	}
	p.verified = true
	return nil
}

func (p *payloadReader) drain() error {
	if _, err := io.Copy(io.Discard, p); err != nil {
		return err
	}
	return p.verify()
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
