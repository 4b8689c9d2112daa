// Package guard is owlpost's Redis idempotency, and the only package that
// knows its key names (all under the configured prefix):
//
//	<p>:fire:{<campaign>}               the winning fire (JSON FireRecord), SET NX, never expires
//	<p>:abort:{<campaign>}              the first abort (JSON AbortRecord), SET NX, never expires
//	<p>:claim:{<batch key>:<fire id>}   the sender holding a batch, SET NX PX lease
//	<p>:tried:{<batch key>:<fire id>}   a batch was claimed at least once (detects a takeover)
//	<p>:acked:{<batch key>:<fire id>}   the batch's answered token indices, and which were invalid or rejected (Answers)
//	<p>:done:{<batch key>:<fire id>}    the batch is finished; later deliveries are skipped
//	<p>:rate:{<campaign>:<platform>}    token bucket for an optional global rate cap
//
// The braces are Redis Cluster hash tags: every key one script touches (a
// campaign's fire and abort; a batch-and-fire's claim, tried, acked and
// done) hashes to the same slot, so the scripts run unchanged on a
// standalone server, a Sentinel-managed primary (redis.mode sentinel; the
// client follows a failover) and a Redis Cluster (redis.mode cluster, where
// keys of several slots in one script would be refused with CROSSSLOT).
// Keys written by an owlpost before the hash tags are not read: upgrade
// between campaigns, not during one.
//
// Campaign guard: Fire is an atomic script: refused if the campaign was
// aborted, otherwise SET NX of the fire record. However many presses, one
// wins; every other press gets the winner back. Any Redis error fails closed:
// no fire.
//
// Batch guard: a sender Claims a batch (SET NX with a lease) before sending,
// Renews the lease while sending, records answered tokens with Ack and marks
// the batch Done. A delivery of a Done batch is skipped. A batch whose holder
// died is taken over when the lease expires (ClaimTakeover); the new holder
// skips the tokens the bitmap says were answered and re-sends only the rest,
// which is where a duplicate can happen: tokens accepted by the provider after
// the last Ack and before the crash. The campaign's collapse id makes such a
// duplicate show as one notification.
//
// Remaining windows, documented rather than hidden: a Redis failover with
// asynchronous replication can lose a just-written key (a fire record or a
// done mark), so a second fire or a re-send becomes possible in that window;
// run Redis with appendfsync always and a single primary for launch day if
// that matters more than latency. A sender paused (GC, network partition)
// longer than its lease can overlap with the taker-over; Renew reports the
// loss and the sender stops, but requests already in flight complete.
package guard
