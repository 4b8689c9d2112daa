// Package pushsim is the push-provider simulator, the only stand-in in owlpost:
// Apple and Google cannot be reached from here, so pushsim speaks their real
// wire protocols and the real client libraries (sideshow/apns2 and firebase
// messaging) are pointed at it. It injects latency and errors on demand and
// records every accepted notification, so tests can prove "each token exactly
// once".
//
// # Endpoints
//
// One Server runs three listeners, all on loopback by default:
//
//   - APNs provider API (APNsURL), TLS + HTTP/2 only (HTTP/1 is not offered
//     in ALPN, like Apple): POST /3/device/{token}. Use APNsURL as apns2
//     Client.Host, with a transport whose TLS roots hold CACertPEM (see
//     ClientTLSConfig).
//   - FCM HTTP v1 (FCMURL) and the OAuth2 token endpoint (TokenURL), TLS with
//     HTTP/2 and HTTP/1.1: POST /v1/projects/{project}/messages:send and
//     POST /token. FCMURL already ends in "/v1", because firebase messaging
//     builds its URL as endpoint + "/projects/{p}/messages:send"; pass FCMURL
//     unchanged to option.WithEndpoint. A path without the /v1 prefix is also
//     served, so a client configured with the bare host still works.
//   - Admin API (AdminURL), plain HTTP: GET /stats?campaign=X, GET
//     /arrivals?campaign=X[&platform=ios|android][&format=binary], GET|POST /faults, GET|POST
//     /budget, POST /reset, GET /healthz, GET /metrics, GET /cacert.
//
// POST /faults takes {"apns_rates":{"ServiceUnavailable":0.2},"fcm_rates":
// {"UNAVAILABLE":0.2},"retry_after_seconds":2,"until_seconds":30} (or an
// absolute "until" in RFC 3339); unknown reasons are refused with 400. GET
// /arrivals answers a JSON array of unix-nanosecond int64s, or with
// format=binary consecutive little-endian int64s. /metrics serves, from a
// private registry, owlpost_pushsim_requests_total{provider,status,reason},
// owlpost_pushsim_accepted_total{provider} and
// owlpost_pushsim_request_duration_seconds{provider} (provider is apns, fcm or
// oauth2 for the token endpoint).
//
// Both TLS listeners use one leaf certificate for 127.0.0.1, ::1 and localhost,
// signed by a CA generated in memory by New (CACertPEM, GET /cacert).
//
// # Authentication
//
// APNs: every request needs "authorization: bearer <JWT>", an ES256 JWT whose
// header kid equals Config.APNsKeyID, whose iss equals Config.APNsTeamID, whose
// iat is less than one hour old, and whose signature verifies with
// Config.APNsPublicKey (403 MissingProviderToken, InvalidProviderToken or
// ExpiredProviderToken otherwise). A verified JWT string is cached, so the
// ECDSA verification is paid once per token (Apple asks providers to reuse a
// token for up to an hour; apns2 reuses it for 50 minutes).
//
// FCM: the token endpoint implements the OAuth2 JWT-bearer grant
// (grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer) like Google's
// token_uri: the assertion must be RS256-signed by the service account
// (Config.FCMServiceAccountKey) with aud = TokenURL. It issues opaque access
// tokens valid for one hour; messages:send requires one as Bearer (401
// UNAUTHENTICATED otherwise). A project other than Config.FCMProject gets 403
// PERMISSION_DENIED.
//
// Client wiring. apns2: NewTokenClient, Host = APNsURL, and set the
// *http2.Transport's TLSClientConfig to ClientTLSConfig(). firebase:
// option.WithHTTPClient bypasses firebase's credential handling, so build the
// client yourself: put an *http.Client trusting the CA into the context under
// oauth2.HTTPClient (used for the token fetch), get the token source with
// google.CredentialsFromJSONWithType(ctx, saJSON, google.ServiceAccount,
// scope), wrap it with oauth2.NewClient(ctx, ts), and pass that client with
// option.WithHTTPClient and option.WithEndpoint(FCMURL()). firebase v4.19
// SendEach / SendEachForMulticast post one messages:send per message (50
// concurrent workers); the legacy batch endpoint is not used.
//
// GenerateAPNsKey and GenerateServiceAccount make credentials that the real
// libraries accept (an AuthKey .p8 and a service-account JSON whose token_uri
// points here; ServiceAccountWithTokenURI fixes token_uri up once the port is
// known). ParseArgs and Serve are cmd/pushsim's flags (with
// OWLPOST_PUSHSIM_* environment fallbacks) and run loop.
//
// # Deterministic token patterns
//
// Tests can target exact outcomes by the device token (checked before the
// random faults):
//
//	APNs token (64 hex chars) starting with
//	  dead0410  -> 410 Unregistered (with "timestamp" in ms), always
//	  dead0400  -> 400 BadDeviceToken, always
//	  dead0429  -> 429 TooManyRequests the first time the token is seen, then accepted
//	  dead0503  -> 503 ServiceUnavailable the first two times, then accepted
//	  dead0500  -> 500 InternalServerError the first time, then accepted
//	FCM token (>= 100 chars of [A-Za-z0-9_:-]) containing
//	  UNREGISTERED -> 404 NOT_FOUND / UNREGISTERED, always
//	  INVALIDARG   -> 400 INVALID_ARGUMENT / INVALID_ARGUMENT, always
//	  QUOTA429     -> 429 RESOURCE_EXHAUSTED / QUOTA_EXCEEDED the first time, then accepted
//	  UNAVAIL503   -> 503 UNAVAILABLE / UNAVAILABLE the first two times, then accepted
//	  INTERNAL500  -> 500 INTERNAL / INTERNAL the first time, then accepted
//
// "Seen" counts are kept per token until Reset. Note that firebase messaging
// itself retries 503 (up to 4 times, with backoff and Retry-After), so a single
// Send to an UNAVAIL503 token succeeds after two hidden retries; it does not
// retry 429 or 500.
//
// Tokens that match no pattern are subject to the random fault rates of Faults
// (per request, until Faults.Until), then (APNs background pushes only) to
// the background Budget, then to the RateCap, and are otherwise accepted.
//
// # Background budget and quota
//
// Apple throttles background (content-available) notifications per device:
// it advises no more than two or three an hour, and answers a provider that
// sends too many to one device token 429 TooManyRequests. The simulator
// models this as a token bucket per device token (Budget): with
// Budget.APNsBackgroundPerHour set (cmd/pushsim: DefaultBudget, three per
// hour with a burst of three; --apns-background-per-hour,
// --apns-background-burst; POST /budget {"apns_background_per_hour": N,
// "apns_background_burst": B}) a background push to a token whose bucket is
// empty is answered 429 TooManyRequests (no Retry-After, as Apple) until it refills;
// other tokens and alerts are not counted against it. The table of tokens is
// bounded (Budget.Devices, default 2^20: tokens whose bucket refilled are
// dropped first, then arbitrary ones, which then get a full bucket). FCM
// has no such budget: data-only messages count against the project's send
// quota like notifications, so the RateCap applies to both alike.
//
// # Campaigns and recording
//
// The campaign of a notification is its apns-collapse-id (APNs) or its
// android.collapse_key, else its data field "campaign_id" (FCM). Every accepted
// notification is recorded as a fixed-size record (64-bit token hash, 64-bit
// payload hash, arrival time, platform) in a per-campaign slice with a
// per-campaign mutex, plus a per-campaign map from token hash to count for
// duplicates: about 60 bytes per notification, no strings retained. Stats
// also count the accepted notifications by kind (ByKind): "ios/<apns-push-
// type>/<apns-priority>" and "android/<notification|data>/<priority>", so
// a test tells a silent push ("ios/background/5", "android/data/normal")
// from a shown one ("ios/alert/10", "android/notification/high"). Stats and
// Arrivals with campaign "" aggregate all campaigns (distinct tokens are counted
// per campaign and summed). The arrival time is when the request reached the
// handler, before any injected latency. Rejections are counted per campaign by
// reason (APNs reason or FCM errorCode/status); requests rejected before their
// campaign is known (bad path, bad JSON) count under campaign "".
//
// # What is faithful and what is not
//
// Faithful: the HTTP/2-only TLS APNs endpoint with SETTINGS_MAX_CONCURRENT_STREAMS,
// the request headers and their validation (apns-topic, apns-push-type,
// apns-priority incl. background at 10, apns-expiration, apns-id UUID,
// apns-collapse-id <= 64 bytes, duplicate headers), the 4096-byte payload limit,
// reason strings and status codes, JWT provider-token rules; the FCM v1 URL,
// request body, OAuth2 token exchange, Google's error JSON with the FcmError
// detail that firebase's IsUnregistered/IsQuotaExceeded/... read, and
// Retry-After.
//
// Not faithful: nothing is delivered to a device; no per-device throttling
// (APNs 429 comes only from patterns, faults, the background budget, which is
// global rather than per device, and the RateCap); no certificate
// (mTLS) authentication for APNs; FCM topic and condition targets, the legacy
// batch endpoint and the apns/webpush sub-configs are not interpreted (topic
// and condition sends are rejected with INVALID_ARGUMENT); the FCM 4096-byte
// limit is applied to the data and notification fields only; device tokens are
// not tied to a topic or project; access tokens and provider tokens are never
// revoked.
package pushsim
