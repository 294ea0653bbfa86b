package ns

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

func TestCgroupRoots(t *testing.T) {
	for _, c := range []struct {
		name          string
		whole, inside []procfs.Cgroup
		want          []ckpt.Cgroup
		bad           bool
	}{
		{
			name:   "at its root",
			whole:  []procfs.Cgroup{{Controllers: "", Path: "/ctr"}, {Controllers: "cpu,cpuacct", Path: "/ctr/a"}},
			inside: []procfs.Cgroup{{Controllers: "", Path: "/"}, {Controllers: "cpu,cpuacct", Path: "/"}},
			want:   []ckpt.Cgroup{{Controllers: "", Path: "/ctr"}, {Controllers: "cpu,cpuacct", Path: "/ctr/a"}},
		},
		{
			name:   "below its root",
			whole:  []procfs.Cgroup{{Controllers: "", Path: "/ctr/app/worker"}},
			inside: []procfs.Cgroup{{Controllers: "", Path: "/app/worker"}},
			want:   []ckpt.Cgroup{{Controllers: "", Path: "/ctr"}},
		},
		{
			name:   "the namespace's root is crsub's",
			whole:  []procfs.Cgroup{{Controllers: "", Path: "/app"}},
			inside: []procfs.Cgroup{{Controllers: "", Path: "/app"}},
			want:   []ckpt.Cgroup{{Controllers: "", Path: "/"}},
		},
		{
			name:   "a name that only ends alike",
			whole:  []procfs.Cgroup{{Controllers: "", Path: "/ctrapp"}},
			inside: []procfs.Cgroup{{Controllers: "", Path: "app"}},
			bad:    true,
		},
		{
			name:   "outside its root",
			whole:  []procfs.Cgroup{{Controllers: "", Path: "/other"}},
			inside: []procfs.Cgroup{{Controllers: "", Path: "/ctr"}},
			bad:    true,
		},
		{
			name:   "a hierarchy not seen inside",
			whole:  []procfs.Cgroup{{Controllers: "pids", Path: "/ctr"}},
			inside: []procfs.Cgroup{{Controllers: "", Path: "/"}},
			bad:    true,
		},
	} {
		got, err := cgroupRoots(c.whole, c.inside)
		if c.bad {
			if err == nil {
				t.Errorf("%s: roots %v, want an error", c.name, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

// messagesPayload is the payload dumpSysVMsg writes for msgs.
func messagesPayload(msgs []sysvMessage) []byte {
	var b bytes.Buffer
	for _, m := range msgs {
		hdr := make([]byte, 12)
		binary.LittleEndian.PutUint64(hdr, uint64(m.mtype))
		binary.LittleEndian.PutUint32(hdr[8:], uint32(len(m.text)))
		b.Write(hdr)
		b.Write(m.text)
	}
	return b.Bytes()
}

func TestReadSysVMessages(t *testing.T) {
	msgs := []sysvMessage{{5, []byte("hello")}, {7, []byte{}}, {1 << 40, []byte("world")}}
	got, err := readSysVMessages(bytes.NewReader(messagesPayload(msgs)), len(msgs), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(msgs, got, cmp.AllowUnexported(sysvMessage{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		name  string
		msgs  []sysvMessage
		n     int
		limit uint64
	}{
		{"more than the queue holds", msgs, 3, 9},
		{"fewer than it says", msgs, 4, 100},
		{"a type that is not positive", []sysvMessage{{0, []byte("x")}}, 1, 100},
		{"a negative type", []sysvMessage{{-3, []byte("x")}}, 1, 100},
	} {
		if got, err := readSysVMessages(bytes.NewReader(messagesPayload(c.msgs)), c.n, c.limit); err == nil {
			t.Errorf("%s: read %v", c.name, got)
		}
	}
}

func FuzzReadSysVMessages(f *testing.F) {
	f.Add(messagesPayload([]sysvMessage{{5, []byte("hello")}, {7, []byte("world")}}), 2, uint64(16384))
	f.Add([]byte{}, 0, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, n int, limit uint64) {
		if n < 0 || n > 1<<16 {
			return
		}
		msgs, err := readSysVMessages(bytes.NewReader(b), n, limit)
		if err != nil {
			return
		}
		var total uint64
		for _, m := range msgs {
			total += uint64(len(m.text))
			if m.mtype <= 0 {
				t.Errorf("message of type %d read", m.mtype)
			}
		}
		if len(msgs) != n || total > limit {
			t.Errorf("%d messages of %d bytes read, asked %d within %d", len(msgs), total, n, limit)
		}
		if !bytes.Equal(messagesPayload(msgs), b[:len(messagesPayload(msgs))]) {
			t.Errorf("messages read are not the payload's")
		}
	})
}
