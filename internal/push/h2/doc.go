// Package h2 is a lean HTTP/2 client transport for the push providers'
// connections: an http.RoundTripper that apns2 (Client.HTTPClient) and
// firebase (option.WithHTTPClient) use unchanged.
//
// It keeps a fixed pool of TLS connections per host (ALPN "h2" only). Each
// connection has one writer goroutine and one reader goroutine and nothing
// else: RoundTrip queues the request on the least loaded connection and waits
// in the caller's goroutine. The writer takes every queued request at once,
// HPACK-encodes their headers, and packs their HEADERS and DATA frames into
// one buffered write; the reader decodes responses and hands each to its
// waiting caller. Frames and HPACK come from golang.org/x/net/http2.
//
// Protocol behaviour:
//   - MAX_CONCURRENT_STREAMS: requests beyond the server's limit wait in the
//     connection's queue; a limit changed mid-connection applies at once to
//     new streams (streams already open finish).
//   - Flow control: the connection and stream send windows (including a
//     changed SETTINGS_INITIAL_WINDOW_SIZE) bound the request DATA sent;
//     receive windows are refilled with WINDOW_UPDATE as response bodies are
//     read, so a slow reader stalls only its own stream.
//   - GOAWAY: streams up to the last stream id finish; later streams and
//     queued requests were never processed, so they are retried on another
//     (new) connection. RST_STREAM REFUSED_STREAM is retried the same way.
//     Nothing else is retried: a request the server may have seen is
//     answered with an error.
//   - PING keepalive: a connection silent for Options.PingInterval is
//     pinged, and closed when nothing arrives within Options.PingTimeout.
//   - Request bodies are read whole before the request is queued (push
//     payloads are small; Options.MaxBodySize bounds them), so a retry needs
//     no GetBody.
//   - HPACK: a header field is sent "never indexed" the first time it is seen
//     on a connection and indexed from its second appearance on, so repeated
//     fields (authorization, topic, the FCM path) cost one or two bytes each
//     while one-off values (the APNs device path) do not evict them.
//   - Header fields the caller sends with every request (a token, a topic)
//     can travel in the request's context under FieldsKey as one shared
//     slice, rather than in each request's header map.
//   - The request's context (and Options.ResponseHeaderTimeout) bounds the
//     wait; a cancelled stream is reset with RST_STREAM CANCEL.
package h2
