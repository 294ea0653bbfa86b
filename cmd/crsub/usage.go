package main

import (
	"fmt"
	"strings"

	flag "github.com/spf13/pflag"
)

// flagUsages lists fs's flags the way GNU tools do: a boolean is a plain
// switch (--leave-running, not pflag's --leave-running[=true|false]), a
// flag that takes a value names it, and one whose value may be left out
// shows what it then means (--pre-copy[=2]).
func flagUsages(fs *flag.FlagSet) string {
	type row struct{ left, usage string }
	var rows []row
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		if f.Hidden {
			return
		}
		left := "      --" + f.Name
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			left = "  -" + f.Shorthand + ", --" + f.Name
		}
		varname, usage := flag.UnquoteUsage(f)
		isSwitch := f.Value.Type() == "bool"
		if !isSwitch && varname != "" {
			left += " " + varname
		}
		if !isSwitch && f.NoOptDefVal != "" {
			left += "[=" + f.NoOptDefVal + "]"
		}
		if !isSwitch && !zeroDefault(f) {
			if f.Value.Type() == "string" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		rows = append(rows, row{left, usage})
		width = max(width, len(left))
	})
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s   %s\n", width, r.left, r.usage)
	}
	return b.String()
}

// zeroDefault reports whether f's default is its type's zero value, which
// goes without saying.
func zeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "0s", "false", "[]", "<nil>":
		return true
	}
	return false
}
