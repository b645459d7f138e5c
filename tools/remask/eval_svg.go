package main

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// A small SVG writer for `remask eval`: two panels, quality against trunk
// passes per sample and against seconds per sample (both log2 axes), one
// line with markers per policy, ordered by steps, and a legend.

var evalColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8"}

// evalDash distinguishes policies beyond the palette and the fork's modes.
func evalDash(i int, label string) string {
	if strings.HasPrefix(label, "fork") || strings.HasPrefix(label, "diffusion") || strings.HasPrefix(label, "multinomial") {
		return ` stroke-dasharray="6 3"`
	}
	if i >= len(evalColors) {
		return ` stroke-dasharray="2 2"`
	}
	return ""
}

// qualityOf returns the chosen quality of a point and the axis title.
func qualityOf(p *evalPoint, q string) (float64, bool) {
	var x *float64
	switch q {
	case "judge":
		x = p.Judge
	case "critic":
		x = p.CriticMean
	case "reference":
		x = p.ReferenceShare
	default:
		x = p.SelfConfidence
	}
	if x == nil || math.IsNaN(*x) || math.IsInf(*x, 0) {
		return 0, false
	}
	return *x, true
}

var qualityTitles = map[string]string{
	"judge":     "judge score (higher is better)",
	"self":      "self-confidence, mean ln p (higher is better)",
	"critic":    "critic mean (wrongness, lower is better)",
	"reference": "share of words found in the reference",
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) {
		return []float64{lo}
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var t []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		t = append(t, math.Round(v/step)*step)
	}
	return t
}

func fmtTick(v float64) string {
	s := fmt.Sprintf("%.3g", v)
	if s == "-0" {
		s = "0"
	}
	return s
}

type svgPanel struct {
	title, xTitle string
	x             func(p *evalPoint) float64 // > 0 (log2 axis)
}

// writeEvalSVG draws rep's points; q names the quality (qualityOf).
func writeEvalSVG(w io.Writer, rep *evalReport, q string) error {
	bw := bufio.NewWriter(w)
	samples := float64(max(rep.NumSamples, 1))
	panels := []svgPanel{
		{"quality vs forward passes", "LM trunk passes per sample (log scale)", func(p *evalPoint) float64 { return p.SamplePasses }},
		{"quality vs wall time", "seconds per sample (log scale, " + html.EscapeString(rep.Backend) + ")", func(p *evalPoint) float64 { return p.Seconds / samples }},
	}
	// Policies in first-seen order.
	var order []string
	byPolicy := map[string][]*evalPoint{}
	for i := range rep.Points {
		p := &rep.Points[i]
		if _, ok := byPolicy[p.Policy]; !ok {
			order = append(order, p.Policy)
		}
		byPolicy[p.Policy] = append(byPolicy[p.Policy], p)
	}
	const pw, ph, ml, mr, mt, mb = 460.0, 330.0, 70.0, 20.0, 50.0, 60.0
	legendW := 210.0
	W := 2*(ml+pw+mr) + legendW
	H := mt + ph + mb + 40
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(bw, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", ml,
		html.EscapeString(fmt.Sprintf("remask eval: %s, %d samples x %d characters, seed %d, temperature %g", baseName(rep.Model), rep.NumSamples, rep.SequenceLength, rep.Seed, rep.Temperature)))
	// Quality range over every point.
	qlo, qhi := math.Inf(1), math.Inf(-1)
	for i := range rep.Points {
		if v, ok := qualityOf(&rep.Points[i], q); ok {
			qlo, qhi = math.Min(qlo, v), math.Max(qhi, v)
		}
	}
	if math.IsInf(qlo, 0) {
		qlo, qhi = 0, 1
	}
	pad := (qhi - qlo) * 0.08
	if pad == 0 {
		pad = 0.05
	}
	qlo, qhi = qlo-pad, qhi+pad
	for pi, pan := range panels {
		ox := float64(pi)*(ml+pw+mr) + ml
		xlo, xhi := math.Inf(1), math.Inf(-1)
		for i := range rep.Points {
			if x := pan.x(&rep.Points[i]); x > 0 {
				xlo, xhi = math.Min(xlo, x), math.Max(xhi, x)
			}
		}
		if math.IsInf(xlo, 0) {
			xlo, xhi = 1, 2
		}
		lx0, lx1 := math.Log2(xlo)-0.25, math.Log2(xhi)+0.25
		sx := func(x float64) float64 { return ox + (math.Log2(x)-lx0)/(lx1-lx0)*pw }
		sy := func(y float64) float64 { return mt + ph - (y-qlo)/(qhi-qlo)*ph }
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" font-size="13" font-weight="bold">%s</text>`+"\n", ox, mt-10, pan.title)
		fmt.Fprintf(bw, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", ox, mt, pw, ph)
		// x ticks at powers of two (and their halves when the range is short).
		for e := math.Floor(lx0); e <= math.Ceil(lx1); e++ {
			for _, f := range []float64{0, 0.5849625} { // 2^e and 1.5 * 2^e
				le := e + f
				if le < lx0 || le > lx1 || (f > 0 && lx1-lx0 > 5) {
					continue
				}
				v := math.Pow(2, le)
				x := sx(v)
				fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, mt, x, mt+ph)
				fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, mt+ph+16, fmtTick(v))
			}
		}
		for _, v := range niceTicks(qlo, qhi, 6) {
			y := sy(v)
			fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", ox, y, ox+pw, y)
			fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", ox-6, y+4, fmtTick(v))
		}
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", ox+pw/2, mt+ph+38, pan.xTitle)
		fmt.Fprintf(bw, `<text transform="translate(%.1f %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", ox-50, mt+ph/2, html.EscapeString(qualityTitles[q]))
		for i, pol := range order {
			col := evalColors[i%len(evalColors)]
			var pts []string
			for _, p := range byPolicy[pol] {
				v, ok := qualityOf(p, q)
				x := pan.x(p)
				if !ok || x <= 0 {
					continue
				}
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(x), sy(v)))
			}
			if len(pts) > 1 {
				fmt.Fprintf(bw, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"%s/>`+"\n", strings.Join(pts, " "), col, evalDash(i, pol))
			}
			for _, pt := range pts {
				xy := strings.Split(pt, ",")
				fmt.Fprintf(bw, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], col)
			}
		}
	}
	// Legend.
	lx := 2*(ml+pw+mr) + 5
	fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" font-weight="bold">policy (points: steps)</text>`+"\n", lx, mt+4)
	for i, pol := range order {
		y := mt + 24 + float64(i)*20
		col := evalColors[i%len(evalColors)]
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, y, lx+26, y, col, evalDash(i, pol))
		fmt.Fprintf(bw, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", lx+13, y, col)
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+32, y+4, html.EscapeString(pol))
	}
	fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" fill="#555">dashed: the fork's modes (diffusion)</text>`+"\n", ml, H-10)
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
