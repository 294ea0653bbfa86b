package netlink

import (
	"bytes"
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

// FuzzParse feeds message bodies to the decoder of their type: any input
// is parsed or refused, never a panic, and attributes parse back from
// their own encoding.
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
		attrs, err := ParseAttrs(b)
		if err != nil {
			return
		}
		var e Encoder
		for _, a := range attrs {
			e.Attr(a.Type, a.Value)
		}
		again, err := ParseAttrs(e.Bytes())
		if err != nil {
			t.Fatalf("re-encoded attributes do not parse: %v", err)
		}
		if len(again) != len(attrs) {
			t.Fatalf("%d attributes re-encoded, %d parsed back", len(attrs), len(again))
		}
		for i := range attrs {
			if again[i].Type != attrs[i].Type || !bytes.Equal(again[i].Value, attrs[i].Value) {
				t.Fatalf("attribute %d: %+v re-encoded as %+v", i, attrs[i], again[i])
			}
		}
	})
}
