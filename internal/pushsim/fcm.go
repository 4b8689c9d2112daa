package pushsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	fcmMaxBody          = 64 << 10 // larger request bodies are refused outright
	fcmMaxPayload       = 4096     // data + notification bytes, like FCM
	fcmMinToken         = 100
	fcmMaxToken         = 1024
	fcmErrorType        = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	accessTokenLifetime = time.Hour
	accessTokensMax     = 100000
	jwtBearerGrant      = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// fcmSendRequest is the messages:send body. Proto JSON accepts both the
// snake_case and the lowerCamelCase spelling of a field.
type fcmSendRequest struct {
	ValidateOnly      bool        `json:"validate_only"`
	ValidateOnlyCamel bool        `json:"validateOnly"`
	Message           *fcmMessage `json:"message"`
}

type fcmMessage struct {
	Token        string            `json:"token"`
	Topic        string            `json:"topic"`
	Condition    string            `json:"condition"`
	Data         map[string]string `json:"data"`
	Notification *struct {
		Title string `json:"title"`
		Body  string `json:"body"`
		Image string `json:"image"`
	} `json:"notification"`
	Android *struct {
		CollapseKey      string            `json:"collapse_key"`
		CollapseKeyCamel string            `json:"collapseKey"`
		Priority         string            `json:"priority"`
		TTL              string            `json:"ttl"`
		Data             map[string]string `json:"data"`
		Notification     json.RawMessage   `json:"notification"`
	} `json:"android"`
}

// googleError is Google's error JSON.
type googleError struct {
	Error googleErrorBody `json:"error"`
}

type googleErrorBody struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Status  string         `json:"status"`
	Details []googleDetail `json:"details,omitempty"`
}

type googleDetail struct {
	Type      string `json:"@type"`
	ErrorCode string `json:"errorCode,omitempty"`
}

// fcmMessages are the messages FCM answers with per errorCode.
var fcmMessages = map[string]string{
	"UNREGISTERED":       "Requested entity was not found.",
	"INVALID_ARGUMENT":   "Request contains an invalid argument.",
	"QUOTA_EXCEEDED":     "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'.",
	"UNAVAILABLE":        "The service is currently unavailable.",
	"INTERNAL":           "Internal error encountered.",
	"SENDER_ID_MISMATCH": "SenderId mismatch",
}

func (s *Server) serveFCM(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	path := r.URL.Path
	if path == "/token" {
		status, reason := s.handleToken(w, r)
		s.met.observe("oauth2", status, reason, start)
		return
	}
	s.delay(r.Context())
	status, reason := s.handleSend(w, r, start)
	s.met.observe("fcm", status, reason, start)
}

// fcmFail writes Google's error JSON. code is the FcmError errorCode ("" for
// none); status overrides the Google status derived from code.
func fcmFail(w http.ResponseWriter, httpStatus int, googleStatus, code, msg, retryAfter string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	body := googleError{Error: googleErrorBody{Code: httpStatus, Message: msg, Status: googleStatus}}
	if code != "" {
		body.Error.Details = []googleDetail{{Type: fcmErrorType, ErrorCode: code}}
	}
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(body)
}

// handleSend answers POST /v1/projects/{p}/messages:send.
func (s *Server) handleSend(w http.ResponseWriter, r *http.Request, arrival time.Time) (int, string) {
	campaign := ""
	// failCode answers with an FcmError errorCode.
	failCode := func(code, msg, retryAfter string) (int, string) {
		cs := fcmCodeStatus[code]
		if msg == "" {
			msg = fcmMessages[code]
		}
		s.rec.reject(campaign, code)
		fcmFail(w, cs.code, cs.status, code, msg, retryAfter)
		return cs.code, code
	}
	// failStatus answers with a Google status and no FcmError detail.
	failStatus := func(httpStatus int, status, msg string) (int, string) {
		s.rec.reject(campaign, status)
		fcmFail(w, httpStatus, status, "", msg, "")
		return httpStatus, status
	}

	p := strings.TrimPrefix(r.URL.Path, "/v1")
	project, ok := strings.CutPrefix(p, "/projects/")
	if ok {
		project, ok = strings.CutSuffix(project, "/messages:send")
	}
	if !ok || project == "" || strings.Contains(project, "/") {
		return failStatus(http.StatusNotFound, "NOT_FOUND", "The requested URL "+r.URL.Path+" was not found on this server.")
	}
	if r.Method != http.MethodPost {
		return failStatus(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "Method "+r.Method+" not allowed.")
	}

	// Parse before authenticating so rejections are attributed to their campaign.
	raw, err := io.ReadAll(io.LimitReader(r.Body, fcmMaxBody+1))
	var req fcmSendRequest
	parseErr := err
	if parseErr == nil && len(raw) > fcmMaxBody {
		parseErr = errors.New("request body too large")
	}
	if parseErr == nil {
		parseErr = json.Unmarshal(raw, &req)
	}
	if parseErr == nil && req.Message != nil {
		campaign = req.Message.campaign()
	}

	if !s.fcmTok.valid(bearer(r.Header.Get("Authorization")), time.Now()) {
		return failStatus(http.StatusUnauthorized, "UNAUTHENTICATED",
			"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
	}
	if project != s.cfg.FCMProject {
		return failStatus(http.StatusForbidden, "PERMISSION_DENIED",
			"Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/"+project+"' (or it may not exist).")
	}
	if parseErr != nil {
		return failCode("INVALID_ARGUMENT", "Invalid JSON payload received.", "")
	}
	m := req.Message
	if m == nil {
		return failCode("INVALID_ARGUMENT", "Request contains an invalid argument: message is required.", "")
	}
	if msg := m.validate(); msg != "" {
		return failCode("INVALID_ARGUMENT", msg, "")
	}

	fs := s.faults.Load()
	if code := s.fcmPattern(m.Token); code != "" {
		return failCode(code, "", fcmRetryAfter(code, fs.retryAfter))
	}
	if code, fs := s.randomFault(false, time.Now()); code != "" {
		return failCode(code, "", fcmRetryAfter(code, fs.retryAfter))
	}
	if req.ValidateOnly || req.ValidateOnlyCamel {
		writeFCMName(w, s.cfg.FCMProject, "fake_message_id")
		return http.StatusOK, ""
	}
	if !s.allow() {
		return failCode("QUOTA_EXCEEDED", "", retryAfterSeconds(max(fs.retryAfter, time.Second)))
	}

	s.rec.accept(campaign, s.rec.hashString(m.Token), s.rec.hashBytes(raw), arrival, platformAndroid, fcmKind(m))
	s.met.accepted.WithLabelValues("fcm").Inc()
	writeFCMName(w, s.cfg.FCMProject, fmt.Sprintf("0:%d%%%08x", arrival.UnixMicro(), s.rec.hashString(m.Token)&0xffffffff))
	return http.StatusOK, ""
}

func writeFCMName(w http.ResponseWriter, project, id string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(struct {
		Name string `json:"name"`
	}{"projects/" + project + "/messages/" + id})
}

// fcmRetryAfter: QUOTA_EXCEEDED always carries Retry-After (1s by default),
// UNAVAILABLE only when configured.
func fcmRetryAfter(code string, d time.Duration) string {
	switch code {
	case "QUOTA_EXCEEDED":
		return retryAfterSeconds(max(d, time.Second))
	case "UNAVAILABLE":
		if d > 0 {
			return retryAfterSeconds(d)
		}
	}
	return ""
}

// campaign is android.collapse_key, else data["campaign_id"].
func (m *fcmMessage) campaign() string {
	if m.Android != nil {
		if m.Android.CollapseKey != "" {
			return m.Android.CollapseKey
		}
		if m.Android.CollapseKeyCamel != "" {
			return m.Android.CollapseKeyCamel
		}
		if c := m.Android.Data["campaign_id"]; c != "" {
			return c
		}
	}
	return m.Data["campaign_id"]
}

// validate returns the INVALID_ARGUMENT message for m, or "".
func (m *fcmMessage) validate() string {
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		return "Request contains an invalid argument: exactly one of token, topic or condition is required."
	}
	if m.Token == "" {
		return "Request contains an invalid argument: the simulator supports token targets only."
	}
	if !isFCMToken(m.Token) {
		return "The registration token is not a valid FCM registration token"
	}
	size := 0
	for k, v := range m.Data {
		size += len(k) + len(v)
	}
	if m.Notification != nil {
		size += len(m.Notification.Title) + len(m.Notification.Body) + len(m.Notification.Image)
	}
	if a := m.Android; a != nil {
		for k, v := range a.Data {
			size += len(k) + len(v)
		}
		if a.Priority != "" && !strings.EqualFold(a.Priority, "normal") && !strings.EqualFold(a.Priority, "high") {
			return "Invalid value at 'message.android.priority'"
		}
		if a.TTL != "" {
			if d, err := time.ParseDuration(a.TTL); err != nil || d < 0 || !strings.HasSuffix(a.TTL, "s") {
				return "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)"
			}
		}
		if len(a.CollapseKey) > 0 && len(a.CollapseKey) > 64 {
			return "Invalid value at 'message.android.collapse_key'"
		}
	}
	if size > fcmMaxPayload {
		return "Message is too big"
	}
	return ""
}

// isFCMToken is the simulator's shape check for registration tokens:
// 100..1024 characters of [A-Za-z0-9_:-] (real tokens are ~150-170 such).
func isFCMToken(t string) bool {
	if len(t) < fcmMinToken || len(t) > fcmMaxToken {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// fcmPattern applies the deterministic token patterns (see the package doc).
func (s *Server) fcmPattern(token string) string {
	switch {
	case strings.Contains(token, "UNREGISTERED"):
		return "UNREGISTERED"
	case strings.Contains(token, "INVALIDARG"):
		return "INVALID_ARGUMENT"
	case strings.Contains(token, "QUOTA429"):
		if s.pat.next(token) < 1 {
			return "QUOTA_EXCEEDED"
		}
	case strings.Contains(token, "UNAVAIL503"):
		if s.pat.next(token) < 2 {
			return "UNAVAILABLE"
		}
	case strings.Contains(token, "INTERNAL500"):
		if s.pat.next(token) < 1 {
			return "INTERNAL"
		}
	}
	return ""
}

func bearer(authz string) string {
	scheme, tok, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// oauthError is the OAuth2 error body of the token endpoint.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// handleToken implements the OAuth2 JWT-bearer grant of Google's token_uri.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) (int, string) {
	fail := func(status int, code, desc string) (int, string) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(oauthError{Error: code, Description: desc})
		return status, code
	}
	if r.Method != http.MethodPost {
		return fail(http.StatusMethodNotAllowed, "invalid_request", "POST required")
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return fail(http.StatusBadRequest, "invalid_request", "unreadable form body")
	}
	if gt := r.PostForm.Get("grant_type"); gt != jwtBearerGrant {
		return fail(http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+gt)
	}
	assertion := r.PostForm.Get("assertion")
	if err := s.verifyAssertion(assertion, time.Now()); err != nil {
		return fail(http.StatusBadRequest, "invalid_grant", err.Error())
	}
	tok, err := s.fcmTok.issue(time.Now())
	if err != nil {
		return fail(http.StatusInternalServerError, "server_error", "cannot issue token")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}{tok, int(accessTokenLifetime/time.Second) - 1, "Bearer"})
	return http.StatusOK, ""
}

// verifyAssertion checks a service account's RS256 assertion: signature,
// aud = this token endpoint, iat/exp in range, iss present. Error texts are
// safe to return (they never include the assertion).
func (s *Server) verifyAssertion(assertion string, now time.Time) error {
	if assertion == "" {
		return errors.New("assertion missing")
	}
	claims := jwt.MapClaims{}
	p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	if _, err := p.ParseWithClaims(assertion, claims, func(*jwt.Token) (any, error) {
		return s.cfg.FCMServiceAccountKey, nil
	}); err != nil {
		return errors.New("Invalid JWT Signature.")
	}
	if iss, _ := claims["iss"].(string); iss == "" {
		return errors.New("Invalid JWT: iss missing.")
	}
	aud, _ := claims["aud"].(string)
	if !s.isTokenAudience(aud) {
		return errors.New("Invalid JWT: Failed audience check.")
	}
	iat, ok1 := claims["iat"].(float64)
	exp, ok2 := claims["exp"].(float64)
	if !ok1 || !ok2 {
		return errors.New("Invalid JWT: iat and exp are required.")
	}
	it, et := time.Unix(int64(iat), 0), time.Unix(int64(exp), 0)
	if it.After(now.Add(jwtClockSkewLeeway)) || !et.After(now) || et.Sub(it) > time.Hour+jwtClockSkewLeeway {
		return errors.New("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
	}
	return nil
}

// isTokenAudience accepts TokenURL, also spelled with localhost or [::1].
func (s *Server) isTokenAudience(aud string) bool {
	u, err := url.Parse(aud)
	if err != nil || u.Scheme != "https" || u.Path != "/token" {
		return false
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || port != s.fcmPort {
		return false
	}
	return host == "127.0.0.1" || host == "localhost" || host == "::1"
}

// accessTokens are the opaque OAuth2 access tokens issued by the token
// endpoint, with their expiry.
type accessTokens struct {
	mu sync.RWMutex
	m  map[string]time.Time
}

func newAccessTokens() *accessTokens { return &accessTokens{m: make(map[string]time.Time)} }

func (a *accessTokens) issue(now time.Time) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pushsim: access token: %w", err)
	}
	tok := "ya29.sim-" + base64.RawURLEncoding.EncodeToString(b)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.m) >= accessTokensMax {
		for k, exp := range a.m {
			if !exp.After(now) {
				delete(a.m, k)
			}
		}
	}
	a.m[tok] = now.Add(accessTokenLifetime)
	return tok, nil
}

func (a *accessTokens) valid(tok string, now time.Time) bool {
	if tok == "" {
		return false
	}
	a.mu.RLock()
	exp, ok := a.m[tok]
	a.mu.RUnlock()
	return ok && exp.After(now)
}
