// Package fcm is the push.Sender for Firebase Cloud Messaging (HTTP v1), over
// firebase.google.com/go/v4/messaging. It is one of the two places in owlpost
// that know provider error codes (see sendError in errors.go).
//
// # Clients, credentials, concurrency
//
// One OAuth2 token source is built from the service-account JSON with
// golang.org/x/oauth2/google (JWT-bearer grant to the key's token_uri) and
// shared by Options.Clients messaging clients. Each client has its own
// connection pool (an http.Transport, HTTP/2 when offered) under an
// oauth2.Transport, handed to firebase with option.WithHTTPClient; firebase
// then uses that client as is, so its own credential lookup is bypassed and
// the CA roots of Options.CAFile/CAPEM apply to both the token fetch (through
// the oauth2.HTTPClient context value the token source keeps) and the
// messaging calls. With Options.Transport push.TransportFast the clients
// share one push/h2 transport of Options.Clients connections instead (the
// token fetch keeps its http.Transport); firebase's API is unchanged.
//
// SendBatch answers empty tokens itself and sends the others in chunks of
// Options.ChunkSize (default 250, as the original system's Android batches),
// chunks running concurrently, each on the next client round-robin, 50
// requests of a chunk at once: the shape of firebase's SendEach, made of one
// messaging.Client.Send per token (the same validation, request and errors)
// on workers the Sender keeps between chunks (push.Workers), where SendEach would
// start 50 goroutines per call that each grow their stacks again. A message
// firebase refuses before sending is push.ErrFatal "invalid_message" for
// every token, as a refused SendEach call would be. The messages of a batch are
// one slice sharing a read-only template.
//
// firebase retries HTTP 503 and every transport error on its own (up to 4
// times, backing off 0.5/1/2/4 s, internal.WithDefaultRetryConfig, not
// configurable). A RoundTripper (noLibraryRetry in fcm.go) keeps both out of
// it: 503 is presented as 500, and a transport error of a Send is kept aside
// and answered to firebase as a 500, then reported as the token's result
// ("network", "timeout", or the caller's context error), so every retry goes
// through the sender's own policy, metrics and deadline: a failed Send
// costs one connection attempt, where the library's retries would make five
// over about 7 s (TestTransportErrorNotRetriedByLibrary). Prepare's warm-up
// send goes the same way (TestPrepareTransportErrorNotRetriedByLibrary); the
// sender stage retries Prepare with its own backoff and a log line per
// attempt.
//
// # Prepare
//
// Prepare fetches the access token (a refused grant is push.ErrFatal) and
// warms each client with one validate_only send to an impossible token: FCM
// answers 400 INVALID_ARGUMENT, proving token and project (401/403 are
// push.ErrFatal) and leaving one open connection, so the 50 workers of the
// first chunk share it instead of each dialing.
//
// # Pointing it at Google or at the simulator
//
// Google:
//
//	fcm.Options{CredentialsFile: "/secrets/firebase-sa.json"}
//
// (ProjectID defaults to the key's project_id; Endpoint to
// https://fcm.googleapis.com/v1; the token_uri of a key from the console is
// https://oauth2.googleapis.com/token.)
//
// Simulator (internal/pushsim, cmd/pushsim):
//
//	fcm.Options{CredentialsJSON: sa, ProjectID: project,
//	    Endpoint: sim.FCMURL(), CAPEM: sim.CACertPEM()}
//
// where sa is a service-account key whose token_uri is the simulator's
// TokenURL (pushsim.GenerateServiceAccount / ServiceAccountWithTokenURI) and
// Endpoint its FCMURL (ending in /v1, passed to option.WithEndpoint).
package fcm
