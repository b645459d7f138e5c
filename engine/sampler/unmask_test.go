package sampler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/rng"
	"github.com/remask/remask/internal/step"
)

// plogits returns V logits whose softmax over ids a..h is p (ln p, -inf for
// the others).
func plogits(V int, p ...float64) []float32 {
	l := make([]float32, V)
	for i := range l {
		l[i] = float32(math.Inf(-1))
	}
	for i, x := range p {
		l[i] = float32(math.Log(x))
	}
	return l
}

// unmaskDists are four positions' distributions with hand-computed orders:
//
//	pos  p                      top-1  margin  sum p ln p
//	0    .6 .4                  .60    .20     -0.673
//	1    .5 .25 .25             .50    .25     -1.040
//	2    .55 .15 .15 .15        .55    .40     -1.182
//	3    .45 .45 .1             .45    .00     -0.949
var unmaskDists = [][]float64{{.6, .4}, {.5, .25, .25}, {.55, .15, .15, .15}, {.45, .45, .1}}

func unmaskFake(dists [][]float64) *fakeNet {
	m := tinyLM(false, false, "")
	V := m.Config.VocabSize
	return &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return plogits(V, dists[t%len(dists)]...) }}
}

func unmaskOpts(T, N int) Options {
	o := baseOpts()
	o.Method, o.SequenceLength, o.Iterations, o.Temperature = Unmask, T, N, 1
	return o
}

// commitOrder runs a generation and returns, per step and row, the
// positions committed in that step (masked at its start, not remasked).
func commitOrder(t *testing.T, m Models, o Options) ([][][]int, *Result) {
	t.Helper()
	var steps [][][]int
	res := generate(t, m, o, func(ev *Event) {
		B, T := len(ev.Remasked), ev.Total/len(ev.Remasked)
		per := make([][]int, B)
		for b := 0; b < B; b++ {
			back := map[int]bool{}
			for _, p := range ev.Remasked[b] {
				back[p] = true
			}
			per[b] = []int{}
			for p := 0; p < T; p++ {
				if ev.Filled[b*T+p] && !back[p] {
					per[b] = append(per[b], p)
				}
			}
		}
		steps = append(steps, per)
	})
	return steps, res
}

func row0(steps [][][]int) string {
	s := ""
	for _, st := range steps {
		s += fmt.Sprint(st[0])
	}
	return s
}

// TestUnmaskOrderings: one commit per step (linear, T = N = 4); each ordering
// commits in its hand-computed order (table above); random follows
// rng.Uniform(OrderNoise) of the remaining positions.
func TestUnmaskOrderings(t *testing.T) {
	f := unmaskFake(unmaskDists)
	cases := []struct{ ordering, want string }{
		{"", "[0][2][1][3]"},
		{OrderConfidence, "[0][2][1][3]"},
		{OrderMargin, "[2][1][0][3]"},
		{OrderEntropy, "[0][3][1][2]"},
	}
	// random: recompute the order from the spec: at step it, the remaining
	// position with the largest OrderNoise uniform.
	left := []int{0, 1, 2, 3}
	want := ""
	for it := 0; it < 4; it++ {
		sort.SliceStable(left, func(i, j int) bool {
			return rng.Uniform(1, 0, uint32(it), uint32(left[i]), rng.OrderNoise) > rng.Uniform(1, 0, uint32(it), uint32(left[j]), rng.OrderNoise)
		})
		want += fmt.Sprint([]int{left[0]})
		left = left[1:]
	}
	cases = append(cases, struct{ ordering, want string }{OrderRandom, want})
	for _, c := range cases {
		t.Run("ordering="+c.ordering, func(t *testing.T) {
			o := unmaskOpts(4, 4)
			o.Ordering = c.ordering
			steps, res := commitOrder(t, Models{LM: f}, o)
			if got := row0(steps); got != c.want {
				t.Fatalf("commit order %s, want %s", got, c.want)
			}
			if res.IterationsRun != 4 || res.Samples[0].Steps != 4 || hasMask(res.Samples[0].Tokens) {
				t.Fatalf("ran %d steps (sample %d), tokens %s", res.IterationsRun, res.Samples[0].Steps, str(res.Samples[0].Tokens))
			}
		})
	}
}

// TestUnmaskCommitsNeverChange: a committed token stays what was drawn at
// its commit step, with logits that change with the tokens.
func TestUnmaskCommitsNeverChange(t *testing.T) {
	m := tinyLM(false, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 {
		l := make([]float32, V)
		for i := 0; i < 8; i++ {
			l[i] = float32((int(row[(t+1)%len(row)])*3 + i*t) % 5)
		}
		return l
	}}
	o := unmaskOpts(12, 5)
	o.NumSamples = 2
	fixed := map[int]int32{}
	generate(t, Models{LM: f}, o, func(ev *Event) {
		for p, tok := range ev.Tokens {
			if old, ok := fixed[p]; ok && old != tok {
				t.Fatalf("iteration %d: committed position %d changed %d -> %d", ev.Iteration, p, old, tok)
			}
		}
		B := len(ev.Remasked)
		T := ev.Total / B
		for b := 0; b < B; b++ {
			back := map[int]bool{}
			for _, p := range ev.Remasked[b] {
				back[p] = true
			}
			for p := 0; p < T; p++ {
				if !back[p] {
					fixed[b*T+p] = ev.Tokens[b*T+p]
				}
			}
		}
	})
}

// TestUnmaskSchedules: commits per step of T = 10 positions in N = 4 steps
// (internal/step TestStillMasked has the arithmetic).
func TestUnmaskSchedules(t *testing.T) {
	f := unmaskFake(unmaskDists)
	cases := []struct {
		sched  string
		counts []int
	}{
		{"", []int{3, 3, 2, 2}},
		{UnmaskLinear, []int{3, 3, 2, 2}},
		{UnmaskCosine, []int{1, 2, 4, 3}},
		{UnmaskRatio, []int{4, 3, 3}}, // ratio(3) = end .05: nothing left for the last step
	}
	for _, c := range cases {
		t.Run("schedule="+c.sched, func(t *testing.T) {
			o := unmaskOpts(10, 4)
			o.UnmaskSchedule = c.sched
			steps, res := commitOrder(t, Models{LM: f}, o)
			var got []int
			for _, st := range steps {
				got = append(got, len(st[0]))
			}
			if fmt.Sprint(got) != fmt.Sprint(c.counts) || res.IterationsRun != len(c.counts) || res.Samples[0].Steps != len(c.counts) {
				t.Fatalf("commits per step %v (ran %d), want %v", got, res.IterationsRun, c.counts)
			}
		})
	}
	// A custom masking_ratios list with the ratio schedule: 10 -> floor(10*.3) = 3 -> end .1 -> 1 -> 0.
	o := unmaskOpts(10, 0)
	o.UnmaskSchedule, o.MaskingRatios, o.EndRatio = UnmaskRatio, []float64{.9, .3, .7, .5}, .1
	steps, _ := commitOrder(t, Models{LM: f}, o)
	var got []int
	for _, st := range steps {
		got = append(got, len(st[0]))
	}
	// steps: ratio(1) = .3 -> 3 left (7); ratio(2) = .7 -> 7 left, but at least 1 (1);
	// ratio(3) = .5 -> 5 left, at least 1 (1); last: 1
	if fmt.Sprint(got) != "[7 1 1 1]" {
		t.Fatalf("custom ratios: commits %v, want [7 1 1 1]", got)
	}
}

// TestUnmaskThreshold: Fast-dLLM. tau .5 commits the schedule's top-1 (pos 0)
// and every position with top-1 probability >= .5 (0, 1, 2) in step 0, then
// pos 3: 2 steps instead of 4. tau .45 commits all at once; tau .99 is the
// plain schedule. Iterations = T is the pure Fast-dLLM loop (one per step at least).
func TestUnmaskThreshold(t *testing.T) {
	f := unmaskFake(unmaskDists)
	for _, c := range []struct {
		tau  float64
		want string
	}{{.5, "[0 1 2][3]"}, {.45, "[0 1 2 3]"}, {.99, "[0][2][1][3]"}, {.55, "[0 2][1][3]"}} {
		o := unmaskOpts(4, 4)
		o.ConfidenceThreshold = c.tau
		steps, res := commitOrder(t, Models{LM: f}, o)
		if got := row0(steps); got != c.want {
			t.Fatalf("tau %v: commits %s, want %s", c.tau, got, c.want)
		}
		if res.IterationsRun != len(steps) || res.Samples[0].Steps != len(steps) {
			t.Fatalf("tau %v: steps %d/%d, want %d", c.tau, res.IterationsRun, res.Samples[0].Steps, len(steps))
		}
	}
}

// TestUnmaskBlocks: semi-autoregressive blocks commit inside the current
// block only, left to right, each with its share of the steps; a block with
// nothing to generate (template) is skipped without a step.
func TestUnmaskBlocks(t *testing.T) {
	f := unmaskFake(unmaskDists)
	o := unmaskOpts(8, 4)
	o.BlockLength, o.Ordering = 4, OrderMargin
	steps, _ := commitOrder(t, Models{LM: f}, o)
	// block 0 (0-3), 2 steps, linear 2+2, margin order 2 1 0 3; block 1 the same shifted.
	if got := row0(steps); got != "[1 2][0 3][5 6][4 7]" {
		t.Fatalf("blocks: %s", got)
	}
	// Template: block 1 ("efgh") is fixed. 3 blocks, N = 3: one step each, the
	// fixed block takes none.
	o = unmaskOpts(0, 3)
	o.Template, o.BlockLength = "a__defgh__", 4
	steps, res := commitOrder(t, Models{LM: f}, o)
	if got := row0(steps); got != "[1 2][8 9]" || res.IterationsRun != 2 || str(res.Samples[0].Tokens)[3:8] != "defgh" {
		t.Fatalf("template blocks: %s, ran %d, %s", got, res.IterationsRun, str(res.Samples[0].Tokens))
	}
	// Too few steps for the blocks is an error naming the fix.
	o = unmaskOpts(8, 1)
	o.BlockLength = 4
	_, err := Generate(context.Background(), Models{LM: f}, o, nil)
	checkOptionError(t, err, "iterations")
}

// TestUnmaskEarlyCommit: Prophet. Positions 0-2 have gaps .2, .25, .4: gap
// .2 commits all three in step 0; gap .21 first commits pos 0 (confidence),
// then the rest (.25, .4 >= .21); with pos 3 (gap 0) it never fires.
func TestUnmaskEarlyCommit(t *testing.T) {
	f := unmaskFake(unmaskDists[:3])
	for _, c := range []struct {
		T    int
		gap  float64
		want string
	}{{3, .2, "[0 1 2]"}, {3, .21, "[0][1 2]"}, {3, .41, "[0][2][1]"}} {
		o := unmaskOpts(c.T, 3)
		o.EarlyCommitGap = c.gap
		steps, res := commitOrder(t, Models{LM: f}, o)
		if got := row0(steps); got != c.want || res.Samples[0].Steps != len(steps) {
			t.Fatalf("gap %v: %s (%d steps), want %s", c.gap, got, res.Samples[0].Steps, c.want)
		}
	}
	// Prophet looks at every remaining position, beyond the current block too.
	o := unmaskOpts(6, 2)
	o.BlockLength, o.EarlyCommitGap = 3, .2
	steps, _ := commitOrder(t, Models{LM: f}, o)
	if got := row0(steps); got != "[0 1 2 3 4 5]" {
		t.Fatalf("early commit across blocks: %s", got)
	}
}

// TestUnmaskDeterminismAndBatch: every policy combination gives the same
// text for the same seed, and sample i does not depend on num_samples.
func TestUnmaskDeterminismAndBatch(t *testing.T) {
	m := tinyLM(false, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 {
		l := make([]float32, V)
		for i := 0; i < 8; i++ {
			l[i] = float32((int(row[(t+1)%len(row)])*7+int(row[(t+len(row)-1)%len(row)])*3+i*(t+1))%9) / 3
		}
		return l
	}}
	configs := []func(*Options){
		func(o *Options) {},
		func(o *Options) { o.Ordering, o.OrderTemperature = OrderMargin, 0.5 },
		func(o *Options) { o.Ordering, o.UnmaskSchedule = OrderEntropy, UnmaskCosine },
		func(o *Options) { o.Ordering, o.UnmaskSchedule, o.BlockLength = OrderRandom, UnmaskRatio, 5 },
		func(o *Options) { o.ConfidenceThreshold, o.BlockLength = 0.3, 4 },
		func(o *Options) { o.EarlyCommitGap, o.OrderTemperature, o.TopP = 0.2, 2, 0.9 },
	}
	for i, cfg := range configs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			o := unmaskOpts(16, 6)
			o.Temperature = 0.9
			cfg(&o)
			one := generate(t, Models{LM: f}, o, nil)
			again := generate(t, Models{LM: f}, o, nil)
			o.NumSamples = 3
			three := generate(t, Models{LM: f}, o, nil)
			a, b, c := str(one.Samples[0].Tokens), str(again.Samples[0].Tokens), str(three.Samples[0].Tokens)
			if a != b || a != c || one.Samples[0].Steps != three.Samples[0].Steps {
				t.Fatalf("B=1 %s (%d steps), again %s, B=3 %s (%d steps)", a, one.Samples[0].Steps, b, c, three.Samples[0].Steps)
			}
			if hasMask(three.Samples[2].Tokens) || three.Loop != "host" {
				t.Fatalf("row 2 %s, loop %s", str(three.Samples[2].Tokens), three.Loop)
			}
			o.NumSamples, o.Seed = 1, 99
			if other := generate(t, Models{LM: f}, o, nil); str(other.Samples[0].Tokens) == a && i == 0 {
				t.Fatalf("seed 99 gave the same text as seed 1: %s", a)
			}
		})
	}
}

// loopFake is a LoopNet whose device loop records the spec it was asked for.
type loopFake struct {
	*fakeNet
	asked int
	spec  *engine.LoopSpec
}

var errNoDevice = errors.New("fake device loop")

func (l *loopFake) NewLoop(ctx context.Context, s *engine.LoopSpec) (engine.Loop, error) {
	l.asked++
	l.spec = s
	return nil, errNoDevice
}

// TestUnmaskUsesDeviceLoop: a backend with a device loop is asked to run
// the unmask method (engine/gpu TestDeviceLoopUnmask runs it), with the
// options resolved into LoopSpec.Unmask and the schedule as the host loop
// computes it (blocks of 3 over a template whose fixed text leaves block
// 1 with one placeholder); Options.HostLoop keeps it on the host.
func TestUnmaskUsesDeviceLoop(t *testing.T) {
	lf := &loopFake{fakeNet: unmaskFake(unmaskDists)}
	o := unmaskOpts(0, 8)
	v := lf.m.Vocab.Tokens
	o.Template = "__" + v[1] + "_" + v[2] + v[1] + "__"
	o.Ordering, o.OrderTemperature, o.UnmaskSchedule = OrderMargin, 0.5, UnmaskCosine
	o.ConfidenceThreshold, o.BlockLength, o.EarlyCommitGap = 0.9, 3, 0.25
	o.NumSamples = 2
	if _, err := Generate(context.Background(), Models{LM: lf}, o, nil); !errors.Is(err, errNoDevice) || lf.asked != 1 {
		t.Fatalf("unmask: err %v, asked %d (the fake must be a LoopNet)", err, lf.asked)
	}
	u := lf.spec.Unmask
	if u == nil || lf.spec.UseSampler || lf.spec.Multinomial {
		t.Fatalf("spec: unmask %v, sampler head %v, multinomial %v", u, lf.spec.UseSampler, lf.spec.Multinomial)
	}
	if u.Ordering != step.OrderMargin || u.OrderTemperature != 0.5 || u.ConfidenceThreshold != 0.9 || u.EarlyCommitGap != 0.25 ||
		u.Blocks != 3 || u.BlockLength != 3 {
		t.Fatalf("spec: %+v", *u)
	}
	// Blocks [0,3) [3,6) [6,8) with 2, 1, 2 placeholders; 8 steps: 3, 3, 2.
	// Cosine: floor(m0·cos(π/2·(s+1)/S)), 0 after the last step; a block's
	// steps from its first position's slot, at most m0 of them: block 0
	// floor(2·cos(π/6)) = 1, floor(2·cos(π/3)) = 1; block 1 floor(cos(π/6))
	// = 0; block 2 floor(2·cos(π/4)) = 1, then 0.
	want := []int{1, 1, 0, 0, 0, 0, 1, 0}
	for b := 0; b < 2; b++ {
		if got := u.Left[b*8 : b*8+8]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("row %d: schedule %v, want %v", b, got, want)
		}
	}
	o.HostLoop = true
	res := generate(t, Models{LM: lf}, o, nil)
	if lf.asked != 1 || res.Loop != "host" {
		t.Fatalf("host loop: device loop asked %d times, loop %q", lf.asked, res.Loop)
	}
}

func TestUnmaskOptions(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name  string
		mod   func(*Options)
		field string
	}{
		{"unmask", func(o *Options) { o.Method = Unmask }, ""},
		{"all-set", func(o *Options) {
			o.Method, o.Ordering, o.OrderTemperature, o.UnmaskSchedule = Unmask, OrderEntropy, 0.5, UnmaskCosine
			o.ConfidenceThreshold, o.BlockLength, o.EarlyCommitGap = 0.9, 32, 0.5
		}, ""},
		{"ordering-unknown", func(o *Options) { o.Method, o.Ordering = Unmask, "maskgit" }, "ordering"},
		{"schedule-unknown", func(o *Options) { o.Method, o.UnmaskSchedule = Unmask, "exp" }, "unmask_schedule"},
		{"order_temperature-neg", func(o *Options) { o.Method, o.OrderTemperature = Unmask, -1 }, "order_temperature"},
		{"order_temperature-nan", func(o *Options) { o.Method, o.OrderTemperature = Unmask, nan }, "order_temperature"},
		{"order_temperature-inf", func(o *Options) { o.Method, o.OrderTemperature = Unmask, math.Inf(1) }, "order_temperature"},
		{"order_temperature-random", func(o *Options) { o.Method, o.Ordering, o.OrderTemperature = Unmask, OrderRandom, 1 }, "order_temperature"},
		{"threshold-above", func(o *Options) { o.Method, o.ConfidenceThreshold = Unmask, 1.5 }, "confidence_threshold"},
		{"threshold-nan", func(o *Options) { o.Method, o.ConfidenceThreshold = Unmask, nan }, "confidence_threshold"},
		{"gap-neg", func(o *Options) { o.Method, o.EarlyCommitGap = Unmask, -0.1 }, "early_commit_gap"},
		{"block-neg", func(o *Options) { o.Method, o.BlockLength = Unmask, -4 }, "block_length"},
		{"block-huge", func(o *Options) { o.Method, o.BlockLength = Unmask, math.MaxInt }, ""},
		{"diffusion+ordering", func(o *Options) { o.Ordering = OrderMargin }, "ordering"},
		{"multinomial+block", func(o *Options) { o.Method, o.BlockLength = Multinomial, 4 }, "block_length"},
		{"diffusion+threshold", func(o *Options) { o.ConfidenceThreshold = .9 }, "confidence_threshold"},
		{"diffusion+gap", func(o *Options) { o.EarlyCommitGap = .9 }, "early_commit_gap"},
		{"diffusion+alg_temp", func(o *Options) { o.OrderTemperature = .5 }, "order_temperature"},
		{"diffusion+schedule", func(o *Options) { o.UnmaskSchedule = UnmaskCosine }, "unmask_schedule"},
		{"unmask+threshold-mode", func(o *Options) { o.Method, o.ScheduleMode = Unmask, ScheduleThreshold }, "schedule_mode"},
		{"unmask+randomness", func(o *Options) { o.Method, o.RandomnessStrength = Unmask, .2 }, "randomness_strength"},
		{"unmask+remasking", func(o *Options) { o.Method, o.Remasking = Unmask, RemaskCritic }, "remasking"},
		{"unmask+ratios-linear", func(o *Options) { o.Method, o.MaskingRatios = Unmask, []float64{.5} }, "masking_ratios"},
		{"unmask+ratios-ratio", func(o *Options) { o.Method, o.UnmaskSchedule, o.MaskingRatios = Unmask, UnmaskRatio, []float64{.5} }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Defaults()
			c.mod(&o)
			err := o.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			checkOptionError(t, err, c.field)
		})
	}
	// A remasking model with method unmask is refused at plan time.
	o := unmaskOpts(4, 4)
	_, err := Check(tinyLM(false, false, ""), nil, tinyClassifier(2), o)
	checkOptionError(t, err, "remasking_model")
}
