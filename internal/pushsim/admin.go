package pushsim

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// faultsWire is the JSON form of Faults used by the admin API.
type faultsWire struct {
	APNsRates         map[string]float64 `json:"apns_rates,omitempty"`
	FCMRates          map[string]float64 `json:"fcm_rates,omitempty"`
	RetryAfterSeconds float64            `json:"retry_after_seconds,omitempty"`
	// Until is absolute (RFC 3339); UntilSeconds is relative to the moment
	// the JSON is decoded, handy for other processes. UntilSeconds wins.
	Until        *time.Time `json:"until,omitempty"`
	UntilSeconds float64    `json:"until_seconds,omitempty"`
}

// MarshalJSON renders f as {"apns_rates","fcm_rates","retry_after_seconds","until"}.
func (f Faults) MarshalJSON() ([]byte, error) {
	w := faultsWire{APNsRates: f.APNsRates, FCMRates: f.FCMRates, RetryAfterSeconds: f.RetryAfter.Seconds()}
	if !f.Until.IsZero() {
		u := f.Until
		w.Until = &u
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the form written by MarshalJSON, and also
// "until_seconds": a duration from now after which the faults stop.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var w faultsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if math.IsNaN(w.RetryAfterSeconds) || w.RetryAfterSeconds < 0 || math.IsNaN(w.UntilSeconds) || w.UntilSeconds < 0 {
		return fmt.Errorf("pushsim: negative or NaN retry_after_seconds or until_seconds")
	}
	*f = Faults{
		APNsRates:  w.APNsRates,
		FCMRates:   w.FCMRates,
		RetryAfter: time.Duration(w.RetryAfterSeconds * float64(time.Second)),
	}
	if w.Until != nil {
		f.Until = *w.Until
	}
	if w.UntilSeconds > 0 {
		f.Until = time.Now().Add(time.Duration(w.UntilSeconds * float64(time.Second)))
	}
	return nil
}

// adminHandler serves the plain-HTTP admin API (see the package doc).
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats(r.URL.Query().Get("campaign")))
	})
	mux.HandleFunc("GET /arrivals", s.serveArrivals)
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.CurrentFaults())
	})
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		if err := dec.Decode(&f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad faults JSON: " + err.Error()})
			return
		}
		if err := f.Validate(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.SetFaults(f)
		writeJSON(w, http.StatusOK, s.CurrentFaults())
	})
	mux.HandleFunc("GET /budget", s.serveBudget)
	mux.HandleFunc("POST /budget", s.serveBudget)
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /cacert", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.tls.caPEM)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.met.reg, promhttp.HandlerOpts{}))
	return mux
}

// serveArrivals writes the sorted arrival times in unix nanoseconds: a JSON
// array, or with format=binary consecutive little-endian int64s.
func (s *Server) serveArrivals(w http.ResponseWriter, r *http.Request) {
	ns := s.rec.arrivalsNanos(r.URL.Query().Get("campaign"), r.URL.Query().Get("platform"))
	bw := bufio.NewWriterSize(w, 64<<10)
	defer func() { _ = bw.Flush() }()
	if r.URL.Query().Get("format") == "binary" {
		w.Header().Set("Content-Type", "application/octet-stream")
		var b [8]byte
		for _, n := range ns {
			binary.LittleEndian.PutUint64(b[:], uint64(n))
			_, _ = bw.Write(b[:])
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	buf := make([]byte, 0, 24)
	_ = bw.WriteByte('[')
	for i, n := range ns {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		buf = strconv.AppendInt(buf[:0], n, 10)
		_, _ = bw.Write(buf)
	}
	_, _ = bw.WriteString("]\n")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
