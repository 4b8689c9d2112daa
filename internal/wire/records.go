package wire

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/owlpost/owlpost/internal/push"
)

// Version is the schema version carried by every JSON value ("v").
const Version = 1

// Header keys.
const (
	HeaderFireID    = "owlpost-fire-id"  // send task: the winning fire id
	HeaderFiredAt   = "owlpost-fired-at" // send task: fire time, unix milliseconds
	HeaderDeadline  = "owlpost-deadline" // send task: no send after this, unix milliseconds
	HeaderKind      = "owlpost-kind"     // send task: KindFire or KindProof
	HeaderReason    = "owlpost-reject-reason"
	HeaderDetail    = "owlpost-reject-detail"
	HeaderSrcTopic  = "owlpost-source-topic"
	HeaderSrcPart   = "owlpost-source-partition"
	HeaderSrcOffset = "owlpost-source-offset"
	HeaderCampaign  = "owlpost-campaign"
)

// Send task kinds.
const (
	KindFire  = "fire"
	KindProof = "proof"
)

// Reject reasons (the owlpost-reject-reason header and the metrics label).
const (
	RejectBadJSON         = "bad_json"
	RejectUnknownPlatform = "unknown_platform"
	RejectBadToken        = "bad_token"
	RejectMissingField    = "missing_field"
	RejectTooLarge        = "too_large"
	RejectDuplicate       = "duplicate_token" // counted, not sent to rejects: duplicates are expected
)

// Normalisations: audience records the planner keeps after fixing their
// formatting, counted in the manifest (Manifest.Normalised) by these names.
const (
	// NormalisedLocale: a record without a locale gets the campaign's default.
	NormalisedLocale = "locale_defaulted"
	// NormalisedToken: a token with surrounding whitespace is trimmed.
	NormalisedToken = "token_trimmed"
)

// MaxAudienceRecordBytes bounds one audience record; larger ones are rejected.
const MaxAudienceRecordBytes = 16 << 10

// AudienceRecord is one device of the audience, produced by the data team.
type AudienceRecord struct {
	UserID   string            `json:"user_id"`
	Platform push.Platform     `json:"platform"`
	Token    string            `json:"token"`
	Locale   string            `json:"locale"`
	Attrs    map[string]string `json:"attrs,omitempty"`
	// Normalised lists what DecodeAudience fixed (Normalised* names); a
	// record it left without a locale takes the campaign's default.
	Normalised []string `json:"-"`
}

// Manifest describes one plan of a campaign so later stages can verify they
// hold all of it. Key: campaign id, in the plans topic.
type Manifest struct {
	V          int       `json:"v"`
	Campaign   string    `json:"campaign"`
	Generation uint64    `json:"generation"`
	PlannedAt  time.Time `json:"planned_at"`
	PlannedBy  string    `json:"planned_by,omitempty"`
	// Partitions of the batches topic when planned (Assign depends on it).
	Partitions int32 `json:"partitions"`
	// Batch and token counts per platform.
	IOSBatches     uint32 `json:"ios_batches"`
	AndroidBatches uint32 `json:"android_batches"`
	IOSTokens      uint64 `json:"ios_tokens"`
	AndroidTokens  uint64 `json:"android_tokens"`
	// PerPartition[i] holds partition i's counts.
	PerPartition []PartitionCount `json:"per_partition"`
	// Checksum is PlanChecksum over every batch key and token count.
	Checksum string `json:"checksum"`
	// Audience snapshot that was planned and what was left out.
	AudienceTopic   string           `json:"audience_topic"`
	AudienceRecords uint64           `json:"audience_records"`
	Rejected        map[string]int64 `json:"rejected,omitempty"`
	// Normalised counts records kept after a fix, by Normalised* name (a
	// record may count under both).
	Normalised       map[string]int64 `json:"normalised,omitempty"`
	DuplicateTokens  uint64           `json:"duplicate_tokens"`
	BatchSizeIOS     int              `json:"batch_size_ios"`
	BatchSizeAndroid int              `json:"batch_size_android"`
	// AudienceEnds are the audience topic's read_committed end offsets per
	// partition that this plan read up to: the snapshot a rehearsal of the
	// campaign plans again.
	AudienceEnds map[int32]int64 `json:"audience_ends,omitempty"`
	// Sample is the fraction of the snapshot's tokens planned (a rehearsal
	// sent to a sample); 0 means all of them.
	Sample float64 `json:"sample,omitempty"`
}

// PartitionCount is a manifest's per-partition expectation.
type PartitionCount struct {
	Batches uint32 `json:"batches"`
	Tokens  uint64 `json:"tokens"`
}

// Tokens is the plan's total token count.
func (m *Manifest) Tokens() uint64 { return m.IOSTokens + m.AndroidTokens }

// Batches is the plan's total batch count.
func (m *Manifest) Batches() uint32 { return m.IOSBatches + m.AndroidBatches }

// Control record types.
const (
	ControlPlan    = "plan"
	ControlPrepare = "prepare"
	ControlProof   = "proof"
	ControlFire    = "fire"
	ControlAbort   = "abort"
	// ControlDefine and ControlRefused are audit records only (a definition
	// stored, a press of GO refused); the stages ignore them.
	ControlDefine  = "define"
	ControlRefused = "refused"
)

// Control is a request to the stages (the trigger record is Type "fire") and
// the audit log of who did what. Key: campaign id; one partition, so every
// reader sees requests in order.
type Control struct {
	V        int       `json:"v"`
	Type     string    `json:"type"`
	Campaign string    `json:"campaign"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	// FireID identifies the winning fire (Type fire) or a proof run.
	FireID string `json:"fire_id,omitempty"`
	// Force records an operator override (fire without full readiness).
	Force bool `json:"force,omitempty"`
	// Verified (Type fire): published by the control service after the
	// guard confirmed this fire id as the winner (on the replicas it asks
	// for). The campaign's first verified fire record is its fire for good,
	// whatever Redis later holds (catalog.FirstFire).
	Verified bool `json:"verified,omitempty"`
	// Deadline is the send deadline of a fire (fire time + campaign deadline).
	Deadline time.Time `json:"deadline,omitzero"`
	Note     string    `json:"note,omitempty"`
}

// Status roles.
const (
	RolePlanner       = "planner"
	RoleFanout        = "fanout"
	RoleSenderIOS     = "sender-ios"
	RoleSenderAndroid = "sender-android"
)

// State is the state an instance reports in a Status record. Every value
// any stage writes is one of the constants below.
type State string

const (
	// StateLoading: a fanout is still reading an owned partition; a sender
	// is still warming its connections.
	StateLoading State = "loading"
	// StateReady: a fanout holds and verified every owned partition; a
	// sender's connections are warm; a planner is waiting for work.
	StateReady State = "ready"
	// StateError: the instance cannot do its part; Status.Error says why.
	StateError State = "error"
	// StateIdle: a fanout owns no batches-topic partition.
	StateIdle State = "idle"
	// StateReleasing and StateReleased: a fanout (or a release marker) is
	// releasing a fire's batches, or has released all it holds.
	StateReleasing State = "releasing"
	StateReleased  State = "released"
	// StateAborted: the campaign was aborted before the fanout released it.
	StateAborted State = "aborted"
	// StateStopped: the instance shut down cleanly.
	StateStopped State = "stopped"
	// StatePlanning and StatePlanned: a planner is planning the campaign,
	// or wrote its manifest.
	StatePlanning State = "planning"
	StatePlanned  State = "planned"
)

// Status is one instance's readiness or progress report for a campaign
// (campaign "" = the instance in general). Key: StatusKey.
type Status struct {
	V        int       `json:"v"`
	Campaign string    `json:"campaign"`
	Role     string    `json:"role"`
	Instance string    `json:"instance"`
	State    State     `json:"state"`
	At       time.Time `json:"at"`
	// Fanout: what it holds for the campaign, and whether it matches the manifest.
	Generation    uint64  `json:"generation,omitempty"`
	Partitions    []int32 `json:"partitions,omitempty"`
	Batches       uint32  `json:"batches,omitempty"`
	Tokens        uint64  `json:"tokens,omitempty"`
	ManifestMatch bool    `json:"manifest_match,omitempty"`
	Released      uint32  `json:"released,omitempty"`
	// Sender: connections warm.
	Connected bool   `json:"connected,omitempty"`
	Error     string `json:"error,omitempty"`
}

// StatusKey is "<campaign>/<role>/<instance>".
func StatusKey(campaign, role, instance string) string {
	return campaign + "/" + role + "/" + instance
}

// Result is a sender's account of one batch. Key: batch key.
type Result struct {
	V          int           `json:"v"`
	Campaign   string        `json:"campaign"`
	Platform   push.Platform `json:"platform"`
	Seq        uint32        `json:"seq"`
	Generation uint64        `json:"generation"`
	FireID     string        `json:"fire_id"`
	Kind       string        `json:"kind"`
	Sender     string        `json:"sender"`
	Tokens     int           `json:"tokens"`
	Accepted   int           `json:"accepted"`
	Invalid    int           `json:"invalid"`
	Failed     int           `json:"failed"`
	Expired    int           `json:"expired"`
	Aborted    int           `json:"aborted"`
	Retries    int           `json:"retries"`
	// Skipped is true when the batch guard said the batch was already done.
	Skipped bool `json:"skipped,omitempty"`
	// Resent counts tokens sent again after taking over an expired claim.
	Resent int `json:"resent,omitempty"`
	// Errors by provider reason (invalid, failed, retried).
	Reasons map[string]int `json:"reasons,omitempty"`
	FiredAt time.Time      `json:"fired_at"`
	// ReleasedAt is the send task's record timestamp (when the fanout
	// released the batch); StartedAt - ReleasedAt is the time it waited in
	// the send topic (consumer lag, in time).
	ReleasedAt time.Time `json:"released_at,omitzero"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// AcceptedMS holds, for every accepted token, the milliseconds from fire
	// to the provider's acceptance: the exact time-from-fire distribution,
	// not a sample.
	AcceptedMS []uint32 `json:"accepted_ms,omitempty"`
}

// Feedback reports a token a provider declared invalid. Key: the token.
type Feedback struct {
	V        int           `json:"v"`
	Token    string        `json:"token"`
	Platform push.Platform `json:"platform"`
	Reason   string        `json:"reason"`
	Campaign string        `json:"campaign"`
	At       time.Time     `json:"at"`
}

// Encode marshals a JSON value record, stamping the schema version.
func Encode(v any) ([]byte, error) {
	switch r := v.(type) {
	case *Manifest:
		r.V = Version
	case *Control:
		r.V = Version
	case *Status:
		r.V = Version
	case *Result:
		r.V = Version
	case *Feedback:
		r.V = Version
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %T: %w", v, err)
	}
	return b, nil
}

// Decode unmarshals a JSON value record into v and checks its version.
func Decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %T: %v", ErrCorrupt, v, err)
	}
	var ver int
	switch r := v.(type) {
	case *Manifest:
		ver = r.V
	case *Control:
		ver = r.V
	case *Status:
		ver = r.V
	case *Result:
		ver = r.V
	case *Feedback:
		ver = r.V
	default:
		return nil
	}
	if ver != Version {
		return fmt.Errorf("%w: %T v=%d", ErrVersion, v, ver)
	}
	return nil
}

// Fire is what the fanout stamps on every send task.
type Fire struct {
	ID       string
	Kind     string
	FiredAt  time.Time
	Deadline time.Time
}

// Header is a record header, kept free of the Kafka client types.
type Header struct {
	Key   string
	Value []byte
}

// FireHeaders returns the headers of a send task.
func FireHeaders(f Fire) []Header {
	return []Header{
		{HeaderFireID, []byte(f.ID)},
		{HeaderKind, []byte(f.Kind)},
		{HeaderFiredAt, strconv.AppendInt(nil, f.FiredAt.UnixMilli(), 10)},
		{HeaderDeadline, strconv.AppendInt(nil, f.Deadline.UnixMilli(), 10)},
	}
}

// ParseFireHeaders reads the fire headers of a send task.
func ParseFireHeaders(hs []Header) (Fire, error) {
	var f Fire
	var have int
	for _, h := range hs {
		switch h.Key {
		case HeaderFireID:
			f.ID = string(h.Value)
			have |= 1
		case HeaderKind:
			f.Kind = string(h.Value)
			have |= 2
		case HeaderFiredAt, HeaderDeadline:
			ms, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				return f, fmt.Errorf("%w: header %s: %v", ErrCorrupt, h.Key, err)
			}
			if h.Key == HeaderFiredAt {
				f.FiredAt = time.UnixMilli(ms)
				have |= 4
			} else {
				f.Deadline = time.UnixMilli(ms)
				have |= 8
			}
		}
	}
	if have != 15 || f.ID == "" {
		return f, fmt.Errorf("%w: send task lacks fire headers", ErrCorrupt)
	}
	if f.Kind != KindFire && f.Kind != KindProof {
		return f, fmt.Errorf("%w: send task kind %q", ErrCorrupt, f.Kind)
	}
	return f, nil
}

// RejectHeaders returns the headers of a rejected record.
func RejectHeaders(reason, detail, campaign, srcTopic string, srcPartition int32, srcOffset int64) []Header {
	return []Header{
		{HeaderReason, []byte(reason)},
		{HeaderDetail, []byte(detail)},
		{HeaderCampaign, []byte(campaign)},
		{HeaderSrcTopic, []byte(srcTopic)},
		{HeaderSrcPart, strconv.AppendInt(nil, int64(srcPartition), 10)},
		{HeaderSrcOffset, strconv.AppendInt(nil, srcOffset, 10)},
	}
}
