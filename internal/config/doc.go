// Package config is owlpost's one Config: Kafka, topics, Redis, providers,
// stage tuning and the metrics/control addresses.
//
// Load merges, in rising precedence: defaults (every key has one, so env
// overrides work with viper's Unmarshal), an optional file (--config or
// OWLPOST_CONFIG; YAML, JSON or TOML; a missing file is an error only when it
// was named explicitly), environment variables (OWLPOST_ + the key upper-cased
// with "." -> "_", e.g. OWLPOST_KAFKA_BROKERS=127.0.0.1:9092) and flags (every
// key is also a flag of the same name, e.g. --kafka.brokers).
//
// Secrets (Kafka/Redis passwords, the control API token) are never logged:
// Redacted returns a copy fit for a log line. Key material (APNs .p8, FCM
// service account) is referenced by file path and read only by the adapters.
package config
