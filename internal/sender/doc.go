// Package sender is the sender stage: one consumer group per platform
// (sender.group or "owlpost-sender", plus "-ios" / "-android") on the
// platform's send topic, read_uncommitted (see below), sending every token
// of every batch through the provider adapter (push.Sender) exactly once
// where that can be known, and reporting results and invalid tokens.
//
// # Why read_uncommitted
//
// The fanout writes send tasks in transactions (records plus its progress
// marker). A read_committed consumer sees a committed transaction only once
// the transaction coordinator has written the commit markers, after EndTxn
// answers; the broker's marker sender batches the markers of concurrent
// commits, so at GO, when every fanout partition commits its first
// transaction at once, that wait is a large share of the time to the first
// notification. A killed fanout's open transaction would also hide every
// later send task of its partitions for up to the transaction timeout. Reading uncommitted removes both waits at
// no cost to exactly-once: the batch guard (claim, done) is what makes a
// send happen once, never the consumer's isolation level. The only records
// read_uncommitted adds are those of aborted fanout transactions, which are
// copies of planned batches of a verified fire that the partition's owner
// releases again from its marker; the second copy finds the batch done (or
// held) in the guard and is skipped like any redelivery.
//
// # Start-up
//
// Run calls Push.Prepare first (connections opened, first JWT / OAuth2 token
// minted; retryable failures are retried, a fatal one stops the stage), warms
// the guard (its Lua scripts loaded, one Redis connection per batch slot
// opened; repeated on every idle heartbeat) and then joins the group, so
// none of it happens at GO. Ready (for /readyz) is nil
// once both are done. A wire.Status heartbeat (campaign "", role
// sender-ios|sender-android, state loading|ready|error, Connected) goes to the
// status topic at start, on every assignment and every 5 s; "stopped" at a
// clean exit.
//
// # Per record
//
//  1. Fire headers and batch decoded; a bad record (bad_fire_headers,
//     bad_batch, wrong_platform, unsendable_campaign: unknown or invalid
//     campaign) is copied to the rejects topic with the reason and committed
//     past: never a panic, never a blocked partition.
//     Then the fire is verified (verify.go): only a task of the campaign's
//     winning fire is sent. The winner is the guard's fire record (asked
//     at most every 2 s per campaign); a task of another fire id is dropped
//     and committed (skipped_unverified). If the guard has no record, or one
//     Restored from the control log, Redis lost the campaign's keys (a
//     failover to a replica without them, a flush), its done marks with
//     them: the winner is then the control log's first verified fire
//     (catalog.FirstFire), and the batches with a result of that fire in the
//     results topic (read once per campaign) count as done (skipped_done).
//     So a flushed Redis plus a group reset to the earliest offset sends
//     nothing twice, and a campaign in flight across the loss completes.
//     While Redis or Kafka cannot answer the check waits: nothing is sent
//     unverified. Proof tasks are not checked (a proof is no fire).
//  2. The campaign rendered for the fire, once per (campaign, fire id):
//     WithFireTime(fired at) of the definition rendered in advance (see
//     Campaigns below). Tokens whose locales resolve to the same message
//     share one SendBatch call.
//  3. Claim (guard.Claim, lease sender.claim_lease, owner = instance + nonce +
//     counter, unique per attempt). Done: skipped, no result re-emitted. Held:
//     the claim is retried until the holder's lease could have expired; a
//     dead holder's batch is then taken over, a holder still renewing after a
//     whole lease is alive and the record is left to it (skipped_held).
//     Takeover: Acked says which tokens the previous holder had answered,
//     and which of those answers were an invalid token or a rejection
//     (guard.Answers); only the others are sent (Result.Resent). The
//     previous holder's answers are counted as they were (accepted, invalid,
//     failed), listed as Reasons answered_before_takeover,
//     invalid_before_takeover and failed_before_takeover (the provider's own
//     reasons and answer times died with it), and its invalid tokens go to
//     the feedback topic again, since it may have died before its feedback
//     record was delivered. A bare answered bitmap (the value older senders
//     stored) is counted accepted.
//  4. Before each round: aborted (guard.Aborted, cached 250 ms per campaign)
//     counts the remaining tokens aborted; past the fire deadline they are
//     expired. Nothing is sent in either case. The abort and deadline checks
//     come after the claim, not before it, so that a batch gets at most one
//     result record even when it is redelivered after an abort.
//  5. Rounds: every pending token is sent concurrently (the adapter sends a
//     batch's tokens concurrently; locales run side by side). Each answer is
//     classified once with push.Classify: OK accepted (ms from the fire time
//     to the end of the SendBatch call into Result.AcceptedMS: an upper bound
//     by at most one provider round trip); invalid token: reported to the
//     feedback topic keyed by token, never retried; rejected: failed;
//     retryable: sent again in the next round after full-jitter exponential
//     backoff between sender.retry_base and sender.retry_max, at least the
//     provider's Retry-After, until the deadline (then expired) or an abort;
//     fatal (auth/config): the stage stops, Run returns the error, the batch
//     is not committed and owlpost_sender_fatal is 1 — the audience is not
//     burnt on a broken credential.
//  6. While sending, the lease is renewed every lease/3 and the bitmap of
//     answered tokens stored (guard.Ack) at the end of every round and, with
//     several locales, at most every 100 ms. ErrLeaseLost stops the batch
//     without a result: another sender owns it.
//  7. guard.Done, then the wire.Result record (keyed by batch key) and the
//     feedback records are acknowledged by Kafka, then the offset may be
//     committed.
//
// Redis unavailable (guard.ErrUnavailable) pauses the batch at whatever guard
// call failed, retrying with backoff: no batch is sent without its claim, and
// a claimed batch does not start a round on a lease it could not renew for
// half a lease. The batch completes when Redis returns.
//
// Optional rate cap (sender.rate_limit > 0): before each round the batch
// takes its tokens from the Redis token bucket of its campaign and platform
// (guard.Take, burst = one second), waiting the returned time for what is
// not granted yet: one Redis call per batch round, shared by every instance.
//
// # Campaigns, rendered before GO
//
// From the start of Run the stage tails the campaigns topic (compacted,
// every partition, from the start, read_committed, no group) and keeps each
// campaign parsed and rendered in memory, re-rendered when its record
// changes. The first batch of a fire then lists the topic's read_committed
// end offsets (one ListOffsets round trip on the stage's client) and uses
// the cached definition once the tail has read up to them: the same answer
// as a snapshot read of the catalog, without building a Kafka client and
// reading and parsing the whole topic on the fire's critical path. If the
// tail is not there within a second the catalog snapshot is read instead.
// An unknown campaign or one that does not render is rejected
// (unsendable_campaign); a stored record that does not parse is retried
// until the deadline, like a catalog read error.
//
// # Offsets
//
// sender.batches_in_flight records are processed at once (polls ask only
// for free slots; BlockRebalanceOnPoll + AllowRebalance right after
// dispatch). Commits are manual: an offset is committed only when every
// earlier record of its partition is finished, soon after a batch finishes.
// A revoked partition's in-flight batches may finish (up to 20 s) and are
// committed before the partition is released; after that, or on lost
// partitions, nothing more is committed for it and the guard skips the
// redelivered batches.
//
// # Consumer group
//
// sender.group_protocol chooses how partitions move between instances:
// cooperative-sticky (the default: the classic group protocol with an
// incremental balancer, so a join or leave pauses only the partitions that
// move), eager (classic, every member gives up every partition at each
// rebalance) or consumer (KIP-848: the broker assigns, incrementally). The
// client never picks KIP-848 by itself: franz-go uses it only with
// kgo.ServerSideBalancer. sender.static_membership joins with instance_id
// as the group instance id, so a process restarted under the same id gets
// its partitions back without a rebalance; a stopped static member does
// not leave, and its partitions wait for it up to the session timeout (a
// Deployment's pods get new names on a restart: it only helps with stable
// names). The stall each setting causes is measured by the fault suite's
// fleet cases (RELIABILITY.md, "Fleet").
//
// # Graceful shutdown (SIGTERM)
//
// Polling stops (no new batch is taken), in-flight batches get 10 s to
// finish, and the rest are interrupted and handed back: their answered
// tokens acked and their claims released (guard.Release), so the peer that
// gets the partition takes them over at once (sending only the unanswered
// tokens) instead of after the lease. The finished offsets are committed,
// then Close leaves the group (the revoke commits once more), which hands
// the partitions to the other members. ShutdownTimeout bounds the whole
// exit; the pods' terminationGracePeriodSeconds is longer. A SIGKILL skips
// all of it: the batches wait for their lease and the partitions for the
// session timeout.
//
// # Windows that remain
//
// The result record is written (and acknowledged) before guard.Done, so a
// crash between them leads to a takeover that re-sends nothing (the ack
// bitmap covers every answered token) and writes the result again; the
// report keeps one result per batch. Tokens answered by a crashed holder
// after its last Ack are
// re-sent by the taker-over; the collapse id makes them one notification on
// the phone.
package sender
