package campaign

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/owlpost/owlpost/internal/push"
)

// Custom keys owlpost adds to every payload (APNs top level, FCM data).
const (
	keyCampaignID = "campaign_id"
	keyDeepLink   = "deep_link"
	// keyImageURL carries the image for the iOS notification service
	// extension (the payload has mutable-content: 1 when it is set).
	keyImageURL = "image_url"
)

type apsAlert struct {
	Title    string `json:"title,omitempty"`
	Subtitle string `json:"subtitle,omitempty"`
	Body     string `json:"body,omitempty"`
}

type aps struct {
	Alert            *apsAlert `json:"alert,omitempty"`
	Sound            string    `json:"sound,omitempty"`
	Badge            *int      `json:"badge,omitempty"`
	ContentAvailable int       `json:"content-available,omitempty"`
	MutableContent   int       `json:"mutable-content,omitempty"`
	ThreadID         string    `json:"thread-id,omitempty"`
}

// apnsPayload renders the APNs JSON body of one locale's message.
// Top-level keys are sorted (encoding/json map order), so it is deterministic.
func apnsPayload(c *Campaign, m Message) ([]byte, error) {
	body := make(map[string]any, len(m.Data)+4)
	for k, v := range m.Data {
		body[k] = v
	}
	var a aps
	if c.Background() {
		a.ContentAvailable = 1
	} else {
		a.Alert = &apsAlert{Title: m.Title, Subtitle: m.Subtitle, Body: m.Body}
		a.Sound = m.Sound
		a.Badge = m.Badge
		a.ThreadID = c.APNs.ThreadID
		if m.ImageURL != "" {
			a.MutableContent = 1
			body[keyImageURL] = m.ImageURL
		}
	}
	body["aps"] = a
	body[keyCampaignID] = c.ID
	if m.DeepLink != "" {
		body[keyDeepLink] = m.DeepLink
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "&" in a deep link stays one byte, not \u0026
	if err := enc.Encode(body); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func fcmMessage(c *Campaign, m Message) *push.FCMMessage {
	data := make(map[string]string, len(m.Data)+2)
	maps.Copy(data, m.Data)
	data[keyCampaignID] = c.ID
	if m.DeepLink != "" {
		data[keyDeepLink] = m.DeepLink
	}
	f := &push.FCMMessage{
		Data:     data,
		Priority: c.FCM.Priority,
		Silent:   c.FCM.Silent,
	}
	if c.FCM.TTL != nil {
		f.TTL = c.FCM.TTL.Std()
	}
	if !f.Silent {
		f.Title, f.Body, f.ImageURL, f.Sound, f.ClickAction = m.Title, m.Body, m.ImageURL, m.Sound, m.DeepLink
	}
	return f
}

// Rendered is a campaign rendered once per locale and platform. Its messages
// are shared read-only by every sender goroutine; it is safe for concurrent use.
type Rendered struct {
	campaignID string
	index      *localeIndex
	ios        map[string]*push.Message // by defined locale
	android    map[string]*push.Message
	expiration time.Duration
	firedAt    time.Time
	rateLimit  int
}

// RateLimit is the campaign's own cap in notifications/s per platform
// (0 = none).
func (r *Rendered) RateLimit() int { return r.rateLimit }

// Render validates c and renders every locale once.
// The APNs messages carry no Expiration until WithFireTime.
func (c *Campaign) Render() (*Rendered, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ix, _ := buildIndex(c)
	r := &Rendered{
		campaignID: c.ID,
		index:      ix,
		ios:        make(map[string]*push.Message, len(c.Messages)),
		android:    make(map[string]*push.Message, len(c.Messages)),
		rateLimit:  c.RateLimit,
	}
	if c.APNs.Expiration != nil {
		r.expiration = c.APNs.Expiration.Std()
	}
	pushType, priority := c.APNs.PushType, c.APNs.Priority
	for loc, m := range c.Messages {
		payload, err := apnsPayload(c, m)
		if err != nil {
			return nil, fmt.Errorf("campaign %s: render %s: %w", c.ID, loc, err)
		}
		r.ios[loc] = &push.Message{
			CampaignID: c.ID,
			CollapseID: c.APNs.CollapseID,
			APNs:       &push.APNsMessage{Payload: payload, PushType: pushType, Priority: priority, Topic: c.APNs.Topic},
		}
		r.android[loc] = &push.Message{
			CampaignID: c.ID,
			CollapseID: c.FCM.CollapseKey,
			FCM:        fcmMessage(c, m),
		}
	}
	return r, nil
}

// CampaignID is the id of the rendered campaign.
func (r *Rendered) CampaignID() string { return r.campaignID }

// Expiration is the APNs expiration relative to the fire time (0: now or never).
func (r *Rendered) Expiration() time.Duration { return r.expiration }

// FiredAt is the fire time set by WithFireTime, zero before.
func (r *Rendered) FiredAt() time.Time { return r.firedAt }

// Resolve returns the locale whose message a device locale receives.
func (r *Rendered) Resolve(locale string) string { return r.index.resolve(locale) }

// For returns the message for a device of platform p and locale, resolving
// fallbacks. It is never nil for ios and android; nil for another platform.
// The message must not be modified.
func (r *Rendered) For(p push.Platform, locale string) *push.Message {
	switch p {
	case push.IOS:
		return r.ios[r.index.resolve(locale)]
	case push.Android:
		return r.android[r.index.resolve(locale)]
	}
	return nil
}

// WithFireTime returns a copy of r whose APNs messages expire at
// fire + Expiration (or carry a zero Expiration, "do not store", when the
// campaign's expiration is 0). Call it once per fire; r itself is unchanged,
// so a proof and the real fire can each have their own.
func (r *Rendered) WithFireTime(fire time.Time) *Rendered {
	out := *r
	out.firedAt = fire
	out.ios = make(map[string]*push.Message, len(r.ios))
	for loc, m := range r.ios {
		a := *m.APNs
		a.Expiration = time.Time{}
		if r.expiration > 0 {
			a.Expiration = fire.Add(r.expiration)
		}
		msg := *m
		msg.APNs = &a
		out.ios[loc] = &msg
	}
	return &out
}
