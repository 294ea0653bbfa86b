// Package rpcpb holds the protobuf messages of CRIU's RPC protocol, of its
// statistics files and of its inventory, generated from rpc.proto,
// stats.proto and inventory.proto. The
// .proto files are crsub's own, written from CRIU's field numbers; the Go
// code is generated (protoc, and protoc-gen-go at the version go.mod
// requires), not edited.
package rpcpb

//go:generate go build -o .protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
//go:generate protoc --plugin=protoc-gen-go=.protoc-gen-go --go_out=. --go_opt=paths=source_relative rpc.proto stats.proto inventory.proto
//go:generate rm -f .protoc-gen-go
