// Package metrics holds what every stage shares for observability: a private
// Prometheus registry per process, the /metrics, /healthz and /readyz server,
// franz-go client metrics through kprom, and the consumer-lag collector.
//
// Naming: owlpost_<stage>_<what>_<unit|total>, dimensions in labels. Every
// metric of the project is listed here; stages define their own collectors
// next to the code that updates them and register them on the injected
// registry with Register, which hands back the collector already registered
// when two stages of one process share the registry, so every increment is
// exported.
//
// Shared (this package):
//
//	owlpost_stage_ready{stage}                              gauge, 1 when /readyz answers 200; stage is planner,
//	                                                        fanout, sender-ios, sender-android or control
//	owlpost_kafka_consumergroup_lag{group,topic,partition}  gauge, end offset minus committed offset, computed with
//	                                                        kadm at scrape time by each stage for its own group
//	                                                        (senders: "<sender.group>-<platform>", planner:
//	                                                        "<topics.control>.planner")
//	owlpost_kafka_consumergroup_lag_sum{group,topic}        gauge, the lag summed over the topic's partitions
//	owlpost_kafka_lag_errors_total                          counter, lag scrapes that failed
//	owlpost_kafka_*{client}                                 franz-go client metrics from kprom's defaults
//	                                                        (connects_total, read/write_bytes_total, write/read
//	                                                        _wait and _time seconds, produce_bytes_total and
//	                                                        fetch_bytes_total{node_id,topic}, ...);
//	                                                        a client's series disappear when it closes (kprom
//	                                                        unregisters them), so short-lived clients such as
//	                                                        planner-txn show only while they run
//	go_*, process_*                                         Go runtime and process collectors
//
// Every stage serves /metrics, /healthz and /readyz on metrics.addr
// (Serve); owlctl serve also answers /metrics and /healthz on control.addr.
// With metrics.pprof true (OWLPOST_METRICS_PPROF=true) the same listener also
// serves net/http/pprof under /debug/pprof/ (profile, heap, goroutine, ...),
// registered on Serve's own mux, never on http.DefaultServeMux.
//
// Lag naming: owlpost_kafka_consumergroup_lag and _lag_sum have the labels of
// kafka-exporter's kafka_consumergroup_lag and kafka_consumergroup_lag_sum, so
// a dashboard written for those works after replacing the prefix (or with a
// recording rule `kafka_consumergroup_lag = owlpost_kafka_consumergroup_lag`).
// A caught-up group is not always at 0: the commit markers of the
// transactions that wrote last to a partition are never consumed, and the
// send topics are written by one transactional producer per batches-topic
// partition, so a few records of lag per partition can remain. The fanout
// group only balances partitions and commits nothing, so its lag is not
// exported; the fanout's progress is owlpost_fanout_tokens_released_total.
//
// # guard
//
// The Redis guard (package guard), in every process that has one (fanout,
// sender, control):
//
//	owlpost_guard_redis_seconds{op}       histogram, latency of guard operations (ping, warm, fire, fire_get, abort,
//	                                      abort_get, claim, renew, ack, acked, done, release, rate), 0.1 ms..1 s
//	owlpost_guard_redis_errors_total{op}  counter, operations that failed because Redis did not answer (the
//	                                      caller failed closed); every op exported at 0 from the start
//
// # control
//
// The campaign operations and the control API (package control, owlctl
// serve), plus owlpost_kafka_*{client="control"} and owlpost_guard_*; stage
// "control" is ready whenever the process serves:
//
//	owlpost_control_fire_presses_total{result}        counter, presses of GO: won (the one fire), lost (already
//	                                                  fired, answered with the winner), refused (unknown,
//	                                                  unplanned, not ready, aborted, Redis down)
//	owlpost_control_requests_total{route,code}        counter, API requests by route pattern and HTTP status
//	owlpost_control_request_seconds{route}            histogram, API request duration by route pattern
//
// # sender
//
// The sender stage (package sender, cmd/sender; platform = ios|android), plus
// owlpost_kafka_*{client="sender-<platform>"}, the lag of its group
// ("<sender.group>-<platform>") and owlpost_guard_* from its guard:
//
//	owlpost_sender_notifications_total{platform,outcome}   counter, tokens by final outcome: accepted, invalid
//	                                                       (reported to feedback), failed (rejected notification),
//	                                                       expired (deadline), aborted
//	owlpost_sender_provider_responses_total{platform,reason} counter, provider answers per token attempt by
//	                                                       reason ("ok", APNs reason or FCM code, network, timeout)
//	owlpost_sender_retries_total{platform}                 counter, token attempts that retried a retryable answer
//	owlpost_sender_batches_total{platform,result}          counter, send records: sent, takeover, skipped_done,
//	                                                       skipped_unverified (not the campaign's verified fire),
//	                                                       skipped_held, lease_lost, rejected_record, interrupted;
//	                                                       skipped_done also counts the copies from aborted fanout
//	                                                       transactions (the senders read uncommitted)
//	owlpost_sender_inflight_requests{platform}             gauge, tokens handed to the adapter, not answered yet
//	owlpost_sender_time_from_fire_seconds{platform,kind}   histogram, per accepted token: fire (kind fire) or proof send (kind proof) to acceptance
//	                                                       (0.01..60 s, dense between 0.5 and 10 s); stamped when
//	                                                       the token's answer arrived (APNs: per request; FCM:
//	                                                       when its SendEach chunk returned); fires only,
//	                                                       proof sends are not observed
//	owlpost_sender_provider_batch_seconds{platform}        histogram, duration of one adapter SendBatch call
//	owlpost_sender_trigger_to_first_send_seconds{platform} histogram, per fire (not proof) and instance: fire
//	                                                       to first accepted
//	owlpost_sender_fatal{platform}                         gauge, 1 after a fatal provider answer (auth/config):
//	                                                       the stage stopped; alert on it
//
// # planner
//
// The planning stage (package planner, cmd/planner, owlctl plan), plus
// owlpost_kafka_*{client="planner"|"planner-txn"|"planner-audience"|"planner-control"}
// and the lag of its group ("<topics.control>.planner"). Counters move when a
// plan's transaction commits, so they count what was written:
//
//	owlpost_planner_records_total{outcome}             counter, audience records: planned (distinct tokens),
//	                                                   rejected (sent to the rejects topic), duplicate
//	owlpost_planner_rejects_total{reason}              counter, rejected records by reason (bad_json, bad_token,
//	                                                   unknown_platform, missing_field, too_large)
//	owlpost_planner_batches_written_total{platform}    counter, batch records written
//	owlpost_planner_tokens_planned_total{platform}     counter, device tokens planned
//	owlpost_planner_tombstones_total                   counter, tombstones for batches a re-plan removed
//	owlpost_planner_plan_duration_seconds              histogram, one plan from catalog read to commit
//	                                                   (0.1..320 s)
//	owlpost_planner_plans_total{result}                counter, plans finished: ok or error
//
// # fanout
//
// The fanout stage (package fanout, cmd/fanout), plus
// owlpost_kafka_*{client="fanout-group"|"fanout-control"|"fanout-status"|"fanout-txn-p<partition>"}:
//
//	owlpost_fanout_batches_held{campaign}                 gauge, batch records held in memory, ready to release
//	owlpost_fanout_tokens_held{campaign}                  gauge, device tokens in the held batches
//	owlpost_fanout_held_bytes                             gauge, bytes of held batch keys and values, all campaigns
//	owlpost_fanout_held_bytes_per_token                   gauge, held_bytes / tokens held: memory per token
//	owlpost_fanout_batches_released_total{platform,kind}  counter, send tasks committed (kind fire or proof)
//	owlpost_fanout_tokens_released_total{platform,kind}   counter, tokens in the committed send tasks
//	owlpost_fanout_release_seconds                        histogram, fire time to one batches-topic partition
//	                                                      fully released (0.01..60 s)
//	owlpost_fanout_trigger_seconds                        histogram, trigger record timestamp to the instance's
//	                                                      first committed send task of the fire (1 ms..2.5 s)
//	owlpost_fanout_triggers_ignored_total{reason}         counter, fire/proof requests not acted on: not_winner,
//	                                                      no_fire_record, aborted, duplicate, stale_proof,
//	                                                      no_proof_audience, bad_record
//	owlpost_fanout_manifest_mismatch_total                counter, partition loads (or full checksums) that did
//	                                                      not match the plan manifest
//	owlpost_fanout_txn_retries_total                      counter, release transactions that failed (produce or
//	                                                        commit error, fenced producer); the release goes on
//	owlpost_fanout_producers_renewed_total                counter, partition producers replaced after a failed
//	                                                        release transaction, the partition still owned here
//
// # pushsim
//
// The push simulator (package pushsim, cmd/pushsim; development and tests
// only), on its admin address, no stage_ready:
//
//	owlpost_pushsim_requests_total{provider,status,reason}   counter, requests answered (provider apns, fcm,
//	                                                          oauth2; reason empty on success)
//	owlpost_pushsim_accepted_total{provider}                 counter, notifications accepted and recorded
//	owlpost_pushsim_request_duration_seconds{provider}       histogram, answer time, injected latency included
package metrics
