package nlwire

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func collect[T any](seq func(func(T, error) bool)) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func TestWalk(t *testing.T) {
	two := AppendMessage(nil, Message{Type: unix.NLMSG_NOOP, Flags: 2, Seq: 7, Data: []byte{1, 2, 3}}, 9)
	two = AppendMessage(two, Message{Type: unix.NLMSG_DONE, Seq: 8}, 9)
	messages := func(b []byte) (any, error) { return collect(Messages(b)) }
	attrs := func(b []byte) (any, error) { return collect(Attrs(b)) }
	for _, tc := range []struct {
		name    string
		walk    func([]byte) (any, error)
		in      []byte
		want    any
		wantErr string
	}{
		{name: "no messages", walk: messages, in: nil, want: []Message(nil)},
		{name: "two messages, the first padded", walk: messages, in: two, want: []Message{
			{Type: unix.NLMSG_NOOP, Flags: 2, Seq: 7, Data: []byte{1, 2, 3}},
			{Type: unix.NLMSG_DONE, Seq: 8, Data: []byte{}},
		}},
		{name: "last message unpadded", walk: messages, in: two[:HeaderLen+3], want: []Message{{Type: unix.NLMSG_NOOP, Flags: 2, Seq: 7, Data: []byte{1, 2, 3}}}},
		{name: "short message header", walk: messages, in: two[:HeaderLen-1], want: []Message(nil), wantErr: "message header of 15 bytes"},
		{name: "bytes after a message", walk: messages, in: append(two[:HeaderLen+4:HeaderLen+4], 1, 2), want: []Message(nil), wantErr: "message header of 2 bytes"},
		{name: "message length below header", walk: messages, in: append([]byte{15}, two[1:HeaderLen]...), want: []Message(nil), wantErr: "message of 15 bytes in 16"},
		{name: "message length past end", walk: messages, in: two[:HeaderLen+2], want: []Message(nil), wantErr: "message of 19 bytes in 18"},

		{name: "no attributes", walk: attrs, in: nil, want: []Attr(nil)},
		{name: "one u32", walk: attrs, in: []byte{8, 0, 4, 0, 0xdc, 5, 0, 0}, want: []Attr{{Type: 4, Value: []byte{0xdc, 5, 0, 0}}}},
		{
			name: "padded string then u8, flags cleared", walk: attrs,
			in:   []byte{7, 0, 3, 0, 'l', 'o', 0, 0, 5, 0, 0x10, 0xc0, 6, 0, 0, 0},
			want: []Attr{{Type: 3, Value: []byte("lo\x00")}, {Type: 0x10, Value: []byte{6}}},
		},
		{name: "last attribute unpadded", walk: attrs, in: []byte{5, 0, 1, 0, 9}, want: []Attr{{Type: 1, Value: []byte{9}}}},
		{name: "short attribute header", walk: attrs, in: []byte{4, 0, 1}, want: []Attr(nil), wantErr: "attribute header of 3 bytes"},
		{name: "attribute length below header", walk: attrs, in: []byte{3, 0, 1, 0}, want: []Attr(nil), wantErr: "attribute of 3 bytes in 4"},
		{name: "attribute length past end", walk: attrs, in: []byte{12, 0, 1, 0, 0, 0, 0, 0}, want: []Attr(nil), wantErr: "attribute of 12 bytes in 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.walk(tc.in)
			if gotErr := errText(err); gotErr != tc.wantErr {
				t.Fatalf("err = %q, want %q", gotErr, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("walked (-want +got):\n%s", diff)
			}
		})
	}
}

// Breaking out of a walk stops it: nothing more is yielded, no error.
func TestStopEarly(t *testing.T) {
	b := AppendAttr(AppendAttr(nil, 1, nil), 2, nil)
	b = append(b, 0xff) // a malformed tail never reached
	n := 0
	for _, err := range Attrs(b) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 {
		t.Fatalf("%d attributes after break, want 1", n)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzWalk: any datagram is walked or refused, never a panic, and what is
// walked walks again, the same, from its own encoding; the attributes of
// every body likewise.
func FuzzWalk(f *testing.F) {
	f.Add(AppendMessage(nil, Message{Type: unix.RTM_NEWLINK, Data: AppendAttr(make([]byte, 16), unix.IFLA_MTU, []byte{0xdc, 5, 0, 0})}, 0))
	f.Add([]byte{40, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 2, 0, 9, 0, 0, 0})
	f.Add([]byte{7, 0, 3, 0, 'l', 'o', 0, 0, 5, 0, 0x10, 0x80, 6, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if msgs, err := collect(Messages(b)); err == nil {
			var again []byte
			for _, m := range msgs {
				again = AppendMessage(again, m, 0)
				checkAttrs(t, m.Data)
			}
			back, err := collect(Messages(again))
			if err != nil {
				t.Fatalf("re-encoded messages do not walk: %v", err)
			}
			if diff := cmp.Diff(msgs, back, cmp.Comparer(bytes.Equal)); diff != "" {
				t.Fatalf("messages re-encoded (-walked +walked again):\n%s", diff)
			}
		}
		checkAttrs(t, b)
	})
}

func checkAttrs(t *testing.T, b []byte) {
	attrs, err := collect(Attrs(b))
	if err != nil {
		return
	}
	var again []byte
	for _, a := range attrs {
		again = AppendAttr(again, a.Type, a.Value)
	}
	back, err := collect(Attrs(again))
	if err != nil {
		t.Fatalf("re-encoded attributes do not walk: %v", err)
	}
	if diff := cmp.Diff(attrs, back, cmp.Comparer(bytes.Equal)); diff != "" {
		t.Fatalf("attributes re-encoded (-walked +walked again):\n%s", diff)
	}
}
