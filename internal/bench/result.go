package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// Metric is one measured figure of one round.
type Metric struct {
	Key   string // "raw.apns.rate"
	Unit  string // "notif/s"
	Value float64
}

// Metrics is what one phase run measured, in display order.
type Metrics []Metric

// Add appends a metric.
func (m *Metrics) Add(key, unit string, v float64) { *m = append(*m, Metric{key, unit, v}) }

// Results collects the metrics of every round, keeping first-seen order.
type Results struct {
	order  []string
	units  map[string]string
	values map[string][]float64
}

// NewResults returns an empty collection.
func NewResults() *Results {
	return &Results{units: map[string]string{}, values: map[string][]float64{}}
}

// Add records one round's metrics.
func (r *Results) Add(ms Metrics) {
	for _, m := range ms {
		if _, ok := r.units[m.Key]; !ok {
			r.order = append(r.order, m.Key)
			r.units[m.Key] = m.Unit
		}
		r.values[m.Key] = append(r.values[m.Key], m.Value)
	}
}

// Median of key over the rounds (NaN when never measured).
func (r *Results) Median(key string) float64 { return median(r.values[key]) }

// Has reports whether key was measured at least once.
func (r *Results) Has(key string) bool { return len(r.values[key]) > 0 }

// Keys in first-seen order.
func (r *Results) Keys() []string { return slices.Clone(r.order) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Ratio is a derived comparison printed under the table.
type Ratio struct {
	Name     string
	Num, Den string // metric keys
}

// Value is median(Num)/median(Den), NaN if either is missing.
func (q Ratio) Value(r *Results) float64 {
	n, d := r.Median(q.Num), r.Median(q.Den)
	if math.IsNaN(n) || math.IsNaN(d) || d == 0 {
		return math.NaN()
	}
	return n / d
}

// WriteTable prints one row per metric: median, min, max and every round.
func (r *Results) WriteTable(w io.Writer, ratios []Ratio) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tunit\tmedian\tmin\tmax\trounds\t")
	for _, k := range r.order {
		v := r.values[k]
		rounds := make([]string, len(v))
		for i, x := range v {
			rounds[i] = fmtNum(x)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", k, r.units[k], fmtNum(median(v)),
			fmtNum(slices.Min(v)), fmtNum(slices.Max(v)), strings.Join(rounds, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	header := false
	for _, q := range ratios {
		v := q.Value(r)
		if math.IsNaN(v) {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "\nratio (of medians)\tvalue\t")
			header = true
		}
		fmt.Fprintf(tw, "%s\t%.1f%%\t\n", q.Name, 100*v)
	}
	return tw.Flush()
}

// WriteMarkdown prints the same table as Markdown.
func (r *Results) WriteMarkdown(w io.Writer, ratios []Ratio) {
	fmt.Fprintln(w, "| metric | unit | median | min | max | rounds |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---|")
	for _, k := range r.order {
		v := r.values[k]
		rounds := make([]string, len(v))
		for i, x := range v {
			rounds[i] = fmtNum(x)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", k, r.units[k], fmtNum(median(v)),
			fmtNum(slices.Min(v)), fmtNum(slices.Max(v)), strings.Join(rounds, ", "))
	}
	var lines []string
	for _, q := range ratios {
		if v := q.Value(r); !math.IsNaN(v) {
			lines = append(lines, fmt.Sprintf("| %s | %.1f%% |", q.Name, 100*v))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, "\n| ratio (of medians) | value |\n|---|---:|")
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	}
}

// fmtNum prints big numbers without decimals and small ones with three
// significant digits.
func fmtNum(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}
