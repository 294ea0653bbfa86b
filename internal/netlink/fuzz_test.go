package netlink

import (
	"testing"

	"golang.org/x/sys/unix"
)

// liveDumps seeds a corpus with this machine's own answers, when it can
// ask for them.
func liveDumps(f *testing.F) {
	c, err := Dial()
	if err != nil {
		return
	}
	defer c.Close()
	for _, req := range []struct {
		typ  uint16
		body []byte
	}{
		{unix.RTM_GETLINK, make([]byte, unix.SizeofIfInfomsg)},
		{unix.RTM_GETADDR, make([]byte, unix.SizeofIfAddrmsg)},
		{unix.RTM_GETROUTE, make([]byte, unix.SizeofRtMsg)},
	} {
		msgs, err := c.Dump(req.typ, req.body)
		if err != nil {
			continue
		}
		for _, m := range msgs {
			f.Add(m.Type, append([]byte(nil), m.Data...))
		}
	}
}

// FuzzParse feeds message bodies to the decoder of their type, and
// datagrams to the reading of acknowledgements: any input is parsed or
// refused, never a panic. The walk of messages and attributes itself is
// nlwire's FuzzWalk.
func FuzzParse(f *testing.F) {
	f.Add(uint16(unix.RTM_NEWLINK), make([]byte, unix.SizeofIfInfomsg))
	f.Add(uint16(unix.RTM_NEWADDR), []byte{2, 8, 0, 0, 1, 0, 0, 0, 8, 0, 1, 0, 10, 0, 0, 1})
	f.Add(uint16(unix.RTM_NEWROUTE), make([]byte, unix.SizeofRtMsg+3))
	liveDumps(f)
	f.Fuzz(func(t *testing.T, typ uint16, b []byte) {
		switch typ % 3 {
		case 0:
			ParseLink(b)
		case 1:
			ParseAddress(b)
		case 2:
			ParseRoute(b)
		}
		if msgs, err := ParseMessages(b); err == nil {
			for _, m := range msgs {
				ackError("fuzz", m)
			}
		}
	})
}
