package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteSVG draws accepted notifications over time since fire (cumulative),
// with vertical marks at p50, p95 and p99.
func (r *Report) WriteSVG(w io.Writer) error {
	ms := r.acceptedMS
	// Downsampled to at most ~1000 points.
	var pts []Point
	if len(ms) > 0 {
		step := max(1, len(ms)/1000)
		for i := 0; i < len(ms); i += step {
			pts = append(pts, Point{MS: ms[i], Accepted: uint64(i + 1)})
		}
		pts = append(pts, Point{MS: ms[len(ms)-1], Accepted: uint64(len(ms))})
	}
	return writeCurve(w, r.Campaign, pts, r.Latency.P50, r.Latency.P95, r.Latency.P99)
}

// WriteSVG draws the live curve like Report.WriteSVG, with the live
// percentiles (10 ms resolution).
func (s LiveSnapshot) WriteSVG(w io.Writer, campaign string) error {
	return writeCurve(w, campaign, s.Curve, s.P50, s.P95, s.P99)
}

// writeCurve draws a cumulative curve pts (ascending) with marks at p50,
// p95 and p99.
func writeCurve(w io.Writer, campaign string, pts []Point, p50, p95, p99 uint32) error {
	const W, H, left, right, top, bottom = 900, 420, 80, 30, 40, 60
	pw, ph := float64(W-left-right), float64(H-top-bottom)
	var n uint64
	maxMS := float64(1)
	if len(pts) > 0 {
		last := pts[len(pts)-1]
		n = last.Accepted
		if last.MS > 0 {
			maxMS = float64(last.MS)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16">%s: accepted notifications since fire (%d)</text>`+"\n", left, esc(campaign), n)
	x := func(v float64) float64 { return left + v/maxMS*pw }
	y := func(v float64) float64 { return top + ph - v/float64(max(n, 1))*ph }
	// Axes and grid.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top+int(ph), W-right, top+int(ph))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, top+int(ph))
	for i := 0; i <= 5; i++ {
		v := maxMS * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%.2f s</text>`+"\n", x(v), H-bottom+18, v/1000)
		k := float64(n) * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y(k)+4, k)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`+"\n", left+1, y(k), W-right, y(k))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">time since fire</text>`+"\n", left+int(pw/2), H-12)
	if len(pts) > 0 {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="%.1f,%.1f`, x(0), y(0))
		for _, p := range pts {
			fmt.Fprintf(&b, " %.1f,%.1f", x(float64(p.MS)), y(float64(p.Accepted)))
		}
		b.WriteString("\"/>\n")
	}
	for _, mark := range []struct {
		name  string
		v     uint32
		color string
	}{{"p50", p50, "#2ca02c"}, {"p95", p95, "#ff7f0e"}, {"p99", p99, "#d62728"}} {
		if n == 0 {
			break
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="4 3"/>`+"\n", x(float64(mark.v)), top, x(float64(mark.v)), top+int(ph), mark.color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="%s" text-anchor="middle">%s %s</text>`+"\n", x(float64(mark.v)), top-4, mark.color, mark.name, msLabel(mark.v))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func msLabel(v uint32) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", float64(v)/1000)
	}
	return fmt.Sprintf("%d ms", v)
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
