package planner

import (
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// fastRecord is what the planner keeps of an audience record.
type fastRecord struct {
	platform push.Platform
	token    []byte // aliases the record value
	ios      [32]byte
	locale   []byte // aliases the record value
}

// fastAudience is an accelerator for wire.DecodeAudience, which costs 2-6 µs
// and up to 20 allocations per record through encoding/json: too slow for
// 4M records in seconds on two cores. It accepts only the plain shape the
// data team's tools write (exact lower-case field names, each once, string
// values without escapes, attrs absent, null or a flat object of plain
// strings, nothing after the object) and declines everything else, which
// the caller then hands to wire.DecodeAudience. It is sound, not complete:
// whenever it accepts, DecodeAudience accepts the same bytes with the same
// platform, token (iOS lower-cased) and locale; FuzzFastAudience checks that.
func fastAudience(data []byte, out *fastRecord) bool {
	if len(data) > wire.MaxAudienceRecordBytes {
		return false
	}
	var user, plat, tok, loc []byte
	var haveAttrs bool
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i++
	for {
		i = skipWS(data, i)
		key, j, ok := plainString(data, i)
		if !ok {
			return false
		}
		i = skipWS(data, j)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipWS(data, i+1)
		var dst *[]byte
		switch string(key) {
		case "user_id":
			dst = &user
		case "platform":
			dst = &plat
		case "token":
			dst = &tok
		case "locale":
			dst = &loc
		case "attrs":
			if haveAttrs {
				return false
			}
			haveAttrs = true
			if i, ok = skipAttrs(data, i); !ok {
				return false
			}
		default:
			return false
		}
		if dst != nil {
			if *dst != nil {
				return false // duplicate field
			}
			v, j, ok := plainString(data, i)
			if !ok || len(v) == 0 {
				return false
			}
			*dst, i = v, j
		}
		i = skipWS(data, i)
		if i >= len(data) {
			return false
		}
		if data[i] == ',' {
			i++
			continue
		}
		if data[i] != '}' {
			return false
		}
		if skipWS(data, i+1) != len(data) {
			return false
		}
		break
	}
	if user == nil || plat == nil || tok == nil || loc == nil {
		return false
	}
	for _, c := range loc {
		if c < 0x20 || c > 0x7e {
			return false // non-ASCII: let encoding/json decide how it decodes
		}
	}
	switch string(plat) {
	case "ios":
		if len(tok) != 64 {
			return false
		}
		for k := 0; k < 32; k++ {
			hi, ok1 := unhex(tok[2*k])
			lo, ok2 := unhex(tok[2*k+1])
			if !ok1 || !ok2 {
				return false
			}
			out.ios[k] = hi<<4 | lo
		}
		out.platform = push.IOS
	case "android":
		if len(tok) < 100 || len(tok) > 4096 {
			return false
		}
		for _, c := range tok {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-' || c == ':') {
				return false
			}
		}
		out.platform = push.Android
	default:
		return false
	}
	out.token, out.locale = tok, loc
	return true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at b[i] that has no escapes and no
// control characters, returning its content and the index after it.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, i, false
		}
	}
	return nil, i, false
}

// skipAttrs skips null or a flat object of plain strings.
func skipAttrs(b []byte, i int) (int, bool) {
	if len(b)-i >= 4 && string(b[i:i+4]) == "null" {
		return i + 4, true
	}
	if i >= len(b) || b[i] != '{' {
		return i, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		var ok bool
		if _, i, ok = plainString(b, skipWS(b, i)); !ok {
			return i, false
		}
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ':' {
			return i, false
		}
		if _, i, ok = plainString(b, skipWS(b, i+1)); !ok {
			return i, false
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
