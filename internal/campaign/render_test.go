package campaign

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/push"
)

func mustRender(t *testing.T, c *Campaign) *Rendered {
	t.Helper()
	r, err := c.Render()
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return r
}

func TestRenderAPNsPayload(t *testing.T) {
	alert := func() *Campaign {
		c := validCampaign()
		c.APNs.ThreadID = "t1"
		c.Messages["en-US"] = Message{Title: "Hi", Subtitle: "Sub", Body: "B & <b>", Sound: "default", Badge: ptr(0),
			DeepLink: "app://x?a=1&b=2", ImageURL: "https://cdn.example.com/i.jpg", Data: map[string]string{"k": "v"}}
		return c
	}
	background := func() *Campaign {
		c := validCampaign()
		c.APNs.PushType, c.APNs.Priority, c.FCM.Silent = PushTypeBackground, APNsPriorityPower, true
		return c
	}
	tests := []struct {
		name     string
		c        *Campaign
		locale   string
		payload  string
		pushType string
		priority int
	}{
		{"alert, every field", alert(), "en-US",
			`{"aps":{"alert":{"title":"Hi","subtitle":"Sub","body":"B & <b>"},"sound":"default","badge":0,"mutable-content":1,"thread-id":"t1"},` +
				`"campaign_id":"test-campaign","deep_link":"app://x?a=1&b=2","image_url":"https://cdn.example.com/i.jpg","k":"v"}`,
			"alert", 10},
		{"alert, title and body only", alert(), "de-DE",
			`{"aps":{"alert":{"title":"Hallo","body":"Welt"},"thread-id":"t1"},"campaign_id":"test-campaign"}`,
			"alert", 10},
		{"background", background(), "en-US",
			`{"aps":{"content-available":1},"campaign_id":"test-campaign","deep_link":"app://home","k":"v"}`,
			"background", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustRender(t, tt.c).For(push.IOS, tt.locale)
			if m == nil || m.APNs == nil || m.FCM != nil {
				t.Fatalf("For(ios) = %+v", m)
			}
			if string(m.APNs.Payload) != tt.payload {
				t.Errorf("payload\n got %s\nwant %s", m.APNs.Payload, tt.payload)
			}
			if !json.Valid(m.APNs.Payload) {
				t.Error("payload is not valid JSON")
			}
			if m.APNs.PushType != tt.pushType || m.APNs.Priority != tt.priority {
				t.Errorf("push type %q priority %d, want %q %d", m.APNs.PushType, m.APNs.Priority, tt.pushType, tt.priority)
			}
			if m.CampaignID != "test-campaign" || m.CollapseID != "test-campaign" {
				t.Errorf("ids %q %q", m.CampaignID, m.CollapseID)
			}
			if !m.APNs.Expiration.IsZero() {
				t.Errorf("expiration %v before WithFireTime", m.APNs.Expiration)
			}
		})
	}
}

func TestRenderFCM(t *testing.T) {
	c := validCampaign()
	c.FCM.CollapseKey, c.APNs.CollapseID = "fcm-key", "apns-id"
	c.FCM.Priority, c.FCM.TTL = FCMPriorityNormal, ptr(Duration(5*time.Minute))
	c.Messages["en-US"] = Message{Title: "Hi", Body: "There", Sound: "ding", DeepLink: "app://x",
		ImageURL: "https://cdn.example.com/i.jpg", Data: map[string]string{"k": "v"}}
	r := mustRender(t, c)

	if got := r.For(push.IOS, "en-US").CollapseID; got != "apns-id" {
		t.Errorf("ios collapse id %q", got)
	}
	m := r.For(push.Android, "en-US")
	if m == nil || m.FCM == nil || m.APNs != nil {
		t.Fatalf("For(android) = %+v", m)
	}
	want := push.FCMMessage{Title: "Hi", Body: "There", ImageURL: "https://cdn.example.com/i.jpg", Sound: "ding",
		ClickAction: "app://x", Data: map[string]string{"k": "v", "campaign_id": "test-campaign", "deep_link": "app://x"},
		Priority: "normal", TTL: 5 * time.Minute}
	if !reflect.DeepEqual(*m.FCM, want) {
		t.Errorf("FCM\n got %+v\nwant %+v", *m.FCM, want)
	}
	if m.CollapseID != "fcm-key" || m.CampaignID != "test-campaign" {
		t.Errorf("ids %q %q", m.CampaignID, m.CollapseID)
	}
	if _, leaked := c.Messages["en-US"].Data["campaign_id"]; leaked {
		t.Error("rendering modified the campaign's data map")
	}

	// Silent: data only.
	c.APNs.PushType, c.APNs.Priority, c.FCM.Silent = PushTypeBackground, APNsPriorityPower, true
	s := mustRender(t, c).For(push.Android, "en-US").FCM
	if !s.Silent || s.Title != "" || s.Body != "" || s.ClickAction != "" || s.Data["deep_link"] != "app://x" {
		t.Errorf("silent FCM = %+v", s)
	}
}

func TestRenderForResolves(t *testing.T) {
	r := mustRender(t, validCampaign())
	for _, p := range []push.Platform{push.IOS, push.Android} {
		for _, loc := range []string{"en-US", "de-DE", "de-AT", "de_ch", "EN-us", "ja", ""} {
			if r.For(p, loc) == nil {
				t.Errorf("For(%s, %q) = nil", p, loc)
			}
		}
	}
	if r.For(push.IOS, "de-AT") != r.For(push.IOS, "de-DE") {
		t.Error("de-AT does not share de-DE's message")
	}
	if r.For(push.Android, "ja") != r.For(push.Android, "en-US") {
		t.Error("ja does not get the default locale's message")
	}
	if r.For("web", "en-US") != nil {
		t.Error("unknown platform should give nil")
	}
}

func TestRenderRefusesInvalid(t *testing.T) {
	c := validCampaign()
	c.Deadline = 0
	var ve *ValidationError
	if _, err := c.Render(); !errors.As(err, &ve) {
		t.Fatalf("Render of an invalid campaign = %v", err)
	}
}

func TestWithFireTime(t *testing.T) {
	fire := time.Date(2027, 2, 7, 20, 31, 0, 0, time.UTC)
	tests := []struct {
		name       string
		expiration *Duration
		want       time.Time
	}{
		{"15 minutes", ptr(Duration(15 * time.Minute)), fire.Add(15 * time.Minute)},
		{"now or never", ptr(Duration(0)), time.Time{}},
		{"default: deadline", nil, fire.Add(10 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validCampaign()
			c.APNs.Expiration = nil
			if tt.expiration != nil {
				c.APNs.Expiration = tt.expiration
			}
			c.ApplyDefaults()
			r := mustRender(t, c)
			fired := r.WithFireTime(fire)
			for _, loc := range []string{"en-US", "de-DE", "de-AT"} {
				if got := fired.For(push.IOS, loc).APNs.Expiration; !got.Equal(tt.want) {
					t.Errorf("%s expiration = %v, want %v", loc, got, tt.want)
				}
				if got := r.For(push.IOS, loc).APNs.Expiration; !got.IsZero() {
					t.Errorf("WithFireTime changed the original: %v", got)
				}
				if !maps.Equal(fired.For(push.Android, loc).FCM.Data, r.For(push.Android, loc).FCM.Data) {
					t.Error("android message changed")
				}
			}
			if !fired.FiredAt().Equal(fire) || !r.FiredAt().IsZero() {
				t.Errorf("FiredAt = %v / %v", fired.FiredAt(), r.FiredAt())
			}
		})
	}
}
