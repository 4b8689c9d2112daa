// Package deploytest checks the deployment files without a cluster or a
// container engine: deploy/docker-compose.yml, the Dockerfile,
// deploy/prometheus, deploy/grafana and the kustomize tree in deploy/k8s.
//
// It holds tests only. They parse the compose file (yaml.v3, strict struct),
// render each kustomize overlay with kustomize itself
// (sigs.k8s.io/kustomize/api, the library behind `kubectl kustomize`), decode
// every rendered manifest strictly into the official k8s.io/api types (unknown,
// duplicate or wrongly-cased fields fail; KEDA ScaledObject and
// ServiceMonitor into strict local structs), and cross-check them: every
// OWLPOST_* variable is a config key and the resulting configuration loads
// and validates with internal/config, container ports are the ports the
// binaries listen on, probes and resources are set, healthcheck dependencies
// point at services with health checks, images are pinned, autoscalers stay
// within the send topic's partitions, and Prometheus targets and Grafana
// datasources name things that exist.
//
// What it cannot check: that images build and containers start (no Docker
// engine here) and that a cluster accepts the manifests (no API server, so
// no admission, defaulting or CRD schema validation beyond these structs).
package deploytest
