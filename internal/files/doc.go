// Package files holds, for each kind of open file crsub supports (regular
// files, directories, character devices, pipes…), its checkpoint side, its
// image record and its restart side together, as Linux-CR gave each file
// type its own checkpoint and restart operations. The checkpoint and restart
// drivers iterate over Kinds; adding a new kind of fd means adding one file
// here (and its kselftest-style subject).
package files
