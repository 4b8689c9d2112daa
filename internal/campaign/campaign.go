package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/owlpost/owlpost/internal/push"
)

// Push types and priorities understood by APNs and FCM.
const (
	PushTypeAlert      = "alert"
	PushTypeBackground = "background"

	APNsPriorityImmediate = 10
	APNsPriorityPower     = 5

	FCMPriorityHigh   = "high"
	FCMPriorityNormal = "normal"
)

// Campaign is one campaign definition. Its JSON form (Encode) is canonical.
type Campaign struct {
	// ID names the campaign everywhere (topics keys, guards, metrics):
	// [a-z0-9][a-z0-9._-]{0,62}.
	ID string `json:"id" yaml:"id"`
	// AudienceTopic is the Kafka topic the data team fills with the audience.
	AudienceTopic string `json:"audience_topic" yaml:"audience_topic"`
	// DefaultLocale is the locale used when nothing closer matches; it must
	// have a message.
	DefaultLocale string `json:"default_locale" yaml:"default_locale"`
	// Messages holds the content per locale ("en", "en-US", "pt-BR").
	Messages map[string]Message `json:"messages" yaml:"messages"`
	// Fallbacks maps a locale without a message to another locale
	// ({de-AT: de-DE}); chains are allowed, cycles are not.
	Fallbacks map[string]string `json:"fallbacks,omitempty" yaml:"fallbacks,omitempty"`
	APNs      APNsOptions       `json:"apns" yaml:"apns"`
	FCM       FCMOptions        `json:"fcm" yaml:"fcm"`
	// Deadline is how long after GO sending still makes sense. Required.
	Deadline Duration `json:"deadline" yaml:"deadline"`
	// ProofAudience is the short list of internal devices a proof goes to.
	ProofAudience []ProofDevice `json:"proof_audience,omitempty" yaml:"proof_audience,omitempty"`
	// Launch says who may press GO.
	Launch Launch `json:"launch,omitzero" yaml:"launch,omitempty"`
	// Labels are free-form (owner, ticket, ...).
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	// Goal is the launch's target time from fire, judged by the report of
	// the campaign and of its rehearsals. Optional.
	Goal *Goal `json:"goal,omitempty" yaml:"goal,omitempty"`
	// RateLimit caps notifications/s per platform for this campaign across
	// all senders (0 = only the sender's own sender.rate_limit, if any).
	RateLimit int `json:"rate_limit,omitempty" yaml:"rate_limit,omitempty"`
	// Rehearsal is set on a dress rehearsal (see Rehearse): which launch it
	// rehearses and which part of its audience snapshot it sends to.
	Rehearsal *Rehearsal `json:"rehearsal,omitempty" yaml:"rehearsal,omitempty"`
}

// Message is the content of one locale.
type Message struct {
	Title    string `json:"title,omitempty" yaml:"title,omitempty"`
	Subtitle string `json:"subtitle,omitempty" yaml:"subtitle,omitempty"` // APNs only
	Body     string `json:"body,omitempty" yaml:"body,omitempty"`
	Sound    string `json:"sound,omitempty" yaml:"sound,omitempty"`
	// Badge is the APNs badge; nil leaves it alone, 0 clears it.
	Badge    *int   `json:"badge,omitempty" yaml:"badge,omitempty"`
	DeepLink string `json:"deep_link,omitempty" yaml:"deep_link,omitempty"`
	ImageURL string `json:"image_url,omitempty" yaml:"image_url,omitempty"`
	// Data is custom key/values delivered to the app on both platforms.
	Data map[string]string `json:"data,omitempty" yaml:"data,omitempty"`
}

// APNsOptions are the Apple-specific settings.
type APNsOptions struct {
	PushType string `json:"push_type" yaml:"push_type"` // alert | background
	Priority int    `json:"priority" yaml:"priority"`   // 10 | 5
	// CollapseID is apns-collapse-id (<= 64 bytes); defaults to the campaign id.
	CollapseID string `json:"collapse_id" yaml:"collapse_id"`
	// Expiration is how long after the fire APNs may keep trying; 0 means
	// deliver now or never. Defaults to the deadline.
	Expiration *Duration `json:"expiration,omitempty" yaml:"expiration,omitempty"`
	// Topic is the app bundle id; empty means the sender's configured one.
	// push.APNsMessage has no topic field: the sender reads it from here.
	Topic string `json:"topic,omitempty" yaml:"topic,omitempty"`
	// ThreadID groups notifications on the phone (aps.thread-id).
	ThreadID string `json:"thread_id,omitempty" yaml:"thread_id,omitempty"`
}

// FCMOptions are the Firebase-specific settings. The notification tag is
// always the collapse key (see push.Message.CollapseID), so it has no option.
type FCMOptions struct {
	Priority string `json:"priority" yaml:"priority"` // high | normal
	// TTL is how long FCM may keep trying (0..28 days); 0 means now or
	// never. Defaults to the deadline.
	TTL *Duration `json:"ttl,omitempty" yaml:"ttl,omitempty"`
	// CollapseKey defaults to the campaign id.
	CollapseKey string `json:"collapse_key" yaml:"collapse_key"`
	// Silent sends a data-only message; it goes with apns.push_type background.
	Silent bool `json:"silent" yaml:"silent"`
}

// Launch narrows who may fire the campaign.
type Launch struct {
	// Launchers, when set, are the only identities (users with role
	// launcher) allowed to fire; decided beforehand, like the playbook says.
	Launchers []string `json:"launchers,omitempty" yaml:"launchers,omitempty"`
}

// MayFire reports whether the identity called name may fire c (its role
// checked elsewhere): anyone when no launchers are named.
func (c *Campaign) MayFire(name string) bool {
	return len(c.Launch.Launchers) == 0 || slices.Contains(c.Launch.Launchers, name)
}

// ProofDevice is one internal device of the proof audience.
type ProofDevice struct {
	Name     string        `json:"name" yaml:"name"`
	Platform push.Platform `json:"platform" yaml:"platform"`
	Token    string        `json:"token" yaml:"token"`
	Locale   string        `json:"locale" yaml:"locale"`
}

// Background reports whether c is a silent (content-available) campaign.
func (c *Campaign) Background() bool { return c.APNs.PushType == PushTypeBackground }

// Parse reads a definition in JSON or YAML (JSON when data is valid JSON),
// strictly: unknown fields are errors. It then applies the defaults and
// validates; a validation failure is a *ValidationError.
func Parse(data []byte) (*Campaign, error) {
	c, err := decode(data)
	if err != nil {
		return nil, err
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func decode(data []byte) (*Campaign, error) {
	var c Campaign
	if json.Valid(data) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("campaign: decode json: %w", err)
		}
		return &c, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("campaign: decode yaml: empty definition")
		}
		return nil, fmt.Errorf("campaign: decode yaml: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("campaign: decode yaml: more than one document")
	}
	return &c, nil
}

// maxFCMTTL is the longest TTL FCM accepts (28 days).
const maxFCMTTL = Duration(28 * 24 * time.Hour)

// ApplyDefaults fills the options left empty; see the package documentation.
// It never overrides a value that was set, except that a background campaign
// is always silent on FCM.
func (c *Campaign) ApplyDefaults() {
	if c.APNs.PushType == "" {
		c.APNs.PushType = PushTypeAlert
		if c.FCM.Silent {
			c.APNs.PushType = PushTypeBackground
		}
	}
	if c.Background() {
		c.FCM.Silent = true
	}
	if c.APNs.Priority == 0 {
		c.APNs.Priority = APNsPriorityImmediate
		if c.Background() {
			c.APNs.Priority = APNsPriorityPower
		}
	}
	if c.APNs.CollapseID == "" {
		c.APNs.CollapseID = c.ID
	}
	if c.FCM.CollapseKey == "" {
		c.FCM.CollapseKey = c.ID
	}
	if c.FCM.Priority == "" {
		c.FCM.Priority = FCMPriorityHigh
	}
	if c.Deadline > 0 {
		if c.APNs.Expiration == nil {
			d := c.Deadline
			c.APNs.Expiration = &d
		}
		if c.FCM.TTL == nil {
			d := min(c.Deadline, maxFCMTTL)
			c.FCM.TTL = &d
		}
	}
}

// Encode validates c and returns its canonical JSON: compact, struct fields
// in declaration order, map keys sorted, no HTML escaping.
func (c *Campaign) Encode() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // deep links keep their "&"
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("campaign %s: encode: %w", c.ID, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
