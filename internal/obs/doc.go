// Package obs holds the observability acceptance tests: they check what an
// SRE sees against what really happened, with no code of its own besides the
// tests.
//
//   - TestCampaignObservability runs a small campaign with every stage as a
//     separate process (pushsim, planner, two fanouts, an iOS and an Android
//     sender, the control API), scrapes /metrics of each stage during and
//     after the send, and checks the documented series (internal/metrics
//     doc.go) against the campaign: accepted notifications against the
//     simulator's record, planned tokens against the manifest, released
//     against planned, provider reasons against the simulator's rejections,
//     lag per partition, kprom series per client, readiness. In the same
//     run it checks that every PromQL expression of deploy/grafana
//     dashboards and deploy/prometheus/alerts.yml names only series that
//     were scraped; that `owlctl report` percentiles agree with the
//     simulator's own arrival times within one bucket of the sender's
//     time-from-fire histogram; that the report's SVG is well-formed XML
//     with the p95/p99 marks; and that `owlctl status --watch` prints plain
//     lines when its output is not a terminal and ends by itself when the
//     campaign is complete.
//   - TestMetricNames pins the small PromQL tokenizer the dashboard check
//     relies on.
//
// The tests need the dev stack (make up): a real Kafka and a real Redis.
package obs
