package h2

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// BenchmarkHeaderBlock is the writer's HPACK encoding and HEADERS frame of
// one APNs request (the headers apns2 sets, a new device path each time),
// without the network: go test -run '^$' -bench HeaderBlock ./internal/push/h2
func BenchmarkHeaderBlock(b *testing.B) {
	c := &conn{sent: map[string]sentField{}, lower: map[string]string{}}
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.fr = http2.NewFramer(io.Discard, nil)
	req, err := http.NewRequest(http.MethodPost, "https://api.push.apple.com/3/device/x", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header = http.Header{
		"Authorization":    {"bearer eyJhbGciOiJFUzI1NiIsImtpZCI6IlNJTUtFWTAwMDEifQ.eyJpYXQiOjE3NjQ4MjQ0MDAsImlzcyI6IlNJTVRFQU0wMDEifQ.MEUCIQDx8sJ2b1pQ2fGQ3mXk9aB7sT0u1wYvZc4rN5eH6jK8LwIgR3tY7uI9oP0aS2dF4gH6jK8lZ1xC3vB5nM7qW9eR0tY"},
		"Content-Type":     {"application/json; charset=utf-8"},
		"Apns-Topic":       {"com.example.owlapp"},
		"Apns-Collapse-Id": {"bench-cpu"},
		"Apns-Priority":    {"10"},
		"Apns-Expiration":  {"1764828000"},
		"Apns-Push-Type":   {"alert"},
	}
	paths := make([]string, 1024)
	for i := range paths {
		paths[i] = fmt.Sprintf("/3/device/c0%062x", i)
	}
	s := &stream{req: req, id: 1, body: make([]byte, 190)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		req.URL.Path = paths[i%len(paths)]
		if err := c.writeHeaders(s, 16384); err != nil {
			b.Fatal(err)
		}
	}
}
