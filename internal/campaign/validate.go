package campaign

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/owlpost/owlpost/internal/push"
)

// Limits checked by Validate.
const (
	MaxIDLen          = 63   // [a-z0-9][a-z0-9._-]{0,62}
	MaxAPNsPayload    = 4096 // bytes, Apple's limit for regular notifications
	MaxAPNsCollapseID = 64   // bytes, Apple's limit for apns-collapse-id
	MaxProofAudience  = 100
	maxTopicLen       = 249 // Kafka topic names
)

var (
	idRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	topicRE    = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
	bundleIDRE = regexp.MustCompile(`^[A-Za-z0-9.-]+$`)
)

// Problem is one thing wrong with a campaign, at a field path such as
// "apns.priority", "messages.de-DE.title" or "proof_audience[2].token".
type Problem struct {
	Field string
	Msg   string
}

func (p Problem) String() string { return p.Field + ": " + p.Msg }

// ValidationError lists every problem found, in a stable order.
type ValidationError struct{ Problems []Problem }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid campaign: " + strings.Join(parts, "; ")
}

type problems []Problem

func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, Problem{field, fmt.Sprintf(format, args...)})
}

// Validate checks c as it is (call ApplyDefaults first; Parse does) and
// returns a *ValidationError naming every problem, or nil.
func (c *Campaign) Validate() error {
	var ps problems
	switch {
	case c.ID == "":
		ps.add("id", "required")
	case len(c.ID) > MaxIDLen:
		ps.add("id", "%d characters, at most %d allowed", len(c.ID), MaxIDLen)
	case !idRE.MatchString(c.ID):
		ps.add("id", "must start with [a-z0-9] and contain only [a-z0-9._-]")
	}
	switch {
	case c.AudienceTopic == "":
		ps.add("audience_topic", "required")
	case len(c.AudienceTopic) > maxTopicLen || !topicRE.MatchString(c.AudienceTopic) ||
		c.AudienceTopic == "." || c.AudienceTopic == "..":
		ps.add("audience_topic", "not a Kafka topic name ([a-zA-Z0-9._-], at most %d)", maxTopicLen)
	}

	_, localeProbs := buildIndex(c)
	if len(c.Messages) == 0 {
		ps.add("messages", "at least one locale required")
	}
	switch {
	case c.DefaultLocale == "":
		ps.add("default_locale", "required")
	case !hasMessage(c, c.DefaultLocale):
		ps.add("default_locale", "%q has no message", c.DefaultLocale)
	}
	ps = append(ps, localeProbs...)
	for _, loc := range sortedKeys(c.Messages) {
		c.validateMessage(&ps, loc)
	}

	c.validateAPNs(&ps)
	c.validateFCM(&ps)
	switch {
	case c.Deadline == 0:
		ps.add("deadline", "required (how long after GO sending still makes sense)")
	case c.Deadline < 0:
		ps.add("deadline", "must be positive")
	}
	c.validateProof(&ps)
	c.validateTargets(&ps)
	seen := map[string]bool{}
	for i, n := range c.Launch.Launchers {
		switch {
		case len(n) > MaxIDLen || !idRE.MatchString(n):
			ps.add(fmt.Sprintf("launch.launchers[%d]", i), "%q is not a user name ([a-z0-9][a-z0-9._-], at most %d)", n, MaxIDLen)
		case seen[n]:
			ps.add(fmt.Sprintf("launch.launchers[%d]", i), "%q named twice", n)
		}
		seen[n] = true
	}
	if len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	return nil
}

func hasMessage(c *Campaign, loc string) bool {
	_, ok := c.Messages[loc]
	return ok
}

func (c *Campaign) validateMessage(ps *problems, loc string) {
	m := c.Messages[loc]
	field := "messages." + loc
	if !c.Background() && m.Title == "" && m.Body == "" {
		ps.add(field+".title", "title or body required for an alert campaign")
	}
	if m.Badge != nil && *m.Badge < 0 {
		ps.add(field+".badge", "must not be negative")
	}
	if m.DeepLink != "" {
		if u, err := url.Parse(m.DeepLink); err != nil || u.Scheme == "" {
			ps.add(field+".deep_link", "must be an absolute URI such as app://path")
		}
	}
	if m.ImageURL != "" {
		if u, err := url.Parse(m.ImageURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ps.add(field+".image_url", "must be an http(s) URL")
		}
	}
	for _, k := range sortedKeys(m.Data) {
		if why := reservedDataKey(k); why != "" {
			ps.add(field+".data."+k, "%s", why)
		}
	}
	if c.ID != "" {
		if p, err := apnsPayload(c, m); err != nil {
			ps.add(field, "render APNs payload: %v", err)
		} else if len(p) > MaxAPNsPayload {
			ps.add(field, "APNs payload is %d bytes, at most %d allowed", len(p), MaxAPNsPayload)
		}
	}
}

// reservedDataKey says why a custom data key cannot be used, or "".
func reservedDataKey(k string) string {
	switch {
	case k == "":
		return "empty key"
	case k == "aps":
		return "reserved by APNs"
	case k == "from", k == "message_type",
		strings.HasPrefix(k, "google."), strings.HasPrefix(k, "gcm."):
		return "reserved by FCM"
	case k == keyCampaignID, k == keyDeepLink, k == keyImageURL:
		return "set by owlpost"
	}
	return ""
}

func (c *Campaign) validateAPNs(ps *problems) {
	a := c.APNs
	switch a.PushType {
	case PushTypeAlert:
		if a.Priority != APNsPriorityImmediate && a.Priority != APNsPriorityPower {
			ps.add("apns.priority", "must be 10 or 5, got %d", a.Priority)
		}
	case PushTypeBackground:
		if a.Priority != APNsPriorityPower {
			ps.add("apns.priority", "must be 5 for background notifications, got %d", a.Priority)
		}
	default:
		ps.add("apns.push_type", "must be alert or background, got %q", a.PushType)
	}
	switch {
	case a.CollapseID == "":
		ps.add("apns.collapse_id", "required (defaults to the campaign id)")
	case len(a.CollapseID) > MaxAPNsCollapseID:
		ps.add("apns.collapse_id", "%d bytes, at most %d allowed", len(a.CollapseID), MaxAPNsCollapseID)
	}
	if a.Expiration != nil && *a.Expiration < 0 {
		ps.add("apns.expiration", "must not be negative")
	}
	if a.Topic != "" && !bundleIDRE.MatchString(a.Topic) {
		ps.add("apns.topic", "not a bundle id such as com.example.app")
	}
}

func (c *Campaign) validateFCM(ps *problems) {
	f := c.FCM
	if f.Priority != FCMPriorityHigh && f.Priority != FCMPriorityNormal {
		ps.add("fcm.priority", "must be high or normal, got %q", f.Priority)
	}
	if f.TTL != nil {
		switch {
		case *f.TTL < 0:
			ps.add("fcm.ttl", "must not be negative")
		case *f.TTL > maxFCMTTL:
			ps.add("fcm.ttl", "%s is more than FCM's maximum of 28 days (672h)", f.TTL)
		}
	}
	// FCM documents no length limit for collapse_key, so none is checked.
	if f.CollapseKey == "" {
		ps.add("fcm.collapse_key", "required (defaults to the campaign id)")
	}
	if f.Silent != c.Background() {
		ps.add("fcm.silent", "must be true exactly when apns.push_type is background")
	}
}

func (c *Campaign) validateProof(ps *problems) {
	if len(c.ProofAudience) > MaxProofAudience {
		ps.add("proof_audience", "%d devices, at most %d allowed", len(c.ProofAudience), MaxProofAudience)
	}
	seen := make(map[string]int, len(c.ProofAudience))
	for i, d := range c.ProofAudience {
		field := fmt.Sprintf("proof_audience[%d]", i)
		if !d.Platform.Valid() {
			ps.add(field+".platform", "must be ios or android, got %q", d.Platform)
		} else if err := push.ValidToken(d.Platform, d.Token); err != nil {
			ps.add(field+".token", "%v", err)
		} else if j, dup := seen[d.Token]; dup {
			ps.add(field+".token", "same token as proof_audience[%d]", j)
		} else {
			seen[d.Token] = i
		}
		if strings.TrimSpace(d.Locale) == "" {
			ps.add(field+".locale", "required")
		}
	}
}
