package pushsim

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const (
	apnsMaxPayload     = 4096
	apnsMaxCollapseID  = 64
	apnsTokenLifetime  = time.Hour
	apnsDevicePrefix   = "/3/device/"
	apnsJWTCacheMax    = 4096
	jwtClockSkewLeeway = time.Minute
)

// apnsPushTypes are the apns-push-type values Apple documents.
var apnsPushTypes = map[string]bool{
	"alert": true, "background": true, "location": true, "voip": true, "complication": true,
	"fileprovider": true, "mdm": true, "liveactivity": true, "pushtotalk": true, "widgets": true,
	"controls": true,
}

// apnsSingleHeaders must not be repeated (400 DuplicateHeaders).
var apnsSingleHeaders = []string{
	"Authorization", "Apns-Topic", "Apns-Id", "Apns-Collapse-Id", "Apns-Priority", "Apns-Expiration", "Apns-Push-Type",
}

// apnsError is the JSON body of an APNs error response.
type apnsError struct {
	Reason    string `json:"reason"`
	Timestamp int64  `json:"timestamp,omitempty"`
}

func (s *Server) serveAPNs(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.delay(r.Context())
	status, reason := s.handleAPNs(w, r, start)
	s.met.observe("apns", status, reason, start)
}

// handleAPNs answers one provider API request and returns the status and
// reason it answered with.
func (s *Server) handleAPNs(w http.ResponseWriter, r *http.Request, arrival time.Time) (int, string) {
	campaign := r.Header.Get("apns-collapse-id")
	apnsID := r.Header.Get("apns-id")
	if _, err := uuid.Parse(apnsID); err != nil || len(apnsID) != 36 {
		apnsID = ""
	}
	respID := apnsID
	if respID == "" {
		respID = uuid.NewString()
	}
	fail := func(reason string, retryAfter string) (int, string) {
		status := apnsReasonStatus[reason]
		s.rec.reject(campaign, reason)
		h := w.Header()
		h.Set("apns-id", respID)
		h.Set("Content-Type", "application/json")
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		body := apnsError{Reason: reason}
		if status == http.StatusGone {
			body.Timestamp = time.Now().UnixMilli()
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
		return status, reason
	}

	if r.Method != http.MethodPost {
		return fail("MethodNotAllowed", "")
	}
	token, ok := strings.CutPrefix(r.URL.Path, apnsDevicePrefix)
	if !ok || strings.Contains(token, "/") {
		return fail("BadPath", "")
	}
	if token == "" {
		return fail("MissingDeviceToken", "")
	}
	for _, h := range apnsSingleHeaders {
		if len(r.Header[h]) > 1 {
			return fail("DuplicateHeaders", "")
		}
	}
	if reason := s.checkProviderToken(r.Header.Get("Authorization"), time.Now()); reason != "" {
		return fail(reason, "")
	}
	if h := r.Header.Get("apns-id"); h != "" && apnsID == "" {
		return fail("BadMessageId", "")
	}
	topic := r.Header.Get("apns-topic")
	if topic == "" {
		return fail("MissingTopic", "")
	}
	if !s.topicAllowed(topic) {
		return fail("TopicDisallowed", "")
	}
	pushType := r.Header.Get("apns-push-type")
	if pushType != "" && !apnsPushTypes[pushType] {
		return fail("InvalidPushType", "")
	}
	if p := r.Header.Get("apns-priority"); p != "" {
		if p != "1" && p != "5" && p != "10" {
			return fail("BadPriority", "")
		}
		if pushType == "background" && p == "10" {
			return fail("BadPriority", "")
		}
	}
	if e := r.Header.Get("apns-expiration"); e != "" {
		if _, err := strconv.ParseInt(e, 10, 64); err != nil {
			return fail("BadExpirationDate", "")
		}
	}
	if len(campaign) > apnsMaxCollapseID {
		return fail("BadCollapseId", "")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, apnsMaxPayload+1))
	if err != nil {
		return fail("IdleTimeout", "")
	}
	if len(body) > apnsMaxPayload {
		return fail("PayloadTooLarge", "")
	}
	if len(body) == 0 {
		return fail("PayloadEmpty", "")
	}
	if !isAPNsToken(token) {
		return fail("BadDeviceToken", "")
	}

	fs := s.faults.Load()
	if reason := s.apnsPattern(token); reason != "" {
		return fail(reason, apnsRetryAfter(reason, fs.retryAfter))
	}
	if reason, fs := s.randomFault(true, time.Now()); reason != "" {
		return fail(reason, apnsRetryAfter(reason, fs.retryAfter))
	}
	tokenHash := s.rec.hashString(token)
	if pushType == "background" {
		// No Retry-After: Apple documents none for this per-device answer, and
		// a sender takes one as the wait for its whole batch's retries.
		if !s.allowBackground(tokenHash, arrival) {
			return fail("TooManyRequests", "")
		}
	}
	if !s.allow() {
		return fail("TooManyRequests", retryAfterSeconds(max(fs.retryAfter, time.Second)))
	}

	s.rec.accept(campaign, tokenHash, s.rec.hashBytes(body), arrival, platformIOS,
		apnsKind(pushType, r.Header.Get("apns-priority")))
	s.met.accepted.WithLabelValues("apns").Inc()
	w.Header().Set("apns-id", respID)
	w.WriteHeader(http.StatusOK)
	return http.StatusOK, ""
}

// apnsRetryAfter is the Retry-After for a fault: only 429 and 503, only when
// configured.
func apnsRetryAfter(reason string, d time.Duration) string {
	st := apnsReasonStatus[reason]
	if d <= 0 || (st != http.StatusTooManyRequests && st != http.StatusServiceUnavailable) {
		return ""
	}
	return retryAfterSeconds(d)
}

// apnsPattern applies the deterministic token patterns (see the package doc).
func (s *Server) apnsPattern(token string) string {
	if len(token) < 8 || token[:4] != "dead" {
		return ""
	}
	switch strings.ToLower(token[:8]) {
	case "dead0410":
		return "Unregistered"
	case "dead0400":
		return "BadDeviceToken"
	case "dead0429":
		if s.pat.next(token) < 1 {
			return "TooManyRequests"
		}
	case "dead0503":
		if s.pat.next(token) < 2 {
			return "ServiceUnavailable"
		}
	case "dead0500":
		if s.pat.next(token) < 1 {
			return "InternalServerError"
		}
	}
	return ""
}

func (s *Server) topicAllowed(topic string) bool {
	if len(s.cfg.APNsTopics) == 0 {
		return true
	}
	for _, t := range s.cfg.APNsTopics {
		if topic == t || (strings.HasPrefix(topic, t) && topic[len(t)] == '.') {
			return true
		}
	}
	return false
}

// isAPNsToken reports whether t is 64 hexadecimal characters.
func isAPNsToken(t string) bool {
	if len(t) != 64 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// checkProviderToken validates the authorization header and returns the
// APNs reason to reject with, or "".
func (s *Server) checkProviderToken(authz string, now time.Time) string {
	if authz == "" {
		return "MissingProviderToken"
	}
	scheme, tok, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
		return "MissingProviderToken"
	}
	iat, cached := s.apnsJWT.get(tok)
	if !cached {
		var err error
		if iat, err = verifyAPNsJWT(tok, s.cfg.APNsPublicKey, s.cfg.APNsKeyID, s.cfg.APNsTeamID); err != nil {
			return "InvalidProviderToken"
		}
		s.apnsJWT.put(tok, iat)
	}
	issued := time.Unix(iat, 0)
	if issued.After(now.Add(jwtClockSkewLeeway)) {
		return "InvalidProviderToken"
	}
	if now.Sub(issued) >= apnsTokenLifetime {
		return "ExpiredProviderToken"
	}
	return ""
}

var errWrongKeyID = errors.New("pushsim: kid does not match")

// verifyAPNsJWT checks the ES256 signature, kid and iss, and returns iat.
func verifyAPNsJWT(tok string, pub *ecdsa.PublicKey, keyID, teamID string) (int64, error) {
	claims := jwt.MapClaims{}
	p := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	_, err := p.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != keyID {
			return nil, errWrongKeyID
		}
		return pub, nil
	})
	if err != nil {
		return 0, err
	}
	if iss, _ := claims["iss"].(string); iss != teamID {
		return 0, errors.New("pushsim: iss does not match the team id")
	}
	iat, ok := claims["iat"].(float64)
	if !ok {
		return 0, errors.New("pushsim: iat missing")
	}
	return int64(iat), nil
}

// jwtCache remembers verified provider tokens (JWT string -> iat), so the
// ECDSA verification is paid once per token.
type jwtCache struct {
	mu sync.RWMutex
	m  map[string]int64
}

func newJWTCache() *jwtCache { return &jwtCache{m: make(map[string]int64)} }

func (c *jwtCache) get(tok string) (int64, bool) {
	c.mu.RLock()
	iat, ok := c.m[tok]
	c.mu.RUnlock()
	return iat, ok
}

func (c *jwtCache) put(tok string, iat int64) {
	c.mu.Lock()
	if len(c.m) >= apnsJWTCacheMax {
		c.m = make(map[string]int64)
	}
	c.m[tok] = iat
	c.mu.Unlock()
}
