package sampler

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/internal/step"
)

// The device loop: when the language model's backend can run the whole
// sampling loop (engine.LoopNet, the WebGPU backend), Generate resolves the
// options into an engine.LoopSpec and steps the device; the host loop
// (host.go) is its CPU twin and runs everywhere else, or with
// Options.HostLoop.

// loopNet returns the LM as a LoopNet when the device loop applies.
func (g *generation) loopNet() engine.LoopNet {
	if g.o.HostLoop {
		return nil
	}
	ln, ok := g.lm.(engine.LoopNet)
	if !ok {
		return nil
	}
	if g.remaskr != nil {
		if _, ok := g.remaskr.(engine.LoopNet); !ok {
			return nil
		}
	}
	return ln
}

// loopSpec is the generation as the device sees it.
func (g *generation) loopSpec() *engine.LoopSpec {
	o := &g.o
	s := &engine.LoopSpec{B: g.B, T: g.T, Tokens: g.tokens, Protected: g.protected, Mask: g.mask, Seed: o.Seed,
		Multinomial: o.Method == Multinomial, Iterations: g.N, Threshold: o.ScheduleMode == ScheduleThreshold,
		Temperature: o.Temperature, TopP: g.naive.TopP, SamplerTopP: g.sampler.TopP,
		ExcludeNaive: g.naive.Exclude, ExcludeSampler: g.sampler.Exclude,
		UseSampler: g.useSampler, Embeddings: g.neighbors == "embeddings",
		GlobalBootstrap: o.Compat.GlobalBootstrap, WaveCap: o.Compat.WaveCap,
		Strategy: g.remasking, CriticOnInput: o.Compat.CriticOnInput, RandomnessStrength: o.RandomnessStrength,
		Remasker: g.remaskr, Profile: o.ProfileStages}
	if g.useSampler {
		s.MinNeighborsRatio = g.cfg.Sampler.MinNeighborsRatio
	}
	if o.Method == Unmask {
		s.Unmask = g.unmaskSpec()
	}
	if o.Method == Diffusion {
		for it := 0; it < g.N-1; it++ {
			s.Ratios = append(s.Ratios, o.scheduleRatio(it+1))
		}
		if g.remasking == step.Calibrated {
			s.Calibration = g.cfg.CriticCalibration
			if len(s.Calibration) == 0 {
				s.Calibration = step.DefaultCalibration()
			}
		}
	}
	return s
}

// runDevice is Generate on the device loop.
func (g *generation) runDevice(ctx context.Context, ln engine.LoopNet, start time.Time) (*Result, error) {
	t0 := time.Now()
	loop, err := ln.NewLoop(ctx, g.loopSpec())
	if err != nil {
		return nil, err
	}
	defer loop.Close()
	g.res.Loop = "device"
	work := &DeviceWork{HostMs: map[string]float64{"new loop": msSince(t0)}}
	g.res.Device = work
	want := g.observe != nil || g.o.Record
	unmask := g.o.Method == Unmask
	n := g.N
	if unmask && g.countMasked(g.tokens) == 0 {
		n = 0 // nothing to commit: no step, as the host loop
	}
	for it := 0; it < n; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ev := Event{Iteration: it, Iterations: g.N, Total: len(g.tokens), Ratio: math.NaN(), MinWrongness: math.NaN()}
		if want {
			ev.Masked = g.countMasked(g.tokens)
		}
		t0 := time.Now()
		st, err := loop.Step(ctx, it, want)
		work.HostMs["steps"] += msSince(t0)
		if err != nil {
			return nil, err
		}
		work.Submits += st.Submits
		work.Dispatches += st.Dispatches
		work.ReadBytes += st.ReadBytes
		g.res.IterationsRun = it + 1
		remasks := g.o.Method == Diffusion && it < g.N-1
		if remasks {
			ev.Ratio = g.o.scheduleRatio(it + 1)
			ev.MinWrongness = st.MinWrongness
			ev.EarlyStop = st.EarlyStop
		}
		if want {
			g.deviceEvent(it, &ev, st, remasks)
		}
		for b, s := range st.Steps {
			g.res.Samples[b].Steps = s
		}
		if st.EarlyStop {
			break
		}
	}
	// The final read: the tokens and, with a device metric, the metrics
	// pass on them, in one submission and one read (engine.Loop.Finish).
	fin := g.loopFinish()
	phase := "tokens"
	if fin.Metrics {
		phase = "tokens+metrics"
	}
	t0 = time.Now()
	final, err := loop.Finish(ctx, fin)
	work.HostMs[phase] = msSince(t0)
	if err != nil {
		return nil, err
	}
	toks := final.Tokens
	if unmask {
		for b := 0; b < g.B; b++ {
			if g.countMasked(g.row(toks, b)) > 0 {
				return nil, fmt.Errorf("sampler: unmask: sample %d still has masked positions after %d steps on the device (a bug)", b, g.N)
			}
		}
	}
	g.tokens = toks
	work.Waves = loop.Waves()
	// The device's metrics pass came back with the tokens, so Seconds
	// includes it (Result.Seconds).
	g.res.Seconds = time.Since(start).Seconds()
	g.res.Timings.Forward = g.res.Seconds // the device runs every stage; see Result.Device
	if g.res.Seconds > 0 {
		g.res.TokensPerSecond = float64(g.B*g.T) / g.res.Seconds
	}
	t0 = time.Now()
	if err := g.deviceMetrics(ctx, final.Metrics); err != nil {
		return nil, err
	}
	g.res.Timings.Metrics = time.Since(t0).Seconds()
	if g.metric == MetricJudge {
		work.HostMs["judge"] = 1e3 * g.res.Timings.Metrics
	}
	work.StagesMs = loop.StagesMs()
	g.finishSamples()
	return &g.res, nil
}

// deviceEvent reports a device iteration as the host loop would and keeps
// the host's copy of the tokens current.
func (g *generation) deviceEvent(it int, ev *Event, st *engine.LoopStep, remasks bool) {
	pred := st.Pred
	if g.o.Method == Multinomial {
		g.recordMultinomial(it, pred)
		g.emit(ev, pred, nil)
		copy(g.tokens, pred)
		return
	}
	var sel [][]int
	if g.o.Method == Unmask || remasks && st.Scored && !st.EarlyStop {
		// unmask: every drawn position left [MASK] is reported as remasked.
		sel = make([][]int, g.B)
		for b := range sel {
			sel[b] = []int{}
			for t := 0; t < g.T; t++ {
				if st.Selected[b*g.T+t] {
					sel[b] = append(sel[b], t)
				}
			}
		}
	}
	g.wrong = st.Wrongness
	g.record(it, pred, sel)
	g.emit(ev, pred, sel)
	copy(g.tokens, pred)
	for i, s := range st.Selected {
		if s {
			g.tokens[i] = g.mask
		}
	}
}

// loopFinish is what Finish computes besides the tokens: every metric
// but none has the self-confidence and, on a model with a critic, the
// critic statistics computed on the device (metrics() on the host).
func (g *generation) loopFinish() engine.LoopFinish {
	if g.metric == MetricNone {
		return engine.LoopFinish{}
	}
	pad := int32(-1)
	if g.vocab.PadTokenID != nil {
		pad = int32(*g.vocab.PadTokenID)
	}
	return engine.LoopFinish{Metrics: true, Critic: g.cfg.HasCritic(), Pad: pad}
}

// deviceMetrics is the rest of metrics() once Finish has computed m on the
// device (nil: MetricNone): the samples' self-confidence and critic
// statistics, then the judge on its own Net.
func (g *generation) deviceMetrics(ctx context.Context, m *engine.LoopMetrics) error {
	if g.metric == MetricNone {
		return nil
	}
	if m == nil {
		return fmt.Errorf("sampler: the device loop returned no metrics (a bug)")
	}
	for b := 0; b < g.B; b++ {
		if c := m.SelfConfidence[b]; !math.IsNaN(c) {
			g.res.Samples[b].SelfConfidence = &c
		}
		bad := 0
		if b < len(m.CriticNonFinite) {
			bad = m.CriticNonFinite[b]
		}
		if m.CriticN != nil && m.CriticN[b] > 0 && (!finite(m.CriticMean[b]) || bad > 0) {
			// The device loop has no per-value check of the critic
			// logits (finite.go checks them on the host): the metrics
			// pass counts the final rows' non-finite critic logits by
			// their bits (a GPU may compute the mean assuming no NaN).
			return fmt.Errorf("%s: the critic head gave non-finite values in sample %d on the device (%d of %d positions; critic mean %v): the model file is probably damaged (NaN or infinite weights); convert the checkpoint again", g.lmModel.Name(), b, bad, m.CriticN[b], m.CriticMean[b])
		}
		if m.CriticN != nil && m.CriticN[b] > 0 {
			g.res.Samples[b].Critic = &CriticStats{Mean: m.CriticMean[b], P10: m.CriticP10[b], P50: m.CriticP50[b], P90: m.CriticP90[b]}
		}
	}
	if g.metric == MetricJudge {
		return g.judgeScores(ctx)
	}
	return nil
}

// msSince is the wall time since t0 in milliseconds.
func msSince(t0 time.Time) float64 { return 1e3 * time.Since(t0).Seconds() }
