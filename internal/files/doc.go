// Package files holds, for each kind of open file crsub supports (regular
// files, directories, character devices, pipes…), its checkpoint side, its
// image record and its restart side together, as Linux-CR gave each file
// type its own checkpoint and restart operations.
//
// A Kind names the file records it writes (ckpt.File.Kind: one constant
// per kind in package ckpt, used on both sides), claims the fds it dumps,
// and restores its file records and the object records it writes beside
// them (a pipe, a pty, a socket pair, a memfd, epoll watches). The
// checkpoint and restart drivers iterate over Kinds (KindFor, ForFile,
// ForObject); adding a new kind of fd means adding one file here (and its
// kselftest-style subject). socket.go holds what the socket kinds share
// (socket_unix_name.go what the unix ones share about names,
// socket_netns.go and socket_tcp_netns.go what they share about the network
// namespace a socket is in), watch.go what inotify and fanotify share (the
// watched file).
package files
