// Package metrics holds what every stage shares for observability: a private
// Prometheus registry per process, the /metrics, /healthz and /readyz server,
// franz-go client metrics through kprom, and the consumer-lag collector.
//
// Naming: owlpost_<stage>_<what>_<unit|total>, dimensions in labels. Every
// metric of the project is listed here; stages define their own collectors
// next to the code that updates them and register them on the injected
// registry.
//
// Shared (this package):
//
//	owlpost_stage_ready{stage}                              gauge, 1 when /readyz answers 200
//	owlpost_kafka_consumergroup_lag{group,topic,partition}  gauge, end offset minus committed offset
//	                                                        (same labels as kafka-exporter's kafka_consumergroup_lag)
//	owlpost_kafka_consumergroup_lag_sum{group,topic}        gauge
//	owlpost_kafka_lag_errors_total                          counter
//	owlpost_kafka_*{client}                                 franz-go client metrics from kprom
//	                                                        (connects, bytes, produce/fetch batches and records)
//	go_*, process_*                                         Go runtime and process collectors
//
// Stage metrics are listed in METRICS below as the stages add them.
package metrics
