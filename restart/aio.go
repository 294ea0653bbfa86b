package restart

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// An AIO ring (io_setup(2)) comes back in two steps. Its VMA record maps
// plain memory at its place, which the image's pages fill like any other;
// once they are in (finishMemory), io_setup makes a ring of the same size
// elsewhere, requests that complete at once (writes to /dev/null) bring
// the kernel's tail where the image's was, the head is set, the events are
// copied over, and mremap moves the ring onto the image's place: the
// context's id is its address, which the kernel follows. What the kernel
// keeps of a context beyond the ring (how many requests it allows) comes
// from the ring's size, as CRIU does: the size io_setup was asked for is
// not kept anywhere.

// The ring's header, struct aio_ring (see checkpoint/aio.go), and struct
// iocb.
const (
	aioRingHeaderSize = 32
	aioEventSize      = 32
	aioHeadOffset     = 8
	iocbSize          = 64
	iocbCmdPwrite     = 1
)

// mapAIORing maps memory to take the ring's pages until the ring itself
// replaces it.
func (t *task) mapAIORing(v *ckpt.VMA) error {
	if v.Flags&unix.MAP_SHARED == 0 || (v.End-v.Start) < pageSize {
		return fmt.Errorf("AIO ring %#x-%#x: not a shared mapping of at least a page", v.Start, v.End)
	}
	if _, err := t.Syscall(unix.SYS_MMAP, v.Start, v.End-v.Start, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0); err != nil {
		return fmt.Errorf("AIO ring %#x-%#x: mmap: %w", v.Start, v.End, err)
	}
	t.vmas = append(t.vmas, *v)
	return t.fillFromParent(v)
}

// restoreAIORings makes each AIO ring of the task again where its pages
// are.
func (t *task) restoreAIORings() error {
	for i := range t.vmas {
		if v := &t.vmas[i]; v.Kind == ckpt.VMAAio {
			if err := t.restoreAIORing(v); err != nil {
				return fmt.Errorf("AIO ring %#x-%#x: %w", v.Start, v.End, err)
			}
		}
	}
	return nil
}

func (t *task) restoreAIORing(v *ckpt.VMA) error {
	size := v.End - v.Start
	old := make([]byte, size)
	if _, err := t.mem.ReadAt(old, int64(v.Start)); err != nil {
		return fmt.Errorf("reading the image's ring: %w", err)
	}
	le := binary.LittleEndian
	nr, head, tail := le.Uint32(old[4:]), le.Uint32(old[8:]), le.Uint32(old[12:])
	events := (size - aioRingHeaderSize) / aioEventSize
	if uint64(nr) != events || head >= nr || tail >= nr {
		return fmt.Errorf("the image's ring header (%d events, head %d, tail %d) does not fit its %d bytes", nr, head, tail, size)
	}
	// io_setup makes max(n, 4 × CPUs) × 2 + 2 events, rounded up to fill
	// whole pages: the n that gives this ring back.
	ctx, err := t.ioSetup((events - 2) / 2)
	if err != nil {
		return err
	}
	hdr := make([]byte, aioRingHeaderSize)
	if _, err := t.mem.ReadAt(hdr, int64(ctx)); err != nil {
		return fmt.Errorf("reading the new ring: %w", err)
	}
	if got := le.Uint32(hdr[4:]); got != nr {
		_, _ = t.Syscall(unix.SYS_IO_DESTROY, ctx)
		return fmt.Errorf("io_setup made a ring of %d events, not %d (more CPUs than where it was checkpointed?)", got, nr)
	}
	if err := t.advanceAIORing(ctx, nr, head, tail); err != nil {
		_, _ = t.Syscall(unix.SYS_IO_DESTROY, ctx)
		return err
	}
	if _, err := t.mem.WriteAt(old[aioRingHeaderSize:], int64(ctx+aioRingHeaderSize)); err != nil {
		_, _ = t.Syscall(unix.SYS_IO_DESTROY, ctx)
		return fmt.Errorf("copying its events: %w", err)
	}
	// Over the memory that held the pages: mremap unmaps it.
	if _, err := t.Syscall(unix.SYS_MREMAP, ctx, size, size, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, v.Start); err != nil {
		_, _ = t.Syscall(unix.SYS_IO_DESTROY, ctx)
		return fmt.Errorf("moving the new ring from %#x: %w", ctx, err)
	}
	return nil
}

// ioSetup runs io_setup(nrEvents) in the task and returns the context.
func (t *task) ioSetup(nrEvents uint64) (uint64, error) {
	zero := make([]byte, 8)
	if err := t.remote.WriteMem(t.scratch, zero); err != nil {
		return 0, err
	}
	if _, err := t.Syscall(unix.SYS_IO_SETUP, nrEvents, t.scratch); err != nil {
		return 0, fmt.Errorf("io_setup(%d): %w", nrEvents, err)
	}
	ctx := make([]byte, 8)
	if err := t.remote.ReadMem(t.scratch, ctx); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(ctx), nil
}

// advanceAIORing brings new ring ctx, of nr events, to head and tail:
// requests that complete at once (a byte written to /dev/null) move the
// kernel's tail, which no one can set, and each batch's events are taken
// by moving the head, as io_getevents would, up to the image's head. A
// tail behind the head has gone round once more: so must the new one, or
// the kernel would count the events between them as never completed.
func (t *task) advanceAIORing(ctx uint64, nr, head, tail uint32) error {
	if head == 0 && tail == 0 {
		return nil
	}
	count := uint64(tail)
	if tail < head {
		count += uint64(nr)
	}
	fd, err := t.Open("/dev/null", unix.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open /dev/null: %w", err)
	}
	defer func() { _, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd)) }()
	// The scratch buffer holds the iocb, the byte it writes, and as many
	// pointers to the iocb as fit: a batch is at most nr-1 requests.
	iocb := make([]byte, iocbSize)
	le := binary.LittleEndian
	le.PutUint16(iocb[16:], iocbCmdPwrite)
	le.PutUint32(iocb[20:], uint32(fd))
	le.PutUint64(iocb[24:], t.scratch+iocbSize) // the byte written
	le.PutUint64(iocb[32:], 1)
	ptrs := t.scratch + 2*iocbSize
	batch := min(uint64(nr-1), (t.scratchSize-2*iocbSize)/8, count)
	if err := t.remote.WriteMem(t.scratch, iocb); err != nil {
		return err
	}
	p := make([]byte, 8*batch)
	for i := range batch {
		le.PutUint64(p[8*i:], t.scratch)
	}
	if err := t.remote.WriteMem(ptrs, p); err != nil {
		return err
	}
	h := make([]byte, 4)
	for done := uint64(0); done < count; {
		n, err := t.Syscall(unix.SYS_IO_SUBMIT, ctx, min(count-done, batch), ptrs)
		if err != nil {
			return fmt.Errorf("io_submit after %d of %d requests: %w", done, count, err)
		}
		if n == 0 {
			return fmt.Errorf("io_submit took none of the requests after %d of %d", done, count)
		}
		done += n
		// The kernel takes as many requests again as the head moves on.
		le.PutUint32(h, uint32(min(done, uint64(head))))
		if _, err := t.mem.WriteAt(h, int64(ctx+aioHeadOffset)); err != nil {
			return fmt.Errorf("moving the ring's head: %w", err)
		}
	}
	return nil
}
