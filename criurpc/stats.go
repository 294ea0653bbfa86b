package criurpc

import (
	"encoding/binary"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/criurpc/rpcpb"
)

// The statistics files CRIU leaves in the work directory, which podman
// reads back (podman container checkpoint/restore --print-stats) with
// go-criu's crit.
const (
	statsDump    = "stats-dump"
	statsRestore = "stats-restore"
)

// CRIU's image magics: a service file starts with the service magic, then
// the file's own (images/magic.h).
const (
	imgServiceMagic = 0x55105940
	statsMagic      = 0x57093306
)

// writeStats writes a statistics file as CRIU does: the two magics, then
// the entry as a length-prefixed message, all little-endian.
func writeStats(w *workspace, name string, entry *rpcpb.StatsEntry) error {
	b, err := proto.Marshal(entry)
	if err != nil {
		return err
	}
	f, err := w.create(name)
	if err != nil {
		return err
	}
	head := binary.LittleEndian.AppendUint32(nil, imgServiceMagic)
	head = binary.LittleEndian.AppendUint32(head, statsMagic)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(b)))
	_, err = f.Write(append(head, b...))
	return errors.Join(err, f.Close())
}

// dumpStats is what crsub measures of a checkpoint in CRIU's terms. The
// times CRIU splits the frozen phase into (freezing, dumping and writing
// memory) and the pages it scanned and skipped are not measured apart:
// they stay 0.
func dumpStats(st *checkpoint.Stats) *rpcpb.DumpStatsEntry {
	return &rpcpb.DumpStatsEntry{
		FreezingTime:       ptr(uint32(0)),
		FrozenTime:         ptr(micros(st.Frozen)),
		MemdumpTime:        ptr(uint32(0)),
		MemwriteTime:       ptr(uint32(0)),
		PagesScanned:       ptr(uint64(0)),
		PagesSkippedParent: ptr(uint64(0)),
		PagesWritten:       ptr(st.PagesStored),
		PagesLazy:          ptr(uint64(0)),
	}
}

// restoreStats is what crsub measures of a restart in CRIU's terms: the
// whole restore time. Pages compared and forking time are not measured.
func restoreStats(total time.Duration) *rpcpb.RestoreStatsEntry {
	return &rpcpb.RestoreStatsEntry{
		PagesCompared:   ptr(uint64(0)),
		PagesSkippedCow: ptr(uint64(0)),
		ForkingTime:     ptr(uint32(0)),
		RestoreTime:     ptr(micros(total)),
	}
}

func micros(d time.Duration) uint32 {
	return uint32(min(d.Microseconds(), 1<<32-1))
}
