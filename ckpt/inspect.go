package ckpt

import (
	"fmt"
	"io"
	"sort"
)

// Inventory is an image's metadata gathered per process: what `crsub show`
// prints. Payloads are skipped (and verified), never held.
type Inventory struct {
	Header    Header         `json:"header"`
	Version   string         `json:"format_version"`
	Tree      Tree           `json:"tree"`
	Processes []*ProcessView `json:"processes"`
	// Namespaces are the namespaces of the image, in the order recorded.
	Namespaces []*NamespaceView `json:"namespaces,omitempty"`
	Records    []RecordSummary  `json:"records,omitempty"`
	Bytes      int64            `json:"bytes"`
}

// ProcessView is everything the image holds about one process.
type ProcessView struct {
	Process Process   `json:"process"`
	Threads []Thread  `json:"threads"`
	MM      *MM       `json:"mm,omitempty"`
	VMAs    []VMAView `json:"vmas"`
	Fds     []FdView  `json:"fds"`
	Signals *Signals  `json:"signals,omitempty"`
	// EpollWatches are the files registered with the process's epoll
	// instances.
	EpollWatches []EpollWatch `json:"epoll_watches,omitempty"`
	// PagesStored counts the pages stored for all VMAs.
	PagesStored uint64 `json:"pages_stored"`
	objref      Objref
}

// NamespaceView is a namespace record with the records of what it holds
// that depend on it.
type NamespaceView struct {
	Objref    Objref    `json:"objref"`
	Namespace Namespace `json:"namespace"`
	// Network is a network namespace's links, addresses and routes.
	Network *Network `json:"network,omitempty"`
	// MountFiles are the filesystems of a mount namespace made anew whose
	// files the image holds.
	MountFiles []MountFiles `json:"mount_files,omitempty"`
	// The System V objects of an IPC namespace.
	SysVShm []SysVSegment  `json:"sysv_shm,omitempty"`
	SysVSem []SysVSemSet   `json:"sysv_sem,omitempty"`
	SysVMsg []SysVMsgQueue `json:"sysv_msg,omitempty"`
}

// VMAView is a VMA with the number of pages stored for it.
type VMAView struct {
	VMA
	Stored uint64 `json:"stored"`
}

// FdView is an fd-table entry joined with its file (and pipe, for a pipe end).
type FdView struct {
	Fd      int    `json:"fd"`
	Cloexec bool   `json:"cloexec"`
	Objref  Objref `json:"objref"`
	File    File   `json:"file"`
	Pipe    *Pipe  `json:"pipe,omitempty"`
	// Buffered is the number of bytes stored for the file's pipe.
	Buffered int64 `json:"buffered,omitempty"`
}

// RecordSummary is one raw record as `crsub show --records` lists it.
type RecordSummary struct {
	Index      int      `json:"index"`
	Offset     int64    `json:"offset"`
	Type       string   `json:"type"`
	Length     int64    `json:"length"` // metadata plus payload bytes
	Objref     Objref   `json:"objref,omitempty"`
	Deps       []Objref `json:"deps,omitempty"`
	PayloadLen int64    `json:"payload_len,omitempty"`
}

// Inspect reads a whole image and gathers its metadata. Unknown record types
// are listed in Records but otherwise skipped.
func Inspect(src io.Reader) (*Inventory, error) {
	r, err := NewReader(src)
	if err != nil {
		return nil, err
	}
	major, minor := r.Version()
	inv := &Inventory{Header: r.Header(), Version: fmt.Sprintf("%d.%d", major, minor)}
	inv.Records = append(inv.Records, RecordSummary{Index: 0, Offset: preambleSize, Type: TypeHeader.String()})
	byPid := map[int]*ProcessView{}
	files := map[Objref]*File{}
	pipes := map[Objref]*Pipe{}
	pipeBytes := map[Objref]int64{}
	type pipeRef struct {
		pipe  *Pipe
		bytes int64
	}
	pipeOfFile := map[Objref]pipeRef{}
	namespaces := map[Objref]*NamespaceView{}
	// holder is the namespace a record of what one holds depends on.
	holder := func(rec *Record) (*NamespaceView, error) {
		for _, d := range rec.Deps {
			if nv := namespaces[d]; nv != nil {
				return nv, nil
			}
		}
		return nil, fmt.Errorf("record %d (%s) at offset %d depends on no namespace record before it", rec.Index, rec.Type, rec.Offset)
	}
	view := func(rec *Record, pid int) (*ProcessView, error) {
		pv := byPid[pid]
		if pv == nil {
			return nil, fmt.Errorf("record %d (%s) at offset %d names pid %d, which has no process record before it", rec.Index, rec.Type, rec.Offset, pid)
		}
		return pv, nil
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		inv.Records = append(inv.Records, RecordSummary{Index: rec.Index, Offset: rec.Offset, Type: rec.Type.String(),
			Length: int64(len(rec.Meta)) + rec.PayloadLen, Objref: rec.Objref, Deps: rec.Deps, PayloadLen: rec.PayloadLen})
		switch rec.Type {
		case TypeTree:
			if err := rec.Decode(&inv.Tree); err != nil {
				return nil, err
			}
		case TypeProcess:
			pv := &ProcessView{objref: rec.Objref}
			if err := rec.Decode(&pv.Process); err != nil {
				return nil, err
			}
			byPid[pv.Process.Pid] = pv
			inv.Processes = append(inv.Processes, pv)
		case TypeNamespace:
			nv := &NamespaceView{Objref: rec.Objref}
			if err := rec.Decode(&nv.Namespace); err != nil {
				return nil, err
			}
			namespaces[rec.Objref] = nv
			inv.Namespaces = append(inv.Namespaces, nv)
		case TypeNetwork, TypeMountFiles, TypeSysVShm, TypeSysVSem, TypeSysVMsg:
			nv, err := holder(rec)
			if err != nil {
				return nil, err
			}
			if err := nv.add(rec); err != nil {
				return nil, err
			}
		case TypeThread:
			var th Thread
			if err := rec.Decode(&th); err != nil {
				return nil, err
			}
			pv, err := view(rec, th.Pid)
			if err != nil {
				return nil, err
			}
			pv.Threads = append(pv.Threads, th)
		case TypeMM:
			var mm MM
			if err := rec.Decode(&mm); err != nil {
				return nil, err
			}
			pv, err := view(rec, mm.Pid)
			if err != nil {
				return nil, err
			}
			pv.MM = &mm
		case TypeVMA:
			var v VMA
			if err := rec.Decode(&v); err != nil {
				return nil, err
			}
			pv, err := view(rec, v.Pid)
			if err != nil {
				return nil, err
			}
			pv.VMAs = append(pv.VMAs, VMAView{VMA: v})
		case TypePages:
			var pg Pages
			if err := rec.Decode(&pg); err != nil {
				return nil, err
			}
			pv, err := view(rec, pg.Pid)
			if err != nil {
				return nil, err
			}
			if len(pv.VMAs) == 0 || pv.VMAs[len(pv.VMAs)-1].Start != pg.VMAStart {
				return nil, fmt.Errorf("record %d (pages) at offset %d: pages for the VMA at %#x do not follow its VMA record", rec.Index, rec.Offset, pg.VMAStart)
			}
			pv.VMAs[len(pv.VMAs)-1].Stored += pg.Count()
			pv.PagesStored += pg.Count()
		case TypeSignals:
			var s Signals
			if err := rec.Decode(&s); err != nil {
				return nil, err
			}
			pv, err := view(rec, s.Pid)
			if err != nil {
				return nil, err
			}
			pv.Signals = &s
		case TypeFile:
			var f File
			if err := rec.Decode(&f); err != nil {
				return nil, err
			}
			files[rec.Objref] = &f
		case TypePipe:
			var p Pipe
			if err := rec.Decode(&p); err != nil {
				return nil, err
			}
			pipes[rec.Objref] = &p
			pipeBytes[rec.Objref] = rec.PayloadLen
		case TypeEpollWatch:
			var ew EpollWatch
			if err := rec.Decode(&ew); err != nil {
				return nil, err
			}
			pv, err := view(rec, ew.Pid)
			if err != nil {
				return nil, err
			}
			pv.EpollWatches = append(pv.EpollWatches, ew)
		case TypeFd:
			var fd Fd
			if err := rec.Decode(&fd); err != nil {
				return nil, err
			}
			pv, err := view(rec, fd.Pid)
			if err != nil {
				return nil, err
			}
			f := files[fd.File]
			if f == nil {
				return nil, fmt.Errorf("record %d (fd %d of pid %d) at offset %d refers to file objref %d, which is not a file record", rec.Index, fd.Fd, fd.Pid, rec.Offset, fd.File)
			}
			fv := FdView{Fd: fd.Fd, Cloexec: fd.Cloexec, Objref: fd.File, File: *f}
			pv.Fds = append(pv.Fds, fv)
		}
		// Pipe ends depend on their pipe; remember which for the fd view.
		if rec.Type == TypeFile {
			for _, d := range rec.Deps {
				if p, ok := pipes[d]; ok {
					pipeOfFile[rec.Objref] = pipeRef{p, pipeBytes[d]}
				}
			}
		}
	}
	inv.Bytes = r.Offset()
	for _, pv := range inv.Processes {
		for i := range pv.Fds {
			if pr, ok := pipeOfFile[pv.Fds[i].Objref]; ok {
				pv.Fds[i].Pipe = pr.pipe
				pv.Fds[i].Buffered = pr.bytes
			}
		}
		sort.Slice(pv.Fds, func(i, j int) bool { return pv.Fds[i].Fd < pv.Fds[j].Fd })
	}
	return inv, nil
}

// add decodes a record of what the namespace holds into its view.
func (nv *NamespaceView) add(rec *Record) error {
	switch rec.Type {
	case TypeNetwork:
		nv.Network = &Network{}
		return rec.Decode(nv.Network)
	case TypeMountFiles:
		var mf MountFiles
		if err := rec.Decode(&mf); err != nil {
			return err
		}
		nv.MountFiles = append(nv.MountFiles, mf)
	case TypeSysVShm:
		var seg SysVSegment
		if err := rec.Decode(&seg); err != nil {
			return err
		}
		nv.SysVShm = append(nv.SysVShm, seg)
	case TypeSysVSem:
		var set SysVSemSet
		if err := rec.Decode(&set); err != nil {
			return err
		}
		nv.SysVSem = append(nv.SysVSem, set)
	case TypeSysVMsg:
		var q SysVMsgQueue
		if err := rec.Decode(&q); err != nil {
			return err
		}
		nv.SysVMsg = append(nv.SysVMsg, q)
	}
	return nil
}
