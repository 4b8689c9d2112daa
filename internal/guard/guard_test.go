package guard_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/testenv"
)

// forEachMode runs f against a guard on each Redis deployment: standalone,
// Sentinel and Cluster (where a script over keys of several slots would be
// refused with CROSSSLOT).
func forEachMode(t *testing.T, f func(t *testing.T, g *guard.Guard)) {
	for _, mode := range testenv.RedisModes() {
		t.Run(mode, func(t *testing.T) {
			cfg := testenv.Config(t)
			testenv.RedisMode(t, cfg, mode)
			rdb, err := guard.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			testenv.CleanRedis(t, rdb, cfg.Redis.Prefix)
			f(t, guard.New(rdb, cfg.Redis.Prefix, nil))
		})
	}
}

func TestFireOnceUnderConcurrentPresses(t *testing.T) { forEachMode(t, testFireOnce) }

func testFireOnce(t *testing.T, g *guard.Guard) {
	ctx := testenv.Context(t, 30*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := map[string]int{}
	won := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := guard.FireRecord{FireID: fmt.Sprintf("f%d", i), By: fmt.Sprintf("user%d", i), At: time.Now()}
			win, ok, err := g.Fire(ctx, "c1", rec)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			winners[win.FireID]++
			if ok {
				won++
			}
		}()
	}
	wg.Wait()
	if won != 1 || len(winners) != 1 {
		t.Fatalf("want exactly one winner seen by all 50 presses, got won=%d winners=%v", won, winners)
	}
	// An hour later (any time later): still the same winner.
	win, ok, err := g.Fire(ctx, "c1", guard.FireRecord{FireID: "late", By: "bob", At: time.Now().Add(time.Hour)})
	if err != nil || ok || win.FireID == "late" {
		t.Fatalf("late press must lose: %+v %v %v", win, ok, err)
	}
	rec, fired, err := g.FireOf(ctx, "c1")
	if err != nil || !fired || rec.FireID != win.FireID {
		t.Fatalf("FireOf: %+v %v %v", rec, fired, err)
	}
}

// TestFireConfirmedOnReplicas: a press is answered only once the winning
// record is on the replicas asked for (WAIT). Asking for one more replica
// than the deployment has fails closed with ErrNotConfirmed (as a launch
// with every replica down would); the record stays, and the next press,
// once enough replicas answer, confirms and returns that same winner.
func TestFireConfirmedOnReplicas(t *testing.T) {
	replicas := map[string]int{config.RedisStandalone: 0, config.RedisSentinel: 2, config.RedisCluster: 1}
	forEachMode(t, func(t *testing.T, g *guard.Guard) {
		have := replicas[t.Name()[strings.LastIndex(t.Name(), "/")+1:]]
		ctx := testenv.Context(t, 30*time.Second)
		first := guard.FireRecord{FireID: "f1", By: "alice", At: time.Now()}
		_, _, err := g.ConfirmFires(have+1, 300*time.Millisecond).Fire(ctx, "c9", first)
		if !errors.Is(err, guard.ErrNotConfirmed) || !errors.Is(err, guard.ErrUnavailable) {
			t.Fatalf("%d replicas asked of %d: want ErrNotConfirmed, got %v", have+1, have, err)
		}
		if !strings.Contains(err.Error(), "press again") {
			t.Errorf("the refusal must say what to do: %v", err)
		}
		win, won, err := g.ConfirmFires(have, time.Second).Fire(ctx, "c9", guard.FireRecord{FireID: "f2", By: "bob", At: time.Now()})
		if err != nil || won || win.FireID != "f1" {
			t.Fatalf("next press: want the unconfirmed first record confirmed as the winner, got %+v won=%v %v", win, won, err)
		}
		win, won, err = g.Fire(ctx, "c10", first)
		if err != nil || !won || win.FireID != "f1" {
			t.Fatalf("a fresh campaign with %d replicas confirmed: %+v won=%v %v", have, win, won, err)
		}
	})
}

func TestAbortBlocksFire(t *testing.T) { forEachMode(t, testAbortBlocksFire) }

func testAbortBlocksFire(t *testing.T, g *guard.Guard) {
	ctx := testenv.Context(t, 10*time.Second)
	if _, err := g.Abort(ctx, "c2", guard.AbortRecord{By: "alice", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, _, err := g.Fire(ctx, "c2", guard.FireRecord{FireID: "f"})
	if !errors.Is(err, guard.ErrAborted) {
		t.Fatalf("want ErrAborted, got %v", err)
	}
	ab, _ := g.Abort(ctx, "c2", guard.AbortRecord{By: "bob", At: time.Now()})
	if ab.By != "alice" {
		t.Fatalf("first abort must be kept, got %+v", ab)
	}
}

func TestBatchClaimLifecycle(t *testing.T) { forEachMode(t, testBatchClaimLifecycle) }

func testBatchClaimLifecycle(t *testing.T, g *guard.Guard) {
	ctx := testenv.Context(t, 30*time.Second)
	const key, fire = "c/ios/000001", "f1"
	st, err := g.Claim(ctx, key, fire, "s1", time.Second)
	if err != nil || st != guard.ClaimOK {
		t.Fatalf("first claim: %v %v", st, err)
	}
	if st, _ := g.Claim(ctx, key, fire, "s2", time.Second); st != guard.ClaimHeld {
		t.Fatalf("second sender must see held, got %v", st)
	}
	if st, _ := g.Claim(ctx, key, "other-fire", "s2", time.Second); st != guard.ClaimOK {
		t.Fatalf("another fire id (a proof) is another batch, got %v", st)
	}
	bm := guard.SetBit(guard.SetBit(nil, 0), 9)
	if err := g.Ack(ctx, key, fire, "s1", bm); err != nil {
		t.Fatal(err)
	}
	// s1 dies; the lease expires; s2 takes over and sees the progress.
	time.Sleep(1200 * time.Millisecond)
	if err := g.Renew(ctx, key, fire, "s1", time.Second); !errors.Is(err, guard.ErrLeaseLost) {
		t.Fatalf("renew after expiry: want ErrLeaseLost, got %v", err)
	}
	st, err = g.Claim(ctx, key, fire, "s2", 5*time.Second)
	if err != nil || st != guard.ClaimTakeover {
		t.Fatalf("takeover: %v %v", st, err)
	}
	got, err := g.Acked(ctx, key, fire)
	if err != nil || !guard.BitSet(got, 0) || !guard.BitSet(got, 9) || guard.BitSet(got, 1) {
		t.Fatalf("acked bitmap %08b %v", got, err)
	}
	if err := g.Ack(ctx, key, fire, "s1", bm); !errors.Is(err, guard.ErrLeaseLost) {
		t.Fatalf("old holder's ack must be refused, got %v", err)
	}
	if err := g.Done(ctx, key, fire, "s1"); !errors.Is(err, guard.ErrLeaseLost) {
		t.Fatalf("old holder's done must be refused, got %v", err)
	}
	if err := g.Done(ctx, key, fire, "s2"); err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{"s1", "s2", "s3"} {
		if st, _ := g.Claim(ctx, key, fire, owner, time.Second); st != guard.ClaimDone {
			t.Fatalf("redelivery after done must be skipped, got %v", st)
		}
	}
}

// TestReleaseHandsOver: a released claim is taken over at once (not after
// the lease) with the acked progress; only the holder may release.
func TestReleaseHandsOver(t *testing.T) { forEachMode(t, testReleaseHandsOver) }

func testReleaseHandsOver(t *testing.T, g *guard.Guard) {
	ctx := testenv.Context(t, 30*time.Second)
	const key, fire = "c/ios/000002", "f1"
	if st, err := g.Claim(ctx, key, fire, "s1", time.Minute); err != nil || st != guard.ClaimOK {
		t.Fatalf("first claim: %v %v", st, err)
	}
	if err := g.Ack(ctx, key, fire, "s1", guard.SetBit(nil, 3)); err != nil {
		t.Fatal(err)
	}
	if err := g.Release(ctx, key, fire, "s2"); !errors.Is(err, guard.ErrLeaseLost) {
		t.Fatalf("a non-holder's release: want ErrLeaseLost, got %v", err)
	}
	if st, _ := g.Claim(ctx, key, fire, "s2", time.Minute); st != guard.ClaimHeld {
		t.Fatalf("before the release: want held, got %v", st)
	}
	if err := g.Release(ctx, key, fire, "s1"); err != nil {
		t.Fatal(err)
	}
	st, err := g.Claim(ctx, key, fire, "s2", time.Minute)
	if err != nil || st != guard.ClaimTakeover {
		t.Fatalf("after the release, within the lease: want takeover, got %v %v", st, err)
	}
	if got, err := g.Acked(ctx, key, fire); err != nil || !guard.BitSet(got, 3) || guard.BitSet(got, 0) {
		t.Fatalf("acked bitmap %08b %v", got, err)
	}
	if err := g.Release(ctx, key, fire, "s1"); !errors.Is(err, guard.ErrLeaseLost) {
		t.Fatalf("a second release by the old holder: want ErrLeaseLost, got %v", err)
	}
}

func TestRateBucket(t *testing.T) { forEachMode(t, testRateBucket) }

func testRateBucket(t *testing.T, g *guard.Guard) {
	ctx := testenv.Context(t, 10*time.Second)
	got, wait, err := g.Take(ctx, "c3", "ios", 1000, 500, 400)
	if err != nil || got != 400 || wait != 0 {
		t.Fatalf("first take: %d %v %v", got, wait, err)
	}
	got, wait, err = g.Take(ctx, "c3", "ios", 1000, 500, 400)
	if err != nil || got > 200 || wait <= 0 {
		t.Fatalf("bucket should be nearly empty: got %d wait %v %v", got, wait, err)
	}
}

func TestRedisDownFailsClosed(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	g := guard.New(rdb, "x", nil)
	ctx := testenv.Context(t, 10*time.Second)
	if _, _, err := g.Fire(ctx, "c", guard.FireRecord{FireID: "f"}); !errors.Is(err, guard.ErrUnavailable) {
		t.Fatalf("fire with Redis down: want ErrUnavailable, got %v", err)
	}
	if _, err := g.Claim(ctx, "k", "f", "o", time.Second); !errors.Is(err, guard.ErrUnavailable) {
		t.Fatalf("claim with Redis down: want ErrUnavailable, got %v", err)
	}
}

func TestAnswersEncoding(t *testing.T) {
	var a guard.Answers
	for _, i := range []int{0, 3, 9, 11} {
		a.Answered = guard.SetBit(a.Answered, i)
	}
	a.Invalid = guard.SetBit(a.Invalid, 3)
	a.Failed = guard.SetBit(a.Failed, 11)
	v := a.Encode(12)
	if len(v) != 6 {
		t.Fatalf("Encode(12) is %d bytes, want 3 x 2", len(v))
	}
	got := guard.DecodeAnswers(v, 12)
	for i := range 12 {
		ans, inv, fail := guard.BitSet(got.Answered, i), guard.BitSet(got.Invalid, i), guard.BitSet(got.Failed, i)
		want := [3]bool{i == 0 || i == 3 || i == 9 || i == 11, i == 3, i == 11}
		if [3]bool{ans, inv, fail} != want {
			t.Errorf("token %d: answered/invalid/failed = %v %v %v, want %v", i, ans, inv, fail, want)
		}
	}
	// An older sender's bare bitmap: answered, outcomes unknown.
	old := guard.DecodeAnswers([]byte{0x09}, 12)
	if !guard.BitSet(old.Answered, 0) || !guard.BitSet(old.Answered, 3) || guard.BitSet(old.Answered, 1) ||
		len(old.Invalid) != 0 || len(old.Failed) != 0 {
		t.Errorf("bare bitmap decoded as %+v", old)
	}
	// No answers at all.
	if a := guard.DecodeAnswers(nil, 12); len(a.Answered) != 0 {
		t.Errorf("nil decoded as %+v", a)
	}
}
