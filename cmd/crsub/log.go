package main

import (
	"io"
	"log/slog"
)

// newLogger logs warnings (and with verbose, progress) to w: a command-line
// user wants to hear about a log file restored at a changed size.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
