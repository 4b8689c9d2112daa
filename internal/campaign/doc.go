// Package campaign is the campaign definition: what marketing writes (YAML or
// JSON), the checks that refuse a bad campaign before anything is planned,
// and the per-locale rendering into the provider-neutral push.Message that
// every sender shares read-only.
//
// It is pure domain code: no Kafka, no Redis, no clock. Parse reads a
// definition strictly (unknown fields are errors), fills defaults
// (ApplyDefaults) and validates it (Validate); Encode writes the canonical
// JSON form that the other stages store and exchange.
//
// # Defaults
//
//   - apns.push_type: "background" when fcm.silent is true, else "alert"; a
//     background campaign is silent on Android too (fcm.silent = true).
//   - apns.priority: 10 for alert, 5 for background (Apple requires 5).
//   - apns.collapse_id and fcm.collapse_key: the campaign id, so a rare
//     re-send collapses into one notification on the phone.
//   - apns.expiration and fcm.ttl: the deadline (the TTL capped at FCM's 28
//     days). Sending after the deadline is pointless, so storing the
//     notification for longer at the provider is too. An explicit 0 means
//     "deliver now or never".
//   - fcm.priority: "high".
//
// # Goal, rate limit and rehearsals
//
// goal ({p95: 4s, p99: 6s}) is the launch's target time from fire, judged by
// the report of the campaign and of its rehearsals; rate_limit caps the
// campaign's notifications/s per platform across all senders. Rehearse
// derives a dress rehearsal, "ID.rehearsal-N": the launch's messages, proof
// audience, deadline and goal, sent as a background push nobody sees (APNs
// content-available, priority 5, apns-push-type background; FCM data-only at
// normal priority) with its own collapse id, so it has its own fire guard
// and its own record everywhere. Its rehearsal section names the launch, the
// sample (the fraction of tokens, chosen by token hash) and the launch
// plan's audience end offsets, which the planner reads up to instead of the
// topic's current end.
//
// # Locale resolution
//
// Locales are compared case-insensitively and "_" is read as "-" ("pt_br" is
// "pt-BR"). A device locale resolves to: the exact locale, else the explicit
// fallback (fallbacks may chain through locales that have no message), else a
// locale of the same language (the bare language "de" first, then the
// lexicographically first "de-*"), else the default locale.
//
// # Expiration
//
// APNs expiration is relative to the fire time, which only the GO press
// knows. Render leaves push.APNsMessage.Expiration zero; the fanout or sender
// calls Rendered.WithFireTime once per fire and sends the messages of that
// copy. Everything else in a rendered message is final.
package campaign
