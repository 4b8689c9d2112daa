// Package catalog reads and writes the two small compacted topics that
// describe campaigns: owlpost.campaigns (definitions) and owlpost.plans
// (plan manifests). Reads take a consistent snapshot of the topic up to its
// end offsets at call time, so a definition written before the call is
// always seen; the topics are small (one record per campaign after
// compaction), so reading them whole is cheap.
package catalog
