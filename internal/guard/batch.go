package guard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClaimState is the answer to Claim.
type ClaimState int

const (
	// ClaimOK: the batch is ours, first attempt.
	ClaimOK ClaimState = iota
	// ClaimTakeover: the batch is ours, but an earlier holder's lease
	// expired: skip the tokens Acked says were answered.
	ClaimTakeover
	// ClaimDone: the batch was finished already; skip it.
	ClaimDone
	// ClaimHeld: another live holder has it; retry after its lease.
	ClaimHeld
)

func (s ClaimState) String() string {
	switch s {
	case ClaimOK:
		return "claimed"
	case ClaimTakeover:
		return "takeover"
	case ClaimDone:
		return "done"
	case ClaimHeld:
		return "held"
	}
	return "ClaimState(" + strconv.Itoa(int(s)) + ")"
}

var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return 2 end
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 0 end
if cur then return 3 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[3]) then return 0 end
return 1
`)

// Claim takes the batch (batchKey, fireID) for owner with a lease.
func (g *Guard) Claim(ctx context.Context, batchKey, fireID, owner string, lease time.Duration) (ClaimState, error) {
	start := time.Now()
	n, err := claimScript.Run(ctx, g.rdb,
		[]string{g.key("claim", batchKey, fireID), g.key("tried", batchKey, fireID), g.key("done", batchKey, fireID)},
		owner, lease.Milliseconds(), g.doneTTL.Milliseconds()).Int()
	if err := g.observe("claim", start, err); err != nil {
		return 0, err
	}
	if n < 0 || n > 3 {
		return 0, fmt.Errorf("guard: claim: unexpected reply %d", n)
	}
	return ClaimState(n), nil
}

// ErrLeaseLost is returned by Renew and Done when another sender took the
// batch over: stop sending it.
var ErrLeaseLost = errors.New("guard: batch lease lost")

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// Renew extends owner's lease; ErrLeaseLost if it is no longer the holder.
func (g *Guard) Renew(ctx context.Context, batchKey, fireID, owner string, lease time.Duration) error {
	start := time.Now()
	n, err := renewScript.Run(ctx, g.rdb, []string{g.key("claim", batchKey, fireID)}, owner, lease.Milliseconds()).Int()
	if err := g.observe("renew", start, err); err != nil {
		return err
	}
	if n != 1 {
		return ErrLeaseLost
	}
	return nil
}

var ackScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
`)

// Ack stores the answered tokens of the batch (Answers.Encode; bit i =
// token i, LSB first in each byte) while owner holds the batch.
func (g *Guard) Ack(ctx context.Context, batchKey, fireID, owner string, bitmap []byte) error {
	start := time.Now()
	n, err := ackScript.Run(ctx, g.rdb, []string{g.key("claim", batchKey, fireID), g.key("acked", batchKey, fireID)},
		owner, bitmap, g.doneTTL.Milliseconds()).Int()
	if err := g.observe("ack", start, err); err != nil {
		return err
	}
	if n != 1 {
		return ErrLeaseLost
	}
	return nil
}

// Acked returns the stored answers of the batch (nil if none); read them
// with DecodeAnswers.
func (g *Guard) Acked(ctx context.Context, batchKey, fireID string) ([]byte, error) {
	start := time.Now()
	b, err := g.rdb.Get(ctx, g.key("acked", batchKey, fireID)).Bytes()
	if err := g.observe("acked", start, err); err != nil {
		return nil, err
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, nil
}

var doneScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[1])
return 1
`)

// Done marks the batch finished; later deliveries are skipped.
func (g *Guard) Done(ctx context.Context, batchKey, fireID, owner string) error {
	start := time.Now()
	n, err := doneScript.Run(ctx, g.rdb, []string{g.key("claim", batchKey, fireID), g.key("done", batchKey, fireID)},
		owner, g.doneTTL.Milliseconds()).Int()
	if err := g.observe("done", start, err); err != nil {
		return err
	}
	if n != 1 {
		return ErrLeaseLost
	}
	return nil
}

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Release gives up owner's claim before its lease ends (a sender shutting
// down hands back a batch it could not finish): the next Claim answers
// ClaimTakeover at once instead of ClaimHeld until the lease expires, and
// the taker-over sends only what Acked does not list, so owner must Ack
// before releasing. ErrLeaseLost if owner no longer holds the claim.
func (g *Guard) Release(ctx context.Context, batchKey, fireID, owner string) error {
	start := time.Now()
	n, err := releaseScript.Run(ctx, g.rdb, []string{g.key("claim", batchKey, fireID)}, owner).Int()
	if err := g.observe("release", start, err); err != nil {
		return err
	}
	if n != 1 {
		return ErrLeaseLost
	}
	return nil
}

// BitSet reports whether bit i is set in a bitmap from Acked.
func BitSet(bitmap []byte, i int) bool {
	return i/8 < len(bitmap) && bitmap[i/8]&(1<<(i%8)) != 0
}

// SetBit sets bit i, growing the bitmap as needed.
func SetBit(bitmap []byte, i int) []byte {
	for len(bitmap) <= i/8 {
		bitmap = append(bitmap, 0)
	}
	bitmap[i/8] |= 1 << (i % 8)
	return bitmap
}

// Answers is what a holder stores with Ack for a batch of n tokens: which
// tokens were answered, and which of those answers were an invalid token or
// a rejection, so that a taker-over counts (and reports) them as they were
// instead of as accepted. Bitmaps as for BitSet.
type Answers struct {
	Answered, Invalid, Failed []byte
}

// Encode is the value Ack stores: the three bitmaps, each padded to
// ceil(n/8) bytes. A bare answered bitmap (what senders stored before
// Answers) is never that long, so DecodeAnswers tells the two apart.
func (a Answers) Encode(n int) []byte {
	l := (n + 7) / 8
	out := make([]byte, 3*l)
	copy(out[:l], a.Answered)
	copy(out[l:2*l], a.Invalid)
	copy(out[2*l:], a.Failed)
	return out
}

// DecodeAnswers reads a value from Acked for a batch of n tokens. A bare
// bitmap (an older sender's) is all answered, outcomes unknown; a value of
// any other length is read as one, cut to the batch.
func DecodeAnswers(b []byte, n int) Answers {
	l := (n + 7) / 8
	if l > 0 && len(b) == 3*l {
		return Answers{Answered: b[:l:l], Invalid: b[l : 2*l : 2*l], Failed: b[2*l:]}
	}
	return Answers{Answered: b[:min(len(b), l)]}
}

var takeScript = redis.NewScript(`
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
local got = math.min(want, math.floor(tokens))
tokens = tokens - got
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], 60000)
local wait = 0
if got < want then wait = math.ceil((want - got - tokens) * 1000 / rate) end
return {got, wait}
`)

// Take asks a global token bucket (rate per second, burst) for n tokens; it
// returns how many were granted and, if fewer than n, how long until the rest
// could be. Senders take in chunks (a batch at a time), so Redis sees one
// call per batch, not per notification.
func (g *Guard) Take(ctx context.Context, campaign, platform string, rate, burst, n int) (int, time.Duration, error) {
	start := time.Now()
	res, err := takeScript.Run(ctx, g.rdb, []string{g.key("rate", campaign, platform)}, rate, burst, n).Int64Slice()
	if err := g.observe("rate", start, err); err != nil {
		return 0, 0, err
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("guard: rate: unexpected reply %v", res)
	}
	return int(res[0]), time.Duration(res[1]) * time.Millisecond, nil
}
