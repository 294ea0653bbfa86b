package zdtm

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLiteral(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want any
	}{
		{"empty dict", "{}", map[string]any{}},
		{"flags", "{'flags': 'suid'}", map[string]any{"flags": "suid"}},
		{"spaced colon", "{'opts': '--tcp-established', 'flags': 'nouser samens', 'feature' : 'tcp_half_closed'}",
			map[string]any{"opts": "--tcp-established", "flags": "nouser samens", "feature": "tcp_half_closed"}},
		{"double quotes", `{"flags": "suid", 'flavor': "h"}`, map[string]any{"flags": "suid", "flavor": "h"}},
		{"multiline, comment, trailing comma", "# a test\n{   'deps': [   '/bin/sh',\n  '/sbin/ip|/bin/ip',\n ],\n  'flags': 'suid', # why\n}\n",
			map[string]any{"deps": []any{"/bin/sh", "/sbin/ip|/bin/ip"}, "flags": "suid"}},
		{"continuation", "{'a':\\\n 'b'}", map[string]any{"a": "b"}},
		{"adjacent strings", "{'opts': '--a ' \"--b\"\n  '--c'}", map[string]any{"opts": "--a --b--c"}},
		{"escapes", `'a\tb\n\'\"\\\x41\101\u00e9\q'`, "a\tb\n'\"\\AAé\\q"},
		{"raw string", `r'a\nb\'c'`, `a\nb\'c`},
		{"triple quotes", "'''a\n'b'''", "a\n'b"},
		{"numbers", "[0, 60, -3, 0x1f, 0o17, 0b101, 1_000, 1.5, -2e3, .5]",
			[]any{int64(0), int64(60), int64(-3), int64(31), int64(15), int64(5), int64(1000), 1.5, -2000.0, 0.5}},
		{"timeout string", "{'timeout': '60'}", map[string]any{"timeout": "60"}},
		{"constants", "(True, False, None)", []any{true, false, nil}},
		{"parenthesised", "({'a': 1})", map[string]any{"a": int64(1)}},
		{"one tuple", "(1,)", []any{int64(1)}},
		{"empty tuple", "()", []any{}},
		{"nested", "{'a': {'b': [[], {}]}}", map[string]any{"a": map[string]any{"b": []any{[]any{}, map[string]any{}}}}},
		{"duplicate key: last wins", "{'a': 1, 'a': 2}", map[string]any{"a": int64(2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLiteral(tc.src)
			if err != nil {
				t.Fatalf("ParseLiteral(%q): %v", tc.src, err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("ParseLiteral(%q) (-want +got):\n%s", tc.src, d)
			}
		})
	}
}

func TestParseLiteralErrors(t *testing.T) {
	for _, src := range []string{
		"", "{", "{'a'}", "{'a': }", "{'a': 1 'b': 2}", "{1: 'a'}", "'abc", "'a\nb'",
		"[1, 2", "os.getenv('X')", "{'a': x}", "1 2", "0123", "1e", "0x", "'\\x4'", "--",
		"{'flags': 'suid'} or {}", "\xff", "[" + string(make([]byte, 0)) + "[[[[",
	} {
		if v, err := ParseLiteral(src); err == nil {
			t.Errorf("ParseLiteral(%q) = %#v, want an error", src, v)
		} else if se := (*SyntaxError)(nil); !errors.As(err, &se) {
			t.Errorf("ParseLiteral(%q): %T is not a *SyntaxError", src, err)
		}
	}
	deep := ""
	for i := 0; i < maxDepth+1; i++ {
		deep += "["
	}
	if _, err := ParseLiteral(deep); err == nil {
		t.Errorf("ParseLiteral of %d nested lists: no error", maxDepth+1)
	}
}

func TestFormatLiteralRoundTrip(t *testing.T) {
	for _, v := range []any{
		map[string]any{"a": []any{int64(-1), 2.5, -0.0, 1e300, true, false, nil, "x'y\\z\n\x00é"}},
		"", []any{}, map[string]any{},
	} {
		s := FormatLiteral(v)
		got, err := ParseLiteral(s)
		if err != nil {
			t.Fatalf("ParseLiteral(FormatLiteral(%#v) = %q): %v", v, s, err)
		}
		if d := cmp.Diff(v, got); d != "" {
			t.Errorf("round trip through %q (-want +got):\n%s", s, d)
		}
	}
}

// FuzzParseLiteral: no input panics, and whatever parses formats back to
// a literal that parses to the same value.
func FuzzParseLiteral(f *testing.F) {
	for _, s := range []string{
		"{'flags': 'suid'}",
		"{'flavor': 'h ns uns', 'opts': '--tcp-established', 'flags': 'nouser samens'}",
		"{   'deps': [   '/bin/sh',\n '/usr/bin/diff'],\n 'flags': 'suid', # c\n 'timeout': '60'}",
		"{'a': (1, 2.5, -3e-2, 0x10, True, None), \"b\": r'\\x' '\\x41'}",
		"'''triple\n''' \"\\u00e9\"",
		"os.getenv('A') and {'a': 1} or {'flags': 'noauto'}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		v, err := ParseLiteral(src)
		if err != nil {
			return
		}
		s := FormatLiteral(v)
		w, err := ParseLiteral(s)
		if err != nil {
			t.Fatalf("ParseLiteral(%q) = %#v; its format %q does not parse: %v", src, v, s, err)
		}
		if d := cmp.Diff(v, w); d != "" {
			t.Fatalf("ParseLiteral(%q) then format %q (-first +second):\n%s", src, s, d)
		}
		if _, ok := v.(map[string]any); ok {
			_, _ = DescFromValue(v)
		}
	})
}
