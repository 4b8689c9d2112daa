package pushsim

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAPNs measures simulator + apns2 throughput over one HTTP/2
// connection with many concurrent streams (client and server share the
// machine, so this is a floor for either).
func BenchmarkAPNs(b *testing.B) {
	sim := startSim(b, nil)
	c := sim.apnsClient(b, testKeyID, testTeamID)
	var seq atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := int(seq.Add(1))
			res, err := c.Push(alert(apnsToken("be", n), "bench"))
			if err != nil || res.StatusCode != 200 {
				b.Errorf("push: %v %+v", err, res)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "notif/s")
	if got := sim.Stats("bench").Accepted; got != int64(b.N) {
		b.Fatalf("accepted %d, want %d", got, b.N)
	}
}

// BenchmarkFCM is the same for firebase messaging Send.
func BenchmarkFCM(b *testing.B) {
	sim := startSim(b, nil)
	mc := sim.fcmClient(b, sim.saJSON, testProject)
	var seq atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := int(seq.Add(1))
			if _, err := mc.Send(context.Background(), androidMsg(fcmToken("bench", n), "bench")); err != nil {
				b.Errorf("send: %v", err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "notif/s")
}

// BenchmarkRecorderAccept measures the recording path alone, one campaign,
// all goroutines contending on its mutex.
func BenchmarkRecorderAccept(b *testing.B) {
	r := newRecorder()
	var seq atomic.Uint64
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.accept("bench", seq.Add(1), 42, now, platformIOS, "ios/alert/10")
		}
	})
}
