// Package ckpt is crsub's checkpoint image format: one stream of checksummed
// records that a writer emits front to back and a reader consumes once, without
// seeking, so an image can travel through a pipe (`crsub checkpoint -o - |
// crsub restart -i -`). Records that define shared objects carry an objref,
// every record lists the objrefs it depends on, and an object always comes
// before anything that refers to it; tools such as the image filter can
// therefore remove an object together with everything that depends on it
// without understanding each record type. Bulk data (memory pages, pipe
// buffers, file contents) travels as payloads that can be copied or skipped
// without decoding. The package knows no process: it is plain data plus the
// encoding, specified in docs/image-format.md.
package ckpt
