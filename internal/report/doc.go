// Package report computes a campaign's final account from the results topic
// (every batch's counts by outcome and the exact milliseconds from fire to
// acceptance of every accepted notification — not a sample), the plan
// manifest and the control log, and renders it as text, JSON or an SVG
// picture of accepted notifications over time since fire with the p95/p99
// marks.
//
// A batch may have more than one result record (a sender crashed after
// writing it, or a takeover re-sent part of it); per batch and fire id the
// record accounting for the most tokens wins, the latest on a tie.
package report
