// Package fanout is the stage between the plan and the senders: it holds a
// campaign's batch records in memory before GO and, on the trigger, streams
// them verbatim to the per-platform send topics, exactly once.
//
// # Who owns what: a consumer group without consumption
//
// The instances form the consumer group fanout.group on the batches topic.
// Group membership is used only to divide the batches-topic partitions
// between live instances (OnPartitionsAssigned / Revoked / Lost) and to move
// a dead instance's partitions to the others after the session timeout
// (10 s); an instance stopped with SIGTERM leaves the group, and the others
// take its partitions at their next heartbeat (every 0.5 s). Nothing is
// consumed through the group and no offset is committed: the batches topic
// is a compacted store of plans written days ahead, where
// one campaign's batches sit anywhere among other campaigns' records and
// tombstones. What an instance needs is "the latest value of every key of
// campaign C in partition p", which is a snapshot (kafka.ReadSnapshot,
// read_committed, up to the end offset taken when the load starts), not a
// position in a stream; a committed offset would say nothing about which of
// C's batches were released. Release progress is tracked by progress
// markers instead (below).
//
// # Control topic
//
// Every instance reads every partition of the control topic directly (no
// group) from the start, read_committed, with a 100 ms fetch wait (the broker
// answers a waiting fetch as soon as a record arrives, so the wait does not
// add latency; see the trigger latency measured in the tests). Records up to
// the end offsets taken at start-up are replayed to rebuild what is
// prepared, fired, proofed and aborted; work is scheduled only after the
// replay, so a restart does not load every campaign it ever saw.
//
// # Prepare
//
// On Control prepare C (and, for campaigns already prepared or fired, when
// a partition is assigned), each owned partition is loaded: the campaign's
// current manifest (catalog.Manifest), a snapshot of the partition keeping
// the records with key prefix "C/" (latest value per key, tombstones
// delete), copied out of the fetch buffers and kept as raw bytes: release
// copies them to the send topics without decoding. Each record is decoded
// once at load to verify it: campaign, platform and seq agree with the key,
// the generation is the manifest's, the seq is inside the plan and
// wire.Assign puts it in this partition; then the partition's batch and
// token counts are compared with the manifest's. When one instance holds
// every partition it also recomputes the plan checksum (wire.PlanHash over
// the exact record values). Records failing a check are not held and the
// instance reports the problems. Readiness is published to the status topic
// as wire.Status{Role: fanout, State: loading|ready|error|idle, Generation,
// Partitions, Batches, Tokens, ManifestMatch}, re-published every 5 s while
// the campaign is held (the heartbeat: a record older than a few heartbeats
// means the instance is gone), and as wire.StateStopped on a clean exit. Ready
// (for /readyz) is true once the control topic is replayed and every
// prepared campaign is held and verified.
//
// # Fire: a verified trigger only
//
// A Control fire record is acted on only after its fire id was checked
// against the winner recorded by the Redis guard (guard.FireOf) and the
// campaign was checked not aborted (guard.Aborted; both asked at once, so
// the check costs one Redis round trip, not two). If Redis does not answer
// the check is retried with backoff, for as long as it takes: nothing is
// released on an unverified trigger. Any other fire id is ignored and
// counted (owlpost_fanout_triggers_ignored_total{reason="not_winner"}); the
// winner's record published again by later presses is counted as
// "duplicate" and changes nothing. The campaign's first verified fire record
// in the control log (wire.Control.Verified: published after the guard
// confirmed it) is the only fire id ever verified after it: if Redis lost
// the fire record (a failover to a replica without it, a flush) and a later
// press won the emptied guard, that press's fire id is ignored, also by an
// instance restarted afterwards (it replays the log from the start). While
// the guard lacks the first fire, a restarted instance counts it
// "no_fire_record" and waits; the next press restores the record from the
// log and publishes it again (control.Service.Fire), which releases it.
//
// # Release, exactly once: a transactional id per partition
//
// Each owned batches-topic partition has its own transactional producer,
// transactional id fanout.transactional_id + "-p<partition>". Kafka
// transactions are the natural tool because the thing to make atomic is a
// write to Kafka: "these send tasks" together with "how far this partition
// got". Keying the transactional id by partition, not by instance, is what
// makes a takeover safe: when a partition moves, the new owner initialises
// the same transactional id, the broker bumps its epoch, aborts (or
// completes) the previous owner's open transaction and rejects anything the
// previous owner still tries to commit (zombie fencing). The producer is
// initialised when the partition is assigned, long before GO, so the fire
// path has no InitProducerID round trip and the fencing happens early; its
// metadata of the send and status topics is loaded then too (primeProducer),
// so the fire's first transaction has no metadata round trip either.
//
// A partition's held batches are released in chunks, one transaction per
// chunk: 1 batch first (the smallest produce request, so the first send task
// reaches the senders soonest), then doubling up to 256 batches or 8 MiB. The order
// (releaseOrder, the order the progress marker counts in) interleaves the
// platforms: iOS batches by seq and Android batches by seq, merged in
// proportion to their counts (the i-th of nI iOS batches at (2i+1)/(2nI),
// the a-th of nA Android batches at (2a+1)/(2nA), smaller first, iOS first
// on a tie). It is a function of the held set alone, so a partition's next
// owner counts the same way. Key order would put every Android batch of a
// partition ahead of its first iOS batch and leave the iOS senders idle for
// seconds of a big release. The marker does not say which order it counts
// in, so a change of this order needs a release interrupted mid rolling
// upgrade to be finished by instances of one order. Send tasks are produced
// uncompressed: device tokens are random hex or base64, which snappy leaves
// at 100.0% of their size, so compressing would only cost CPU in the
// fanout, the broker and the senders. With fanout.release_pace set, a
// release is spread over time instead: one batch per transaction, the
// transactions of a partition at least the pace apart. The chunk sizes were chosen by
// measurement; TestReleaseThroughput and TestTriggerLatency (-v) print the
// release rate and the trigger latency, and BENCHMARKS.md has the figures.
// Each transaction also writes the progress marker of the partition to the status
// topic, key MarkerKey = "C/release/F/p<partition>", value a wire.Status
// with Role "release" and Released = batches committed so far. Records and
// marker commit or abort together, so the marker is exactly the number of
// send tasks of that partition a read_committed reader will ever see. (The
// senders read uncommitted, for latency; they may also see the send tasks of
// an aborted transaction, which the batch guard then deduplicates: see the
// sender package.) The new owner of a partition reads the markers (read_committed)
// after its producer initialisation has settled the previous owner's
// transaction, and continues after the marker; the held batches are the same
// because the plan (generation and counts, checked against the marker) is.
// After a failed transaction the release goes on with a new producer (see
// below), from the markers read again: a commit whose outcome was unknown
// may have landed.
//
// This is the consume-transform-produce pattern with the consumed position
// replaced by the marker; committing batches-topic offsets in the
// transaction (GroupTransactSession) would tie the transactional id to the
// instance, which cannot fence a dead instance's successor per partition,
// and would make release depend on consuming the partition at GO instead of
// holding it.
//
// A failed release transaction is never retried on the same producer.
// franz-go's in-place recovery (abort, then a KIP-360 epoch bump) can report
// an abort that never reached the coordinator when the coordinator is
// unreachable, and the next transaction at the same epoch then commits the
// failed attempt's send tasks with its own (seen on the cluster stack with a
// broker partitioned away: two copies of a chunk committed by one epoch). A fence
// does not always mean the partition moved either: the transaction
// coordinator aborts a transaction left open longer than the transaction
// timeout (10 s: a coordinator failing over, a broker cut off
// mid-transaction) and bumps the producer's epoch exactly as a new owner's
// initialisation would, and under transaction.version 2 that producer can
// never write again. So after any failed transaction the instance asks the
// group coordinator who owns the partition in the group's current, stable
// generation: if it still does, it starts a new producer with the same
// transactional id (a fresh InitProducerID, which aborts what the old one
// left open), reads the markers again and goes on after the last committed
// chunk; if not, it waits for the revocation and writes nothing. A move
// racing with that renewal costs one chunk's transaction on one side, never
// a second release: whichever epoch commits read the markers after every
// earlier epoch was settled. The markers are read up to the status topic's
// high watermarks (read_committed), not its last stable offsets, so another
// partition's open transaction cannot hide a marker committed after it
// opened. Each step of a partition's initialisation (the InitProducerID, the
// markers' read) gives up after initTimeout (30 s) and says where it
// stopped; the retry starts with a new producer under the same id.
//
// Windows that remain: a killed instance's open transaction stays open until
// its partitions' new owner initialises (at most the session timeout, 10 s)
// or the transaction timeout (10 s) passes; until then read_committed
// readers do not read past it on the send-topic partitions it touched (the
// senders, reading uncommitted, are not held up).
//
// Warm before GO: each partition's producer is initialised at assignment, and
// while idle its worker re-opens the produce connection every 2 s
// (EnsureProduceConnectionIsOpen; connections idle for 9 minutes are reaped,
// below the broker's 10), so the trigger's path has no dial and no
// ApiVersions round trip. The send topics' metadata is still loaded at the
// first release after a start (one Metadata round trip): franz-go loads a
// producing topic's metadata only when a record for it is produced.
//
// Send tasks carry wire.FireHeaders(Fire{ID, Kind: fire, FiredAt: the
// trigger's At, Deadline: its Deadline}). Metrics: trigger_seconds (trigger
// record timestamp to this instance's first committed send task) and
// release_seconds (fire time to a partition fully released). A released
// partition's batches are dropped from memory.
//
// # Proof
//
// Control proof C with FireID P is handled by the owner of partition 0: it
// builds batches from the campaign's proof audience (generation 0, seq from
// 0, one per platform) and releases them on partition 0's transactional path
// with Kind proof and marker key "C/release/P/p0". Only proof devices; it
// never counts as the fire. Requests older than ProofMaxAge are dropped.
//
// # Abort
//
// Control abort C (or an abort found in the guard while verifying a fire):
// releases of C stop at the next chunk boundary, C's held batches are
// dropped and the status becomes aborted. Later triggers are ignored.
package fanout
