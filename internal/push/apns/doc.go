// Package apns is the push.Sender for Apple Push Notification service, over
// github.com/sideshow/apns2 (HTTP/2 provider API). It is one of the two
// places in owlpost that know provider reason strings (see responseError in
// errors.go); everything above it reasons in push error classes.
//
// # Connections and concurrency
//
// Options.Connections apns2 clients are built, each with its own HTTP/2
// transport, so each holds one TLS connection (more only if a connection's
// SETTINGS_MAX_CONCURRENT_STREAMS is exhausted). All share one JWT provider
// token (apns2's token.Token, re-signed every 50 minutes). SendBatch has every
// token in flight at once (at most Options.Concurrency) and spreads requests
// round-robin over the clients. The requests are made by workers the Sender
// keeps between batches (push.Workers): a new goroutine per token would grow its
// stack through the HTTP/2 write path on every push, one of the largest
// costs in the sender's CPU profile. A worker reuses its apns2.Notification for
// every token it sends, and msg.APNs.Payload is handed to apns2 as raw bytes
// (no re-marshal of the payload on our side). Options.Timeout is a context
// deadline rather than http.Client.Timeout, which over a wrapped transport
// would cost a timer goroutine per request; when a batch's tokens all go out
// at once it is one deadline per batch (one timer and one Done channel instead
// of one per token), otherwise one per request.
//
// With Options.Transport push.TransportFast, a single apns2 client runs over
// one push/h2 transport holding Options.Connections connections: its writer
// packs the requests of many workers into one TLS write, with no goroutine
// per request, and apns2's API and response parsing stay as they are.
//
// apns2 does not expose response headers and cannot send apns-expiration: 0;
// a small RoundTripper around its transport reads Retry-After (429/5xx) and
// adds "apns-expiration: 0" when push.APNsMessage.Expiration is zero ("do not
// store"), communicating through the request context (transport.go).
//
// # Prepare
//
// Prepare signs the first JWT and sends, on every connection, one silent
// background push to an impossible device token (not 64 hex digits). APNs
// checks the provider token and topic before the device token, so the answer
// is 403 (auth; returned as push.ErrFatal), 400 TopicDisallowed/BadTopic
// (push.ErrFatal), or the expected 400 BadDeviceToken: the credential is good
// and the connection is open. Merely dialing would not prove the credential;
// a push to a well-formed fake token could be accepted by a provider. The
// warm-up costs one rejected request per connection, nothing is delivered.
//
// # Pointing it at Apple or at the simulator
//
// Apple (production):
//
//	apns.Options{Host: "production", KeyFile: "AuthKey_ABC123DEFG.p8",
//	    KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ", Topic: "com.example.app"}
//
// Host "development" selects the sandbox. Certificate auth instead of token
// auth: CertFile (".p12"/".pfx" PKCS#12, otherwise PEM) and CertPassword.
//
// Simulator (internal/pushsim, cmd/pushsim):
//
//	apns.Options{Host: sim.APNsURL(), KeyPEM: p8, KeyID: keyID, TeamID: teamID,
//	    Topic: "com.example.app", CAPEM: sim.CACertPEM()}
//
// i.e. Host is the simulator's https URL and CAFile/CAPEM its CA (GET /cacert
// on its admin API), added to the system roots. The simulator verifies the JWT
// with the public half of the same .p8 key.
package apns
