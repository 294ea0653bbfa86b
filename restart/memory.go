package restart

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/remote"
	"github.com/crsub/crsub/internal/sys"
)

const (
	scratchSize = 64 << 10
	// pageBufSize bounds how much of a pages record is in memory at once.
	pageBufSize = 4 << 20
)

var pageSize = uint64(os.Getpagesize())

type span struct{ start, end uint64 }

// findFree returns the lowest address at or above 16 MiB where size bytes
// overlap none of the spans.
func findFree(size uint64, busy []span) (uint64, error) {
	sort.Slice(busy, func(i, j int) bool { return busy[i].start < busy[j].start })
	addr := uint64(16 << 20)
	for _, b := range busy {
		if b.end <= addr {
			continue
		}
		if b.start >= addr+size {
			break
		}
		addr = (b.end + pageSize - 1) &^ (pageSize - 1)
	}
	if addr+size > 1<<47 {
		return 0, fmt.Errorf("no %d free bytes in the address space", size)
	}
	return addr, nil
}

// prepareMemory empties the new task's address space (a copy of this
// process) but for a code page, a scratch buffer and the vDSO, and moves
// the vDSO where the image had it.
func (t *task) prepareMemory(mm *ckpt.MM) error {
	t.mm = mm
	stubMaps, err := procfs.ReadMaps(t.host)
	if err != nil {
		return err
	}
	var busy []span
	for _, a := range mm.Layout {
		busy = append(busy, span{a.Start, a.End})
	}
	for _, m := range stubMaps {
		busy = append(busy, span{m.Start, m.End})
	}
	base, err := findFree(pageSize+scratchSize, busy)
	if err != nil {
		return err
	}
	if t.remote, err = remote.New(t.tracee); err != nil {
		return fmt.Errorf("running system calls in the new task: %w", err)
	}
	if _, err := t.remote.MapPage(base); err != nil {
		return fmt.Errorf("mapping a code page at %#x: %w", base, err)
	}
	t.codePage = base
	// A C library in this process registered rseq for the thread the new
	// task was copied from; the kernel would write to that area, about to
	// be unmapped, on every return to user mode (its SIGSEGV would be the
	// only sign). A kernel without rseq knows no such ptrace request (EIO).
	rs, err := t.tracee.Rseq()
	switch {
	case errors.Is(err, unix.EIO):
	case err != nil:
		return fmt.Errorf("the inherited rseq area: %w", err)
	case rs.Address != 0:
		const rseqFlagUnregister = 1
		if _, err := t.Syscall(unix.SYS_RSEQ, rs.Address, uint64(rs.Size), rseqFlagUnregister, uint64(rs.Signature)); err != nil {
			return fmt.Errorf("unregistering the inherited rseq area: %w", err)
		}
	}
	t.scratch, t.scratchSize = base+pageSize, scratchSize
	if _, err := t.Syscall(unix.SYS_MMAP, t.scratch, scratchSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0); err != nil {
		return fmt.Errorf("mapping the scratch buffer at %#x: %w", t.scratch, err)
	}
	// A forked child keeps its parent's private mappings that its own
	// VMAs repeat (inherit.go).
	var keep []span
	if t.parent != nil {
		t.inheritable = keepFromParent(mm.Layout, t.parent.vmas)
		keep = keptSpans(t.inheritable)
	}
	for _, m := range stubMaps {
		switch m.Kind {
		case procfs.KindVdso, procfs.KindVvar, procfs.KindVvarVclock, procfs.KindVsyscall:
			continue
		}
		for _, u := range outside(span{m.Start, m.End}, keep) {
			if _, err := t.Syscall(unix.SYS_MUNMAP, u.start, u.end-u.start); err != nil {
				return fmt.Errorf("unmapping %#x-%#x of the new task: %w", u.start, u.end, err)
			}
		}
	}
	if err := t.placeVdso(mm, stubMaps, busy); err != nil {
		return err
	}
	// The fds of a table shared with the parent are the parent's, placed
	// already; the parent's finish closes its pidfd of crsub there.
	if !t.sharesFdTable {
		if err := t.closeInheritedFds(); err != nil {
			return err
		}
		if t.callerPidfd >= 0 {
			t.Hold(&t.callerPidfd)
		}
	}
	if err := t.joinSession(); err != nil {
		return err
	}
	t.mem, err = os.OpenFile(fmt.Sprintf("/proc/%d/mem", t.host), os.O_RDWR, 0)
	return err
}

func isVdsoKind(kind string) bool {
	return kind == ckpt.VMAVdso || kind == ckpt.VMAVvar || kind == ckpt.VMAVvarVclock
}

// placeVdso moves this kernel's vDSO areas ([vvar], [vvar_vclock], [vdso])
// to the image's addresses, keeping their relative layout: code in the
// restored process calls into the vDSO at the addresses it had.
func (t *task) placeVdso(mm *ckpt.MM, stubMaps []procfs.Mapping, busy []span) error {
	var cur []span
	for _, m := range stubMaps {
		if m.Kind == procfs.KindVdso || m.Kind == procfs.KindVvar || m.Kind == procfs.KindVvarVclock {
			cur = append(cur, span{m.Start, m.End})
		}
	}
	var want []span
	for _, a := range mm.Layout {
		if isVdsoKind(a.Kind) {
			want = append(want, span{a.Start, a.End})
		}
	}
	if len(want) == 0 {
		for _, c := range cur {
			if _, err := t.Syscall(unix.SYS_MUNMAP, c.start, c.end-c.start); err != nil {
				return fmt.Errorf("unmapping the vDSO: %w", err)
			}
		}
		return nil
	}
	if len(cur) != len(want) {
		return fmt.Errorf("the image has %d vDSO areas, this kernel %d", len(want), len(cur))
	}
	for i := range cur {
		if cur[i].end-cur[i].start != want[i].end-want[i].start || cur[i].start-cur[0].start != want[i].start-want[0].start {
			return fmt.Errorf("the image's vDSO layout differs from this kernel's (area %d: %#x bytes at +%#x, here %#x bytes at +%#x)", i,
				want[i].end-want[i].start, want[i].start-want[0].start, cur[i].end-cur[i].start, cur[i].start-cur[0].start)
		}
	}
	from, to := cur[0].start, want[0].start
	size := cur[len(cur)-1].end - from
	if from == to {
		return nil
	}
	move := func(from, to uint64) error {
		for _, c := range cur {
			off := c.start - cur[0].start
			if _, err := t.Syscall(unix.SYS_MREMAP, from+off, c.end-c.start, c.end-c.start, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, to+off); err != nil {
				return fmt.Errorf("moving the vDSO area at %#x to %#x: %w", from+off, to+off, err)
			}
		}
		return nil
	}
	if from < to+size && to < from+size {
		// Overlapping ranges: go through a free place first.
		tmp, err := findFree(size, append(busy, span{t.codePage, t.scratch + t.scratchSize}))
		if err != nil {
			return err
		}
		if err := move(from, tmp); err != nil {
			return err
		}
		from = tmp
	}
	return move(from, to)
}

// mapVMA creates one memory area at its address. Areas that receive pages
// are mapped writable first and get their own protection in finishMemory.
func (t *task) mapVMA(v *ckpt.VMA) error {
	if t.mm == nil {
		return fmt.Errorf("VMA before its mm record")
	}
	switch {
	case isVdsoKind(v.Kind):
		return nil // placed with the layout
	case v.Kind == ckpt.VMAVsyscall:
		return nil // fixed by the kernel
	}
	if v.End <= v.Start || v.Start%pageSize != 0 || v.End%pageSize != 0 {
		return fmt.Errorf("bad VMA bounds %#x-%#x", v.Start, v.End)
	}
	length := v.End - v.Start
	for _, g := range v.Guards {
		if g.Count == 0 || g.Index+g.Count > length/pageSize || g.Index+g.Count < g.Index {
			return fmt.Errorf("VMA %#x-%#x: guard pages %d+%d lie outside it", v.Start, v.End, g.Index, g.Count)
		}
	}
	if v.Kind == ckpt.VMAAio {
		return t.mapAIORing(v)
	}
	if kept, err := t.adopt(v); err != nil || kept {
		if err != nil {
			return err
		}
		return t.fillFromParent(v)
	}
	if v.PacketSocket != 0 {
		// Mapped on the socket when its file record, which follows, is
		// restored.
		return files.ReservePacketRing(t.s.files, t, v)
	}
	sharedFile := v.File != nil && v.Flags&unix.MAP_SHARED != 0
	prot := uint64(v.Prot)
	if !sharedFile {
		prot |= unix.PROT_READ | unix.PROT_WRITE
	}
	flags := uint64(v.Flags&(unix.MAP_SHARED|unix.MAP_PRIVATE|unix.MAP_DROPPABLE|unix.MAP_GROWSDOWN|unix.MAP_NORESERVE)) | unix.MAP_FIXED_NOREPLACE
	if v.Memfd == 0 && v.Shmem != 0 && v.File == nil {
		if ref, ok := files.SharedAnonObject(t.s.files, v.Shmem); ok {
			// A private mapping or an fd of this shared anonymous
			// memory restored it already: the shared mappings map that.
			v.Memfd = ref
		}
	}
	if seg := t.s.files.SysVShm[v.Memfd]; v.Memfd != 0 && seg != nil {
		return t.attachSysVShm(v, seg)
	}
	if v.Memfd != 0 {
		// The memfd object record came first; map it through a new fd on it.
		oflags := unix.O_RDONLY
		if v.Flags&unix.MAP_SHARED != 0 && (v.Prot&unix.PROT_WRITE != 0 || v.FileWrite) {
			oflags = unix.O_RDWR
		}
		if v.Flags&unix.MAP_SHARED != 0 {
			prot = uint64(v.Prot)
		}
		fd, err := files.MemfdIn(t.s.files, t, v.Memfd, oflags)
		if err != nil {
			return fmt.Errorf("memfd mapping: %w", err)
		}
		_, err = t.Syscall(unix.SYS_MMAP, v.Start, length, prot, flags, uint64(fd), v.Pgoff)
		if _, cerr := t.Syscall(unix.SYS_CLOSE, uint64(fd)); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("mmap of memfd: %w", err)
		}
		t.vmas = append(t.vmas, *v)
		return nil
	}
	if v.Shmem != 0 && v.File == nil {
		if owner, ok := t.s.shmem[v.Shmem]; ok {
			return t.mapShared(v, owner, prot, flags)
		}
		// The first mapping of a shared object creates it; its pages
		// follow this record.
		if v.ShmemSize != 0 {
			return t.createShmem(v, prot, flags)
		}
		if v.Pgoff != 0 {
			return fmt.Errorf("shared memory object first mapped at offset %#x, in an image that does not give its size", v.Pgoff)
		}
		t.s.shmem[v.Shmem] = shmemOwner{pid: t.host, start: v.Start, end: v.End}
	}
	if v.File == nil {
		if _, err := t.Syscall(unix.SYS_MMAP, v.Start, length, prot, flags|unix.MAP_ANONYMOUS, ^uint64(0), 0); err != nil {
			return fmt.Errorf("mmap: %w", err)
		}
		t.vmas = append(t.vmas, *v)
		return t.fillFromParent(v)
	}
	if err := t.checkIdentity(v.File, "mapped file"); err != nil {
		return err
	}
	oflags := unix.O_RDONLY
	if sharedFile && (v.Prot&unix.PROT_WRITE != 0 || v.FileWrite) {
		oflags = unix.O_RDWR
	}
	if err := t.mmapFile(v.File.Path, oflags, v, prot, flags, t.opener(v.File)); err != nil {
		return err
	}
	t.vmas = append(t.vmas, *v)
	if sharedFile {
		return nil
	}
	return t.fillFromParent(v)
}

// fillFromParent writes the pages an incremental image did not store
// because they had not changed: the parent chain's. The image's own pages,
// which follow, overwrite what changed. A shared anonymous object is
// always stored whole, so it takes nothing from the chain.
func (t *task) fillFromParent(v *ckpt.VMA) error {
	ix := t.s.parent
	if ix == nil || v.Shmem != 0 {
		return nil
	}
	if t.s.pageBuf == nil {
		t.s.pageBuf = make([]byte, pageBufSize)
	}
	buf := t.s.pageBuf
	addrs := ix.Range(t.pid, v.Start, v.End)
	for len(addrs) > 0 {
		// One run of consecutive pages, at most a buffer's worth.
		n := 1
		for n < len(addrs) && addrs[n] == addrs[0]+uint64(n)*pageSize && uint64(n+1)*pageSize <= uint64(len(buf)) {
			n++
		}
		for i := 0; i < n; i++ {
			if err := ix.ReadPage(t.pid, addrs[i], buf[uint64(i)*pageSize:]); err != nil {
				return err
			}
		}
		if err := t.putPages(v, addrs[0], buf[:uint64(n)*pageSize]); err != nil {
			return fmt.Errorf("pages from the parent image at %#x: %w", addrs[0], err)
		}
		addrs = addrs[n:]
	}
	return nil
}

// shmExec is SHM_EXEC, which x/sys lacks.
const shmExec = 0o100000

// sysvAttachment is one shmat of a segment, by the address it had.
type sysvAttachment struct {
	id   int
	base uint64
}

// attachSysVShm attaches a System V segment where v was. shmat maps the
// whole segment from its start; an area that is a part of an attachment (an
// mprotect split it) is moved out of one attachment made whole at a free
// place, which its other parts come out of too, so that they are one
// attachment again (shmdt of its start detaches them all); what is left of
// it is detached once every area is mapped (detachSysVLeftovers). The
// attachment is writable if it was (FileWrite), whatever v.Prot is now.
func (t *task) attachSysVShm(v *ckpt.VMA, seg *files.RestoredSysVShm) error {
	if v.Flags&unix.MAP_SHARED == 0 {
		return fmt.Errorf("System V segment %d mapped privately: not supported", seg.ID)
	}
	length := v.End - v.Start
	size := (seg.Size + pageSize - 1) &^ (pageSize - 1)
	if v.Pgoff%pageSize != 0 || v.Pgoff+length > size || v.Pgoff+length < v.Pgoff || v.Start < v.Pgoff {
		return fmt.Errorf("System V segment %d of %#x bytes: %#x bytes at offset %#x lie outside it", seg.ID, seg.Size, length, v.Pgoff)
	}
	var flags uint64
	if v.Prot&unix.PROT_WRITE == 0 && !v.FileWrite {
		flags |= unix.SHM_RDONLY
	}
	if v.Prot&unix.PROT_EXEC != 0 {
		flags |= shmExec
	}
	if v.Pgoff == 0 && length == size {
		if _, err := t.Syscall(unix.SYS_SHMAT, uint64(seg.ID), v.Start, flags); err != nil {
			return fmt.Errorf("shmat of System V segment %d at %#x: %w", seg.ID, v.Start, err)
		}
	} else if err := t.moveSysVPart(v, seg.ID, size, flags); err != nil {
		return err
	}
	if seg.Remove {
		// Attached now, it lives on until detached, as it did. Removed by
		// the task: the segment is in its IPC namespace.
		if _, err := t.Syscall(unix.SYS_SHMCTL, uint64(seg.ID), unix.IPC_RMID, 0); err != nil {
			return fmt.Errorf("removing System V segment %d again: %w", seg.ID, err)
		}
		seg.Remove = false
	}
	t.vmas = append(t.vmas, *v)
	return nil
}

// moveSysVPart moves v's part of its attachment of segment id (size bytes
// mapped) to v, attaching the segment whole at a free place first if no
// part of that attachment was moved yet.
func (t *task) moveSysVPart(v *ckpt.VMA, id int, size, flags uint64) error {
	key := sysvAttachment{id: id, base: v.Start - v.Pgoff}
	whole, ok := t.sysvParts[key]
	if !ok {
		busy := []span{{t.codePage, t.scratch + t.scratchSize}}
		for _, a := range t.mm.Layout {
			busy = append(busy, span{a.Start, a.End})
		}
		for _, other := range t.sysvParts {
			busy = append(busy, other)
		}
		at, err := findFree(size, busy)
		if err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_SHMAT, uint64(id), at, flags); err != nil {
			return fmt.Errorf("shmat of System V segment %d at %#x: %w", id, at, err)
		}
		if t.sysvParts == nil {
			t.sysvParts = map[sysvAttachment]span{}
		}
		whole = span{at, at + size}
		t.sysvParts[key] = whole
	}
	at := whole.start
	length := v.End - v.Start
	if _, err := t.Syscall(unix.SYS_MREMAP, at+v.Pgoff, length, length, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, v.Start); err != nil {
		return fmt.Errorf("moving the part of System V segment %d at %#x to %#x: %w", id, v.Pgoff, v.Start, err)
	}
	return nil
}

// detachSysVLeftovers detaches what is left of the attachments the parts
// of System V segments were moved out of (moveSysVPart).
func (t *task) detachSysVLeftovers() error {
	for key, whole := range t.sysvParts {
		if _, err := t.Syscall(unix.SYS_MUNMAP, whole.start, whole.end-whole.start); err != nil {
			return fmt.Errorf("detaching the rest of System V segment %d: %w", key.id, err)
		}
		delete(t.sysvParts, key)
	}
	return nil
}

// closeMappedFile closes the file mmapFile kept open, if any.
func (t *task) closeMappedFile() error {
	if t.mapped.fd < 0 || t.released {
		return nil
	}
	fd := t.mapped.fd
	t.mapped.fd = -1
	if _, err := t.Syscall(unix.SYS_CLOSE, uint64(fd)); err != nil {
		return fmt.Errorf("closing %s: %w", t.mapped.path, err)
	}
	return nil
}

// mmapFile maps path, opened inside the task, over v's range at v.Pgoff.
func (t *task) mmapFile(path string, oflags int, v *ckpt.VMA, prot, flags uint64, open func(string, int, uint32) (int, error)) error {
	if t.mapped.fd < 0 || t.mapped.path != path || t.mapped.oflags != oflags {
		if err := t.closeMappedFile(); err != nil {
			return err
		}
		fd, err := open(path, oflags, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		t.mapped.path, t.mapped.oflags, t.mapped.fd = path, oflags, fd
	}
	_, err := t.Syscall(unix.SYS_MMAP, v.Start, v.End-v.Start, prot, flags, uint64(t.mapped.fd), v.Pgoff)
	if err != nil {
		return fmt.Errorf("mmap of %s: %w", path, err)
	}
	return nil
}

// shmemOwner is where a shared memory object was created at restart: its
// /proc/PID/map_files entry opens the object for other mappings of it.
type shmemOwner struct {
	pid        int
	start, end uint64
}

// createShmem creates the shared memory object v is the first mapping of,
// whole (v.ShmemSize bytes), and maps v's part of it (from v.Pgoff) at v:
// the object is made where the layout leaves room, the part moved to v's
// place, and the rest unmapped. Later mappings map it from v.
func (t *task) createShmem(v *ckpt.VMA, prot, flags uint64) error {
	length := v.End - v.Start
	size := v.ShmemSize
	if size%pageSize != 0 || v.Pgoff%pageSize != 0 || v.Pgoff+length > size || v.Pgoff+length < v.Pgoff {
		return fmt.Errorf("shared memory object of %#x bytes: %#x bytes at offset %#x lie outside it", size, length, v.Pgoff)
	}
	if v.Pgoff == 0 && size == length {
		if _, err := t.Syscall(unix.SYS_MMAP, v.Start, length, prot, flags|unix.MAP_ANONYMOUS, ^uint64(0), 0); err != nil {
			return fmt.Errorf("mmap: %w", err)
		}
	} else {
		busy := []span{{t.codePage, t.scratch + t.scratchSize}}
		for _, a := range t.mm.Layout {
			busy = append(busy, span{a.Start, a.End})
		}
		tmp, err := findFree(size, busy)
		if err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_MMAP, tmp, size, prot, unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0); err != nil {
			return fmt.Errorf("mmap of the whole object (%#x bytes): %w", size, err)
		}
		if _, err := t.Syscall(unix.SYS_MREMAP, tmp+v.Pgoff, length, length, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, v.Start); err != nil {
			_, _ = t.Syscall(unix.SYS_MUNMAP, tmp, size)
			return fmt.Errorf("moving its part at %#x to %#x: %w", v.Pgoff, v.Start, err)
		}
		for _, rest := range outside(span{tmp, tmp + size}, []span{{tmp + v.Pgoff, tmp + v.Pgoff + length}}) {
			if _, err := t.Syscall(unix.SYS_MUNMAP, rest.start, rest.end-rest.start); err != nil {
				return fmt.Errorf("unmapping the rest of the object: %w", err)
			}
		}
	}
	t.s.shmem[v.Shmem] = shmemOwner{pid: t.host, start: v.Start, end: v.End}
	t.vmas = append(t.vmas, *v)
	return nil
}

// fillShmem writes a pages record of a shared memory object, counted from
// its start, into the object through v, its first mapping.
func (t *task) fillShmem(v *ckpt.VMA, pg *ckpt.Pages, rec *ckpt.Record) error {
	if v.ShmemSize == 0 {
		return fmt.Errorf("pages of a shared memory object whose VMA %#x-%#x does not give its size", v.Start, v.End)
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/map_files/%x-%x", t.host, v.Start, v.End), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("shared memory object: %w", err)
	}
	defer f.Close()
	payload := rec.Payload()
	for _, run := range pg.Runs {
		off, n := run.Index*pageSize, run.Count*pageSize
		if run.Count == 0 || off+n > v.ShmemSize || off+n < off {
			return fmt.Errorf("run of %d pages at page %d lies outside the shared memory object of %#x bytes", run.Count, run.Index, v.ShmemSize)
		}
		for n > 0 {
			chunk := t.s.pageBuf[:min(n, uint64(len(t.s.pageBuf)))]
			if _, err := io.ReadFull(payload, chunk); err != nil {
				return err
			}
			if _, err := f.WriteAt(chunk, int64(off)); err != nil {
				return fmt.Errorf("writing the shared memory object at %#x: %w", off, err)
			}
			off += uint64(len(chunk))
			n -= uint64(len(chunk))
			if t.s.opts.Progress != nil {
				t.s.pagesRead += int64(len(chunk))
				t.s.opts.Progress(t.s.pagesRead)
			}
		}
	}
	return nil
}

// mapShared maps an object another VMA (of this or another process of the
// tree) created already, through that VMA's map_files entry.
func (t *task) mapShared(v *ckpt.VMA, owner shmemOwner, prot, flags uint64) error {
	// Opened by crsub: a task in a namespace of its own has another /proc.
	path := fmt.Sprintf("/proc/%d/map_files/%x-%x", owner.pid, owner.start, owner.end)
	if err := t.mmapFile(path, unix.O_RDWR, v, prot, flags, t.openAsCrsub); err != nil {
		return fmt.Errorf("shared memory of pid %d: %w", owner.pid, err)
	}
	t.vmas = append(t.vmas, *v)
	return nil
}

// opener is how the task opens the file of id: by its path, or, in
// another mount namespace of the image than the task's, by crsub there,
// handed over.
func (t *task) opener(id *ckpt.FileIdentity) func(string, int, uint32) (int, error) {
	if id.MountNamespace == 0 {
		return t.Open
	}
	return func(path string, flags int, mode uint32) (int, error) {
		host, ok := t.s.inMountNamespace(id.MountNamespace, path)
		if !ok {
			return -1, fmt.Errorf("mount namespace %d is not made again here", id.MountNamespace)
		}
		f, err := os.OpenFile(host, flags|unix.O_CLOEXEC, os.FileMode(mode))
		if err != nil {
			return -1, err
		}
		defer f.Close()
		return t.takeLocal(int(f.Fd()))
	}
}

// checkIdentity refuses a file that is not the one checkpointed: its pages
// would be wrong.
// A file of a filesystem the restart made anew (a tmpfs of the image's
// mount namespace) has its contents and times back, not its inode.
func (t *task) checkIdentity(id *ckpt.FileIdentity, what string) error {
	host := t.hostPath(id.Path)
	if id.MountNamespace != 0 {
		var ok bool
		if host, ok = t.s.inMountNamespace(id.MountNamespace, id.Path); !ok {
			return fmt.Errorf("%s %s, in mount namespace %d: that namespace is not made again here", what, id.Path, id.MountNamespace)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err != nil {
		return fmt.Errorf("%s %s: %w", what, id.Path, err)
	}
	dev, ino := id.Dev, id.Inode
	if d, ok := t.newDevice(id.Dev); ok {
		dev, ino = d, st.Ino
	} else if d, ok := t.movedDevice(id.Dev); ok {
		dev = d
	}
	if st.Dev != dev || st.Ino != ino || st.Size != id.Size || st.Mtim.Nano() != id.Mtime {
		return fmt.Errorf("%s %s changed since the checkpoint (inode %d→%d, size %d→%d, mtime %d→%d)", what, id.Path, id.Inode, st.Ino, id.Size, st.Size, id.Mtime, st.Mtim.Nano())
	}
	return nil
}

// fillPages writes a pages record's payload into the VMA it follows.
func (t *task) fillPages(pg *ckpt.Pages, rec *ckpt.Record) error {
	if len(t.vmas) == 0 || t.vmas[len(t.vmas)-1].Start != pg.VMAStart {
		return fmt.Errorf("pages for %#x do not follow their VMA", pg.VMAStart)
	}
	v := t.vmas[len(t.vmas)-1]
	if want := int64(pg.Count() * pageSize); want != rec.PayloadLen {
		return fmt.Errorf("payload of %d bytes, the runs need %d", rec.PayloadLen, want)
	}
	if t.s.pageBuf == nil {
		t.s.pageBuf = make([]byte, pageBufSize)
	}
	if pg.ShmemObject {
		return t.fillShmem(&v, pg, rec)
	}
	payload := rec.Payload()
	for _, run := range pg.Runs {
		addr := v.Start + run.Index*pageSize
		n := run.Count * pageSize
		if run.Count == 0 || addr < v.Start || addr+n > v.End || addr+n < addr {
			return fmt.Errorf("run of %d pages at page %d lies outside the VMA %#x-%#x", run.Count, run.Index, v.Start, v.End)
		}
		for n > 0 {
			chunk := t.s.pageBuf[:min(n, uint64(len(t.s.pageBuf)))]
			if _, err := io.ReadFull(payload, chunk); err != nil {
				return err
			}
			if err := t.putPages(&v, addr, chunk); err != nil {
				return fmt.Errorf("writing pages at %#x: %w", addr, err)
			}
			addr += uint64(len(chunk))
			n -= uint64(len(chunk))
			if t.s.opts.Progress != nil {
				t.s.pagesRead += int64(len(chunk))
				t.s.opts.Progress(t.s.pagesRead)
			}
		}
	}
	return nil
}

// writePages copies b into the task at addr. Areas are mapped writable
// while they are filled, so process_vm_writev (which pins pages in batches)
// can do it; /proc/PID/mem, page by page, is the fallback for the rest.
func (t *task) writePages(addr uint64, b []byte) error {
	n, err := sys.ProcessVMWritev(t.host, [][]byte{b}, []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}})
	if err == nil && n == len(b) {
		return nil
	}
	_, err = t.mem.WriteAt(b[n:], int64(addr)+int64(n))
	return err
}

// finishMemory gives every area its own protection and sets the mm fields.
func (t *task) finishMemory() error {
	if err := errors.Join(t.settleInherited(), t.unmapUnclaimed(), t.detachSysVLeftovers()); err != nil {
		return err
	}
	if err := t.restoreAIORings(); err != nil {
		return err
	}
	for _, v := range t.vmas {
		t.restoreMadvise(&v)
	}
	// In batches: a process may have tens of thousands of areas.
	var calls []remote.Call
	var areas []ckpt.VMA
	for _, v := range t.vmas {
		sharedFile := v.File != nil && v.Flags&unix.MAP_SHARED != 0
		if sharedFile || v.Prot == unix.PROT_READ|unix.PROT_WRITE {
			continue
		}
		calls = append(calls, remote.Call{Nr: unix.SYS_MPROTECT, Args: []uint64{v.Start, v.End - v.Start, uint64(v.Prot)}})
		areas = append(areas, v)
	}
	rets, err := t.remote.Batch(calls)
	if err != nil {
		return fmt.Errorf("mprotect: %w", err)
	}
	for i, ret := range rets {
		if err := remote.ResultError(ret); err != nil {
			return fmt.Errorf("mprotect %#x-%#x: %w", areas[i].Start, areas[i].End, err)
		}
	}
	return t.setMM()
}

// madvice maps the image's names to madvise(2) advice.
var madvice = map[string]int{
	ckpt.MadvDontFork:   unix.MADV_DONTFORK,
	ckpt.MadvWipeOnFork: unix.MADV_WIPEONFORK,
	ckpt.MadvDontDump:   unix.MADV_DONTDUMP,
	ckpt.MadvHugePage:   unix.MADV_HUGEPAGE,
	ckpt.MadvNoHugePage: unix.MADV_NOHUGEPAGE,
	ckpt.MadvMergeable:  unix.MADV_MERGEABLE,
	ckpt.MadvSequential: unix.MADV_SEQUENTIAL,
	ckpt.MadvRandom:     unix.MADV_RANDOM,
}

// restoreMadvise gives a VMA its madvise and mlock state back, once its
// pages are in. What the kernel refuses here (no KSM, no THP, a memlock
// limit) is a warning: the program runs on without it.
func (t *task) restoreMadvise(v *ckpt.VMA) {
	length := v.End - v.Start
	// Guard pages first: the kernel installs none in a locked mapping.
	for _, g := range v.Guards {
		if _, err := t.Syscall(unix.SYS_MADVISE, v.Start+g.Index*pageSize, g.Count*pageSize, unix.MADV_GUARD_INSTALL); err != nil {
			t.Warn("cannot make guard pages again: an access there no longer faults", "vma", fmt.Sprintf("%#x-%#x", v.Start, v.End),
				"pages", fmt.Sprintf("%d+%d", g.Index, g.Count), "err", err)
		}
	}
	for _, name := range v.MadvFlags {
		var err error
		switch name {
		case ckpt.MadvLocked, ckpt.MadvLockOnFault:
			flags := uint64(0)
			if slices.Contains(v.MadvFlags, ckpt.MadvLockOnFault) {
				if name == ckpt.MadvLocked {
					continue // one mlock2 with MLOCK_ONFAULT does both
				}
				flags = unix.MLOCK_ONFAULT
			}
			_, err = t.Syscall(unix.SYS_MLOCK2, v.Start, length, flags)
		default:
			advice, ok := madvice[name]
			if !ok {
				t.Warn("unknown madvise state in the image", "vma", fmt.Sprintf("%#x-%#x", v.Start, v.End), "state", name)
				continue
			}
			_, err = t.Syscall(unix.SYS_MADVISE, v.Start, length, uint64(advice))
		}
		if err != nil {
			t.Warn("cannot restore a mapping's madvise state", "vma", fmt.Sprintf("%#x-%#x", v.Start, v.End), "state", name, "err", err)
		}
	}
}

// setMM sets brk, arg/env bounds, auxv and the executable in one
// prctl(PR_SET_MM, PR_SET_MM_MAP): the only form that works without
// CAP_SYS_RESOURCE.
func (t *task) setMM() error {
	mm := t.mm
	var exeFd int
	var err error
	if mm.ExeGhost != 0 {
		// Its name was removed: the file made again from the image.
		if exeFd, err = t.s.files.OpenGhost(t, mm.ExeGhost, unix.O_RDONLY); err != nil {
			return fmt.Errorf("open removed executable %s: %w", mm.Exe.Path, err)
		}
	} else {
		if err := t.checkIdentity(&mm.Exe, "executable"); err != nil {
			return err
		}
		if exeFd, err = t.opener(&mm.Exe)(mm.Exe.Path, unix.O_RDONLY, 0); err != nil {
			return fmt.Errorf("open executable %s: %w", mm.Exe.Path, err)
		}
	}
	defer t.Syscall(unix.SYS_CLOSE, uint64(exeFd))
	const mapSize = 104
	auxvAddr := t.scratch + 256
	auxv := make([]byte, 8*len(mm.Auxv))
	for i, v := range mm.Auxv {
		putLE64(auxv[8*i:], v)
	}
	if uint64(len(auxv))+256 > t.scratchSize {
		return fmt.Errorf("auxv of %d bytes is too large", len(auxv))
	}
	b := make([]byte, mapSize)
	for i, v := range []uint64{mm.StartCode, mm.EndCode, mm.StartData, mm.EndData, mm.StartBrk, mm.Brk, mm.StartStack, mm.ArgStart, mm.ArgEnd, mm.EnvStart, mm.EnvEnd, auxvAddr} {
		putLE64(b[8*i:], v)
	}
	putLE32(b[96:], uint32(len(auxv)))
	putLE32(b[100:], uint32(exeFd))
	if err := t.remote.WriteMem(t.scratch, b); err != nil {
		return err
	}
	if err := t.remote.WriteMem(auxvAddr, auxv); err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, t.scratch, mapSize, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_MM_MAP): %w", err)
	}
	if err := t.setTHPDisable(); err != nil {
		return err
	}
	return t.registerMembarrier()
}

// setTHPDisable gives the address space the image's PR_SET_THP_DISABLE
// setting, clearing one the task inherited from the parent that forked it.
func (t *task) setTHPDisable() error {
	v := uint64(t.mm.THPDisable)
	if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_THP_DISABLE, v&1, v&^1, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_THP_DISABLE, %d, %#x): %w", v&1, v&^1, err)
	}
	return nil
}

// membarrierCmd is a membarrier(2) registration command: its bit in what
// MEMBARRIER_CMD_GET_REGISTRATIONS gives is its own value.
type membarrierCmd struct {
	cmd  uint32
	name string
}

var membarrierRegister = []membarrierCmd{
	{1 << 2, "REGISTER_GLOBAL_EXPEDITED"},
	{1 << 4, "REGISTER_PRIVATE_EXPEDITED"},
	{1 << 6, "REGISTER_PRIVATE_EXPEDITED_SYNC_CORE"},
	{1 << 8, "REGISTER_PRIVATE_EXPEDITED_RSEQ"},
}

// registerMembarrier registers the address space for the membarrier(2)
// commands it was registered for.
func (t *task) registerMembarrier() error {
	cmds, err := membarrierCommands(t.mm.Membarrier)
	if err != nil {
		return err
	}
	for _, r := range cmds {
		if _, err := t.Syscall(unix.SYS_MEMBARRIER, uint64(r.cmd), 0, 0); err != nil {
			return fmt.Errorf("membarrier(MEMBARRIER_CMD_%s): %w", r.name, err)
		}
	}
	return nil
}

// membarrierCommands are the registration commands that make registrations.
func membarrierCommands(registrations uint32) ([]membarrierCmd, error) {
	var cmds []membarrierCmd
	for _, r := range membarrierRegister {
		if registrations&r.cmd != 0 {
			cmds = append(cmds, r)
			registrations &^= r.cmd
		}
	}
	if registrations != 0 {
		return nil, fmt.Errorf("membarrier registrations %#x are not supported", registrations)
	}
	return cmds, nil
}

func putLE64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

func putLE32(b []byte, v uint32) {
	for i := 0; i < 4; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// openAsCrsub opens path as crsub sees it and gives t a copy of the fd: a
// file of crsub's /proc (another task's map_files), which the task does
// not see in a mount namespace of its own.
func (t *task) openAsCrsub(path string, flags int, _ uint32) (int, error) {
	f, err := os.OpenFile(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	return t.takeLocal(int(f.Fd()))
}
