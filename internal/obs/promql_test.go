package obs

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// promqlKeywords are identifiers of PromQL that are not series names.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "start": true, "end": true,
	"inf": true, "nan": true, "atan2": true,
}

var (
	// Label lists of grouping and vector-matching clauses: by (a, b).
	reClause = regexp.MustCompile(`(?i)\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	reString = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	reVar    = regexp.MustCompile(`\$\{?[A-Za-z0-9_]+\}?`) // Grafana variables: $__rate_interval, ${job}
)

// metricNames returns the series names a PromQL expression selects: the
// identifiers left after removing strings, label matchers, ranges and
// subqueries, grouping clauses, Grafana variables, function calls,
// keywords and numbers. Good enough for dashboards and alert rules; it is
// not a parser.
func metricNames(expr string) []string {
	s := reString.ReplaceAllString(expr, `""`)
	s = reVar.ReplaceAllString(s, " ")
	s = reClause.ReplaceAllString(s, " ")
	s = dropBracketed(s, '{', '}')
	s = dropBracketed(s, '[', ']')
	var names []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r') {
				k++
			}
			call := k < len(s) && s[k] == '('
			if !call && !promqlKeywords[strings.ToLower(word)] && !slices.Contains(names, word) {
				names = append(names, word)
			}
			i = j
		case c >= '0' && c <= '9' || c == '.':
			// A number or duration (1e-9, 0x1f, 5m): skip its letters too.
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.') {
				i++
			}
		default:
			i++
		}
	}
	return names
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// dropBracketed removes every open...close span (not nested in PromQL).
func dropBracketed(s string, open, close byte) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == open:
			depth++
		case s[i] == close && depth > 0:
			depth--
			b.WriteByte(' ')
		case depth == 0:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`owlpost_stage_ready`, []string{"owlpost_stage_ready"}},
		{`sum by (platform, outcome) (rate(owlpost_sender_notifications_total{outcome!~"accepted|invalid"}[30s]))`,
			[]string{"owlpost_sender_notifications_total"}},
		{`histogram_quantile(0.95, sum by (le) (rate(owlpost_sender_time_from_fire_seconds_bucket[$__rate_interval]))) > 3.9`,
			[]string{"owlpost_sender_time_from_fire_seconds_bucket"}},
		{"a_total / clamp_min(sum(rate(b_total[2m])) without (x), 1e-9) > bool 0.05 and on (job) up == 0",
			[]string{"a_total", "b_total", "up"}},
		{`sum(delta(lag{group=~".*sender.*", topic="by (x)"}[1m] offset 5m)) by (group) unless ignoring(le) c:rule:rate5m`,
			[]string{"lag", "c:rule:rate5m"}},
		{`max_over_time(x[10m:1m]) * on(instance) group_left(stage) y`, []string{"x", "y"}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
				t.Fatalf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
			}
		})
	}
}
