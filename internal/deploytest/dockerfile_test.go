package deploytest

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	stages, err := parseDockerfile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: want a multi-stage build, got %d stage(s)", len(stages))
	}
	names := map[string]bool{}
	for _, s := range stages {
		names[s.Name] = true
		if names[s.Image] {
			continue // FROM an earlier stage
		}
		if err := imagePinned(s.Image); err != nil {
			t.Errorf("stage %q: %v", s.Name, err)
		}
	}
	build, ok := stageByName(stages, "build")
	if !ok {
		t.Fatal(`Dockerfile: no "build" stage`)
	}
	if !strings.HasPrefix(build.Image, "golang:1.26") {
		t.Errorf("build stage: image %q, want golang:1.26 (go.mod's Go)", build.Image)
	}
	all := strings.Join(build.Lines, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "go build", "./cmd/..."} {
		if !strings.Contains(all, want) {
			t.Errorf("build stage: %q missing (static binaries of every command)", want)
		}
	}
	// The default target is the last stage: the production runtime.
	last := stages[len(stages)-1]
	if last.Name != "runtime" || !shellless(last) {
		t.Errorf("last stage: %q FROM %q, want the distroless runtime as the default target", last.Name, last.Image)
	}
	for _, s := range stages[1:] {
		if s.User == "" || s.User == "root" || strings.HasPrefix(s.User, "0:") || s.User == "0" {
			t.Errorf("stage %q: USER %q, want a non-root user", s.Name, s.User)
		}
	}
}

func TestImagePinnedRejects(t *testing.T) {
	for _, tc := range []struct {
		ref string
		ok  bool
	}{
		{"apache/kafka:4.1.1", true},
		{"gcr.io/distroless/static-debian12:nonroot", true},
		{"registry.local:5000/owlpost@sha256:0123", true},
		{"redis", false},
		{"redis:latest", false},
		{"registry.local:5000/owlpost", false},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			if err := imagePinned(tc.ref); (err == nil) != tc.ok {
				t.Errorf("imagePinned(%q) = %v, want ok=%v", tc.ref, err, tc.ok)
			}
		})
	}
}
