package zdtm

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A .desc file of CRIU's zdtm suite is a Python expression that zdtm.py
// passes to eval(); every .desc of the static tests but one is a literal:
// a dict of strings, lists of strings and numbers. ParseLiteral reads that
// subset of Python: dicts (string keys), lists, tuples, strings (quoted
// with ' " ''' or """, r/b/u prefixes, escapes, adjacent literals
// concatenated), integers, floats, True, False and None, with comments and
// backslash-newline continuations between tokens.
//
// The Go values are string, int64, float64, bool, nil, []any (list and
// tuple) and map[string]any.

// maxDepth bounds nesting; Python's own parser stops not far above it.
const maxDepth = 100

// SyntaxError reports where a literal could not be read.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

type litParser struct {
	src   string
	pos   int
	depth int
}

// ParseLiteral parses src as one Python literal expression.
func ParseLiteral(src string) (any, error) {
	if !utf8.ValidString(src) {
		return nil, &SyntaxError{Msg: "not UTF-8"}
	}
	p := &litParser{src: src}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.src) {
		return nil, p.errorf("unexpected %q after the value", p.src[p.pos])
	}
	return v, nil
}

func (p *litParser) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: p.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *litParser) skipSpace() {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			p.pos++
		case c == '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case c == '\\' && strings.HasPrefix(p.src[p.pos+1:], "\n"):
			p.pos += 2
		case c == '\\' && strings.HasPrefix(p.src[p.pos+1:], "\r\n"):
			p.pos += 3
		default:
			return
		}
	}
}

func (p *litParser) value() (any, error) {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.nested(p.dict)
	case c == '[':
		return p.nested(func() (any, error) { return p.sequence('[', ']') })
	case c == '(':
		return p.nested(func() (any, error) { return p.sequence('(', ')') })
	case c == '\'' || c == '"':
		return p.strings()
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	case isIdentStart(c):
		start := p.pos
		for p.pos < len(p.src) && isIdentPart(p.src[p.pos]) {
			p.pos++
		}
		word := p.src[start:p.pos]
		if p.pos < len(p.src) && (p.src[p.pos] == '\'' || p.src[p.pos] == '"') && isStringPrefix(word) {
			p.pos = start
			return p.strings()
		}
		switch word {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		}
		p.pos = start
		return nil, p.errorf("name %q is not a literal", word)
	default:
		return nil, p.errorf("unexpected %q", c)
	}
}

func (p *litParser) nested(f func() (any, error)) (any, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, p.errorf("nested deeper than %d", maxDepth)
	}
	return f()
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func isStringPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "r", "u", "b", "br", "rb":
		return true
	}
	return false
}

func (p *litParser) dict() (any, error) {
	p.pos++ // {
	m := map[string]any{}
	for {
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == '}' {
			p.pos++
			return m, nil
		}
		keyAt := p.pos
		k, err := p.value()
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if !ok {
			return nil, &SyntaxError{Offset: keyAt, Msg: fmt.Sprintf("dict key %v is not a string", k)}
		}
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return nil, p.errorf("expected ':' after dict key %q", ks)
		}
		p.pos++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		m[ks] = v
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unterminated dict")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return m, nil
		default:
			return nil, p.errorf("expected ',' or '}' in dict, got %q", p.src[p.pos])
		}
	}
}

func (p *litParser) sequence(open, closing byte) (any, error) {
	p.pos++ // open
	l := []any{}
	commas := 0
	for {
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == closing {
			p.pos++
			break
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		l = append(l, v)
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unterminated %c", open)
		}
		if p.src[p.pos] == ',' {
			p.pos++
			commas++
			continue
		}
		if p.src[p.pos] == closing {
			p.pos++
			break
		}
		return nil, p.errorf("expected ',' or %q, got %q", closing, p.src[p.pos])
	}
	// (x) is x, not a tuple; (x,) and () are tuples.
	if open == '(' && len(l) == 1 && commas == 0 {
		return l[0], nil
	}
	return l, nil
}

// strings reads one string literal and any adjacent ones, concatenated.
func (p *litParser) strings() (any, error) {
	var b strings.Builder
	for {
		s, err := p.oneString()
		if err != nil {
			return nil, err
		}
		b.WriteString(s)
		save := p.pos
		p.skipSpace()
		if p.pos < len(p.src) && (p.src[p.pos] == '\'' || p.src[p.pos] == '"' || p.isPrefixedString()) {
			continue
		}
		p.pos = save
		return b.String(), nil
	}
}

func (p *litParser) isPrefixedString() bool {
	i := p.pos
	for i < len(p.src) && isIdentPart(p.src[i]) {
		i++
	}
	return i > p.pos && i < len(p.src) && (p.src[i] == '\'' || p.src[i] == '"') && isStringPrefix(p.src[p.pos:i])
}

func (p *litParser) oneString() (string, error) {
	raw := false
	for p.pos < len(p.src) && isIdentStart(p.src[p.pos]) {
		if c := p.src[p.pos]; c == 'r' || c == 'R' {
			raw = true
		}
		p.pos++
	}
	start := p.pos
	q := p.src[p.pos]
	delim := string(q)
	if strings.HasPrefix(p.src[p.pos:], strings.Repeat(delim, 3)) {
		delim = strings.Repeat(delim, 3)
	}
	p.pos += len(delim)
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			return "", &SyntaxError{Offset: start, Msg: "unterminated string"}
		}
		if strings.HasPrefix(p.src[p.pos:], delim) {
			p.pos += len(delim)
			return b.String(), nil
		}
		c := p.src[p.pos]
		if c == '\n' && len(delim) == 1 {
			return "", p.errorf("newline in a string")
		}
		if c != '\\' {
			b.WriteByte(c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.src) {
			return "", &SyntaxError{Offset: start, Msg: "unterminated string"}
		}
		e := p.src[p.pos+1]
		if raw {
			// A raw string keeps the backslash; it still cannot end the string.
			b.WriteByte('\\')
			b.WriteByte(e)
			p.pos += 2
			continue
		}
		p.pos += 2
		switch e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n := int(e - '0')
			for i := 0; i < 2 && p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '7'; i++ {
				n = n*8 + int(p.src[p.pos]-'0')
				p.pos++
			}
			if n > 0xff {
				return "", p.errorf("octal escape out of range")
			}
			b.WriteRune(rune(n))
		case 'x':
			if p.pos+2 > len(p.src) {
				return "", p.errorf("truncated \\x escape")
			}
			n, err := strconv.ParseUint(p.src[p.pos:p.pos+2], 16, 8)
			if err != nil {
				return "", p.errorf("bad \\x escape")
			}
			b.WriteRune(rune(n))
			p.pos += 2
		case 'u', 'U':
			w := 4
			if e == 'U' {
				w = 8
			}
			if p.pos+w > len(p.src) {
				return "", p.errorf("truncated \\%c escape", e)
			}
			n, err := strconv.ParseUint(p.src[p.pos:p.pos+w], 16, 32)
			if err != nil || n > 0x10ffff || (n >= 0xd800 && n < 0xe000) {
				return "", p.errorf("bad \\%c escape", e)
			}
			b.WriteRune(rune(n))
			p.pos += w
		default:
			// Python keeps an unknown escape as it is.
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
}

func (p *litParser) number() (any, error) {
	start := p.pos
	neg := false
	for p.pos < len(p.src) && (p.src[p.pos] == '-' || p.src[p.pos] == '+') {
		if p.src[p.pos] == '-' {
			neg = !neg
		}
		p.pos++
		p.skipSpace()
	}
	numStart := p.pos
	for p.pos < len(p.src) && (isIdentPart(p.src[p.pos]) || p.src[p.pos] == '.' ||
		((p.src[p.pos] == '-' || p.src[p.pos] == '+') && p.pos > numStart && (p.src[p.pos-1] == 'e' || p.src[p.pos-1] == 'E') && !strings.ContainsAny(p.src[numStart:p.pos], "xX"))) {
		p.pos++
	}
	lit := p.src[numStart:p.pos]
	if lit == "" {
		return nil, &SyntaxError{Offset: start, Msg: "expected a number"}
	}
	clean := strings.ReplaceAll(lit, "_", "")
	if strings.Contains(lit, "__") || strings.HasPrefix(lit, "_") || strings.HasSuffix(lit, "_") {
		return nil, &SyntaxError{Offset: numStart, Msg: fmt.Sprintf("bad number %q", lit)}
	}
	lower := strings.ToLower(clean)
	isInt := !strings.ContainsAny(lower, ".e") || strings.HasPrefix(lower, "0x")
	if isInt {
		base := 10
		digits := lower
		switch {
		case strings.HasPrefix(lower, "0x"):
			base, digits = 16, lower[2:]
		case strings.HasPrefix(lower, "0o"):
			base, digits = 8, lower[2:]
		case strings.HasPrefix(lower, "0b"):
			base, digits = 2, lower[2:]
		case len(lower) > 1 && lower[0] == '0' && strings.Trim(lower, "0") != "":
			return nil, &SyntaxError{Offset: numStart, Msg: fmt.Sprintf("leading zeros in %q", lit)}
		}
		if digits == "" || strings.HasPrefix(digits, "_") {
			return nil, &SyntaxError{Offset: numStart, Msg: fmt.Sprintf("bad number %q", lit)}
		}
		n, err := strconv.ParseInt(digits, base, 64)
		if err != nil {
			return nil, &SyntaxError{Offset: numStart, Msg: fmt.Sprintf("bad integer %q", lit)}
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	if strings.ContainsAny(lower, "xob") || strings.HasPrefix(lower, "e") {
		return nil, &SyntaxError{Offset: numStart, Msg: fmt.Sprintf("bad number %q", lit)}
	}
	f, err := strconv.ParseFloat(clean, 64)
	if err != nil {
		return nil, &SyntaxError{Offset: numStart, Msg: fmt.Sprintf("bad float %q", lit)}
	}
	if neg {
		f = -f
	}
	return f, nil
}

// FormatLiteral writes v (a value ParseLiteral returns) as a Python
// literal that ParseLiteral reads back to the same value.
func FormatLiteral(v any) string {
	var b strings.Builder
	formatLiteral(&b, v)
	return b.String()
}

func formatLiteral(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if v {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float64:
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eIN") {
			s += ".0"
		}
		b.WriteString(s)
	case string:
		b.WriteByte('\'')
		for _, r := range v {
			switch {
			case r == '\\' || r == '\'':
				b.WriteByte('\\')
				b.WriteRune(r)
			case r < 0x20 || r == 0x7f:
				fmt.Fprintf(b, "\\x%02x", r)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('\'')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			formatLiteral(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			formatLiteral(b, k)
			b.WriteString(": ")
			formatLiteral(b, v[k])
		}
		b.WriteByte('}')
	default:
		panic(fmt.Sprintf("zdtm: FormatLiteral of %T", v))
	}
}
