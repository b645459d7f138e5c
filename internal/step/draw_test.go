package step

import (
	"math"
	"testing"
)

func excl(V int, ids ...int) []bool {
	ex := make([]bool, V)
	for _, id := range ids {
		ex[id] = true
	}
	return ex
}

// normalized runs Distribution and returns the normalised probabilities.
func normalized(s *Sampler, logits []float32) []float64 {
	probs, total := s.Distribution(logits)
	p := make([]float64, len(probs))
	for i, x := range probs {
		p[i] = x / total
	}
	return p
}

// kept returns the ids with non-zero probability.
func kept(p []float64) []int {
	var k []int
	for i, x := range p {
		if x > 0 {
			k = append(k, i)
		}
	}
	return k
}

func TestTokenSamplerDistribution(t *testing.T) {
	ln2 := math.Ln2
	cases := []struct {
		name    string
		logits  []float32
		exclude []int
		temp    float64
		want    []float64
		tol     float64 // 1e-6 when 0
	}{
		// The excluded id has the largest logit and still gets 0.
		{"exclusion", []float32{0, 100, 0, 0}, []int{1}, 1, []float64{1.0 / 3, 0, 1.0 / 3, 1.0 / 3}, 0},
		{"exclusion-several", []float32{5, 5, 0, 0}, []int{0, 1}, 1, []float64{0, 0, 0.5, 0.5}, 0},
		// logits (0, 2 ln 2): probabilities 1:4 at T=1, 1:2 at T=2, 1:16 at T=0.5.
		{"temperature-1", []float32{0, float32(2 * ln2)}, nil, 1, []float64{1.0 / 5, 4.0 / 5}, 0},
		{"temperature-2", []float32{0, float32(2 * ln2)}, nil, 2, []float64{1.0 / 3, 2.0 / 3}, 0},
		{"temperature-0.5", []float32{0, float32(2 * ln2)}, nil, 0.5, []float64{1.0 / 17, 16.0 / 17}, 0},
		// Huge logits do not overflow (max subtraction).
		{"large-logits", []float32{1000, 1000 + float32(ln2)}, nil, 1, []float64{1.0 / 3, 2.0 / 3}, 1e-4}, // float32 spacing at 1000
		{"neg-inf", probsLogits(0.25, 0, 0.75), nil, 1, []float64{0.25, 0, 0.75}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewSampler(excl(len(c.logits), c.exclude...), c.temp, 1)
			got := normalized(s, c.logits)
			tol := c.tol
			if tol == 0 {
				tol = 1e-6
			}
			for i := range c.want {
				if !approx(got[i], c.want[i], tol) {
					t.Fatalf("p = %v, want %v", got, c.want)
				}
			}
		})
	}
}

// TestNucleusRule checks the exact keep rule: rank r is kept iff r == 0 or
// the cumulative probability of ranks < r is <= top_p.
func TestNucleusRule(t *testing.T) {
	eq4 := []float32{0, 0, 0, 0} // 0.25 each, exactly
	p253 := probsLogits(0.2, 0.5, 0.3)
	cases := []struct {
		name    string
		logits  []float32
		exclude []int
		topP    float64
		want    []int
	}{
		// cum before rank 2 is exactly 0.5 <= 0.5: kept; before rank 3 it is 0.75.
		{"equal-cum-does-not-stop", eq4, nil, 0.5, []int{0, 1, 2}},
		{"just-below", eq4, nil, 0.49, []int{0, 1}},
		{"equal-at-rank-1", eq4, nil, 0.25, []int{0, 1}},
		{"top-1-always-kept", eq4, nil, 0.2, []int{0}},
		{"tiny-top-p", p253, nil, 1e-9, []int{1}},
		{"disabled", eq4, nil, 1, []int{0, 1, 2, 3}},
		{"0.75", eq4, nil, 0.75, []int{0, 1, 2, 3}},
		// sorted: id1 0.5, id2 0.3, id0 0.2
		{"sorted-0.6", p253, nil, 0.6, []int{1, 2}},
		{"sorted-0.4", p253, nil, 0.4, []int{1}},
		{"sorted-0.85", p253, nil, 0.85, []int{0, 1, 2}},
		// ties ordered by lower id: ids 1 and 3 tie for the top.
		{"tie-top", []float32{0, 1, 0, 1}, nil, 0.1, []int{1}},
		// id0 ~0.475, then three ties of ~0.175: only the lowest (id1) fits.
		{"tie-tail", []float32{1, 0, 0, 0}, nil, 0.5, []int{0, 1}},
		// an excluded id never enters the nucleus, whatever its logit
		{"excluded-top", []float32{9, 0, 0, 0}, []int{0}, 0.2, []int{1}},
		// the nucleus is taken over renormalised mass without the excluded id:
		// 1/3 each, cum before rank 1 = 1/3 <= 0.4, before rank 2 = 2/3 > 0.4
		{"excluded-renormalised", []float32{9, 0, 0, 0}, []int{0}, 0.4, []int{1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewSampler(excl(len(c.logits), c.exclude...), 1, c.topP)
			got := kept(normalized(s, c.logits))
			if len(got) != len(c.want) {
				t.Fatalf("kept %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("kept %v, want %v", got, c.want)
				}
			}
		})
	}
	// After the nucleus, the kept mass is renormalised: {1,2} of (.2,.5,.3) -> 5/8, 3/8.
	s := NewSampler(excl(3), 1, 0.6)
	p := normalized(s, p253)
	if !approx(p[1], 5.0/8, 1e-6) || !approx(p[2], 3.0/8, 1e-6) || p[0] != 0 {
		t.Fatalf("renormalised %v, want [0 .625 .375]", p)
	}
	// Temperature is applied before the nucleus: (0, 2ln2) has p = (.2, .8);
	// at T=2 it is (1/3, 2/3), so top_p 0.7 keeps both (cum 2/3 <= .7) while
	// at T=1 it keeps only id 1 (cum .8 > .7).
	for _, c := range []struct {
		temp float64
		want int
	}{{1, 1}, {2, 2}} {
		s := NewSampler(excl(2), c.temp, 0.7)
		if got := kept(normalized(s, []float32{0, float32(2 * math.Ln2)})); len(got) != c.want {
			t.Fatalf("T=%v: kept %v, want %d ids", c.temp, got, c.want)
		}
	}
}

// TestDrawInverseCDF checks the draw: the first id (ascending) whose
// cumulative renormalised probability exceeds u.
func TestDrawInverseCDF(t *testing.T) {
	p253 := probsLogits(0.2, 0.5, 0.3) // intervals [0,.2) [.2,.7) [.7,1)
	cases := []struct {
		name    string
		logits  []float32
		exclude []int
		topP    float64
		u       float32
		want    int32
	}{
		{"u0", p253, nil, 1, 0, 0},
		{"u.19", p253, nil, 1, 0.19, 0},
		{"u.21", p253, nil, 1, 0.21, 1},
		{"u.69", p253, nil, 1, 0.69, 1},
		{"u.71", p253, nil, 1, 0.71, 2},
		{"u-max", p253, nil, 1, 0.99999994, 2},
		// equal quarters: u exactly on a boundary goes to the upper id
		{"boundary.25", []float32{0, 0, 0, 0}, nil, 1, 0.25, 1},
		{"below.25", []float32{0, 0, 0, 0}, nil, 1, 0.2499999, 0},
		{"boundary.75", []float32{0, 0, 0, 0}, nil, 1, 0.75, 3},
		// id 1 excluded: (.2, 0, .3)/.5 -> [0,.4) [.4,1)
		{"excl-u.39", p253, []int{1}, 1, 0.39, 0},
		{"excl-u.41", p253, []int{1}, 1, 0.41, 2},
		// top_p .6 keeps {1,2} with mass .8 -> id1 [0,.625), id2 [.625,1)
		{"nucleus-u0", p253, nil, 0.6, 0, 1},
		{"nucleus-u.6", p253, nil, 0.6, 0.6, 1},
		{"nucleus-u.65", p253, nil, 0.6, 0.65, 2},
		// the last id excluded, u at its maximum: never the excluded id
		{"excl-last-umax", []float32{0, 0, 50}, []int{2}, 1, 0.99999994, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewSampler(excl(len(c.logits), c.exclude...), 1, c.topP)
			if got := s.Draw(c.logits, c.u); got != c.want {
				t.Fatalf("draw(u=%v) = %d, want %d", c.u, got, c.want)
			}
		})
	}
}

// TestDrawNeverExcluded sweeps u over [0, 1) with excluded ids holding almost
// all the logit mass.
func TestDrawNeverExcluded(t *testing.T) {
	logits := []float32{40, 0, 40, 1, 0, 40} // ids 0, 2, 5 excluded
	for _, topP := range []float64{1, 0.5, 0.01} {
		s := NewSampler(excl(6, 0, 2, 5), 0.7, topP)
		seen := map[int32]bool{}
		for i := 0; i < 4096; i++ {
			u := float32(i) / 4096
			id := s.Draw(logits, u)
			if id == 0 || id == 2 || id == 5 || id < 0 {
				t.Fatalf("top_p %v u %v: drew excluded id %d", topP, u, id)
			}
			seen[id] = true
		}
		if topP == 1 && len(seen) != 3 {
			t.Fatalf("top_p 1: drew %v, want ids 1, 3, 4", seen)
		}
	}
}

// TestPickRoundingFallback: when rounding leaves u*total above the summed
// mass, the last id with mass is drawn (never an id without mass).
func TestPickRoundingFallback(t *testing.T) {
	p := []float64{0.25, 0, 0.25, 0}
	if got := Pick(p, 0.5000001, 0.99999994); got != 2 {
		t.Fatalf("pick = %d, want 2", got)
	}
}

// probsLogits returns logits whose softmax is p (log p; -inf for 0).
func probsLogits(p ...float64) []float32 {
	l := make([]float32, len(p))
	for i, x := range p {
		if x == 0 {
			l[i] = float32(math.Inf(-1))
			continue
		}
		l[i] = float32(math.Log(x))
	}
	return l
}

func approx(a, b, tol float64) bool { return math.Abs(a-b) <= tol }
