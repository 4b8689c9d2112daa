// Package control holds the campaign operations of game day (prepare, proof,
// fire, abort, status) shared by owlctl and the control HTTP API, and that
// API's server and client. Both front ends call the same Service, so the CLI
// and the marketing tool get the same refusals with the same reasons.
//
// # Fire, exactly once
//
// Fire checks the campaign is known, planned, not aborted and (unless forced)
// fully prepared, then asks the guard (Redis SET NX on the campaign's fire
// key) to record a new fire. Whether the press won or lost, it publishes the
// WINNER's trigger record (Control{Type: fire}) on the control topic: a crash
// between the Redis win and the publish cannot lose the trigger, because the
// next press re-publishes it, and the fanout ignores every trigger whose fire
// id is not the guard's winner and every repeat of one it already released.
// A press that finds Redis unreachable is refused (fail closed): no fire.
// Presses are counted by outcome (owlpost_control_fire_presses_total).
//
// # State
//
// Status assembles one screen from what the system already records: the
// campaign definition and plan manifest (catalog), the fresh readiness
// reports of fanout instances and senders (status topic, At within
// FreshFor), the audit log (control topic), the guard's fire and abort
// records (Redis) and the per-batch results (results topic, read from the
// fire time on). The state machine is defined -> planned -> prepared ->
// firing -> done | aborted; done means results of kind fire for the winning
// fire id cover every planned batch. Nothing in this package keeps state of
// its own, so any number of API servers and CLIs agree.
//
// # Proof
//
// Proof publishes Control{Type: proof, FireID: "proof-..."}; the fanout sends
// the campaign's proof audience through the normal path with Kind proof and
// the senders report Result records for that id. WaitProof attributes the
// outcomes to devices: for each platform, the proof devices in campaign order
// are matched to the proof batches in sequence order, each batch covering as
// many devices as its Tokens count (one batch per platform and one batch per
// device both work). A batch with mixed outcomes is reported as such for
// each of its devices, since a Result carries counts, not per-token answers.
//
// # HTTP API
//
//	POST /v1/campaigns/{id}/prepare   {}                  operator   202
//	POST /v1/campaigns/{id}/proof     {}                  operator   202 {"proof_id": ...}
//	GET  /v1/campaigns/{id}/proofs/{proof}?wait=30s       viewer     200 ProofReport
//	POST /v1/campaigns/{id}/fire      {"force": false}    launcher   200 won | 409 already fired (with the winner)
//	POST /v1/campaigns/{id}/abort     {}                  operator   200
//	POST /v1/campaigns/{id}/rehearsals {"sample": 1, "rate": 0} operator 202 {"campaign": "{id}.rehearsal-N", "next": ...}
//	GET  /v1/campaigns/{id}/status                        viewer     200 CampaignStatus
//	GET  /v1/campaigns                                    viewer     200 list
//	GET  /v1/whoami                                       viewer     200 Identity
//	GET  /v1/openapi.json, /healthz, /metrics             no auth
//
// openapi.json (embedded, served at /v1/openapi.json) is the contract. Every
// /v1 route requires "Authorization: Bearer <token>"; the token is resolved
// to an identity (package identity: a users file, or the single shared
// control.token as one launcher) and the identity's role is checked against
// Needs. The actor recorded everywhere is the identity's name: a "by" in the
// body is ignored. A campaign naming launchers is fired only by them
// (ErrNotLauncher). Errors are JSON {"error": reason, "code": machine code}:
// 401 unauthorized, 403 forbidden | not_a_launcher, 429 rate_limited (wrong
// tokens per client address), 400 bad_request, 404 unknown_campaign | unknown_proof,
// 412 not_planned | not_ready (with "reasons"), 409 already_fired (with
// "fire") | aborted | is_rehearsal, 503 guard_unavailable.
//
// A rehearsal (DefineRehearsal, Rehearse) is defined here for owlctl, the
// API and the console alike; the API and the console then ask the planner
// service for its plan (RequestPlan: a plan record on the control topic)
// rather than planning in process. Defining and planning are operator
// actions; the rehearsal's fire is a launcher's, through Fire.
package control
