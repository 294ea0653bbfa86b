package ckpt

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"unicode/utf8"
)

// JSON strings hold text, but what records hold are the kernel's bytes:
// a path or a process name need not be UTF-8, and encoding/json would
// replace such bytes with U+FFFD, restoring another file. A string that
// is not valid UTF-8, or that begins with escapeMark, is therefore written
// as escapeMark followed by its bytes in base64, and read back as its
// bytes. A NUL leads no path, name or address the records hold as text
// (an abstract unix name is written with '@'), so the mark costs nothing
// in practice and keeps every string's meaning unambiguous.
const escapeMark = "\x00"

var marshalerType = reflect.TypeFor[json.Marshaler]()

func needsEscape(s string) bool {
	return !utf8.ValidString(s) || strings.HasPrefix(s, escapeMark)
}

func escapeString(s string) string {
	return escapeMark + base64.StdEncoding.EncodeToString([]byte(s))
}

func unescapeString(s string) (string, bool) {
	rest, ok := strings.CutPrefix(s, escapeMark)
	if !ok {
		return s, false
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return s, false
	}
	return string(b), true
}

// escaped returns v, or a copy of it with every string needsEscape names
// escaped: copied only along the way to such strings, so that the common
// record, all text, costs a walk and nothing more, and the caller's value
// is never written to.
func escaped(v reflect.Value) (reflect.Value, bool) {
	if !v.IsValid() {
		return v, false
	}
	t := v.Type()
	if t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) {
		return v, false // time.Time and the like: their own text
	}
	switch t.Kind() {
	case reflect.String:
		if !needsEscape(v.String()) {
			return v, false
		}
		c := reflect.New(t).Elem()
		c.SetString(escapeString(v.String()))
		return c, true
	case reflect.Pointer:
		if v.IsNil() {
			return v, false
		}
		e, changed := escaped(v.Elem())
		if !changed {
			return v, false
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(e)
		return p, true
	case reflect.Interface:
		if v.IsNil() {
			return v, false
		}
		e, changed := escaped(v.Elem())
		if !changed {
			return v, false
		}
		c := reflect.New(t).Elem()
		c.Set(e)
		return c, true
	case reflect.Struct:
		var c reflect.Value
		for i := range t.NumField() {
			if !t.Field(i).IsExported() {
				continue
			}
			f, changed := escaped(v.Field(i))
			if !changed {
				continue
			}
			if !c.IsValid() {
				c = reflect.New(t).Elem()
				c.Set(v)
			}
			c.Field(i).Set(f)
		}
		if c.IsValid() {
			return c, true
		}
		return v, false
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return v, false // base64 already
		}
		var c reflect.Value
		for i := range v.Len() {
			e, changed := escaped(v.Index(i))
			if !changed {
				continue
			}
			if !c.IsValid() {
				if t.Kind() == reflect.Slice {
					c = reflect.MakeSlice(t, v.Len(), v.Len())
					reflect.Copy(c, v)
				} else {
					c = reflect.New(t).Elem()
					c.Set(v)
				}
			}
			c.Index(i).Set(e)
		}
		if c.IsValid() {
			return c, true
		}
		return v, false
	case reflect.Map:
		var c reflect.Value
		iter := v.MapRange()
		for iter.Next() {
			k, kc := escaped(iter.Key())
			e, ec := escaped(iter.Value())
			if !kc && !ec {
				continue
			}
			if !c.IsValid() {
				c = reflect.MakeMapWithSize(t, v.Len())
				all := v.MapRange()
				for all.Next() {
					c.SetMapIndex(all.Key(), all.Value())
				}
			}
			c.SetMapIndex(iter.Key(), reflect.Value{})
			c.SetMapIndex(k, e)
		}
		if c.IsValid() {
			return c, true
		}
		return v, false
	}
	return v, false
}

// unescape turns, in place, every escaped string under v (decoded from
// JSON, so nothing else holds it) back into its bytes.
func unescape(v reflect.Value) {
	if !v.IsValid() {
		return
	}
	t := v.Type()
	if t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.String:
		if s, ok := unescapeString(v.String()); ok && v.CanSet() {
			v.SetString(s)
		}
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		if t.Kind() == reflect.Interface {
			// An interface's value cannot be set in place: take a copy.
			e := v.Elem()
			c := reflect.New(e.Type()).Elem()
			c.Set(e)
			unescape(c)
			if v.CanSet() {
				v.Set(c)
			}
			return
		}
		unescape(v.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				unescape(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := range v.Len() {
			unescape(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		type kv struct{ k, v reflect.Value }
		var fix []kv
		iter := v.MapRange()
		for iter.Next() {
			k := reflect.New(t.Key()).Elem()
			k.Set(iter.Key())
			e := reflect.New(t.Elem()).Elem()
			e.Set(iter.Value())
			unescape(k)
			unescape(e)
			fix = append(fix, kv{iter.Key(), reflect.Value{}}, kv{k, e})
		}
		for _, f := range fix {
			v.SetMapIndex(f.k, f.v)
		}
	}
}
