package procfs

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// VmFlag is one two-letter flag from the VmFlags line of smaps.
type VmFlag string

// VmFlags the checkpoint engine acts on; see proc(5) for the full list. Flags
// this kernel does not know are kept verbatim in VmFlags.
const (
	VmRead        VmFlag = "rd"
	VmWrite       VmFlag = "wr"
	VmExec        VmFlag = "ex"
	VmShared      VmFlag = "sh"
	VmMayRead     VmFlag = "mr"
	VmMayWrite    VmFlag = "mw"
	VmMayExec     VmFlag = "me"
	VmMayShare    VmFlag = "ms"
	VmGrowsDown   VmFlag = "gd"
	VmPFNMap      VmFlag = "pf"
	VmLocked      VmFlag = "lo"
	VmIO          VmFlag = "io"
	VmSeqRead     VmFlag = "sr"
	VmRandRead    VmFlag = "rr"
	VmDontCopy    VmFlag = "dc"
	VmDontExpand  VmFlag = "de"
	VmLockOnFault VmFlag = "lf"
	VmAccount     VmFlag = "ac"
	VmNoReserve   VmFlag = "nr"
	VmHugetlb     VmFlag = "ht"
	VmSync        VmFlag = "sf"
	VmArch1       VmFlag = "ar"
	VmWipeOnFork  VmFlag = "wf"
	VmDontDump    VmFlag = "dd"
	VmSoftDirty   VmFlag = "sd"
	VmMixedMap    VmFlag = "mm"
	VmHugePage    VmFlag = "hg"
	VmNoHugePage  VmFlag = "nh"
	VmMergeable   VmFlag = "mg"
	VmUffdMissing VmFlag = "um"
	VmUffdWP      VmFlag = "uw"
	VmUffdMinor   VmFlag = "ui"
	VmShadowStack VmFlag = "ss"
	VmSealed      VmFlag = "sl"
	VmDroppable   VmFlag = "dp"
)

// VmFlags is the list of flags in the order the kernel printed them.
type VmFlags []VmFlag

// Has reports whether f is set.
func (v VmFlags) Has(f VmFlag) bool { return slices.Contains(v, f) }

// SmapsEntry is one mapping of /proc/PID/smaps. Sizes are in bytes.
type SmapsEntry struct {
	Mapping
	Size           uint64
	KernelPageSize uint64
	MMUPageSize    uint64
	Rss            uint64
	Pss            uint64
	Anonymous      uint64
	AnonHugePages  uint64
	Swap           uint64
	Locked         uint64
	THPEligible    bool
	VmFlags        VmFlags
	// Fields holds every "Key: value" line except VmFlags, the explicit
	// fields above included: values with a "kB" unit are converted to bytes,
	// unitless ones (THPeligible, ProtectionKey) are kept as printed.
	Fields map[string]uint64
}

// ReadSmaps reads /proc/PID/smaps.
func ReadSmaps(pid int) ([]SmapsEntry, error) {
	path := pidPath(pid, "smaps")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	es, err := parseSmaps(f)
	return es, fileError(path, err)
}

// MappingFlags is a mapping with its VmFlags and its anonymous memory, all
// ReadSmapsFlags reads.
type MappingFlags struct {
	Mapping
	VmFlags   VmFlags
	Anonymous uint64 // bytes
}

// ReadSmapsFlags reads the mappings of /proc/PID/smaps with their VmFlags
// and Anonymous and nothing else: for a process with many mappings,
// parsing every counter of every mapping costs more than the kernel's page
// walk.
func ReadSmapsFlags(pid int) ([]MappingFlags, error) {
	path := pidPath(pid, "smaps")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ms, err := parseSmapsFlags(f)
	return ms, fileError(path, err)
}

// ParseSmapsFlags parses the mappings and VmFlags of a /proc/PID/smaps file.
func ParseSmapsFlags(r io.Reader) ([]MappingFlags, error) {
	ms, err := parseSmapsFlags(r)
	if err != nil {
		return nil, fmt.Errorf("smaps: %w", err)
	}
	return ms, nil
}

func parseSmapsFlags(r io.Reader) ([]MappingFlags, error) {
	var out []MappingFlags
	err := scanSmaps(r, func(m Mapping) {
		out = append(out, MappingFlags{Mapping: m})
	}, func(first, line string) error {
		e := &out[len(out)-1]
		switch first {
		case "VmFlags:":
			e.VmFlags = appendVmFlags(e.VmFlags, line[len(first):])
		case "Anonymous:":
			// A value ParseSmaps would refuse is left 0: only the
			// flags are this parse's to check.
			num, unit, _ := strings.Cut(strings.TrimSpace(line[len(first):]), " ")
			if v, err := parseUint(num, 10, 64); err == nil && strings.TrimSpace(unit) == "kB" && v <= ^uint64(0)>>10 {
				e.Anonymous = v << 10
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanSmaps goes over smaps: mapping for each mapping's header, attr for
// each attribute line ("Key: value", first being "Key:") of the mapping
// before it.
func scanSmaps(r io.Reader, mapping func(Mapping), attr func(first, line string) error) error {
	s := newLineScanner(r)
	seen := false
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		first, _ := nextField(line)
		if !strings.HasSuffix(first, ":") {
			// A mapping header: its first field is an address range, while
			// every attribute line starts with "Key:".
			m, err := parseMapsLine(line)
			if err != nil {
				return fmt.Errorf("line %d: %w", n, err)
			}
			mapping(m)
			seen = true
			continue
		}
		if !seen {
			return fmt.Errorf("line %d: attribute %q before any mapping", n, first)
		}
		if err := attr(first, line); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return s.Err()
}

func appendVmFlags(flags VmFlags, value string) VmFlags {
	for _, f := range strings.Fields(value) {
		flags = append(flags, VmFlag(f))
	}
	return flags
}

// ParseSmaps parses the contents of a /proc/PID/smaps file.
func ParseSmaps(r io.Reader) ([]SmapsEntry, error) {
	es, err := parseSmaps(r)
	if err != nil {
		return nil, fmt.Errorf("smaps: %w", err)
	}
	return es, nil
}

func parseSmaps(r io.Reader) ([]SmapsEntry, error) {
	var out []SmapsEntry
	err := scanSmaps(r, func(m Mapping) {
		out = append(out, SmapsEntry{Mapping: m, Fields: map[string]uint64{}})
	}, func(first, line string) error {
		e := &out[len(out)-1]
		key := strings.TrimSuffix(first, ":")
		val := strings.TrimSpace(line[len(first):])
		if key == "VmFlags" {
			e.VmFlags = appendVmFlags(e.VmFlags, val)
			return nil
		}
		if err := e.setField(key, val); err != nil {
			return fmt.Errorf("field %s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (e *SmapsEntry) setField(key, val string) error {
	num, unit, _ := strings.Cut(val, " ")
	v, err := parseUint(num, 10, 64)
	if err != nil {
		return err
	}
	switch strings.TrimSpace(unit) {
	case "":
	case "kB":
		if v > ^uint64(0)>>10 {
			return fmt.Errorf("%q: value out of range", val)
		}
		v <<= 10
	default:
		return fmt.Errorf("%q: unknown unit", val)
	}
	if _, dup := e.Fields[key]; dup {
		return fmt.Errorf("repeated in one mapping")
	}
	e.Fields[key] = v
	switch key {
	case "Size":
		e.Size = v
	case "KernelPageSize":
		e.KernelPageSize = v
	case "MMUPageSize":
		e.MMUPageSize = v
	case "Rss":
		e.Rss = v
	case "Pss":
		e.Pss = v
	case "Anonymous":
		e.Anonymous = v
	case "AnonHugePages":
		e.AnonHugePages = v
	case "Swap":
		e.Swap = v
	case "Locked":
		e.Locked = v
	case "THPeligible":
		e.THPEligible = v != 0
	}
	return nil
}
