package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// progress draws one status line (bytes, rate, ETA) on a terminal, at most
// ten times a second; on anything else it stays quiet.
type progress struct {
	w       io.Writer
	what    string
	start   time.Time
	last    time.Time
	drawn   bool
	enabled bool
}

// newProgress returns a progress line on stderr if stderr is a terminal
// and quiet is not set.
func newProgress(stderr io.Writer, what string, quiet bool) *progress {
	p := &progress{w: stderr, what: what, start: time.Now()}
	if f, ok := stderr.(*os.File); ok && !quiet {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.enabled = err == nil
	}
	return p
}

// update shows done of total bytes (total 0: unknown).
func (p *progress) update(done, total int64) {
	if !p.enabled || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	elapsed := time.Since(p.start).Seconds()
	rate := float64(done) / max(elapsed, 1e-3)
	line := fmt.Sprintf("%s %s", p.what, mib(done))
	if total > 0 {
		line += " of ~" + mib(total)
	}
	line += fmt.Sprintf(", %s/s", mib(int64(rate)))
	if total > done && rate > 0 {
		line += fmt.Sprintf(", ~%.0fs left", float64(total-done)/rate)
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.drawn = true
}

// done clears the line.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
