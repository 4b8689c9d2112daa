package fanout

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// testPlan is a plan built the way the planner builds one: batches assigned
// with wire.Assign, a manifest with per-partition counts and the checksum.
type testPlan struct {
	m       *wire.Manifest
	records []*kgo.Record // Topic unset; Partition set
	values  map[int32]map[string][]byte
	tokens  map[string]int // batch key -> token count
}

func iosTok(n int) string { return fmt.Sprintf("%064x", n) }

func androidTok(n int) string { return fmt.Sprintf("fcm%d:%0120d", n, n) }

// randomTok is a deterministic token of realistic shape: 64 hex digits for
// iOS, about 150 characters of base64url with a colon for Android.
func randomTok(p push.Platform, n int) string {
	h := sha256.Sum256([]byte(strconv.Itoa(n)))
	if p == push.IOS {
		return hex.EncodeToString(h[:])
	}
	h2 := sha512.Sum512(h[:])
	h3 := sha512.Sum512(h2[:])
	return base64.RawURLEncoding.EncodeToString(h[:16]) + ":" + base64.RawURLEncoding.EncodeToString(append(h2[:], h3[:32]...))
}

// makePlan builds nIOS iOS and nAndroid Android batches of per tokens each.
func makePlan(campaign string, gen uint64, partitions int32, nIOS, nAndroid, per int) *testPlan {
	return makeSizedPlan(campaign, gen, partitions, nIOS, nAndroid, per, per, false)
}

// makeSizedPlan builds nIOS iOS batches of perIOS tokens and nAndroid
// Android batches of perAndroid tokens. With random the tokens look like
// real ones (hex and base64 digits that do not compress) instead of
// zero-padded counters.
func makeSizedPlan(campaign string, gen uint64, partitions int32, nIOS, nAndroid, perIOS, perAndroid int, random bool) *testPlan {
	m := &wire.Manifest{Campaign: campaign, Generation: gen, Partitions: partitions,
		IOSBatches: uint32(nIOS), AndroidBatches: uint32(nAndroid), PerPartition: make([]wire.PartitionCount, partitions)}
	tp := &testPlan{m: m, values: map[int32]map[string][]byte{}, tokens: map[string]int{}}
	ph := wire.NewPlanHash(m.IOSBatches, m.AndroidBatches)
	tok := 0
	for _, plat := range []push.Platform{push.IOS, push.Android} {
		n, per := nIOS, perIOS
		if plat == push.Android {
			n, per = nAndroid, perAndroid
		}
		for seq := 0; seq < n; seq++ {
			b := &wire.Batch{Campaign: campaign, Platform: plat, Generation: gen, Seq: uint32(seq), Locales: []string{"en-US", "de-DE"}}
			for i := 0; i < per; i++ {
				tok++
				t := iosTok(tok)
				if plat == push.Android {
					t = androidTok(tok)
				}
				if random {
					t = randomTok(plat, tok)
				}
				b.Tokens = append(b.Tokens, wire.Token{Token: t, Locale: uint16(i % 2)})
			}
			v, err := wire.EncodeBatch(nil, b)
			if err != nil {
				panic(err) // test data
			}
			p := wire.Assign(plat, uint32(seq), m.IOSBatches, partitions)
			tp.records = append(tp.records, &kgo.Record{Key: []byte(b.Key()), Value: v, Partition: p})
			if tp.values[p] == nil {
				tp.values[p] = map[string][]byte{}
			}
			tp.values[p][b.Key()] = v
			tp.tokens[b.Key()] = per
			ph.Add(plat == push.IOS, uint32(seq), v)
			m.PerPartition[p].Batches++
			m.PerPartition[p].Tokens += uint64(per)
			if plat == push.IOS {
				m.IOSTokens += uint64(per)
			} else {
				m.AndroidTokens += uint64(per)
			}
		}
	}
	m.Checksum = ph.Sum()
	return tp
}
