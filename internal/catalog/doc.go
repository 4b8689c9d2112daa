// Package catalog reads and writes the two small compacted topics that
// describe campaigns: owlpost.campaigns (definitions) and owlpost.plans
// (plan manifests). Reads take a consistent snapshot of the topic up to its
// end offsets at call time, so a definition written before the call is
// always seen; the topics are small (one record per campaign after
// compaction), so reading them whole is cheap.
//
// CreateCampaign is the only conditional write: it refuses an id that
// exists, atomic against concurrent creators through transactional fencing
// on a per-id transactional id (see its doc), and returns once the new
// definition is readable. PutCampaign (update) and PutManifest overwrite.
//
// FirstFire reads the control topic (the audit log) for a campaign's first
// verified fire record: the durable winner of GO, which the control service,
// the fanout and the senders follow when the Redis guard has lost its copy.
package catalog
