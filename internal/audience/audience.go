package audience

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// Spec describes an audience to generate.
type Spec struct {
	// IOS and Android are the numbers of distinct valid tokens per platform.
	IOS, Android int
	// Locales are assigned to devices uniformly at random; empty means en-US.
	Locales []string
	// BadFraction is the number of malformed records, as a fraction of the
	// valid tokens (0.01 = one malformed record per 100 valid tokens).
	BadFraction float64
	// InvalidFraction is the share of the valid tokens that the push
	// simulator refuses as unregistered.
	InvalidFraction float64
	// DuplicateFraction is the number of duplicate records, as a fraction of
	// the valid tokens.
	DuplicateFraction float64
	// Seed makes the output reproducible.
	Seed int64
}

// Validate checks the Spec.
func (s Spec) Validate() error {
	var errs []error
	if s.IOS < 0 || s.Android < 0 {
		errs = append(errs, errors.New("audience: ios and android must be >= 0"))
	}
	for name, f := range map[string]float64{"bad fraction": s.BadFraction, "invalid fraction": s.InvalidFraction,
		"duplicate fraction": s.DuplicateFraction} {
		if f < 0 || f > 1 || math.IsNaN(f) {
			errs = append(errs, fmt.Errorf("audience: %s must be in [0, 1], got %v", name, f))
		}
	}
	for _, l := range s.Locales {
		if l == "" {
			errs = append(errs, errors.New("audience: empty locale"))
		}
	}
	return errors.Join(errs...)
}

// Counts is the ground truth of a generated audience.
type Counts struct {
	// Records is every record written (valid, duplicate and malformed).
	Records int64 `json:"records"`
	// IOS and Android are the distinct valid tokens: what a planner must plan.
	IOS     int64 `json:"ios"`
	Android int64 `json:"android"`
	// InvalidIOS and InvalidAndroid are the planned tokens the push simulator
	// refuses (dead0410..., ...UNREGISTERED...).
	InvalidIOS     int64 `json:"invalid_ios"`
	InvalidAndroid int64 `json:"invalid_android"`
	// Duplicates are records repeating an earlier token.
	Duplicates int64 `json:"duplicates"`
	// Bad counts malformed records by wire reject reason.
	Bad map[string]int64 `json:"bad"`
	// Users is the number of distinct user ids of valid tokens.
	Users int64 `json:"users"`
	// Bytes is the total size of the record values.
	Bytes int64 `json:"bytes"`
}

// BadTotal is the number of malformed records.
func (c *Counts) BadTotal() int64 {
	var n int64
	for _, v := range c.Bad {
		n += v
	}
	return n
}

// Progress reports a running generation.
type Progress struct {
	Records, Total int64
	Elapsed        time.Duration
}

// ProducerOpts are the producer options Generate is fastest with: batched
// and compressed (random tokens compress little, the JSON framing a lot).
func ProducerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.ProducerLinger(20 * time.Millisecond),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedBytes(64 << 20),
	}
}

// Generate writes the audience described by spec to topic (which must
// exist) and returns its ground truth once every record is acknowledged.
// Records are keyed by user id, so the default key partitioner keeps a
// user's records (and every duplicate) in one partition. progress, if not
// nil, is called about once a second from the calling goroutine.
func Generate(ctx context.Context, cl *kgo.Client, topic string, spec Spec, progress func(Progress)) (Counts, error) {
	if err := spec.Validate(); err != nil {
		return Counts{}, err
	}
	var (
		mu       sync.Mutex
		firstErr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
	}
	start := time.Now()
	last := start
	g := newGen(spec)
	total := g.total()
	var n int64
	counts, err := g.run(func(key, value []byte) error {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: value}, promise)
		n++
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			mu.Lock()
			ferr := firstErr
			mu.Unlock()
			if ferr != nil {
				return ferr
			}
			if progress != nil && time.Since(last) >= time.Second {
				last = time.Now()
				progress(Progress{Records: n, Total: total, Elapsed: time.Since(start)})
			}
		}
		return nil
	})
	if ferr := cl.Flush(ctx); err == nil && ferr != nil {
		err = ferr
	}
	mu.Lock()
	if err == nil {
		err = firstErr
	}
	mu.Unlock()
	if err != nil {
		return counts, fmt.Errorf("audience: generate into %s: %w", topic, err)
	}
	if progress != nil {
		progress(Progress{Records: n, Total: total, Elapsed: time.Since(start)})
	}
	return counts, nil
}

// Records calls emit for every record of spec, in order, without Kafka (the
// key and value slices are not reused). It returns the ground truth.
func Records(spec Spec, emit func(key, value []byte) error) (Counts, error) {
	if err := spec.Validate(); err != nil {
		return Counts{}, err
	}
	return newGen(spec).run(emit)
}

// badKinds are the malformed record kinds, used round-robin; each maps to
// the reason DecodeAudience gives.
var badKinds = [...]struct {
	reason string
	make   func(g *gen, i int64) []byte
}{
	{wire.RejectBadJSON, func(g *gen, i int64) []byte { // truncated mid-record
		return []byte(`{"user_id":"bad-` + strconv.FormatInt(i, 10) + `","platform":"ios","token":"` + g.iosHex(i)[:20])
	}},
	{wire.RejectBadToken, func(g *gen, i int64) []byte { // 63 hex characters
		return g.encode("bad-"+strconv.FormatInt(i, 10), push.IOS, g.iosHex(i)[:63], g.locale(i))
	}},
	{wire.RejectUnknownPlatform, func(g *gen, i int64) []byte {
		return g.encode("bad-"+strconv.FormatInt(i, 10), "web", g.iosHex(i), g.locale(i))
	}},
	{wire.RejectMissingField, func(g *gen, i int64) []byte { // no user id (a missing locale is normalised, not rejected)
		return g.encode("", push.Android, g.fcm(i, false), g.locale(i))
	}},
	{wire.RejectTooLarge, func(g *gen, i int64) []byte {
		r := wire.AudienceRecord{UserID: "bad-" + strconv.FormatInt(i, 10), Platform: push.IOS, Token: g.iosHex(i),
			Locale: g.locale(i), Attrs: map[string]string{"blob": strings.Repeat("x", wire.MaxAudienceRecordBytes)}}
		b, _ := wire.EncodeAudience(&r)
		return b
	}},
	{wire.RejectBadToken, func(g *gen, i int64) []byte { // an FCM token that is too short
		return g.encode("bad-"+strconv.FormatInt(i, 10), push.Android, g.fcm(i, false)[:60], g.locale(i))
	}},
	{wire.RejectMissingField, func(g *gen, i int64) []byte { // no token
		return g.encode("bad-"+strconv.FormatInt(i, 10), push.IOS, "", g.locale(i))
	}},
	{wire.RejectBadToken, func(g *gen, i int64) []byte { // a non-hex iOS token
		return g.encode("bad-"+strconv.FormatInt(i, 10), push.IOS, "zz"+g.iosHex(i)[2:], g.locale(i))
	}},
	{wire.RejectBadJSON, func(g *gen, i int64) []byte { // not JSON at all
		return []byte("user=bad-" + strconv.FormatInt(i, 10) + ";platform=ios")
	}},
}

// gen derives every record from (seed, index), so a duplicate can
// regenerate the record it repeats without keeping it.
type gen struct {
	spec       Spec
	locales    []string
	valid      int64 // IOS + Android
	dups, bads int64
	k1, k2     uint64 // seed-derived keys
}

func newGen(spec Spec) *gen {
	g := &gen{spec: spec, locales: spec.Locales}
	if len(g.locales) == 0 {
		g.locales = []string{"en-US"}
	}
	g.valid = int64(spec.IOS) + int64(spec.Android)
	g.dups = int64(math.Round(spec.DuplicateFraction * float64(g.valid)))
	g.bads = int64(math.Round(spec.BadFraction * float64(g.valid)))
	s := rand.NewPCG(uint64(spec.Seed), 0x6f776c706f7374)
	g.k1, g.k2 = s.Uint64(), s.Uint64()
	return g
}

func (g *gen) total() int64 { return g.valid + g.dups + g.bads }

// spread returns how many of n events fall on step k of steps, spread evenly
// (Bresenham): the sum over all steps is exactly n.
func spread(k, steps, n int64) int64 {
	if steps == 0 {
		return 0
	}
	return mulDiv(k+1, n, steps) - mulDiv(k, n, steps)
}

func mulDiv(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c)) // a <= c, so the quotient fits
	return int64(q)
}

// position k of the valid records -> platform and index within it.
func (g *gen) at(k int64) (push.Platform, int64) {
	iosBefore := mulDiv(k, int64(g.spec.IOS), g.valid)
	if spread(k, g.valid, int64(g.spec.IOS)) == 1 {
		return push.IOS, iosBefore
	}
	return push.Android, k - iosBefore
}

func (g *gen) rng(kind, i int64) *rand.PCG {
	return rand.NewPCG(g.k1^uint64(kind)<<56, g.k2+uint64(i))
}

// user of position k: every tenth position shares the previous user (a
// second device).
func (g *gen) user(k int64) int64 {
	if k%10 == 9 {
		return k - 1
	}
	return k
}

func (g *gen) locale(k int64) string {
	return g.locales[g.rng(1, k).Uint64()%uint64(len(g.locales))]
}

// invalid reports whether token i of a platform with n tokens is one the
// simulator refuses.
func (g *gen) invalid(i, n int64) bool {
	f := g.spec.InvalidFraction
	return math.Floor(float64(i+1)*f) > math.Floor(float64(i)*f) && i < n
}

// iosRaw is iOS token i: 24 random bytes and the index masked, so tokens
// are distinct; valid tokens never start with 0xdead (simulator patterns).
func (g *gen) iosRaw(i int64) [32]byte {
	var b [32]byte
	r := g.rng(2, i)
	binary.LittleEndian.PutUint64(b[0:], r.Uint64())
	binary.LittleEndian.PutUint64(b[8:], r.Uint64())
	binary.LittleEndian.PutUint64(b[16:], r.Uint64())
	binary.BigEndian.PutUint64(b[24:], uint64(i)^g.k1)
	if g.invalid(i, int64(g.spec.IOS)) {
		b[0], b[1], b[2], b[3] = 0xde, 0xad, 0x04, 0x10
	} else if b[0] == 0xde && b[1] == 0xad {
		b[1] = 0xae
	}
	return b
}

func (g *gen) iosHex(i int64) string {
	raw := g.iosRaw(i)
	return hex.EncodeToString(raw[:])
}

const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// simPatterns are the FCM token substrings the simulator acts on.
var simPatterns = [...]string{"UNREGISTERED", "INVALIDARG", "QUOTA429", "UNAVAIL503", "INTERNAL500"}

// fcm is Android token i: 11 random characters, 11 encoding the masked
// index (distinct tokens), ":APA91b", 134 random characters.
func (g *gen) fcm(i int64, invalid bool) string {
	var b [163]byte
	r := g.rng(3, i)
	fill := func(dst []byte) {
		for j := 0; j < len(dst); {
			v := r.Uint64()
			for k := 0; k < 10 && j < len(dst); k++ {
				dst[j] = b64[v&63]
				v >>= 6
				j++
			}
		}
	}
	fill(b[0:11])
	v := uint64(i) ^ g.k2
	for j := 11; j < 22; j++ {
		b[j] = b64[v&63]
		v >>= 6
	}
	copy(b[22:], ":APA91b")
	fill(b[29:])
	s := string(b[:])
	for {
		clean := true
		for _, p := range simPatterns {
			if at := strings.Index(s, p); at >= 0 {
				s = s[:at] + "-" + s[at+1:]
				clean = false
			}
		}
		if clean {
			break
		}
	}
	if invalid {
		s = s[:60] + "UNREGISTERED" + s[72:]
	}
	return s
}

func (g *gen) encode(user string, p push.Platform, token, locale string) []byte {
	r := wire.AudienceRecord{UserID: user, Platform: p, Token: token, Locale: locale}
	b, _ := wire.EncodeAudience(&r) // a struct of strings always marshals
	return b
}

func userKey(u int64) []byte { return strconv.AppendInt([]byte("u"), u, 10) }

// valid returns the record at position k.
func (g *gen) validRecord(k int64) (key, value []byte, p push.Platform, invalid bool) {
	p, i := g.at(k)
	var tok string
	if p == push.IOS {
		tok = g.iosHex(i)
		invalid = g.invalid(i, int64(g.spec.IOS))
	} else {
		invalid = g.invalid(i, int64(g.spec.Android))
		tok = g.fcm(i, invalid)
	}
	u := g.user(k)
	key = userKey(u)
	return key, g.encode(string(key), p, tok, g.locale(k)), p, invalid
}

func (g *gen) run(emit func(key, value []byte) error) (Counts, error) {
	c := Counts{Bad: map[string]int64{}}
	dupRNG := rand.New(rand.NewPCG(g.k1, g.k2^0xd0d0))
	var badIdx int64
	out := func(key, value []byte) error {
		c.Records++
		c.Bytes += int64(len(value))
		return emit(key, value)
	}
	for k := int64(0); k < g.valid; k++ {
		key, val, p, inv := g.validRecord(k)
		if p == push.IOS {
			c.IOS++
			if inv {
				c.InvalidIOS++
			}
		} else {
			c.Android++
			if inv {
				c.InvalidAndroid++
			}
		}
		if g.user(k) == k {
			c.Users++
		}
		if err := out(key, val); err != nil {
			return c, err
		}
		for d := spread(k, g.valid, g.dups); d > 0; d-- {
			j := dupRNG.Int64N(k + 1)
			dp, di := g.at(j)
			var tok string
			if dp == push.IOS {
				tok = g.iosHex(di)
				if j%2 == 0 {
					tok = strings.ToUpper(tok)
				}
			} else {
				tok = g.fcm(di, g.invalid(di, int64(g.spec.Android)))
			}
			u := userKey(g.user(j))
			c.Duplicates++
			if err := out(u, g.encode(string(u), dp, tok, g.locale(j))); err != nil {
				return c, err
			}
		}
		for b := spread(k, g.valid, g.bads); b > 0; b-- {
			kind := badKinds[badIdx%int64(len(badKinds))]
			val := kind.make(g, badIdx)
			c.Bad[kind.reason]++
			if err := out([]byte("bad-"+strconv.FormatInt(badIdx, 10)), val); err != nil {
				return c, err
			}
			badIdx++
		}
	}
	return c, nil
}
