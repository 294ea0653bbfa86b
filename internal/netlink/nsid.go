package netlink

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// NSIDOf returns the id this namespace gives the network namespace of fd
// (the ids IFLA_LINK_NETNSID names namespaces by), or -1 if it has given
// it none.
func (c *Conn) NSIDOf(fd int) (int32, error) {
	var e Encoder
	e.Raw([]byte{unix.AF_UNSPEC}) // struct rtgenmsg
	e.Uint32(unix.NETNSA_FD, uint32(fd))
	msgs, err := c.Query(unix.RTM_GETNSID, e.Bytes())
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if m.Type != unix.RTM_NEWNSID || len(m.Data) < 4 {
			continue
		}
		attrs, err := ParseAttrs(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("RTM_NEWNSID: %w", err)
		}
		for _, a := range attrs {
			if a.Type == unix.NETNSA_NSID {
				return a.Int32()
			}
		}
	}
	return 0, fmt.Errorf("RTM_GETNSID: no id in the answer")
}
