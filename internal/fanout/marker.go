package fanout

import (
	"strconv"
	"strings"
	"time"

	"github.com/owlpost/owlpost/internal/wire"
)

// RoleRelease is the Status role of a release progress marker. Readers of
// the status topic that sum instance reports must skip it.
const RoleRelease = "release"

// MarkerKey is the status-topic key of the release progress of one fire (or
// proof) id on one batches-topic partition: "<campaign>/release/<fire id>/p<partition>".
// It is written only inside the transaction that releases the batches it
// counts, so it is exactly as durable as they are.
func MarkerKey(campaign, fireID string, partition int32) string {
	return campaign + "/" + RoleRelease + "/" + fireID + "/p" + strconv.FormatInt(int64(partition), 10)
}

// ParseMarkerKey splits a MarkerKey; ok is false for any other key.
func ParseMarkerKey(key string) (campaign, fireID string, partition int32, ok bool) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 || i+2 > len(key) || key[i+1] != 'p' {
		return "", "", 0, false
	}
	p, err := strconv.ParseInt(key[i+2:], 10, 32)
	if err != nil || p < 0 {
		return "", "", 0, false
	}
	rest := key[:i]
	j := strings.LastIndexByte(rest, '/')
	if j < 0 {
		return "", "", 0, false
	}
	fireID = rest[j+1:]
	rest = rest[:j]
	if !strings.HasSuffix(rest, "/"+RoleRelease) {
		return "", "", 0, false
	}
	campaign = strings.TrimSuffix(rest, "/"+RoleRelease)
	if campaign == "" || fireID == "" {
		return "", "", 0, false
	}
	return campaign, fireID, int32(p), true
}

// marker is the decoded progress of one (campaign, fire id, partition).
type marker struct {
	generation uint64
	batches    uint32 // batches to release on the partition
	released   uint32 // batches committed so far, in key order
	instance   string // who committed it
}

func (m marker) done() bool { return m.released >= m.batches }

// markerValue encodes a marker as a wire.Status with Role RoleRelease, so a
// generic status reader decodes it without special cases.
func markerValue(campaign, instance string, partition int32, m marker) ([]byte, error) {
	st := &wire.Status{
		Campaign: campaign, Role: RoleRelease, Instance: instance, State: wire.StateReleasing, At: time.Now().UTC(),
		Generation: m.generation, Partitions: []int32{partition}, Batches: m.batches, Released: m.released,
		ManifestMatch: true,
	}
	if m.done() {
		st.State = wire.StateReleased
	}
	return wire.Encode(st)
}

// parseMarker decodes a marker value.
func parseMarker(value []byte) (marker, error) {
	var st wire.Status
	if err := wire.Decode(value, &st); err != nil {
		return marker{}, err
	}
	return marker{generation: st.Generation, batches: st.Batches, released: st.Released, instance: st.Instance}, nil
}

// markerID is the in-memory key of a marker on one partition.
func markerID(campaign, fireID string) string { return campaign + "\x00" + fireID }
