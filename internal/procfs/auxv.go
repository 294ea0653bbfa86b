package procfs

import (
	"encoding/binary"
	"fmt"
)

// AuxEntry is one (a_type, a_val) pair of the ELF auxiliary vector.
type AuxEntry struct {
	Type  uint64 // AT_*
	Value uint64
}

// atNull ends the auxiliary vector.
const atNull = 0

// ReadAuxv reads /proc/PID/auxv, returning the parsed entries (without the
// AT_NULL terminator) and the file's raw bytes, which prctl(PR_SET_MM_AUXV)
// wants back verbatim on restore.
func ReadAuxv(pid int) ([]AuxEntry, []byte, error) {
	path := pidPath(pid, "auxv")
	raw, err := readProcFile(path)
	if err != nil {
		return nil, nil, err
	}
	es, err := parseAuxv(raw)
	if err != nil {
		return nil, nil, fileError(path, err)
	}
	return es, raw, nil
}

// ParseAuxv parses a 64-bit native-endian auxiliary vector, stopping at
// AT_NULL. The terminator is required: a vector without one was truncated.
func ParseAuxv(b []byte) ([]AuxEntry, error) {
	es, err := parseAuxv(b)
	if err != nil {
		return nil, fmt.Errorf("auxv: %w", err)
	}
	return es, nil
}

func parseAuxv(b []byte) ([]AuxEntry, error) {
	var out []AuxEntry
	for off := 0; ; off += 16 {
		if len(b)-off < 16 {
			return nil, fmt.Errorf("no AT_NULL entry in %d bytes", len(b))
		}
		e := AuxEntry{
			Type:  binary.NativeEndian.Uint64(b[off:]),
			Value: binary.NativeEndian.Uint64(b[off+8:]),
		}
		if e.Type == atNull {
			return out, nil
		}
		out = append(out, e)
	}
}
