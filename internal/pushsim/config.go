package pushsim

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// DefaultMaxConcurrentStreams is the APNs SETTINGS_MAX_CONCURRENT_STREAMS used
// when Config.MaxConcurrentStreams is zero (Apple advertises 1000 on
// token-authenticated connections).
const DefaultMaxConcurrentStreams = 1000

// Config configures a Server. APNsPublicKey, APNsKeyID, APNsTeamID, FCMProject
// and FCMServiceAccountKey are required.
type Config struct {
	// Listen addresses; "127.0.0.1:0" (the default when empty) picks a port.
	APNsAddr, FCMAddr, AdminAddr string
	// MaxConcurrentStreams is the APNs HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS,
	// default DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32

	// APNs token auth: ES256 JWT bearers must verify with APNsPublicKey, carry
	// kid == APNsKeyID, iss == APNsTeamID and an iat less than one hour old.
	APNsKeyID, APNsTeamID string
	APNsPublicKey         *ecdsa.PublicKey
	// APNsTopics are the accepted apns-topic values (bundle ids); a topic may
	// also be one of them followed by a suffix such as ".voip". Empty accepts
	// any non-empty topic.
	APNsTopics []string

	// FCMProject is the project id accepted in the messages:send path.
	FCMProject string
	// FCMServiceAccountKey verifies the JWT assertions of the token endpoint.
	FCMServiceAccountKey *rsa.PublicKey

	// Latency + rand[0, Jitter) is added to every provider request.
	Latency, Jitter time.Duration
	// Faults are the random faults at start; see SetFaults.
	Faults Faults
	// RateCap is the maximum of accepted notifications per second over both
	// providers (0 = off); over it APNs answers 429 TooManyRequests and FCM 429
	// QUOTA_EXCEEDED, both with Retry-After: 1.
	RateCap int
	// Budget is the APNs background-notification budget at start; see
	// SetBudget.
	Budget Budget
}

// Faults are random errors injected per request, on top of the deterministic
// token patterns.
type Faults struct {
	// APNsRates maps an APNs reason to its probability per request, e.g.
	// {"ServiceUnavailable":0.2,"TooManyRequests":0.1,"InternalServerError":0.01}.
	APNsRates map[string]float64
	// FCMRates maps an FCM errorCode to its probability per request, e.g.
	// {"UNAVAILABLE":0.2,"QUOTA_EXCEEDED":0.1,"INTERNAL":0.01}.
	FCMRates map[string]float64
	// RetryAfter is sent as Retry-After (whole seconds, rounded up) with 429
	// and 503. Zero omits the header for APNs and for FCM 503, and sends 1s for
	// FCM QUOTA_EXCEEDED.
	RetryAfter time.Duration
	// Until ends the faults (zero = no end): a storm for a while.
	Until time.Time
}

// apnsReasonStatus maps the APNs reasons the simulator can inject to their
// HTTP statuses.
var apnsReasonStatus = map[string]int{
	"BadCollapseId":               400,
	"BadDeviceToken":              400,
	"BadExpirationDate":           400,
	"BadMessageId":                400,
	"BadPriority":                 400,
	"BadTopic":                    400,
	"DeviceTokenNotForTopic":      400,
	"DuplicateHeaders":            400,
	"IdleTimeout":                 400,
	"InvalidPushType":             400,
	"MissingDeviceToken":          400,
	"MissingTopic":                400,
	"PayloadEmpty":                400,
	"TopicDisallowed":             400,
	"BadCertificate":              403,
	"BadCertificateEnvironment":   403,
	"ExpiredProviderToken":        403,
	"Forbidden":                   403,
	"InvalidProviderToken":        403,
	"MissingProviderToken":        403,
	"BadPath":                     404,
	"MethodNotAllowed":            405,
	"ExpiredToken":                410,
	"Unregistered":                410,
	"PayloadTooLarge":             413,
	"TooManyProviderTokenUpdates": 429,
	"TooManyRequests":             429,
	"InternalServerError":         500,
	"ServiceUnavailable":          503,
	"Shutdown":                    503,
}

// fcmCodeStatus maps FCM errorCodes to the HTTP status and Google status that
// FCM answers with.
var fcmCodeStatus = map[string]struct {
	code   int
	status string
}{
	"UNSPECIFIED_ERROR":      {500, "INTERNAL"},
	"INVALID_ARGUMENT":       {400, "INVALID_ARGUMENT"},
	"UNREGISTERED":           {404, "NOT_FOUND"},
	"SENDER_ID_MISMATCH":     {403, "PERMISSION_DENIED"},
	"QUOTA_EXCEEDED":         {429, "RESOURCE_EXHAUSTED"},
	"UNAVAILABLE":            {503, "UNAVAILABLE"},
	"INTERNAL":               {500, "INTERNAL"},
	"THIRD_PARTY_AUTH_ERROR": {401, "UNAUTHENTICATED"},
}

// Validate reports unknown reasons or error codes and rates outside [0,1].
func (f Faults) Validate() error {
	var errs []error
	for r, p := range f.APNsRates {
		if _, ok := apnsReasonStatus[r]; !ok {
			errs = append(errs, fmt.Errorf("pushsim: unknown APNs reason %q", r))
		}
		if !validRate(p) {
			errs = append(errs, fmt.Errorf("pushsim: APNs rate %s=%v not in [0,1]", r, p))
		}
	}
	for c, p := range f.FCMRates {
		if _, ok := fcmCodeStatus[c]; !ok {
			errs = append(errs, fmt.Errorf("pushsim: unknown FCM errorCode %q", c))
		}
		if !validRate(p) {
			errs = append(errs, fmt.Errorf("pushsim: FCM rate %s=%v not in [0,1]", c, p))
		}
	}
	if f.RetryAfter < 0 {
		errs = append(errs, errors.New("pushsim: negative RetryAfter"))
	}
	return errors.Join(errs...)
}

func validRate(p float64) bool { return !math.IsNaN(p) && p >= 0 && p <= 1 }

// rateEntry is one cumulative slot of a compiled fault table.
type rateEntry struct {
	key   string
	upper float64 // cumulative probability
}

// faultSet is the compiled, immutable form of Faults, swapped atomically.
type faultSet struct {
	apns, fcm  []rateEntry
	retryAfter time.Duration
	until      time.Time
	raw        Faults
}

func compileFaults(f Faults) *faultSet {
	fs := &faultSet{retryAfter: f.RetryAfter, until: f.Until, raw: cloneFaults(f)}
	fs.apns = cumulative(f.APNsRates, func(k string) bool { _, ok := apnsReasonStatus[k]; return ok })
	fs.fcm = cumulative(f.FCMRates, func(k string) bool { _, ok := fcmCodeStatus[k]; return ok })
	return fs
}

func cloneFaults(f Faults) Faults {
	out := f
	out.APNsRates = make(map[string]float64, len(f.APNsRates))
	for k, v := range f.APNsRates {
		out.APNsRates[k] = v
	}
	out.FCMRates = make(map[string]float64, len(f.FCMRates))
	for k, v := range f.FCMRates {
		out.FCMRates[k] = v
	}
	return out
}

// cumulative keeps the known keys, sorts them for a stable draw order and
// accumulates the probabilities, so one uniform draw picks at most one fault.
func cumulative(m map[string]float64, known func(string) bool) []rateEntry {
	keys := make([]string, 0, len(m))
	for k, p := range m {
		if validRate(p) && p > 0 && known(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]rateEntry, 0, len(keys))
	sum := 0.0
	for _, k := range keys {
		sum += m[k]
		out = append(out, rateEntry{key: k, upper: sum})
	}
	return out
}

// pick returns the fault chosen by the uniform draw u in [0,1), or "".
func pick(entries []rateEntry, u float64) string {
	for _, e := range entries {
		if u < e.upper {
			return e.key
		}
	}
	return ""
}

func (c *Config) validate() error {
	var errs []error
	if c.APNsPublicKey == nil {
		errs = append(errs, errors.New("pushsim: APNsPublicKey is required (see GenerateAPNsKey)"))
	}
	if c.APNsKeyID == "" || c.APNsTeamID == "" {
		errs = append(errs, errors.New("pushsim: APNsKeyID and APNsTeamID are required"))
	}
	if c.FCMServiceAccountKey == nil {
		errs = append(errs, errors.New("pushsim: FCMServiceAccountKey is required (see GenerateServiceAccount)"))
	}
	if c.FCMProject == "" {
		errs = append(errs, errors.New("pushsim: FCMProject is required"))
	}
	if c.Latency < 0 || c.Jitter < 0 {
		errs = append(errs, errors.New("pushsim: negative Latency or Jitter"))
	}
	if c.RateCap < 0 {
		errs = append(errs, errors.New("pushsim: negative RateCap"))
	}
	if err := c.Budget.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Faults.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) applyDefaults() {
	if c.APNsAddr == "" {
		c.APNsAddr = "127.0.0.1:0"
	}
	if c.FCMAddr == "" {
		c.FCMAddr = "127.0.0.1:0"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = "127.0.0.1:0"
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
}
