package planner

import (
	"encoding/hex"
	"fmt"
	"testing"
)

// TestInSampleSpreadsStructuredTokens: tokens that differ only in their
// last bytes (sequential ids, as test audiences and some token formats
// have) are sampled close to the asked fraction.
func TestInSampleSpreadsStructuredTokens(t *testing.T) {
	const n = 2000
	for _, sample := range []float64{0.1, 0.5} {
		var ios, android int
		for i := range n {
			b, err := hex.DecodeString(fmt.Sprintf("%064x", i))
			if err != nil {
				t.Fatal(err)
			}
			if inSample(b, sample) {
				ios++
			}
			if inSample([]byte(fmt.Sprintf("android:%06d", i)), sample) {
				android++
			}
		}
		lo, hi := int(n*sample*0.8), int(n*sample*1.2)
		if ios < lo || ios > hi || android < lo || android > hi {
			t.Errorf("sample %.2f of %d sequential tokens: %d iOS, %d Android in it, want %d-%d", sample, n, ios, android, lo, hi)
		}
	}
}
