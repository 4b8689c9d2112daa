package deploytest

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/fanout"
	"github.com/owlpost/owlpost/internal/planner"
	"github.com/owlpost/owlpost/internal/sender"
)

// manifests is a rendered overlay, decoded into Go types.
type manifests struct {
	ConfigMaps    map[string]*corev1.ConfigMap
	Deployments   []*appsv1.Deployment
	Jobs          []*batchv1.Job
	Services      []*corev1.Service
	PDBs          []*policyv1.PodDisruptionBudget
	HPAs          []*autoscalingv2.HorizontalPodAutoscaler
	ScaledObjects []*scaledObject
	Monitors      []*serviceMonitor
	Namespaces    []*corev1.Namespace
	Accounts      map[string]*corev1.ServiceAccount
	Other         []any
}

func k8sDir(t *testing.T) string { return filepath.Join(repoRoot(t), "deploy", "k8s") }

func loadManifests(t *testing.T, dir string) (*manifests, *rendering) {
	t.Helper()
	top := k8sDir(t)
	r, err := render(top, filepath.Join(top, dir))
	if err != nil {
		t.Fatalf("render %s: %v", dir, err)
	}
	objs, err := r.typed()
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	m := &manifests{ConfigMaps: map[string]*corev1.ConfigMap{}, Accounts: map[string]*corev1.ServiceAccount{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			m.ConfigMaps[o.Name] = o
		case *appsv1.Deployment:
			m.Deployments = append(m.Deployments, o)
		case *batchv1.Job:
			m.Jobs = append(m.Jobs, o)
		case *corev1.Service:
			m.Services = append(m.Services, o)
		case *policyv1.PodDisruptionBudget:
			m.PDBs = append(m.PDBs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.HPAs = append(m.HPAs, o)
		case *scaledObject:
			m.ScaledObjects = append(m.ScaledObjects, o)
		case *serviceMonitor:
			m.Monitors = append(m.Monitors, o)
		case *corev1.Namespace:
			m.Namespaces = append(m.Namespaces, o)
		case *corev1.ServiceAccount:
			m.Accounts[o.Name] = o
		default:
			m.Other = append(m.Other, o)
		}
	}
	return m, r
}

// podEnv is the environment a container gets: envFrom ConfigMaps, then env
// (a fieldRef becomes a placeholder pod name).
func (m *manifests) podEnv(c corev1.Container) (map[string]string, []error) {
	env := map[string]string{}
	var errs []error
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := m.ConfigMaps[ef.ConfigMapRef.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("envFrom ConfigMap %q does not exist", ef.ConfigMapRef.Name))
				continue
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = v
			}
		default:
			errs = append(errs, fmt.Errorf("envFrom: only ConfigMaps (secrets are files)"))
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "pod-0"
		default:
			errs = append(errs, fmt.Errorf("env %s: only values and fieldRefs (secrets are files)", e.Name))
		}
	}
	return env, errs
}

// selects reports whether a label selector matches a pod template's labels.
func selects(sel *metav1.LabelSelector, podLabels map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return s.Matches(labels.Set(podLabels))
}

// portOf resolves a probe or Service target port against a container.
func portOf(p intstr.IntOrString, c corev1.Container) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// checkManifests runs every cross-check on a rendered overlay. t is used for
// loading configurations (t.Setenv); problems are returned, not reported.
func checkManifests(t *testing.T, m *manifests) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, o := range m.Other {
		bad("unexpected object %T (a Secret? secret values never go into the manifests)", o)
	}
	for name, cm := range m.ConfigMaps {
		errs = append(errs, envProblems("ConfigMap "+name, cm.Data)...)
	}
	autoscaled := map[string]string{}
	sendPartitions := map[string]int32{} // Deployment -> topics.send_partitions of its config
	configs := map[string]*config.Config{}

	checkPod := func(where string, spec corev1.PodSpec) {
		if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			bad("%s: pod securityContext.runAsNonRoot must be true", where)
		}
		if _, ok := m.Accounts[spec.ServiceAccountName]; spec.ServiceAccountName != "" && !ok {
			bad("%s: serviceAccountName %q does not exist", where, spec.ServiceAccountName)
		}
		volumes := map[string]bool{}
		for _, v := range spec.Volumes {
			volumes[v.Name] = true
		}
		for _, c := range spec.Containers {
			cw := where + " container " + c.Name
			if err := imagePinned(c.Image); err != nil {
				bad("%s: %v", cw, err)
			}
			for _, rn := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okr := c.Resources.Requests[rn]
				lim, okl := c.Resources.Limits[rn]
				if !okr || !okl || req.IsZero() || lim.IsZero() {
					bad("%s: resources.requests and limits of %s are required", cw, rn)
				} else if req.Cmp(lim) > 0 {
					bad("%s: %s request %s above limit %s", cw, rn, req.String(), lim.String())
				}
			}
			if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				bad("%s: securityContext.allowPrivilegeEscalation must be false", cw)
			}
			mounts := map[string]bool{}
			for _, vm := range c.VolumeMounts {
				mounts[vm.MountPath] = true
				if !volumes[vm.Name] {
					bad("%s: volumeMount %s has no volume", cw, vm.Name)
				}
			}
			env, envErrs := m.podEnv(c)
			for _, e := range envErrs {
				bad("%s: %v", cw, e)
			}
			errs = append(errs, envProblems(cw, env)...)
			for k, v := range env {
				if strings.HasPrefix(k, "OWLPOST_") && strings.HasSuffix(k, "_FILE") && v != "" {
					covered := false
					for mp := range mounts {
						covered = covered || strings.HasPrefix(v, strings.TrimSuffix(mp, "/")+"/")
					}
					if !covered {
						bad("%s: %s=%s is not inside a volumeMount", cw, k, v)
					}
				}
			}
			cfg, err := loadConfigFromEnv(t, env)
			if err != nil {
				bad("%s: config does not load: %v", cw, err)
				continue
			}
			configs[where] = cfg
			sendPartitions[where] = cfg.Topics.SendPartitions
		}
	}

	for _, job := range m.Jobs {
		where := "Job " + job.Name
		checkPod(where, job.Spec.Template.Spec)
		if rp := job.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
			bad("%s: restartPolicy %q", where, rp)
		}
	}
	for _, h := range m.HPAs {
		autoscaled[h.Spec.ScaleTargetRef.Name] = "HPA " + h.Name
	}
	for _, so := range m.ScaledObjects {
		if prev, ok := autoscaled[so.Spec.ScaleTargetRef.Name]; ok {
			bad("ScaledObject %s and %s both scale %s (KEDA owns its own HPA)", so.Name, prev, so.Spec.ScaleTargetRef.Name)
		}
		autoscaled[so.Spec.ScaleTargetRef.Name] = "ScaledObject " + so.Name
	}

	deps := map[string]*appsv1.Deployment{}
	for _, d := range m.Deployments {
		where := "Deployment " + d.Name
		deps[d.Name] = d
		spec := d.Spec.Template.Spec
		if !selects(d.Spec.Selector, d.Spec.Template.Labels) {
			bad("%s: selector does not match its pod template labels", where)
		}
		checkPod(where, spec)
		if by, ok := autoscaled[d.Name]; ok && d.Spec.Replicas != nil {
			bad("%s: sets replicas although %s scales it (every apply would reset the count)", where, by)
		}
		cfg := configs[where]
		for _, c := range spec.Containers {
			cw := where + " container " + c.Name
			if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				bad("%s: readinessProbe must be httpGet /readyz", cw)
			} else if _, ok := portOf(c.ReadinessProbe.HTTPGet.Port, c); !ok {
				bad("%s: readinessProbe port %s is not a container port", cw, c.ReadinessProbe.HTTPGet.Port.String())
			}
			if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
				bad("%s: livenessProbe must be httpGet /healthz", cw)
			} else if _, ok := portOf(c.LivenessProbe.HTTPGet.Port, c); !ok {
				bad("%s: livenessProbe port %s is not a container port", cw, c.LivenessProbe.HTTPGet.Port.String())
			}
			if cfg == nil {
				continue
			}
			// The ports the binary listens on, from its configuration.
			listen := map[int32]string{}
			addListen := func(key, addr string) {
				p, lo, err := listenPort(addr)
				if err != nil || lo {
					bad("%s: %s %q is not reachable from outside the pod", cw, key, addr)
					return
				}
				listen[int32(p)] = key
			}
			addListen("metrics.addr", cfg.Metrics.Addr)
			bin := ""
			if len(c.Command) > 0 {
				bin = path.Base(c.Command[0])
			}
			if bin == "owlctl" && len(c.Command) > 1 && c.Command[1] == "serve" {
				addListen("control.addr", cfg.Control.Addr)
			}
			for p, key := range listen {
				found := false
				for _, cp := range c.Ports {
					found = found || cp.ContainerPort == p
				}
				if !found {
					bad("%s: listens on %d (%s) but declares no such containerPort", cw, p, key)
				}
			}
			for _, cp := range c.Ports {
				if _, ok := listen[cp.ContainerPort]; !ok {
					bad("%s: containerPort %d (%s): the binary does not listen there", cw, cp.ContainerPort, cp.Name)
				}
			}
			if bin == "sender" {
				if cfg.Sender.Platform != "ios" && cfg.Sender.Platform != "android" {
					bad("%s: sender.platform %q", cw, cfg.Sender.Platform)
				}
				if cfg.Sender.Group == "" {
					bad("%s: sender.group must be set (the autoscaler watches that group)", cw)
				}
			}
		}
		errs = append(errs, graceProblems(where, spec)...)
		covered := false
		for _, pdb := range m.PDBs {
			covered = covered || selects(pdb.Spec.Selector, d.Spec.Template.Labels)
		}
		if !covered {
			bad("%s: no PodDisruptionBudget selects its pods", where)
		}
	}

	for _, pdb := range m.PDBs {
		n := 0
		for _, d := range m.Deployments {
			if selects(pdb.Spec.Selector, d.Spec.Template.Labels) {
				n++
			}
		}
		if n != 1 {
			bad("PodDisruptionBudget %s selects %d Deployments, want 1", pdb.Name, n)
		}
	}

	svcPorts := map[string][]string{} // Service -> port names
	for _, s := range m.Services {
		where := "Service " + s.Name
		var target *appsv1.Deployment
		for _, d := range m.Deployments {
			if selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, d.Spec.Template.Labels) {
				target = d
			}
		}
		if target == nil {
			bad("%s: selects no Deployment's pods", where)
			continue
		}
		for _, sp := range s.Spec.Ports {
			svcPorts[s.Name] = append(svcPorts[s.Name], sp.Name)
			tp := sp.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(sp.Port)
			}
			ok := false
			for _, c := range target.Spec.Template.Spec.Containers {
				_, found := portOf(tp, c)
				ok = ok || found
			}
			if !ok {
				bad("%s: port %s targets %s, not a port of Deployment %s", where, sp.Name, tp.String(), target.Name)
			}
		}
	}

	maxOK := func(where, target string, maxR int32) {
		d, ok := deps[target]
		if !ok {
			bad("%s: scales Deployment %q, which does not exist", where, target)
			return
		}
		if p, ok := sendPartitions["Deployment "+d.Name]; ok && maxR > p {
			bad("%s: up to %d replicas but topics.send_partitions is %d: the rest would sit idle", where, maxR, p)
		}
	}
	for _, h := range m.HPAs {
		where := "HPA " + h.Name
		if h.Spec.ScaleTargetRef.Kind != "Deployment" {
			bad("%s: scaleTargetRef kind %q", where, h.Spec.ScaleTargetRef.Kind)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			bad("%s: need minReplicas <= maxReplicas", where)
		}
		maxOK(where, h.Spec.ScaleTargetRef.Name, h.Spec.MaxReplicas)
	}
	kafkaKeys := []string{"bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
		"offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag",
		"limitToPartitionsWithLag", "version", "partitionLimitation", "sasl", "tls"}
	for _, so := range m.ScaledObjects {
		where := "ScaledObject " + so.Name
		sp := so.Spec
		if sp.MinReplicaCount == nil || sp.MaxReplicaCount == nil || *sp.MinReplicaCount > *sp.MaxReplicaCount || *sp.MinReplicaCount < 1 {
			bad("%s: need 1 <= minReplicaCount <= maxReplicaCount", where)
		} else {
			maxOK(where, sp.ScaleTargetRef.Name, *sp.MaxReplicaCount)
		}
		if k := sp.ScaleTargetRef.Kind; k != "" && k != "Deployment" {
			bad("%s: scaleTargetRef kind %q", where, k)
		}
		cfg := configs["Deployment "+sp.ScaleTargetRef.Name]
		kafkaTriggers := 0
		for _, tr := range sp.Triggers {
			switch tr.Type {
			case "kafka":
				kafkaTriggers++
				for k := range tr.Metadata {
					if !slices.Contains(kafkaKeys, k) {
						bad("%s: kafka trigger: unknown metadata %q", where, k)
					}
				}
				if _, err := strconv.Atoi(tr.Metadata["lagThreshold"]); err != nil {
					bad("%s: lagThreshold %q is not a number", where, tr.Metadata["lagThreshold"])
				}
				if cfg == nil {
					continue
				}
				topic := cfg.Topics.SendIOS
				if cfg.Sender.Platform == "android" {
					topic = cfg.Topics.SendAndroid
				}
				if got := tr.Metadata["consumerGroup"]; got != cfg.Sender.Group {
					bad("%s: consumerGroup %q, but the sender consumes as %q", where, got, cfg.Sender.Group)
				}
				if got := tr.Metadata["topic"]; got != topic {
					bad("%s: topic %q, but the sender reads %q", where, got, topic)
				}
				if got, want := tr.Metadata["bootstrapServers"], strings.Join(cfg.Kafka.Brokers, ","); got != want {
					bad("%s: bootstrapServers %q, but the sender uses %q", where, got, want)
				}
			case "cpu", "memory":
				if tr.MetricType != "Utilization" && tr.MetricType != "AverageValue" {
					bad("%s: %s trigger: metricType %q", where, tr.Type, tr.MetricType)
				}
				if _, err := strconv.Atoi(tr.Metadata["value"]); err != nil {
					bad("%s: %s trigger: value %q", where, tr.Type, tr.Metadata["value"])
				}
			default:
				bad("%s: trigger type %q not checked here", where, tr.Type)
			}
		}
		if kafkaTriggers == 0 {
			bad("%s: no kafka lag trigger", where)
		}
	}
	for _, sm := range m.Monitors {
		where := "ServiceMonitor " + sm.Name
		var matched []*corev1.Service
		for _, s := range m.Services {
			if selects(&sm.Spec.Selector, s.Labels) {
				matched = append(matched, s)
			}
		}
		if len(matched) == 0 {
			bad("%s: selects no Service", where)
		}
		for _, ep := range sm.Spec.Endpoints {
			for _, s := range matched {
				if !slices.Contains(svcPorts[s.Name], ep.Port) {
					bad("%s: endpoint port %q is not a port of Service %s", where, ep.Port, s.Name)
				}
			}
		}
	}
	return errs
}

var overlays = []string{"base", "overlays/dev", "overlays/prod"}

func TestKubernetesManifests(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			m, _ := loadManifests(t, dir)
			if errs := checkManifests(t, m); len(errs) > 0 {
				t.Errorf("deploy/k8s/%s:%s", dir, errorsText(errs))
			}
			var names []string
			for _, d := range m.Deployments {
				names = append(names, d.Name)
			}
			slices.Sort(names)
			if want := []string{"control", "fanout", "planner", "sender-apns", "sender-fcm"}; !slices.Equal(names, want) {
				t.Errorf("Deployments %v, want %v", names, want)
			}
			topicsJob := false
			for _, j := range m.Jobs {
				c := j.Spec.Template.Spec.Containers[0].Command
				topicsJob = topicsJob || (len(c) == 3 && path.Base(c[0]) == "owlctl" && c[1] == "topics" && c[2] == "create")
			}
			if !topicsJob {
				t.Error("no Job running owlctl topics create")
			}
			if len(m.Namespaces) != 1 {
				t.Errorf("%d Namespaces, want 1", len(m.Namespaces))
			}
			if len(m.HPAs)+len(m.ScaledObjects) < 2 {
				t.Errorf("senders are not autoscaled (%d HPAs, %d ScaledObjects)", len(m.HPAs), len(m.ScaledObjects))
			}
		})
	}
	t.Run("prod has KEDA and ServiceMonitor", func(t *testing.T) {
		m, _ := loadManifests(t, "overlays/prod")
		if len(m.ScaledObjects) != 2 || len(m.HPAs) != 0 || len(m.Monitors) != 1 {
			t.Errorf("prod: %d ScaledObjects, %d HPAs, %d ServiceMonitors; want 2, 0 (replaced by KEDA), 1",
				len(m.ScaledObjects), len(m.HPAs), len(m.Monitors))
		}
		for _, d := range m.Deployments {
			if d.Namespace != "owlpost" {
				t.Errorf("Deployment %s: namespace %q, want owlpost", d.Name, d.Namespace)
			}
		}
	})
}

// TestKubernetesFilesAllUsed finds YAML files under deploy/k8s that no
// kustomization renders (a forgotten resource or patch).
func TestKubernetesFilesAllUsed(t *testing.T) {
	top := k8sDir(t)
	used := map[string]bool{}
	for _, dir := range overlays {
		_, r := loadManifests(t, dir)
		for f := range r.Files {
			used[f] = true
		}
	}
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(top, p)
		if ext := filepath.Ext(p); (ext == ".yaml" || ext == ".yml") && !used[rel] {
			t.Errorf("deploy/k8s/%s is not used by any kustomization", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStrictDecodingRejectsMistakes proves a misspelled or wrongly-cased
// field fails, in core types and in the local CRD structs.
func TestStrictDecodingRejectsMistakes(t *testing.T) {
	deployment := `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: owlpost:1
          ports: [{name: metrics, containerPort: 9100}]
          readinessProbe: {httpGet: {path: /readyz, port: metrics}}
`
	if _, _, err := decodeManifest([]byte(deployment)); err != nil {
		t.Fatalf("the valid Deployment fails: %v", err)
	}
	scaled := `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x}
spec:
  scaleTargetRef: {name: x}
  minReplicaCount: 1
  triggers: [{type: kafka, metadata: {topic: t}}]
`
	if _, _, err := decodeManifest([]byte(scaled)); err != nil {
		t.Fatalf("the valid ScaledObject fails: %v", err)
	}
	for _, tc := range []struct{ name, doc, from, to string }{
		{"misspelled probe", deployment, "readinessProbe:", "readinesProbe:"},
		{"misspelled nested field", deployment, "containerPort:", "contianerPort:"},
		{"wrong case", deployment, "readinessProbe:", "ReadinessProbe:"},
		{"duplicate field", deployment, "image: owlpost:1", "image: owlpost:1\n          image: owlpost:2"},
		{"wrong type", deployment, "containerPort: 9100", "containerPort: metrics"},
		{"wrong apiVersion", deployment, "apps/v1", "apps/v1beta1"},
		{"KEDA field from HPA", scaled, "minReplicaCount:", "minReplicas:"},
		{"KEDA unknown trigger field", scaled, "type: kafka,", "type: kafka, metadta: {},"},
		{"unknown kind", deployment, "kind: Deployment", "kind: Deploymnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(tc.doc, tc.from, tc.to, 1)
			if doc == tc.doc {
				t.Fatalf("%q not found", tc.from)
			}
			if _, _, err := decodeManifest([]byte(doc)); err == nil {
				t.Errorf("decoded without error:\n%s", doc)
			}
		})
	}
}

// TestManifestChecksCatchMistakes breaks a rendered prod overlay in the ways
// the checks exist for and expects each to be reported.
func TestManifestChecksCatchMistakes(t *testing.T) {
	find := func(m *manifests, name string) *appsv1.Deployment {
		for _, d := range m.Deployments {
			if d.Name == name {
				return d
			}
		}
		t.Fatalf("no Deployment %s", name)
		return nil
	}
	for _, tc := range []struct {
		name   string
		break_ func(m *manifests)
		want   string
	}{
		{"no readiness probe", func(m *manifests) {
			find(m, "planner").Spec.Template.Spec.Containers[0].ReadinessProbe = nil
		}, "readinessProbe must be"},
		{"probe on a missing port", func(m *manifests) {
			find(m, "planner").Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromString("metric")
		}, "livenessProbe port metric is not a container port"},
		{"no memory limit", func(m *manifests) {
			delete(find(m, "fanout").Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory)
		}, "resources.requests and limits of memory"},
		{"request above limit", func(m *manifests) {
			find(m, "fanout").Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("64")
		}, "cpu request 64 above limit"},
		{"port nothing listens on", func(m *manifests) {
			c := &find(m, "planner").Spec.Template.Spec.Containers[0]
			c.Ports = append(c.Ports, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
		}, "containerPort 8080 (http): the binary does not listen there"},
		{"metrics on another port", func(m *manifests) {
			m.ConfigMaps["owlpost-config"].Data["OWLPOST_METRICS_ADDR"] = "0.0.0.0:9200"
		}, "listens on 9200 (metrics.addr) but declares no such containerPort"},
		{"metrics on loopback", func(m *manifests) {
			delete(m.ConfigMaps["owlpost-config"].Data, "OWLPOST_METRICS_ADDR")
		}, "is not reachable from outside the pod"},
		{"unknown env key", func(m *manifests) {
			c := &find(m, "sender-fcm").Spec.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "OWLPOST_SENDER_PLATFROM", Value: "android"})
		}, "OWLPOST_SENDER_PLATFROM is not a config key"},
		{"bad config value", func(m *manifests) {
			c := &find(m, "sender-fcm").Spec.Template.Spec.Containers[0]
			for i := range c.Env {
				if c.Env[i].Name == "OWLPOST_SENDER_PLATFORM" {
					c.Env[i].Value = "windows"
				}
			}
		}, "config does not load"},
		{"latest image", func(m *manifests) {
			find(m, "control").Spec.Template.Spec.Containers[0].Image = "ghcr.io/owlpost/owlpost:latest"
		}, "pin a version"},
		{"KEDA group mismatch", func(m *manifests) {
			m.ScaledObjects[0].Spec.Triggers[0].Metadata["consumerGroup"] = "owlpost-sender"
		}, "consumerGroup \"owlpost-sender\""},
		{"more replicas than partitions", func(m *manifests) {
			n := int32(200)
			m.ScaledObjects[0].Spec.MaxReplicaCount = &n
		}, "up to 200 replicas but topics.send_partitions is 48"},
		{"replicas fight the autoscaler", func(m *manifests) {
			n := int32(3)
			find(m, "sender-apns").Spec.Replicas = &n
		}, "sets replicas although"},
		{"no PDB", func(m *manifests) { m.PDBs = m.PDBs[1:] }, "no PodDisruptionBudget selects"},
		{"service port typo", func(m *manifests) {
			m.Services[0].Spec.Ports[0].TargetPort = intstr.FromString("metrcs")
		}, "targets metrcs"},
		{"secret file not mounted", func(m *manifests) {
			find(m, "control").Spec.Template.Spec.Containers[0].VolumeMounts = nil
		}, "is not inside a volumeMount"},
		{"a Secret in the manifests", func(m *manifests) { m.Other = append(m.Other, &corev1.Secret{}) }, "secret values never"},
		{"monitor on a missing port", func(m *manifests) { m.Monitors[0].Spec.Endpoints[0].Port = "prom" }, "endpoint port \"prom\""},
		{"grace shorter than the sender's drain", func(m *manifests) {
			g := int64(20)
			find(m, "sender-apns").Spec.Template.Spec.TerminationGracePeriodSeconds = &g
		}, "terminationGracePeriodSeconds 20s does not cover"},
		{"control API without preStop", func(m *manifests) {
			find(m, "control").Spec.Template.Spec.Containers[0].Lifecycle = nil
		}, "serves a Service: preStop sleep 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := loadManifests(t, "overlays/prod")
			if errs := checkManifests(t, m); len(errs) > 0 {
				t.Fatalf("prod has problems before breaking it:%s", errorsText(errs))
			}
			tc.break_(m)
			errs := checkManifests(t, m)
			if !strings.Contains(errorsText(errs), tc.want) {
				t.Errorf("want a problem containing %q, got:%s", tc.want, errorsText(errs))
			}
		})
	}
}

// shutdownNeeds is how long each binary takes to exit cleanly after SIGTERM,
// from the code, and whether it serves a Service's traffic (then a preStop
// pause must let its endpoint go first).
var shutdownNeeds = map[string]struct {
	exit    time.Duration
	traffic bool
}{
	"sender":  {exit: sender.ShutdownTimeout},
	"fanout":  {exit: fanout.ShutdownTimeout},
	"planner": {exit: planner.ShutdownTimeout},
	"owlctl":  {exit: control.ShutdownTimeout, traffic: true},
}

// minPreStop is the pause a pod serving a Service keeps serving after it is
// told to stop, while the endpoint controller and kube-proxy remove it.
const minPreStop = 3 * time.Second

// graceProblems checks terminationGracePeriodSeconds and preStop against
// what the code needs: the grace must cover the preStop pause plus the
// binary's clean exit, or the kubelet kills it mid-drain.
func graceProblems(where string, spec corev1.PodSpec) []error {
	var errs []error
	grace := 30 * time.Second // the Kubernetes default
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	for _, c := range spec.Containers {
		if len(c.Command) == 0 {
			continue
		}
		need, ok := shutdownNeeds[path.Base(c.Command[0])]
		if !ok {
			errs = append(errs, fmt.Errorf("%s container %s: no shutdown budget known for %s", where, c.Name, c.Command[0]))
			continue
		}
		var pause time.Duration
		if lc := c.Lifecycle; lc != nil && lc.PreStop != nil {
			if lc.PreStop.Sleep == nil {
				errs = append(errs, fmt.Errorf("%s container %s: preStop must be a sleep action (the image has no shell)", where, c.Name))
			} else {
				pause = time.Duration(lc.PreStop.Sleep.Seconds) * time.Second
			}
		}
		if need.traffic && pause < minPreStop {
			errs = append(errs, fmt.Errorf("%s container %s: serves a Service: preStop sleep %s, want at least %s so the endpoint goes before the drain",
				where, c.Name, pause, minPreStop))
		}
		if grace <= pause+need.exit {
			errs = append(errs, fmt.Errorf("%s: terminationGracePeriodSeconds %s does not cover preStop %s + the clean exit %s of %s",
				where, grace, pause, need.exit, path.Base(c.Command[0])))
		}
	}
	return errs
}
