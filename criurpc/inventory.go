package criurpc

import (
	"encoding/binary"

	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/atomicfile"
)

// inventoryName is the file CRIU writes last into an images directory.
// podman takes its presence for a complete checkpoint: container restore
// refuses a directory without it.
const inventoryName = "inventory.img"

// inventoryMagic heads CRIU's inventory, the one image without the common
// magic before its own (images/magic.h, criu/image.c).
const inventoryMagic = 0x58313116

// inventoryVersion is no version of CRIU's image set, which this directory
// does not hold: CRIU given it refuses at once ("Not supported images
// version 0") rather than at the first image it misses.
const inventoryVersion = 0

// writeInventory marks the images directory (the working directory) as
// holding a complete checkpoint, once crsub's image is in place, in CRIU's
// format: the magic, then the entry as a length-prefixed message, all
// little-endian.
func writeInventory() error {
	b, err := proto.Marshal(&rpcpb.InventoryEntry{ImgVersion: ptr(uint32(inventoryVersion))})
	if err != nil {
		return err
	}
	f, err := atomicfile.Create(inventoryName)
	if err != nil {
		return err
	}
	defer f.Abort()
	head := binary.LittleEndian.AppendUint32(nil, inventoryMagic)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(b)))
	if _, err := f.Write(append(head, b...)); err != nil {
		return err
	}
	return f.Commit()
}
