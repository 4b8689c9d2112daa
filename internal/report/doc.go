// Package report computes a campaign's final account from the results topic
// (every batch's counts by outcome and the exact milliseconds from fire to
// acceptance of every accepted notification — not a sample), the plan
// manifest and the control log, and renders it as text, JSON or an SVG
// picture of accepted notifications over time since fire with the p95/p99
// marks.
//
// A batch may have more than one result record (a sender crashed after
// writing it, and the sender that took the batch over wrote another). Fold
// holds the one rule for which counts, used by Build, Live and the control
// status: per batch and fire id the last result, which counts the answers
// stored before the takeover with the taker-over's own.
//
// A campaign with a goal (campaign.Goal), and every dress rehearsal, gets a
// Verdict: per platform and target the measured time from fire (for a
// sampled rehearsal also the full-size projection, the time beyond the first
// acceptance scaled by 1/sample), the stages per batch from the results'
// fired/released/started/finished times (release by the fanout, wait in the
// send topic, sending), the send topics' consumer lag rebuilt from the same
// times (peak, and whether it still grew when the release ended), the
// providers' rate-limit answers, the slowest stage, "on track", "not on
// track" or "not judged" (incomplete, or a rate cap that decided the times),
// and advice tied to the figure behind it: lag growing = more senders, a
// slow release = more fanout instances and partitions, throttling = a quota
// request.
package report
