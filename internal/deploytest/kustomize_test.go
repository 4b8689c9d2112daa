package deploytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// deploy/k8s is rendered by kustomize itself (krusty, the library behind
// `kubectl kustomize`), so the checks look at what a cluster would get; each
// rendered object is then decoded strictly into its Go type.

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

// decodeManifest decodes one YAML (or JSON) document strictly into the Go
// type of its kind.
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
	kind, _ := raw["kind"].(string)
	apiVersion, _ := raw["apiVersion"].(string)
	k, ok := kinds[kind]
	if !ok {
		return nil, nil, fmt.Errorf("kind %q is not one the deploy tests know", kind)
	}
	if apiVersion != k.apiVersion {
		return nil, nil, fmt.Errorf("%s: apiVersion %q, want %q", kind, apiVersion, k.apiVersion)
	}
	obj := k.newObj()
	if err := decodeStrict(js, obj); err != nil {
		return nil, nil, fmt.Errorf("%s %v: %w", kind, nameOf(raw), err)
	}
	return obj, raw, nil
}

func nameOf(raw map[string]any) string {
	md, _ := raw["metadata"].(map[string]any)
	n, _ := md["name"].(string)
	return n
}

// rendering is one overlay as kustomize renders it.
type rendering struct {
	Resources []map[string]any
	Files     map[string]bool // every file kustomize read, relative to deploy/k8s
}

// render builds the kustomization in dir (a directory under top, deploy/k8s)
// with kustomize's default options, as `kubectl kustomize dir` does.
func render(top, dir string) (*rendering, error) {
	fs := &recordingFS{FileSystem: filesys.MakeFsOnDisk(), read: map[string]bool{}}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, dir)
	if err != nil {
		return nil, err
	}
	r := &rendering{Files: map[string]bool{}}
	for p := range fs.read {
		if rel, err := filepath.Rel(top, p); err == nil {
			r.Files[rel] = true
		}
	}
	for _, res := range rm.Resources() {
		m, err := res.Map()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", res.CurId(), err)
		}
		r.Resources = append(r.Resources, m)
	}
	return r, nil
}

// recordingFS is the disk as kustomize sees it, remembering which files it
// read (kustomize reads them one at a time).
type recordingFS struct {
	filesys.FileSystem
	read map[string]bool
}

func (f *recordingFS) ReadFile(path string) ([]byte, error) {
	f.read[filepath.Clean(path)] = true
	return f.FileSystem.ReadFile(path)
}

// typed decodes every rendered resource strictly into its Go type.
func (r *rendering) typed() ([]any, error) {
	var out []any
	for _, raw := range r.Resources {
		js, err := json.Marshal(raw)
		if err != nil {
			return nil, err
		}
		obj, _, err := decodeManifest(js)
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}
