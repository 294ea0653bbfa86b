// Package buildinfo names this build of crsub, for image headers and
// `crsub version`.
package buildinfo

import "runtime/debug"

// Version is the release this tree is on its way to.
const Version = "0.1.0-dev"

// Writer is the name recorded in an image header.
func Writer() string { return "crsub " + Version }

// Revision is the VCS revision the binary was built from, when Go recorded
// one.
func Revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}
