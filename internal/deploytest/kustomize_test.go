package deploytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// This file is a small kustomize: it renders deploy/k8s with exactly the
// kustomization fields the tree uses (resources, components, patches with a
// path, images, namespace). A field it does not know fails the strict decode,
// so nobody adds a kustomize feature these tests would silently ignore.

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Patches    []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
	Images []kustomizeImage `json:"images,omitempty"`
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// scaledObject is KEDA's keda.sh/v1alpha1 ScaledObject, the fields used here.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Advanced        *struct {
			RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
			HorizontalPodAutoscalerConfig *struct {
				Name     string                                         `json:"name,omitempty"`
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			MetricType        string            `json:"metricType,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// serviceMonitor is the Prometheus Operator's monitoring.coreos.com/v1
// ServiceMonitor, the fields used here.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// kinds maps each kind the tree may contain to its apiVersion and a
// constructor of its Go type.
var kinds = map[string]struct {
	apiVersion string
	newObj     func() any
}{
	"Namespace":               {"v1", func() any { return &corev1.Namespace{} }},
	"ServiceAccount":          {"v1", func() any { return &corev1.ServiceAccount{} }},
	"ConfigMap":               {"v1", func() any { return &corev1.ConfigMap{} }},
	"Service":                 {"v1", func() any { return &corev1.Service{} }},
	"Deployment":              {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"Job":                     {"batch/v1", func() any { return &batchv1.Job{} }},
	"PodDisruptionBudget":     {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
	"HorizontalPodAutoscaler": {"autoscaling/v2", func() any { return &autoscalingv2.HorizontalPodAutoscaler{} }},
	"ScaledObject":            {"keda.sh/v1alpha1", func() any { return &scaledObject{} }},
	"ServiceMonitor":          {"monitoring.coreos.com/v1", func() any { return &serviceMonitor{} }},
}

// decodeStrict decodes JSON into v: unknown fields, duplicate fields and
// fields in the wrong case all fail (the API server's strict field
// validation uses the same decoder).
func decodeStrict(js []byte, v any) error {
	strict, err := kjson.UnmarshalStrict(js, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeManifest decodes one YAML document strictly into the Go type of its
// kind. Patch directives ($patch) are removed first.
func decodeManifest(doc []byte) (any, map[string]any, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, nil, err
	}
	if raw == nil {
		return nil, nil, errors.New("empty document")
	}
	clean := stripDirectives(raw)
	kind, _ := raw["kind"].(string)
	apiVersion, _ := raw["apiVersion"].(string)
	k, ok := kinds[kind]
	if !ok {
		return nil, nil, fmt.Errorf("kind %q is not one the deploy tests know", kind)
	}
	if apiVersion != k.apiVersion {
		return nil, nil, fmt.Errorf("%s: apiVersion %q, want %q", kind, apiVersion, k.apiVersion)
	}
	js, err = json.Marshal(clean)
	if err != nil {
		return nil, nil, err
	}
	obj := k.newObj()
	if err := decodeStrict(js, obj); err != nil {
		return nil, nil, fmt.Errorf("%s %v: %w", kind, nameOf(raw), err)
	}
	return obj, raw, nil
}

// stripDirectives returns a copy of m without strategic-merge directives.
func stripDirectives(v any) map[string]any {
	m, _ := deepCopy(v).(map[string]any)
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, v := range x {
				if strings.HasPrefix(k, "$") {
					delete(x, k)
					continue
				}
				walk(v)
			}
		case []any:
			for _, v := range x {
				walk(v)
			}
		}
	}
	walk(m)
	return m
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = deepCopy(x)
		}
		return s
	default:
		return v
	}
}

func nameOf(raw map[string]any) string {
	md, _ := raw["metadata"].(map[string]any)
	n, _ := md["name"].(string)
	return n
}

// splitDocs splits a YAML stream on "---" lines and drops empty documents.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// manifestDoc is one rendered object.
type manifestDoc struct {
	File string // where it was defined (relative to deploy/k8s)
	Raw  map[string]any
}

func (r *manifestDoc) kind() string { k, _ := r.Raw["kind"].(string); return k }
func (r *manifestDoc) name() string { return nameOf(r.Raw) }

// rendering is the result of rendering one kustomization directory.
type rendering struct {
	Resources []*manifestDoc
	Files     map[string]bool // every file read, relative to deploy/k8s
}

// render renders the kustomization directory dir (relative names are
// relative to top, deploy/k8s).
func render(top, dir string) (*rendering, error) {
	acc := &rendering{Files: map[string]bool{}}
	if err := build(top, dir, false, acc); err != nil {
		return nil, err
	}
	return acc, nil
}

// build adds the kustomization (or Component) in dir to acc: a resource
// directory is rendered on its own and appended; a component appends its
// resources and patches everything acc holds so far; then dir's own patches,
// images and namespace apply.
func build(top, dir string, component bool, acc *rendering) error {
	rel := func(p string) string { r, _ := filepath.Rel(top, p); return r }
	kfile := filepath.Join(dir, "kustomization.yaml")
	data, err := os.ReadFile(kfile)
	if err != nil {
		return err
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return fmt.Errorf("%s: %w", rel(kfile), err)
	}
	var k kustomization
	if err := decodeStrict(js, &k); err != nil {
		return fmt.Errorf("%s: %w", rel(kfile), err)
	}
	wantKind, wantAPI := "Kustomization", "kustomize.config.k8s.io/v1beta1"
	if component {
		wantKind, wantAPI = "Component", "kustomize.config.k8s.io/v1alpha1"
	}
	if k.Kind != wantKind || k.APIVersion != wantAPI {
		return fmt.Errorf("%s: %s %s, want %s %s", rel(kfile), k.APIVersion, k.Kind, wantAPI, wantKind)
	}
	acc.Files[rel(kfile)] = true
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s: resource %s: %w", rel(kfile), r, err)
		}
		if st.IsDir() {
			sub, err := render(top, p)
			if err != nil {
				return err
			}
			acc.Resources = append(acc.Resources, sub.Resources...)
			for f := range sub.Files {
				acc.Files[f] = true
			}
			continue
		}
		docs, err := loadDocs(p)
		if err != nil {
			return fmt.Errorf("%s: %w", rel(p), err)
		}
		acc.Files[rel(p)] = true
		for _, raw := range docs {
			acc.Resources = append(acc.Resources, &manifestDoc{File: rel(p), Raw: raw})
		}
	}
	for _, c := range k.Components {
		if err := build(top, filepath.Join(dir, c), true, acc); err != nil {
			return fmt.Errorf("%s: component %s: %w", rel(kfile), c, err)
		}
	}
	for _, p := range k.Patches {
		if err := applyPatchFile(filepath.Join(dir, p.Path), acc); err != nil {
			return fmt.Errorf("%s: patch %s: %w", rel(kfile), p.Path, err)
		}
		acc.Files[rel(filepath.Join(dir, p.Path))] = true
	}
	// Like kustomize, each level rewrites the images it has so far: an
	// overlay must name the image as the base left it.
	for _, r := range acc.Resources {
		applyImages(r.Raw, k.Images)
	}
	if k.Namespace != "" {
		for _, r := range acc.Resources {
			if r.kind() != "Namespace" {
				r.Raw["metadata"].(map[string]any)["namespace"] = k.Namespace
			}
		}
	}
	return nil
}

// loadDocs reads a manifest file; every document must decode strictly.
func loadDocs(path string) ([]map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for i, doc := range splitDocs(data) {
		_, raw, err := decodeManifest(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, raw)
	}
	return out, nil
}

// applyPatchFile applies each strategic-merge patch document of path to the
// resource of the same kind and name ($patch: delete removes it).
func applyPatchFile(path string, acc *rendering) error {
	docs, err := loadDocs(path)
	if err != nil {
		return err
	}
	for _, p := range docs {
		if p["$patch"] == "delete" && len(docs) > 1 {
			return fmt.Errorf("a $patch: delete must be alone in its file (kustomize v5.5 crashes on several)")
		}
		kind, _ := p["kind"].(string)
		name := nameOf(p)
		idx := -1
		for i, r := range acc.Resources {
			if r.kind() == kind && r.name() == name {
				idx = i
			}
		}
		if idx < 0 {
			return fmt.Errorf("patch target %s/%s not found", kind, name)
		}
		if p["$patch"] == "delete" {
			acc.Resources = append(acc.Resources[:idx], acc.Resources[idx+1:]...)
			continue
		}
		if err := mergeInto(acc.Resources[idx].Raw, p, kind+"/"+name); err != nil {
			return err
		}
	}
	return nil
}

// mergeInto merges patch into dst like a strategic merge patch for the
// fields used here: maps merge, lists of named objects (containers, env,
// ports, volumes) merge by name, other lists and scalars replace. A named
// list item that does not exist in dst is an error: in this tree it is always
// a typo (a patch for container "sender" of Deployment "sender-apns").
func mergeInto(dst, patch map[string]any, where string) error {
	for k, pv := range patch {
		if strings.HasPrefix(k, "$") {
			continue
		}
		dv, exists := dst[k]
		switch pv := pv.(type) {
		case map[string]any:
			if dm, ok := dv.(map[string]any); ok && exists {
				if err := mergeInto(dm, pv, where+"."+k); err != nil {
					return err
				}
				continue
			}
			dst[k] = deepCopy(pv)
		case []any:
			dl, ok := dv.([]any)
			if !ok || !namedList(pv) || !namedList(dl) {
				dst[k] = deepCopy(pv)
				continue
			}
			for _, item := range pv {
				im := item.(map[string]any)
				found := false
				for _, d := range dl {
					dm := d.(map[string]any)
					if dm["name"] == im["name"] {
						found = true
						if err := mergeInto(dm, im, fmt.Sprintf("%s.%s[%v]", where, k, im["name"])); err != nil {
							return err
						}
					}
				}
				if !found {
					return fmt.Errorf("%s.%s: no item named %v to patch", where, k, im["name"])
				}
			}
		default:
			dst[k] = pv
		}
	}
	return nil
}

func namedList(l []any) bool {
	for _, x := range l {
		m, ok := x.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := m["name"]; !ok {
			return false
		}
	}
	return len(l) > 0
}

// resolveImage applies the kustomize images list to a container image.
func resolveImage(ref string, images []kustomizeImage) string {
	name, tag := ref, ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i+1:]
	}
	for _, im := range images {
		if im.Name != name {
			continue
		}
		if im.NewName != "" {
			name = im.NewName
		}
		if im.NewTag != "" {
			tag = im.NewTag
		}
		if im.Digest != "" {
			return name + "@" + im.Digest
		}
	}
	if tag == "" {
		return name
	}
	return name + ":" + tag
}

// applyImages rewrites the container images of a raw Deployment or Job.
func applyImages(raw map[string]any, images []kustomizeImage) {
	spec, _ := raw["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	pod, _ := tmpl["spec"].(map[string]any)
	cs, _ := pod["containers"].([]any)
	for _, c := range cs {
		cm := c.(map[string]any)
		if img, ok := cm["image"].(string); ok {
			cm["image"] = resolveImage(img, images)
		}
	}
}

// typed decodes every rendered resource strictly into its Go type.
func (r *rendering) typed() ([]any, error) {
	var out []any
	for _, res := range r.Resources {
		js, err := json.Marshal(res.Raw)
		if err != nil {
			return nil, err
		}
		obj, _, err := decodeManifest(js)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", res.File, err)
		}
		out = append(out, obj)
	}
	return out, nil
}

// compactJSON is used in messages.
func compactJSON(v any) string {
	b, _ := json.Marshal(v)
	var buf bytes.Buffer
	_ = json.Compact(&buf, b)
	return buf.String()
}
