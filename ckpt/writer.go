package ckpt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"reflect"
)

// Writer emits an image record by record. It never seeks. Close writes the
// trailer; an image without one is reported as truncated by every reader.
type Writer struct {
	w        io.Writer
	offset   int64
	records  int
	nextRef  Objref
	defined  map[Objref]bool
	closed   bool
	broken   bool // the destination failed mid-record: nothing more can be written
	scratch  [recordHeaderSize]byte
	crcBytes [payloadCRCSize]byte
	// rangeBufs are buffers WriteFileRanges reads through, kept for the
	// next payload: each is faulted in once.
	rangeBufs chan []byte
}

// NewWriter writes the preamble and the header record.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	cw := &Writer{w: w, nextRef: 1, defined: make(map[Objref]bool)}
	pre := make([]byte, preambleSize)
	copy(pre, Magic)
	binary.LittleEndian.PutUint16(pre[8:], MajorVersion)
	binary.LittleEndian.PutUint16(pre[10:], MinorVersion)
	if err := cw.write(pre); err != nil {
		return nil, err
	}
	if err := cw.Write(TypeHeader, 0, nil, &h); err != nil {
		return nil, err
	}
	return cw, nil
}

// NewObjref returns an objref not yet used in this image.
func (w *Writer) NewObjref() Objref {
	r := w.nextRef
	w.nextRef++
	return r
}

// Write emits a record without payload. meta is encoded as JSON (a
// json.RawMessage or []byte passes through as-is).
func (w *Writer) Write(t Type, objref Objref, deps []Objref, meta any) error {
	return w.WriteWithPayload(t, objref, deps, meta, 0, nil)
}

// WriteWithPayload emits a record whose payload of exactly n bytes is
// produced by fill, which writes it to the io.Writer it is given. The payload
// streams straight to the destination; nothing is buffered.
func (w *Writer) WriteWithPayload(t Type, objref Objref, deps []Objref, meta any, n int64, fill func(io.Writer) error) error {
	if n < 0 || (n > 0 && fill == nil) {
		return fmt.Errorf("%s record: payload of %d bytes without a source", t, n)
	}
	if err := w.begin(t, objref, deps, meta, n); err != nil {
		return err
	}
	if n > 0 {
		pw := &payloadWriter{w: w, left: n}
		err := fill(pw)
		if err == nil && pw.left != 0 {
			err = fmt.Errorf("%d of %d bytes written", n-pw.left, n)
		}
		if err != nil {
			// Finish the record with zeros so the stream stays readable and
			// an error record written by Abort after it is what readers
			// report, not a truncation.
			if pw.werr == nil {
				if perr := pw.pad(); perr == nil {
					binary.LittleEndian.PutUint32(w.crcBytes[:], pw.crc)
					_ = w.write(w.crcBytes[:])
				}
			}
			if pw.werr != nil {
				w.broken = true
			}
			return fmt.Errorf("%s record payload: %w", t, err)
		}
		binary.LittleEndian.PutUint32(w.crcBytes[:], pw.crc)
		if err := w.write(w.crcBytes[:]); err != nil {
			return err
		}
	}
	return nil
}

// Deferrer is a destination that can hold a place for bytes produced later,
// such as an image kept in memory: Defer reserves n bytes at the current
// position and the destination calls fill, once, when it wants them.
type Deferrer interface {
	io.Writer
	Defer(n int64, fill func(io.Writer) error)
}

// WriteDeferredPayload is WriteWithPayload for a payload that may be
// produced later. If the destination is a Deferrer, the record's header is
// written now and fill runs when the destination asks (the checksum is
// computed then); otherwise fill runs now. Whatever fill reads must stay
// unchanged until it has run. This lets a checkpoint stop copying pages it
// copied before a freeze while the process is frozen.
func (w *Writer) WriteDeferredPayload(t Type, objref Objref, deps []Objref, meta any, n int64, fill func(io.Writer) error) error {
	d, ok := w.w.(Deferrer)
	if !ok || n <= 0 || fill == nil {
		return w.WriteWithPayload(t, objref, deps, meta, n, fill)
	}
	if err := w.begin(t, objref, deps, meta, n); err != nil {
		return err
	}
	d.Defer(n+payloadCRCSize, func(dst io.Writer) error {
		pw := &payloadWriter{w: &Writer{w: dst}, left: n}
		if err := fill(pw); err != nil {
			return fmt.Errorf("%s record payload: %w", t, err)
		}
		if pw.left != 0 {
			return fmt.Errorf("%s record payload: %d of %d bytes written", t, n-pw.left, n)
		}
		var crc [payloadCRCSize]byte
		binary.LittleEndian.PutUint32(crc[:], pw.crc)
		_, err := dst.Write(crc[:])
		return err
	})
	w.offset += n + payloadCRCSize
	return nil
}

// A RangeTaker is a destination that takes a payload held in a file by
// reference rather than as bytes, such as an image kept in memory whose
// pages are in a memory file crsub never maps: TakeRange stands for n
// bytes at off of f, which must stay unchanged while the destination
// holds them.
type RangeTaker interface {
	io.Writer
	TakeRange(f *os.File, off, n int64)
}

// PayloadChecksum continues crc, a payload's checksum so far, over b: the
// checksum WriteFileRange is given is this over the whole payload,
// starting from 0.
func PayloadChecksum(crc uint32, b []byte) uint32 {
	return crc32.Update(crc, castagnoli, b)
}

// WriteFileRange is WriteWithPayload for a payload of n bytes at off of f,
// whose checksum (PayloadChecksum) the caller computed as it made them. A
// RangeTaker destination takes the range as it is; any other is given
// the bytes (through user memory), their checksum checked on the way.
func (w *Writer) WriteFileRange(t Type, objref Objref, deps []Objref, meta any, f *os.File, off, n int64, crc uint32) error {
	rt, ok := w.w.(RangeTaker)
	if !ok || n <= 0 {
		err := w.WriteWithPayload(t, objref, deps, meta, n, func(pw io.Writer) error {
			_, err := io.Copy(pw, io.NewSectionReader(f, off, n))
			if err == nil && pw.(*payloadWriter).crc != crc {
				err = fmt.Errorf("the checksum of %d bytes at %d of %s is %#x, not %#x as computed", n, off, f.Name(), pw.(*payloadWriter).crc, crc)
			}
			return err
		})
		return err
	}
	if err := w.begin(t, objref, deps, meta, n); err != nil {
		return err
	}
	rt.TakeRange(f, off, n)
	w.offset += n
	binary.LittleEndian.PutUint32(w.crcBytes[:], crc)
	return w.write(w.crcBytes[:])
}

// WriteChecksummed is WriteWithPayload for a payload held whole in data,
// whose checksum (PayloadChecksum) the caller computed as it made it: a
// writer that is the slow side of a pipeline is spared computing it.
func (w *Writer) WriteChecksummed(t Type, objref Objref, deps []Objref, meta any, data []byte, crc uint32) error {
	if len(data) == 0 {
		return w.Write(t, objref, deps, meta)
	}
	if err := w.begin(t, objref, deps, meta, int64(len(data))); err != nil {
		return err
	}
	if err := w.write(data); err != nil {
		w.broken = true
		return fmt.Errorf("%s record payload: %w", t, err)
	}
	binary.LittleEndian.PutUint32(w.crcBytes[:], crc)
	return w.write(w.crcBytes[:])
}

// A FileRange is N bytes at Off of a file.
type FileRange struct{ Off, N int64 }

// rangeBuf is the size of the buffers WriteFileRanges reads through.
const rangeBuf = 1 << 20

// WriteFileRanges is WriteDeferredPayload for a payload that is ranges of
// f one after another, such as pages kept in a memory file: a deferring
// destination that takes ranges (a RangeTaker) is given them by reference
// when it asks for the payload, their checksum computed then, reading them
// through a buffer; any other is given the bytes. f must stay open and the
// ranges unchanged until the payload is produced.
func (w *Writer) WriteFileRanges(t Type, objref Objref, deps []Objref, meta any, f *os.File, ranges []FileRange) error {
	var n int64
	for _, r := range ranges {
		n += r.N
	}
	if w.rangeBufs == nil {
		w.rangeBufs = make(chan []byte, 8)
	}
	bufs := w.rangeBufs
	return w.WriteDeferredPayload(t, objref, deps, meta, n, func(pw io.Writer) error {
		var buf []byte
		select {
		case buf = <-bufs:
		default:
			buf = make([]byte, rangeBuf)
		}
		defer func() {
			select {
			case bufs <- buf:
			default:
			}
		}()
		p := pw.(*payloadWriter)
		rt, byRef := p.w.w.(RangeTaker)
		for _, r := range ranges {
			for at := r.Off; at < r.Off+r.N; {
				k, err := f.ReadAt(buf[:min(int64(len(buf)), r.Off+r.N-at)], at)
				if err != nil {
					return fmt.Errorf("%d bytes at %d of %s: %w", r.N, r.Off, f.Name(), err)
				}
				if byRef {
					err = p.account(buf[:k])
				} else {
					_, err = p.Write(buf[:k])
				}
				if err != nil {
					return err
				}
				at += int64(k)
			}
			if byRef {
				rt.TakeRange(f, r.Off, r.N)
			}
		}
		return nil
	})
}

// CopyRecord re-emits a record read from another image, with its metadata
// replaced by meta when meta is not nil. The payload is copied with io.Copy
// (its checksum verified on the way by the reader) without being decoded.
func (w *Writer) CopyRecord(rec *Record, deps []Objref, meta []byte) error {
	if meta == nil {
		meta = rec.Meta
	}
	if deps == nil {
		deps = rec.Deps
	}
	if rec.PayloadLen == 0 {
		return w.WriteWithPayload(rec.Type, rec.Objref, deps, json.RawMessage(meta), 0, nil)
	}
	return w.WriteWithPayload(rec.Type, rec.Objref, deps, json.RawMessage(meta), rec.PayloadLen, func(pw io.Writer) error {
		_, err := io.Copy(pw, rec.Payload())
		return err
	})
}

// begin writes the header of a record with meta and a payload of n bytes
// (none if 0).
func (w *Writer) begin(t Type, objref Objref, deps []Objref, meta any, n int64) error {
	if w.closed {
		return errors.New("write after close")
	}
	metaBytes, err := encodeMeta(meta)
	if err != nil {
		return fmt.Errorf("encoding %s record: %w", t, err)
	}
	return w.writeHeader(t, objref, deps, metaBytes, n > 0, uint64(n))
}

func (w *Writer) writeHeader(t Type, objref Objref, deps []Objref, meta []byte, hasPayload bool, payloadLen uint64) error {
	if len(meta) > MaxMetaSize {
		return fmt.Errorf("%s record: metadata of %d bytes exceeds %d", t, len(meta), MaxMetaSize)
	}
	if len(deps) > MaxDeps {
		return fmt.Errorf("%s record: %d dependencies exceed %d", t, len(deps), MaxDeps)
	}
	for _, d := range deps {
		if !w.defined[d] {
			return fmt.Errorf("%s record depends on objref %d, which no earlier record defines", t, d)
		}
	}
	if objref != 0 {
		if w.defined[objref] {
			return fmt.Errorf("%s record redefines objref %d", t, objref)
		}
		w.defined[objref] = true
		if objref >= w.nextRef {
			w.nextRef = objref + 1
		}
	}
	h := recordHeader{Type: t, Objref: objref, NumDeps: uint32(len(deps)), MetaLen: uint32(len(meta)), PayloadLen: payloadLen}
	if hasPayload {
		h.Flags |= flagPayload
	}
	h.marshal(w.scratch[:])
	depBytes := encodeDeps(deps)
	h.CRC = headerCRC(w.scratch[:], depBytes, meta)
	h.marshal(w.scratch[:])
	for _, b := range [][]byte{w.scratch[:], depBytes, meta} {
		if err := w.write(b); err != nil {
			return err
		}
	}
	w.records++
	return nil
}

// Close writes the trailer. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	tr := Trailer{Records: w.records, Bytes: w.offset}
	if err := w.Write(TypeTrailer, 0, nil, &tr); err != nil {
		return err
	}
	w.closed = true
	return nil
}

// Abort records why the writer gave up, so a reader reports the cause rather
// than a bare truncation. The image stays invalid.
func (w *Writer) Abort(cause error) error {
	if w.closed || w.broken {
		return nil
	}
	err := w.Write(TypeError, 0, nil, &ErrorRecord{Message: cause.Error()})
	w.closed = true
	return err
}

// Offset is the number of bytes written so far.
func (w *Writer) Offset() int64 { return w.offset }

func (w *Writer) write(b []byte) error {
	n, err := w.w.Write(b)
	w.offset += int64(n)
	if err != nil {
		return fmt.Errorf("writing image at offset %d: %w", w.offset, err)
	}
	return nil
}

type payloadWriter struct {
	w    *Writer
	left int64
	crc  uint32
	werr error // the destination's own failure
}

func (p *payloadWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > p.left {
		return 0, fmt.Errorf("payload longer than the %d bytes announced", p.left)
	}
	if err := p.w.write(b); err != nil {
		p.werr = err
		return 0, err
	}
	p.crc = crc32.Update(p.crc, castagnoli, b)
	p.left -= int64(len(b))
	return len(b), nil
}

// account counts b as written, for a destination given b by reference
// (TakeRange) rather than as bytes: the checksum covers it.
func (p *payloadWriter) account(b []byte) error {
	if int64(len(b)) > p.left {
		return fmt.Errorf("payload longer than the %d bytes announced", p.left)
	}
	p.crc = crc32.Update(p.crc, castagnoli, b)
	p.left -= int64(len(b))
	p.w.offset += int64(len(b))
	return nil
}

// PrepareEncoding readies the encoding of the types of metas (zero values
// do): the first record of a type builds its encoder by reflection, 0.1-0.9
// ms a type here, which a writer in a hurry later (a checkpoint, while its
// tree is frozen) pays ahead this way.
func PrepareEncoding(metas ...any) {
	for _, m := range metas {
		_, _ = encodeMeta(m)
	}
}

func encodeMeta(meta any) ([]byte, error) {
	switch m := meta.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return m, nil
	case []byte:
		return m, nil
	}
	if e, changed := escaped(reflect.ValueOf(meta)); changed {
		meta = e.Interface()
	}
	return json.Marshal(meta)
}

// pad fills the rest of the announced payload with zeros.
func (p *payloadWriter) pad() error {
	zeros := make([]byte, min(p.left, 1<<16))
	for p.left > 0 {
		if _, err := p.Write(zeros[:min(p.left, int64(len(zeros)))]); err != nil {
			return err
		}
	}
	return nil
}
