package wire

import "github.com/owlpost/owlpost/internal/push"

// Assign returns the batches-topic partition of a batch in a plan of nIOS iOS
// and nAndroid Android batches over partitions partitions. iOS batches go
// round-robin from partition 0; Android batches continue where iOS stopped, so
// every partition holds the same number of batches give or take one, and the
// partition token counts differ by at most one batch. The planner, the
// re-planner (for tombstones) and the verifier all call this one function.
func Assign(p push.Platform, seq uint32, nIOS uint32, partitions int32) int32 {
	if partitions <= 0 {
		return 0
	}
	if p == push.IOS {
		return int32(uint64(seq) % uint64(partitions))
	}
	return int32((uint64(nIOS) + uint64(seq)) % uint64(partitions))
}
