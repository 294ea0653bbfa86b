package zdtm

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Desc is what a test's .desc file tells zdtm.py (test/zdtm.py in CRIU's
// tree): which flavours it runs in, its flags, the CRIU options for dump
// and restore, the CRIU features it needs, its architectures and timeout.
// A test without a .desc (or with an empty one) gets DefaultDesc.
type Desc struct {
	Flavors  []string // h (host), ns, uns
	Flags    []string // suid, noauto, crfail, excl, reqrst, nouser, samens, crlib, ...
	Opts     []string // CRIU options for dump and restore
	Dopts    []string // CRIU options for dump only
	Ropts    []string // CRIU options for restore only
	Features []string // criu check --feature NAME must pass
	Arch     []string // empty: any
	Timeout  int      // seconds for each step; zdtm.py's default is 30
	Deps     []string // binaries copied into the ns flavour's root
	Bind     string   // a directory of the ns flavour's root bind-mounted onto itself (ZDTM_BIND)
}

// DefaultDesc is zdtm.py's view of a test without a .desc.
func DefaultDesc() Desc {
	return Desc{Flavors: []string{"h", "ns", "uns"}, Timeout: 30}
}

// HasFlag reports whether the .desc lists flag in 'flags'.
func (d Desc) HasFlag(flag string) bool { return contains(d.Flags, flag) }

// HasFlavor reports whether the test runs in flavour f.
func (d Desc) HasFlavor(f string) bool { return contains(d.Flavors, f) }

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// ParseDesc parses the text of a .desc file.
func ParseDesc(src string) (Desc, error) {
	if strings.TrimSpace(src) == "" {
		return DefaultDesc(), nil
	}
	v, err := ParseLiteral(src)
	if err != nil {
		return Desc{}, err
	}
	return DescFromValue(v)
}

// ReadDesc reads NAME.desc in dir; a missing file gives DefaultDesc.
func ReadDesc(dir, name string) (Desc, error) {
	b, err := os.ReadFile(dir + "/" + name + ".desc")
	if os.IsNotExist(err) {
		return DefaultDesc(), nil
	}
	if err != nil {
		return Desc{}, err
	}
	d, err := ParseDesc(string(b))
	if err != nil {
		return Desc{}, fmt.Errorf("%s.desc: %w", name, err)
	}
	return d, nil
}

// DescFromValue converts a parsed .desc (a dict) to a Desc, with zdtm.py's
// defaults for the keys it leaves out. Keys zdtm.py does not know for
// static tests are ignored; a known key of the wrong type is an error.
func DescFromValue(v any) (Desc, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Desc{}, fmt.Errorf("a .desc is a dict, not %s", typeName(v))
	}
	d := DefaultDesc()
	words := func(key string, dst *[]string) error {
		x, ok := m[key]
		if !ok {
			return nil
		}
		s, ok := x.(string)
		if !ok {
			return fmt.Errorf("%q is %s, not a string", key, typeName(x))
		}
		*dst = strings.Fields(s)
		return nil
	}
	for _, f := range []struct {
		key string
		dst *[]string
	}{
		{"flavor", &d.Flavors}, {"flags", &d.Flags}, {"opts", &d.Opts}, {"dopts", &d.Dopts},
		{"ropts", &d.Ropts}, {"feature", &d.Features}, {"arch", &d.Arch},
	} {
		if err := words(f.key, f.dst); err != nil {
			return Desc{}, err
		}
	}
	if x, ok := m["timeout"]; ok {
		switch t := x.(type) {
		case int64:
			d.Timeout = int(t)
		case string:
			n, err := strconv.Atoi(strings.TrimSpace(t))
			if err != nil {
				return Desc{}, fmt.Errorf("\"timeout\" %q is not a number", t)
			}
			d.Timeout = n
		case nil:
		default:
			return Desc{}, fmt.Errorf("\"timeout\" is %s", typeName(x))
		}
		if d.Timeout <= 0 {
			// zdtm.py: int(desc.get('timeout') or 30)
			d.Timeout = 30
		}
	}
	if x, ok := m["bind"]; ok {
		s, ok := x.(string)
		if !ok {
			return Desc{}, fmt.Errorf("\"bind\" is %s, not a string", typeName(x))
		}
		d.Bind = s
	}
	if x, ok := m["deps"]; ok {
		l, ok := x.([]any)
		if !ok {
			return Desc{}, fmt.Errorf("\"deps\" is %s, not a list", typeName(x))
		}
		for _, e := range l {
			s, ok := e.(string)
			if !ok {
				return Desc{}, fmt.Errorf("\"deps\" holds %s, not a string", typeName(e))
			}
			d.Deps = append(d.Deps, s)
		}
	}
	return d, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "a bool"
	case int64:
		return "an int"
	case float64:
		return "a float"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "a dict"
	}
	return fmt.Sprintf("%T", v)
}
