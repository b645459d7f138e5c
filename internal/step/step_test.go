package step

import (
	"math"
	"testing"
)

func TestStrategy(t *testing.T) {
	for i, s := range Strategies {
		if uint32(s) != uint32(i) || !s.Valid() {
			t.Errorf("Strategies[%d] = %d (valid %v)", i, uint32(s), s.Valid())
		}
		if p, err := ParseStrategy(s.String()); err != nil || p != s {
			t.Errorf("ParseStrategy(%q) = %v, %v", s.String(), p, err)
		}
	}
	bad := Strategy(len(Strategies))
	if bad.Valid() || bad.String() != "Strategy(5)" {
		t.Errorf("Strategy(5): valid %v, %q", bad.Valid(), bad.String())
	}
	if _, err := ParseStrategy("auto"); err == nil {
		t.Error("auto parsed")
	}
	var sc Scoring
	sc.Strategy = bad
	if err := sc.Scores([]int32{0}, make([]float64, 1), make([]float64, 1)); err == nil {
		t.Error("Scores ran an unknown strategy")
	}
}

// TestSelectionFor: k = floor(T·ratio); ratio mode skips k <= 0; threshold
// mode (not for Random) selects wrongness > 1 - ratio.
func TestSelectionFor(t *testing.T) {
	cases := []struct {
		T             int
		ratio         float64
		threshold     bool
		s             Strategy
		k             int
		thr, run, thm bool
	}{
		{10, 0.35, false, Critic, 3, false, true, false},
		{10, 0.05, false, Critic, 0, false, false, false},
		{10, 0.05, true, Self, 0, true, true, true},
		{10, 0.5, true, Random, 5, false, true, false}, // random has no wrongness: ratio mode
		{1, 0.99, false, Model, 0, false, false, false},
	}
	for _, c := range cases {
		sel, run := SelectionFor(c.T, c.ratio, c.threshold, c.s)
		if sel.K != c.k || run != c.run || sel.Threshold != c.thm || (c.thm && sel.Thr != 1-c.ratio) {
			t.Errorf("SelectionFor(%d, %v, %v, %v) = %+v, %v", c.T, c.ratio, c.threshold, c.s, sel, run)
		}
	}
}

func TestFillCountAndQuantile(t *testing.T) {
	for _, c := range []struct {
		n     int
		ratio float64
		want  int
	}{{0, 0.5, 1}, {10, 0.01, 1}, {10, 0.3, 3}, {7, 1, 7}} {
		if got := FillCount(c.n, c.ratio); got != c.want {
			t.Errorf("FillCount(%d, %v) = %d, want %d", c.n, c.ratio, got, c.want)
		}
	}
	xs := []float64{1, 2, 3, 4}
	for _, c := range []struct{ q, want float64 }{{0.1, 1.3}, {0.5, 2.5}, {0.9, 3.7}, {0, 1}, {1, 4}} {
		if got := Quantile(xs, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := BootstrapConfidence([]float32{-3, 0.5 / 1024, -1}); got != 1.0/1024 {
		t.Errorf("BootstrapConfidence rounds half away from zero: %v", got)
	}
}
