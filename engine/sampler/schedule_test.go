package sampler

import (
	"math"
	"testing"
)

func TestScheduleRatio(t *testing.T) {
	cases := []struct {
		name   string
		n      int
		ratios []float64
		want   []float64 // scheduleRatio(0), (1), ...
	}{
		{"linear-N1", 1, nil, []float64{0.05, 0.05, 0.05}},
		{"linear-N2", 2, nil, []float64{0.95, 0.05}},
		// 0.95 - i/4 * 0.9
		{"linear-N5", 5, nil, []float64{0.95, 0.725, 0.5, 0.275, 0.05}},
		// custom: masking_ratios[i], end_ratio (0.05) past the list
		{"custom", 0, []float64{0.9, 0.6, 0.3}, []float64{0.9, 0.6, 0.3, 0.05, 0.05}},
		{"custom-one", 0, []float64{0.4}, []float64{0.4, 0.05}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Defaults()
			o.Iterations, o.MaskingRatios = c.n, c.ratios
			for i, w := range c.want {
				if got := o.scheduleRatio(i); !approx(got, w, 1e-12) {
					t.Errorf("ratio(%d) = %v, want %v", i, got, w)
				}
			}
		})
	}
	o := Defaults()
	o.Iterations, o.MaskingRatios = 7, []float64{0.9, 0.6, 0.3}
	if n := o.EffectiveIterations(); n != 3 {
		t.Fatalf("EffectiveIterations = %d, want len(masking_ratios) = 3", n)
	}
	o.MaskingRatios = nil
	if n := o.EffectiveIterations(); n != 7 {
		t.Fatalf("EffectiveIterations = %d, want 7", n)
	}
}

// TestScheduleAppliedIndexing runs generations and counts the masks at the
// start of each iteration: the remask after iteration it uses ratio(it+1),
// so ratio(0) never shows.
func TestScheduleAppliedIndexing(t *testing.T) {
	m := tinyLM(true, false, "")
	V := m.Config.VocabSize
	cases := []struct {
		name   string
		n      int
		ratios []float64
		masked []int     // per iteration start, one row of T=20
		ratio  []float64 // Event.Ratio per iteration (NaN last)
	}{
		// ratio(i) = .95, .725, .5, .275, .05; k = floor(20*ratio(it+1))
		{"linear", 5, nil, []int{20, 14, 10, 5, 1}, []float64{0.725, 0.5, 0.275, 0.05, math.NaN()}},
		{"custom", 0, []float64{0.9, 0.5, 0.25, 0.1}, []int{20, 10, 5, 2}, []float64{0.5, 0.25, 0.1, math.NaN()}},
		{"single", 1, nil, []int{20}, []float64{math.NaN()}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeNet{m: m,
				logits: func(row []int32, t int) []float32 { return oneHot(V, t%8, 5) },
				critic: func(row []int32, t int) float32 { return float32(t % 7) },
			}
			o := baseOpts()
			o.SequenceLength, o.Iterations, o.MaskingRatios = 20, c.n, c.ratios
			var masked []int
			var ratios []float64
			res := generate(t, Models{LM: f}, o, func(ev *Event) {
				masked = append(masked, ev.Masked)
				ratios = append(ratios, ev.Ratio)
				if ev.Total != 20 || ev.Iterations != len(c.masked) {
					t.Errorf("event total %d iterations %d", ev.Total, ev.Iterations)
				}
			})
			if res.IterationsRun != len(c.masked) {
				t.Fatalf("IterationsRun = %d, want %d", res.IterationsRun, len(c.masked))
			}
			for i := range c.masked {
				if masked[i] != c.masked[i] {
					t.Fatalf("masked per iteration %v, want %v", masked, c.masked)
				}
				if !(approx(ratios[i], c.ratio[i], 1e-12) || math.IsNaN(ratios[i]) && math.IsNaN(c.ratio[i])) {
					t.Fatalf("ratios %v, want %v", ratios, c.ratio)
				}
			}
		})
	}
}
