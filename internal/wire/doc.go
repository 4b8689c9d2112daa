// Package wire is the Kafka contract of owlpost, in one place: every topic's
// role, key, value schema and headers, the schema version, and the encoders
// and decoders. Nothing else in the project builds or parses record bytes.
//
// Schema version: every JSON value carries "v": 1; binary values start with a
// two-byte magic and a version byte. Decoders refuse versions they do not know
// with ErrVersion so a mixed fleet fails loudly, not silently.
//
// # Topics (default names; see config.TopicsConfig)
//
//	topic                 cleanup  key                         value
//	owlpost.campaigns     compact  campaign id                 campaign definition, canonical JSON (package campaign)
//	owlpost.plans         compact  campaign id                 Manifest (JSON): generation, counts per partition/platform, checksum, audience end offsets read
//	owlpost.batches       compact  BatchKey "c/ios/000042"     Batch (binary, below); tombstone = removed by a re-plan
//	owlpost.control       delete   campaign id                 Control (JSON): plan, prepare, proof, fire, abort requests; define, refused audit lines; the audit log
//	owlpost.status        compact  StatusKey "c/role/instance" Status (JSON): readiness and progress per instance; State is one of the State constants
//	owlpost.send.ios      delete   BatchKey                    Batch bytes as in owlpost.batches + Fire headers (a send task)
//	owlpost.send.android  delete   BatchKey                    same, Android
//	owlpost.results       delete   BatchKey                    Result (JSON): counts by outcome, accept offsets from fire, released/started/finished times
//	owlpost.feedback      compact  device token                Feedback (JSON): invalid token reported by a provider
//	owlpost.rejects       delete   original key                original bytes; headers owlpost-reject-reason, -source-*
//	audience topic(s)     any      anything (user id advised)  AudienceRecord (JSON), written by the data team
//
// # Audience records
//
// One JSON object per record, so any tool can produce them, e.g. with kcat:
//
//	echo 'u1:{"user_id":"u1","platform":"ios","token":"<64 hex>","locale":"en-US","attrs":{"city":"Miami"}}' |
//	  kcat -P -b 127.0.0.1:9092 -t audience.superbowl -K:
//
// platform is "ios" or "android"; an iOS token is 64 hex characters (any case;
// planned lower-case); an Android (FCM) token is 100 to 4096 characters of
// [A-Za-z0-9_:-]. user_id is required. Formatting is fixed rather than
// rejected, and counted in the manifest's "normalised" (Normalised*): a
// missing or blank locale becomes the campaign's default locale, and
// whitespace around a token is trimmed. Anything else is rejected to the
// rejects topic with a reason (Reject*) and the original bytes.
//
// # Batch records
//
// A batch is the unit of planning, release, claim and result: up to 500 iOS or
// 250 Android tokens of one campaign and platform. It is binary because it is
// the bulk of the data and of the hot path:
//
//	"OB" 0x01                  magic and version
//	platform byte              1 = ios, 2 = android
//	uvarint len + campaign id
//	uvarint generation, uvarint seq
//	uvarint n + n × (uvarint len + locale)   locale table
//	uvarint count, then per token: uvarint locale index, token
//	  ios: 32 raw bytes (the 64 hex characters decoded)
//	  android: uvarint len + bytes
//
// Measured (go test -v -run BatchSize ./internal/wire): 500 iOS tokens with 4
// locales encode to 16,548 bytes (as JSON lines with the locale per token
// they would be about 40 KB: 64 hex characters plus field names per token);
// 250 Android tokens of 163 characters to 41,548 bytes (FCM tokens are
// random text, so only the framing can be saved). A plan of 4M tokens (60%
// iOS) is about 79 MB of iOS batches and 266 MB of Android batches.
//
// A send task is the same bytes, copied verbatim from the batches topic to the
// platform's send topic by the fanout, plus the fire headers (HeaderFireID,
// HeaderFiredAt, HeaderDeadline, HeaderKind). Not re-encoding is what makes
// release cheap.
//
// # Keys and partitions
//
// BatchKey is deterministic ("<campaign>/<platform>/<seq, 6 digits>") and the
// planner chooses the batches topic partition itself (Assign), so a re-plan
// overwrites the same keys in the same partitions and tombstones the rest.
// Assign spreads batches round-robin, Android continuing where iOS stopped,
// so partition token counts differ by at most one batch.
package wire
