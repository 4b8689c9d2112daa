package guard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/testenv"
)

// TestWarm checks, against the real redis-server, that Warm loads every
// script into Redis's script cache (after SCRIPT FLUSH, as after a Redis
// restart) and leaves the requested number of connections open in the pool.
func TestWarm(t *testing.T) {
	for _, mode := range testenv.RedisModes() {
		t.Run(mode, func(t *testing.T) { testWarm(t, mode) })
	}
}

func testWarm(t *testing.T, mode string) {
	cfg := testenv.Config(t)
	testenv.RedisMode(t, cfg, mode)
	rdb, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.CleanRedis(t, rdb, cfg.Redis.Prefix)
	g := New(rdb, cfg.Redis.Prefix, nil)
	ctx := testenv.Context(t, 30*time.Second)

	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// scripts must list every script of the package.
	files, _ := filepath.Glob("*.go")
	defined := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		defined += strings.Count(string(b), "redis.NewScript(")
	}
	if defined != len(scripts) {
		t.Fatalf("the package defines %d scripts, Warm loads %d: add the new one to scripts", defined, len(scripts))
	}
	hashes := make([]string, len(scripts))
	for i, s := range scripts {
		hashes[i] = s.Hash()
	}
	if got, err := rdb.ScriptExists(ctx, hashes...).Result(); err != nil {
		t.Fatal(err)
	} else {
		for i, ok := range got {
			if ok {
				t.Fatalf("script %d still cached after SCRIPT FLUSH", i)
			}
		}
	}

	const conns = 6
	if err := g.Warm(ctx, conns); err != nil {
		t.Fatal(err)
	}
	got, err := rdb.ScriptExists(ctx, hashes...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range got {
		if !ok {
			t.Errorf("script %d not loaded by Warm", i)
		}
	}
	if st := rdb.PoolStats(); st.IdleConns < conns {
		t.Errorf("pool after Warm(%d): %d idle of %d connections, want at least %d idle", conns, st.IdleConns, st.TotalConns, conns)
	}
	if mode != config.RedisStandalone {
		return
	}

	// Asked for more than the pool holds, it opens half the pool, no more.
	fresh := testenv.Redis(t, cfg)
	if err := New(fresh, cfg.Redis.Prefix, nil).Warm(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	half := fresh.Options().PoolSize / 2
	if st := fresh.PoolStats(); int(st.TotalConns) > half+1 || int(st.IdleConns) < half {
		t.Errorf("Warm(1000) on a pool of %d: %d connections, %d idle; want about %d", fresh.Options().PoolSize, st.TotalConns, st.IdleConns, half)
	}
}
