package criurpc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/criurpc/rpcpb"
)

// recordedRequests are requests a runtime really sent, as crsub swrk logged
// them (testdata/RUNTIME-VERSION-KIND.txtpb, the request line of the
// dump.log and restore.log of runc_criu.sh, and of podman.sh, which keeps
// copies in $CR_DIR/requests): every field each carries must map to a
// Request, none refused.
func recordedRequests(t testing.TB) map[string]*rpcpb.CriuReq {
	files, err := filepath.Glob("testdata/*.txtpb")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded requests in testdata: %v", err)
	}
	reqs := map[string]*rpcpb.CriuReq{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var req rpcpb.CriuReq
		if err := prototext.Unmarshal(b, &req); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		reqs[filepath.Base(f)] = &req
	}
	return reqs
}

func TestRecordedRequests(t *testing.T) {
	type summary struct {
		Type                            string
		Root                            bool
		ExtMounts, CgroupRoots, Inherit int
		EmptyNs, Orphan, Sibling        bool
	}
	want := map[string]summary{
		"runc-1.1.5-dump.txtpb":    {Type: "DUMP", ExtMounts: 17, EmptyNs: true},
		"runc-1.1.5-restore.txtpb": {Type: "RESTORE", Root: true, ExtMounts: 16, CgroupRoots: 11, Inherit: 3, EmptyNs: true, Orphan: true, Sibling: true},
		// podman 4.3.1 through runc: checkpoint, restore in place, and
		// restore --import under a new name (other bind-mount sources).
		"podman-4.3.1-runc-1.1.5-dump.txtpb":           {Type: "DUMP", ExtMounts: 22, EmptyNs: true},
		"podman-4.3.1-runc-1.1.5-restore.txtpb":        {Type: "RESTORE", Root: true, ExtMounts: 21, CgroupRoots: 11, Inherit: 3, EmptyNs: true, Orphan: true, Sibling: true},
		"podman-4.3.1-runc-1.1.5-restore-import.txtpb": {Type: "RESTORE", Root: true, ExtMounts: 21, CgroupRoots: 11, Inherit: 3, EmptyNs: true, Orphan: true, Sibling: true},
	}
	got := map[string]summary{}
	for name, req := range recordedRequests(t) {
		// As the runtime sends it: the wire bytes, decoded as swrk does.
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		dec, err := decodeRequest(b)
		if err != nil {
			t.Errorf("%s: decodeRequest: %v", name, err)
			continue
		}
		r, err := ParseRequest(dec.GetType(), dec.GetOpts())
		if err != nil {
			t.Errorf("%s: ParseRequest: %v", name, err)
			continue
		}
		got[name] = summary{
			Type: dec.GetType().String(), Root: r.Root != "",
			ExtMounts: len(dec.GetOpts().GetExtMnt()), CgroupRoots: len(r.CgroupRoots), Inherit: len(r.InheritFds),
			EmptyNs: dec.GetOpts().GetEmptyNs() != 0, Orphan: r.OrphanPtsMaster, Sibling: r.Sibling,
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded requests as parsed (-want +got):\n%s", diff)
	}
}
