package campaign

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/push"
)

const (
	iosTok     = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"
	iosTok2    = "4c26d9074c27d89ede59270c0ac14b71e071b15239519f75474b2f3ba63481f5"
	androidTok = "eXk3Rm9wZmFrZXRva2Vu:APA91bBBaia6VUM0KGsZVJGOyte6bDNXW0nfkV_zNntc737Nk7HwtDZjZmeyezYwEVQ5cfHIHDFR1e9yczUBwf8zw0r5ZvU2Gmm1zQ5sIy2kGYAO5WpNn6s4YL0z5j5IkHAr"
)

// validCampaign is a small valid campaign with defaults applied.
func validCampaign() *Campaign {
	c := &Campaign{
		ID:            "test-campaign",
		AudienceTopic: "audience.test",
		DefaultLocale: "en-US",
		Messages: map[string]Message{
			"en-US": {Title: "Hello", Body: "World", DeepLink: "app://home", Data: map[string]string{"k": "v"}},
			"de-DE": {Title: "Hallo", Body: "Welt"},
		},
		Fallbacks: map[string]string{"de-AT": "de-DE"},
		Deadline:  Duration(10 * time.Minute),
		ProofAudience: []ProofDevice{
			{Name: "a", Platform: push.IOS, Token: iosTok, Locale: "en-US"},
			{Name: "b", Platform: push.Android, Token: androidTok, Locale: "de-DE"},
		},
	}
	c.ApplyDefaults()
	return c
}

func ptr[T any](v T) *T { return &v }

func TestValidateAcceptsValid(t *testing.T) {
	if err := validCampaign().Validate(); err != nil {
		t.Fatal(err)
	}
	bg := validCampaign()
	bg.APNs.PushType, bg.APNs.Priority, bg.FCM.Silent = "background", 5, true
	bg.Messages["en-US"] = Message{Data: map[string]string{"refresh": "1"}} // background may have neither
	if err := bg.Validate(); err != nil {
		t.Fatalf("background campaign without title/body: %v", err)
	}
}

func TestValidateRefuses(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(c *Campaign)
		field string
	}{
		{"id missing", func(c *Campaign) { c.ID = "" }, "id"},
		{"id upper case", func(c *Campaign) { c.ID = "SuperBowl" }, "id"},
		{"id starts with dash", func(c *Campaign) { c.ID = "-x" }, "id"},
		{"id with slash", func(c *Campaign) { c.ID = "a/b" }, "id"},
		{"id too long", func(c *Campaign) { c.ID = strings.Repeat("a", 64) }, "id"},
		{"audience_topic missing", func(c *Campaign) { c.AudienceTopic = "" }, "audience_topic"},
		{"audience_topic bad", func(c *Campaign) { c.AudienceTopic = "audience test" }, "audience_topic"},
		{"default_locale missing", func(c *Campaign) { c.DefaultLocale = "" }, "default_locale"},
		{"default_locale undefined", func(c *Campaign) { c.DefaultLocale = "fr-FR" }, "default_locale"},
		{"messages empty", func(c *Campaign) { c.Messages = nil }, "messages"},
		{"locale malformed", func(c *Campaign) { c.Messages["english"] = Message{Title: "x"} }, "messages.english"},
		{"locale duplicate by case", func(c *Campaign) { c.Messages["en-us"] = Message{Title: "x"} }, "messages.en-us"},
		{"alert without title and body", func(c *Campaign) { c.Messages["de-DE"] = Message{Sound: "default"} }, "messages.de-DE.title"},
		{"badge negative", func(c *Campaign) { c.Messages["de-DE"] = Message{Title: "x", Badge: ptr(-1)} }, "messages.de-DE.badge"},
		{"deep link not a URI", func(c *Campaign) { c.Messages["de-DE"] = Message{Title: "x", DeepLink: "home"} }, "messages.de-DE.deep_link"},
		{"image not http", func(c *Campaign) { c.Messages["de-DE"] = Message{Title: "x", ImageURL: "ftp://h/i.png"} }, "messages.de-DE.image_url"},
		{"APNs payload too large", func(c *Campaign) {
			c.Messages["de-DE"] = Message{Title: "x", Body: strings.Repeat("ä", 2100)}
		}, "messages.de-DE"},
		{"data key aps", func(c *Campaign) { c.Messages["en-US"].Data["aps"] = "x" }, "messages.en-US.data.aps"},
		{"data key from", func(c *Campaign) { c.Messages["en-US"].Data["from"] = "x" }, "messages.en-US.data.from"},
		{"launcher not a name", func(c *Campaign) { c.Launch.Launchers = []string{"alice", "Bob Smith"} }, "launch.launchers[1]"},
		{"launcher twice", func(c *Campaign) { c.Launch.Launchers = []string{"alice", "alice"} }, "launch.launchers[1]"},
		{"data key message_type", func(c *Campaign) { c.Messages["en-US"].Data["message_type"] = "x" }, "messages.en-US.data.message_type"},
		{"data key google.", func(c *Campaign) { c.Messages["en-US"].Data["google.c.a"] = "x" }, "messages.en-US.data.google.c.a"},
		{"data key gcm.", func(c *Campaign) { c.Messages["en-US"].Data["gcm.n.e"] = "x" }, "messages.en-US.data.gcm.n.e"},
		{"data key campaign_id", func(c *Campaign) { c.Messages["en-US"].Data["campaign_id"] = "x" }, "messages.en-US.data.campaign_id"},
		{"fallback to unknown locale", func(c *Campaign) { c.Fallbacks["fr-CA"] = "fr-FR" }, "fallbacks.fr-CA"},
		{"fallback cycle", func(c *Campaign) { c.Fallbacks["fr-CA"] = "fr-BE"; c.Fallbacks["fr-BE"] = "fr-CA" }, "fallbacks.fr-CA"},
		{"fallback self", func(c *Campaign) { c.Fallbacks["fr-CA"] = "fr-CA" }, "fallbacks.fr-CA"},
		{"fallback for a defined locale", func(c *Campaign) { c.Fallbacks["de-DE"] = "en-US" }, "fallbacks.de-DE"},
		{"fallback key malformed", func(c *Campaign) { c.Fallbacks["german"] = "de-DE" }, "fallbacks.german"},
		{"apns push_type", func(c *Campaign) { c.APNs.PushType = "voip" }, "apns.push_type"},
		{"apns priority", func(c *Campaign) { c.APNs.Priority = 7 }, "apns.priority"},
		{"apns background priority 10", func(c *Campaign) {
			c.APNs.PushType, c.APNs.Priority, c.FCM.Silent = "background", 10, true
		}, "apns.priority"},
		{"apns collapse_id too long", func(c *Campaign) { c.APNs.CollapseID = strings.Repeat("c", 65) }, "apns.collapse_id"},
		{"apns collapse_id empty", func(c *Campaign) { c.APNs.CollapseID = "" }, "apns.collapse_id"},
		{"apns expiration negative", func(c *Campaign) { c.APNs.Expiration = ptr(Duration(-time.Second)) }, "apns.expiration"},
		{"apns topic", func(c *Campaign) { c.APNs.Topic = "com.example app" }, "apns.topic"},
		{"fcm priority", func(c *Campaign) { c.FCM.Priority = "urgent" }, "fcm.priority"},
		{"fcm ttl negative", func(c *Campaign) { c.FCM.TTL = ptr(Duration(-time.Second)) }, "fcm.ttl"},
		{"fcm ttl over 28 days", func(c *Campaign) { c.FCM.TTL = ptr(Duration(28*24*time.Hour + time.Second)) }, "fcm.ttl"},
		{"fcm collapse_key empty", func(c *Campaign) { c.FCM.CollapseKey = "" }, "fcm.collapse_key"},
		{"fcm silent on alert", func(c *Campaign) { c.FCM.Silent = true }, "fcm.silent"},
		{"deadline zero", func(c *Campaign) { c.Deadline = 0 }, "deadline"},
		{"deadline negative", func(c *Campaign) { c.Deadline = Duration(-time.Minute) }, "deadline"},
		{"proof platform", func(c *Campaign) { c.ProofAudience[0].Platform = "windows" }, "proof_audience[0].platform"},
		{"proof ios token short", func(c *Campaign) { c.ProofAudience[0].Token = iosTok[:63] }, "proof_audience[0].token"},
		{"proof ios token not hex", func(c *Campaign) { c.ProofAudience[0].Token = "z" + iosTok[1:] }, "proof_audience[0].token"},
		{"proof android token short", func(c *Campaign) { c.ProofAudience[1].Token = androidTok[:99] }, "proof_audience[1].token"},
		{"proof android token bad char", func(c *Campaign) { c.ProofAudience[1].Token = androidTok + "!" }, "proof_audience[1].token"},
		{"proof ios token on android", func(c *Campaign) { c.ProofAudience[1].Token = iosTok }, "proof_audience[1].token"},
		{"proof duplicate token", func(c *Campaign) {
			c.ProofAudience = append(c.ProofAudience, ProofDevice{Name: "c", Platform: push.IOS, Token: iosTok, Locale: "en"})
		}, "proof_audience[2].token"},
		{"proof locale empty", func(c *Campaign) { c.ProofAudience[1].Locale = "" }, "proof_audience[1].locale"},
		{"proof audience too large", func(c *Campaign) {
			c.ProofAudience = nil
			for i := range 101 {
				c.ProofAudience = append(c.ProofAudience,
					ProofDevice{Platform: push.IOS, Token: fmt.Sprintf("%064x", i), Locale: "en"})
			}
		}, "proof_audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validCampaign()
			tt.edit(c)
			err := c.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want *ValidationError", err)
			}
			found := false
			for _, p := range ve.Problems {
				found = found || p.Field == tt.field
			}
			if !found {
				t.Errorf("no problem at field %q: %v", tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.field+": ") {
				t.Errorf("error text does not name %q: %v", tt.field, err)
			}
		})
	}
}

func TestValidateListsAllProblems(t *testing.T) {
	c := validCampaign()
	c.ID = ""
	c.Deadline = 0
	c.FCM.Priority = "urgent"
	var ve *ValidationError
	if !errors.As(c.Validate(), &ve) {
		t.Fatal("want *ValidationError")
	}
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	if got, want := strings.Join(fields, ","), "id,fcm.priority,deadline"; got != want {
		t.Errorf("fields = %s, want %s", got, want)
	}
}

func TestMayFire(t *testing.T) {
	c := &Campaign{}
	if !c.MayFire("anyone") {
		t.Error("no launchers named: anyone with the role may fire")
	}
	c.Launch.Launchers = []string{"alice", "bob"}
	if !c.MayFire("bob") || c.MayFire("carol") {
		t.Error("launchers [alice bob]: want bob yes, carol no")
	}
}
