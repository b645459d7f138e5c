package step

import (
	"math"
	"testing"
)

func TestCertain(t *testing.T) {
	cases := []struct {
		name       string
		p          []float64 // unnormalised
		p1, p2, ne float64
	}{
		{"three", []float64{5, 3, 2}, .5, .3, .5*math.Log(.5) + .3*math.Log(.3) + .2*math.Log(.2)},
		{"order-free", []float64{2, 0, 5, 3}, .5, .3, .5*math.Log(.5) + .3*math.Log(.3) + .2*math.Log(.2)},
		{"one-id", []float64{0, 7, 0}, 1, 0, 0},
		{"tie", []float64{1, 1}, .5, .5, math.Log(.5)},
		{"uniform4", []float64{1, 1, 1, 1}, .25, .25, math.Log(.25)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var total float64
			for _, x := range c.p {
				total += x
			}
			got := Certain(c.p, total)
			if !approx(got.P1, c.p1, 1e-12) || !approx(got.P2, c.p2, 1e-12) || !approx(got.NegEntropy, c.ne, 1e-12) {
				t.Fatalf("Certain = %+v, want P1 %v P2 %v NegEntropy %v", got, c.p1, c.p2, c.ne)
			}
			if !approx(got.Gap(), c.p1-c.p2, 1e-12) {
				t.Fatalf("gap %v", got.Gap())
			}
		})
	}
}

func TestOrderingScoreAndKey(t *testing.T) {
	c := Certainty{P1: .6, P2: .4, NegEntropy: -0.673}
	for _, x := range []struct {
		o    Ordering
		want float64
	}{{OrderConfidence, 614.0/1024 + 512.0/(1<<21)}, {OrderMargin, 205.0/1024 + 512.0/(1<<21)}, {OrderEntropy, -689.0/1024 + 512.0/(1<<21)}, {OrderRandom, 0.25}} {
		// Rounded to 1/1024: 614.4, 204.8 and -689.152 (halves away from
		// zero), plus TieBreak(0.25) = floor(0.25·2048)·2^-21.
		if got := x.o.Score(c, 0.25); got != x.want {
			t.Fatalf("%v: score %v, want %v", x.o, got, x.want)
		}
	}
	// Near-ties become ties (then the lower position wins); halves round
	// away from zero; the random ordering's u is not rounded.
	for _, x := range []struct{ in, want float64 }{
		{0.5 + 1e-7, 0.5}, {0.5 - 1e-7, 0.5}, {1.5 / 1024, 2.0 / 1024}, {-1.5 / 1024, -2.0 / 1024},
		{0.49999 / 1024, 0}, {1, 1}, {0, 0},
	} {
		if got := RoundScore(x.in); got != x.want {
			t.Errorf("RoundScore(%v) = %v, want %v", x.in, got, x.want)
		}
	}
	if got := OrderRandom.Score(c, 0.1234567); got != 0.1234567 {
		t.Errorf("random score %v, want u", got)
	}
	// TieBreak: u's top 11 bits times 2^-21, below one 1/1024 step, and
	// exact in f32 added to a rounded score of magnitude < 8.
	for _, x := range []struct{ u, want float64 }{
		{0, 0}, {0.5, 1024.0 / (1 << 21)}, {1 - 1.0/(1<<24), 2047.0 / (1 << 21)}, {1.0 / 2048, 1.0 / (1 << 21)}, {1.0/2048 - 1.0/(1<<24), 0},
	} {
		if got := TieBreak(x.u); got != x.want {
			t.Errorf("TieBreak(%v) = %v, want %v", x.u, got, x.want)
		}
	}
	for _, s := range []float64{-6.9990234375, -0.5, 0, 614.0 / 1024, 1} {
		for _, u := range []float64{0.25, 1 - 1.0/(1<<24), 0.999} {
			if x := s + TieBreak(u); float64(float32(x)) != x || !(x >= s && x < s+1.0/1024) {
				t.Errorf("score %v + TieBreak(%v) = %v: not exact in f32 or not within the step", s, u, x)
			}
		}
	}
	// GumbelKey: score/temp - ln(-ln u).
	for _, x := range []struct {
		score, temp, u, want float64
	}{
		{0.8, 0, 0.3, 0.8},                       // no noise
		{0.8, 0.5, math.Exp(-1), 1.6},            // g = -ln(1) = 0
		{0.8, 0.5, math.Exp(-math.Exp(-1)), 2.6}, // g = 1
		{0.8, 2, math.Exp(-math.E), 0.4 - 1},     // g = -1
		{0.8, 1, 0, math.Inf(-1)},                // u = 0 never first
	} {
		if got := GumbelKey(x.score, x.temp, x.u); !(got == x.want || approx(got, x.want, 1e-12)) {
			t.Fatalf("GumbelKey(%v, %v, %v) = %v, want %v", x.score, x.temp, x.u, got, x.want)
		}
	}
	for _, n := range OrderingNames() {
		if o, err := ParseOrdering(n); err != nil || o.String() != n {
			t.Fatalf("ParseOrdering(%q) = %v, %v", n, o, err)
		}
	}
	if _, err := ParseOrdering("maskgit"); err == nil {
		t.Fatal("unknown ordering accepted")
	}
	if _, err := ParseUnmaskSchedule("exp"); err == nil {
		t.Fatal("unknown schedule accepted")
	}
}

// TestStillMasked: hand-computed schedules of m0 = 10 positions in S = 4 steps.
func TestStillMasked(t *testing.T) {
	fork := func(i int) float64 { return ForkRatio(.95, .05, nil, i, 4) } // .95 .65 .35 .05
	cases := []struct {
		name  string
		sc    UnmaskSchedule
		m0, S int
		left  []int
	}{
		// linear: 10/4 = 2 rem 2 -> commits 3 3 2 2
		{"linear", ScheduleLinear, 10, 4, []int{7, 4, 2, 0}},
		// fewer positions than steps: 1 1 1 0 0 (CommitCount then gives 1 per step)
		{"linear-short", ScheduleLinear, 3, 5, []int{2, 1, 0, 0, 0}},
		// cosine: floor(10 cos(pi/8)) = 9, floor(10 cos(pi/4)) = 7, floor(10 cos(3pi/8)) = 3
		{"cosine", ScheduleCosine, 10, 4, []int{9, 7, 3, 0}},
		// the fork's ratio(s+1): floor(6.5) = 6, floor(3.5) = 3, floor(.5) = 0
		{"ratio", ScheduleRatio, 10, 4, []int{6, 3, 0, 0}},
		{"one-step", ScheduleCosine, 10, 1, []int{0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for s, want := range c.left {
				if got := c.sc.StillMasked(c.m0, c.S, s, fork); got != want {
					t.Fatalf("step %d: %d left, want %d", s, got, want)
				}
			}
		})
	}
	// custom list: list[i], end past it
	list := func(i int) float64 { return ForkRatio(.95, .2, []float64{.9, .5}, i, 4) }
	if got := ScheduleRatio.StillMasked(10, 4, 0, list); got != 5 {
		t.Fatalf("custom list step 0: %d, want 5", got)
	}
	if got := ScheduleRatio.StillMasked(10, 4, 1, list); got != 2 {
		t.Fatalf("custom list step 1 (end .2): %d, want 2", got)
	}
	for _, x := range []struct{ masked, left, want int }{{5, 7, 1}, {5, 3, 2}, {5, 0, 5}, {1, 0, 1}} {
		if got := CommitCount(x.masked, x.left); got != x.want {
			t.Fatalf("CommitCount(%d, %d) = %d, want %d", x.masked, x.left, got, x.want)
		}
	}
}

func TestSelectCommits(t *testing.T) {
	cands := []int{1, 3, 4, 6}
	keys := []float64{.2, .9, .9, .1}
	conf := []float64{.3, .95, .5, .99}
	cases := []struct {
		name string
		k    int
		tau  float64
		want []int
	}{
		{"top-1, tie to lower", 1, 0, []int{3}},
		{"top-2", 2, 0, []int{3, 4}},
		{"threshold inclusive", 1, .95, []int{3, 6}},
		{"threshold adds low key", 1, .99, []int{3, 6}},
		{"threshold none above", 1, .999, []int{3}},
		{"all", 4, 0, []int{1, 3, 4, 6}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := SelectCommits(cands, keys, conf, c.k, c.tau)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestEarlyCommitAndBlocks(t *testing.T) {
	for _, x := range []struct {
		gaps []float64
		g    float64
		want bool
	}{
		{[]float64{.5, .6}, .5, true}, // inclusive
		{[]float64{.5, .6}, .55, false},
		{[]float64{.5, .6}, 0, false}, // off
		{nil, .1, false},              // nothing left
		{[]float64{math.NaN(), .9}, .1, false},
		{[]float64{1, 1}, 1, true},
	} {
		if got := EarlyCommit(x.gaps, x.g); got != x.want {
			t.Fatalf("EarlyCommit(%v, %v) = %v", x.gaps, x.g, got)
		}
	}
	for _, x := range []struct{ T, L, want int }{{10, 4, 3}, {8, 4, 2}, {8, 0, 1}, {8, 8, 1}, {8, 100, 1}, {8, math.MaxInt, 1}, {7, 1, 7}} {
		if got := Blocks(x.T, x.L); got != x.want {
			t.Fatalf("Blocks(%d, %d) = %d, want %d", x.T, x.L, got, x.want)
		}
	}
	got := []int{BlockSteps(10, 3, 0), BlockSteps(10, 3, 1), BlockSteps(10, 3, 2)}
	if got[0] != 4 || got[1] != 3 || got[2] != 3 {
		t.Fatalf("BlockSteps(10, 3) = %v, want [4 3 3]", got)
	}
}
