package wire

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/owlpost/owlpost/internal/push"
)

// Errors returned by decoders. Callers route such records to a dead-letter
// path; they never panic on them.
var (
	ErrMagic   = errors.New("wire: not an owlpost batch record")
	ErrVersion = errors.New("wire: unknown schema version")
	ErrCorrupt = errors.New("wire: corrupt record")
)

const (
	batchMagic0   = 'O'
	batchMagic1   = 'B'
	batchVersion  = 1
	iosTokenBytes = 32
)

// Token is one device token of a batch with the index of its locale in the
// batch's locale table.
type Token struct {
	Token  string // iOS: 64 lower-case hex characters; Android: the FCM token
	Locale uint16 // index into Batch.Locales
}

// Batch is a planned batch of tokens of one campaign and platform.
type Batch struct {
	Campaign   string
	Platform   push.Platform
	Generation uint64
	Seq        uint32
	Locales    []string
	Tokens     []Token
}

// Key is the batch's deterministic record key.
func (b *Batch) Key() string { return BatchKey(b.Campaign, b.Platform, b.Seq) }

// BatchKey is the deterministic key of a batch: "<campaign>/<platform>/<seq>".
func BatchKey(campaign string, p push.Platform, seq uint32) string {
	return fmt.Sprintf("%s/%s/%06d", campaign, p, seq)
}

// ParseBatchKey splits a batch key; ok is false for any other key.
func ParseBatchKey(key string) (campaign string, p push.Platform, seq uint32, ok bool) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return "", "", 0, false
	}
	j := strings.LastIndexByte(key[:i], '/')
	if j < 0 {
		return "", "", 0, false
	}
	p = push.Platform(key[j+1 : i])
	if !p.Valid() {
		return "", "", 0, false
	}
	var n uint64
	for _, c := range key[i+1:] {
		if c < '0' || c > '9' || n > 1<<32 {
			return "", "", 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if i+1 == len(key) || n >= 1<<32 {
		return "", "", 0, false
	}
	return key[:j], p, uint32(n), true
}

// CampaignPrefix is the key prefix shared by all batches of a campaign.
func CampaignPrefix(campaign string) string { return campaign + "/" }

// EncodeBatch appends the binary form of b to dst.
func EncodeBatch(dst []byte, b *Batch) ([]byte, error) {
	var pb byte
	switch b.Platform {
	case push.IOS:
		pb = 1
	case push.Android:
		pb = 2
	default:
		return dst, fmt.Errorf("wire: encode batch %s: unknown platform %q", b.Key(), b.Platform)
	}
	dst = append(dst, batchMagic0, batchMagic1, batchVersion, pb)
	dst = appendString(dst, b.Campaign)
	dst = binary.AppendUvarint(dst, b.Generation)
	dst = binary.AppendUvarint(dst, uint64(b.Seq))
	dst = binary.AppendUvarint(dst, uint64(len(b.Locales)))
	for _, l := range b.Locales {
		dst = appendString(dst, l)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b.Tokens)))
	for _, t := range b.Tokens {
		if int(t.Locale) >= len(b.Locales) {
			return dst, fmt.Errorf("wire: encode batch %s: locale index %d out of range", b.Key(), t.Locale)
		}
		dst = binary.AppendUvarint(dst, uint64(t.Locale))
		if pb == 1 {
			if len(t.Token) != 2*iosTokenBytes {
				return dst, fmt.Errorf("wire: encode batch %s: ios token of length %d", b.Key(), len(t.Token))
			}
			var raw [iosTokenBytes]byte
			if _, err := hex.Decode(raw[:], []byte(t.Token)); err != nil {
				return dst, fmt.Errorf("wire: encode batch %s: ios token: %w", b.Key(), err)
			}
			dst = append(dst, raw[:]...)
		} else {
			dst = appendString(dst, t.Token)
		}
	}
	return dst, nil
}

// DecodeBatch parses a batch record. It never panics on bad input.
func DecodeBatch(data []byte) (*Batch, error) {
	if len(data) < 4 || data[0] != batchMagic0 || data[1] != batchMagic1 {
		return nil, ErrMagic
	}
	if data[2] != batchVersion {
		return nil, fmt.Errorf("%w: batch version %d", ErrVersion, data[2])
	}
	b := &Batch{}
	switch data[3] {
	case 1:
		b.Platform = push.IOS
	case 2:
		b.Platform = push.Android
	default:
		return nil, fmt.Errorf("%w: platform byte %d", ErrCorrupt, data[3])
	}
	r := reader{buf: data[4:]}
	b.Campaign = r.string()
	b.Generation = r.uvarint()
	seq := r.uvarint()
	if seq >= 1<<32 {
		r.fail()
	}
	b.Seq = uint32(seq)
	nl := r.count(1)
	if nl > 1<<16 {
		r.fail()
	}
	b.Locales = make([]string, 0, nl)
	for i := 0; i < nl && r.err == nil; i++ {
		b.Locales = append(b.Locales, r.string())
	}
	nt := r.count(2)
	b.Tokens = make([]Token, 0, nt)
	var hexbuf [2 * iosTokenBytes]byte
	for i := 0; i < nt && r.err == nil; i++ {
		li := r.uvarint()
		if li >= uint64(len(b.Locales)) {
			r.fail()
			break
		}
		var tok string
		if b.Platform == push.IOS {
			raw := r.bytes(iosTokenBytes)
			hex.Encode(hexbuf[:], raw)
			tok = string(hexbuf[:])
		} else {
			tok = r.string()
		}
		b.Tokens = append(b.Tokens, Token{Token: tok, Locale: uint16(li)})
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.buf) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.buf))
	}
	return b, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// reader is a sticky-error cursor over a byte slice.
type reader struct {
	buf []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = ErrCorrupt
	}
	r.buf = nil
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// count reads a length and checks it against what the remaining bytes could
// hold at minSize bytes per element, so a corrupt length cannot make us
// allocate gigabytes.
func (r *reader) count(minSize int) int {
	v := r.uvarint()
	if r.err != nil || v > uint64(len(r.buf)/minSize) {
		r.fail()
		return 0
	}
	return int(v)
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.buf) {
		r.fail()
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

func (r *reader) string() string {
	n := r.count(1)
	return string(r.bytes(n))
}

// EncodedSize is the length of EncodeBatch's output for b (b valid).
func EncodedSize(b *Batch) int {
	n := 4 + stringSize(b.Campaign) + uvarintSize(b.Generation) + uvarintSize(uint64(b.Seq)) +
		uvarintSize(uint64(len(b.Locales))) + uvarintSize(uint64(len(b.Tokens)))
	for _, l := range b.Locales {
		n += stringSize(l)
	}
	for _, t := range b.Tokens {
		n += uvarintSize(uint64(t.Locale))
		if b.Platform == push.IOS {
			n += iosTokenBytes
		} else {
			n += stringSize(t.Token)
		}
	}
	return n
}

func stringSize(s string) int { return uvarintSize(uint64(len(s))) + len(s) }

func uvarintSize(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}
