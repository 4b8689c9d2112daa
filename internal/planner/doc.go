// Package planner is the planning stage: days before a campaign fires it
// turns the campaign's audience topic into pre-partitioned batch records of
// the compacted batches topic plus a manifest, so that on game day the
// fanout only has to load and release them.
//
// One plan (Stage.Plan, or a wire.Control{Type: plan} record in service mode,
// Stage.Run):
//
//  1. reads the campaign from the catalog and the previous manifest, if any;
//  2. takes the audience topic's read_committed end offsets and reads every
//     partition from the start up to them, in parallel (kafka.ReadSnapshot),
//     decoding in the per-partition goroutines;
//  3. sends every malformed record, with its original key and bytes, to the
//     rejects topic with the reason in the headers (wire.RejectHeaders), and
//     counts it; a bad record never stops a plan;
//  4. drops duplicate tokens (per platform; iOS tokens compare
//     case-insensitively), keeping the record with the lowest (partition,
//     offset), so re-planning the same audience yields the same batches;
//  5. cuts the tokens, in (partition, offset) order, into batches of
//     planner.ios_batch_size / android_batch_size, each with its own locale
//     table, keyed wire.BatchKey and written to the partition wire.Assign
//     chooses, so partition token counts differ by at most one batch;
//  6. writes a tombstone for every batch of the previous plan that is not
//     overwritten at the same key and partition;
//  7. writes the manifest (counts per platform and partition, PlanHash
//     checksum over the exact batch record values, rejects by reason,
//     duplicates) to the plans topic, last.
//
// Steps 3 to 7 form ONE Kafka transaction, so read_committed readers (the
// fanout, owlctl) see the old plan or the new one, never half a plan; an
// aborted plan leaves no rejects either. The transactional id is one per
// campaign, so a second planner of the same campaign fences the first.
// Kafka answers the commit before its markers are written, so Plan returns
// only once every partition it wrote is readable read_committed
// (kafka.Written.WaitReadable, at most 10 s, then a warning): a prepare
// issued right after Plan finds the whole plan.
//
// Decoding uses a strict fast path for the plain JSON shape data tools write
// (fastAudience) and falls back to wire.DecodeAudience for anything else;
// the fast path only ever accepts what DecodeAudience accepts, with the same
// result (checked by a fuzz test).
package planner
