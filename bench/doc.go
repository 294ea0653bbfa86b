// Package bench measures crsub's checkpoint and restart of real processes
// against a baseline taken in the same run (a memcpy of the same bytes), as
// `make bench` reports. It holds benchmarks only; nothing here is timed in
// tests.
package bench
