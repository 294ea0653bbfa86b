module github.com/crsub/crsub

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/spf13/pflag v1.1.0
	golang.org/x/sys v0.49.0
)

require google.golang.org/protobuf v1.36.12
