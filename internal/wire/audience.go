package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/owlpost/owlpost/internal/push"
)

// AudienceError says why an audience record was rejected; Reason is one of
// the Reject* constants.
type AudienceError struct {
	Reason string
	Detail string
}

func (e *AudienceError) Error() string { return "audience record: " + e.Reason + ": " + e.Detail }

// DecodeAudience parses and validates one audience record. iOS tokens are
// returned lower-cased so duplicates in another case are found. Formatting
// the data team's tools get wrong is fixed rather than rejected, and listed
// in Normalised: a token with surrounding whitespace is trimmed, and a
// record without a locale is returned with Locale "" (the planner gives it
// the campaign's default locale). On failure it returns an *AudienceError.
func DecodeAudience(data []byte) (AudienceRecord, error) {
	var r AudienceRecord
	if len(data) > MaxAudienceRecordBytes {
		return r, &AudienceError{RejectTooLarge, fmt.Sprintf("%d bytes > %d", len(data), MaxAudienceRecordBytes)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return r, &AudienceError{RejectBadJSON, err.Error()}
	}
	if dec.More() {
		return r, &AudienceError{RejectBadJSON, "trailing data after the JSON object"}
	}
	if t := strings.TrimSpace(r.Token); t != r.Token && t != "" {
		r.Token = t
		r.Normalised = append(r.Normalised, NormalisedToken)
	}
	if strings.TrimSpace(r.Locale) == "" {
		r.Locale = ""
		r.Normalised = append(r.Normalised, NormalisedLocale)
	}
	switch {
	case r.UserID == "":
		return r, &AudienceError{RejectMissingField, "user_id"}
	case r.Platform == "":
		return r, &AudienceError{RejectMissingField, "platform"}
	case strings.TrimSpace(r.Token) == "":
		return r, &AudienceError{RejectMissingField, "token"}
	}
	r.Platform = push.Platform(strings.ToLower(string(r.Platform)))
	if !r.Platform.Valid() {
		return r, &AudienceError{RejectUnknownPlatform, fmt.Sprintf("%q", r.Platform)}
	}
	if err := push.ValidToken(r.Platform, r.Token); err != nil {
		return r, &AudienceError{RejectBadToken, err.Error()}
	}
	if r.Platform == push.IOS {
		r.Token = strings.ToLower(r.Token)
	}
	return r, nil
}

// EncodeAudience is the data team's side, used by the synthetic generator.
func EncodeAudience(r *AudienceRecord) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("wire: encode audience: %w", err)
	}
	return b, nil
}
