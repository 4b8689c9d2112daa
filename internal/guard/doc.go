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
// Confirmed fires: Redis replicates asynchronously, so a failover right
// after a press can promote a replica without the fire record. Fire
// therefore confirms the winner on redis.fire_replicas replicas (WAIT, at
// most redis.fire_replica_timeout; default 1 replica in sentinel and cluster
// mode, 0 standalone) before the press is answered and its trigger
// published; a losing press writes the winner back unchanged so that its
// own WAIT confirms the winner too. When not enough replicas answer (a
// launch with every replica down) the press fails closed with
// ErrNotConfirmed: nothing is published, the record stays, and the next
// press once a replica is back confirms and announces that same winner.
// Set redis.fire_replicas=0 to fire without a replica, accepting that a
// failover in that moment can lose the record.
//
// A lost fire record is not a second fire: the control service publishes a
// trigger only after the confirmation, marked verified, and the first
// verified fire record in the control log is the campaign's fire for good
// (catalog.FirstFire). A press that wins a guard which lost the record is
// answered with that first fire, which Restore writes back (marked
// Restored); the fanout never releases a later fire id.
//
// Remaining windows, documented rather than hidden: a failover can still
// lose done marks and acked bitmaps (they are not confirmed on replicas:
// that would cost a WAIT per batch); a sender that then receives a batch
// again (a consumer-group offset reset) re-sends what the lost marks
// covered, unless the fire record was lost as well: then the sender sees
// the loss and takes the finished batches from the results topic (see the
// sender package). A sender
// paused (GC, network partition) longer than its lease can overlap with the
// taker-over; Renew reports the loss and the sender stops, but requests
// already in flight complete.
package guard
