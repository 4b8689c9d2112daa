package campaign

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func readExample(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExampleGolden(t *testing.T) {
	c, err := Parse(readExample(t))
	if err != nil {
		t.Fatalf("Parse(example.yaml): %v", err)
	}
	got, err := c.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	golden := filepath.Join("testdata", "example.golden.json")
	if *update {
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("canonical JSON differs from %s (go test -update to accept):\n%s", golden, pretty.Bytes())
	}

	// The canonical JSON parses back to the same campaign, and encodes the same.
	back, err := Parse(got)
	if err != nil {
		t.Fatalf("Parse(canonical JSON): %v", err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the campaign:\n got %+v\nwant %+v", back, c)
	}
	again, _ := back.Encode()
	if !bytes.Equal(again, got) {
		t.Errorf("Encode not stable:\n%s\n%s", again, got)
	}
}

func TestParseStrict(t *testing.T) {
	example := string(readExample(t))
	canonical := func() string {
		c, err := Parse([]byte(example))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := c.Encode()
		return string(b)
	}()
	tests := []struct {
		name, in, want string
	}{
		{"yaml unknown top-level field", example + "colour: red\n", "colour"},
		{"yaml unknown nested field", strings.Replace(example, "  priority: high", "  priorty: high", 1), "priorty"},
		{"yaml bad duration", strings.Replace(example, "deadline: 10m", "deadline: ten minutes", 1), "duration"},
		{"yaml bare number duration", strings.Replace(example, "deadline: 10m", "deadline: 600", 1), "duration"},
		{"yaml two documents", example + "---\nid: other\n", "more than one document"},
		{"empty", "", "empty definition"},
		{"json unknown field", strings.Replace(canonical, `"id":`, `"colour":"red","id":`, 1), "colour"},
		{"json unknown nested field", strings.Replace(canonical, `"push_type":`, `"push_typ":"x","push_type":`, 1), "push_typ"},
		{"json duration as number", strings.Replace(canonical, `"deadline":"10m"`, `"deadline":600`, 1), "duration"},
		{"invalid after parse", strings.Replace(example, "deadline: 10m", "deadline: 0s", 1), "deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestParseJSONAndYAMLAgree(t *testing.T) {
	yamlIn := `
id: test-1
audience_topic: audience.test
default_locale: en
messages: {en: {title: Hi, body: There}}
deadline: 90s
`
	jsonIn := `{"id":"test-1","audience_topic":"audience.test","default_locale":"en",
		"messages":{"en":{"title":"Hi","body":"There"}},"deadline":"1m30s"}`
	a, err := Parse([]byte(yamlIn))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(jsonIn))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("yaml %+v\njson %+v", a, b)
	}
}

func TestApplyDefaults(t *testing.T) {
	dur := func(d time.Duration) *Duration { v := Duration(d); return &v }
	tests := []struct {
		name string
		in   Campaign
		want func(c *Campaign) bool
	}{
		{"alert defaults", Campaign{ID: "x", Deadline: Duration(10 * time.Minute)}, func(c *Campaign) bool {
			return c.APNs.PushType == "alert" && c.APNs.Priority == 10 && c.APNs.CollapseID == "x" &&
				c.FCM.CollapseKey == "x" && c.FCM.Priority == "high" && !c.FCM.Silent &&
				*c.APNs.Expiration == Duration(10*time.Minute) && *c.FCM.TTL == Duration(10*time.Minute)
		}},
		{"background is silent, priority 5", Campaign{ID: "x", APNs: APNsOptions{PushType: "background"}}, func(c *Campaign) bool {
			return c.FCM.Silent && c.APNs.Priority == 5 && c.APNs.Expiration == nil
		}},
		{"silent means background", Campaign{ID: "x", FCM: FCMOptions{Silent: true}}, func(c *Campaign) bool {
			return c.APNs.PushType == "background" && c.APNs.Priority == 5
		}},
		{"explicit values kept", Campaign{ID: "x", Deadline: Duration(time.Hour),
			APNs: APNsOptions{Priority: 5, CollapseID: "c", Expiration: dur(0)},
			FCM:  FCMOptions{Priority: "normal", CollapseKey: "k", TTL: dur(time.Minute)}}, func(c *Campaign) bool {
			return c.APNs.Priority == 5 && c.APNs.CollapseID == "c" && *c.APNs.Expiration == 0 &&
				c.FCM.Priority == "normal" && c.FCM.CollapseKey == "k" && *c.FCM.TTL == Duration(time.Minute)
		}},
		{"ttl default capped at 28 days", Campaign{ID: "x", Deadline: Duration(40 * 24 * time.Hour)}, func(c *Campaign) bool {
			return *c.FCM.TTL == maxFCMTTL && *c.APNs.Expiration == Duration(40*24*time.Hour)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.in
			c.ApplyDefaults()
			if !tt.want(&c) {
				t.Errorf("after ApplyDefaults: %+v", c)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{30 * time.Second, "30s"},
		{10 * time.Minute, "10m"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{1500 * time.Millisecond, "1.5s"},
		{-5 * time.Minute, "-5m"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			b, err := json.Marshal(Duration(tt.d))
			if err != nil || string(b) != `"`+tt.want+`"` {
				t.Fatalf("json.Marshal = %s, %v; want %q", b, err, tt.want)
			}
			var back Duration
			if err := json.Unmarshal(b, &back); err != nil || back.Std() != tt.d {
				t.Errorf("round trip = %v, %v; want %v", back.Std(), err, tt.d)
			}
		})
	}
}
