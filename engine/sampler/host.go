package sampler

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/rng"
	"github.com/remask/remask/internal/step"
)

// The host loop: every iteration on the CPU side of engine.Net (predict,
// remask, repeat; or multinomial resampling), with the pure steps of
// internal/step. It runs on every backend; device.go runs the same loop on
// a device that implements engine.LoopNet.

// countMasked counts mask ids in x.
func (g *generation) countMasked(x []int32) int {
	n := 0
	for _, t := range x {
		if t == g.mask {
			n++
		}
	}
	return n
}

// timed adds the duration of f to *acc.
func timed(acc *float64, f func() error) error {
	t := time.Now()
	err := f()
	*acc += time.Since(t).Seconds()
	return err
}

// diffusion is the iteration skeleton of sampler-spec 4.2.
func (g *generation) diffusion(ctx context.Context) error {
	pred := make([]int32, len(g.tokens))
	for it := 0; it < g.N; it++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev := g.hostEvent(it)
		copy(pred, g.tokens)
		g.wrong = nil
		if err := g.predict(ctx, it, pred); err != nil {
			return err
		}
		var sel [][]int
		if it < g.N-1 {
			ev.Ratio = g.o.scheduleRatio(it + 1)
			var stop bool
			var minW float64
			err := timed(&g.res.Timings.Remasking, func() (err error) {
				sel, minW, stop, err = g.remask(ctx, it, pred, ev.Ratio)
				return err
			})
			if err != nil {
				return err
			}
			ev.MinWrongness = minW
			ev.EarlyStop = stop
		}
		g.record(it, pred, sel)
		g.emit(&ev, pred, sel)
		// Next input: the prediction with the selected positions masked again.
		copy(g.tokens, pred)
		for b, ps := range sel {
			for _, p := range ps {
				g.tokens[b*g.T+p] = g.mask
			}
		}
		g.res.IterationsRun = it + 1
		if ev.EarlyStop {
			break
		}
	}
	return nil
}

// emit reports an iteration to the observer.
func (g *generation) emit(ev *Event, pred []int32, sel [][]int) {
	if g.observe == nil {
		return
	}
	filled := make([]bool, len(pred))
	for i, t := range g.tokens {
		filled[i] = t == g.mask
	}
	ev.Tokens = pred
	ev.Wrongness = g.wrong
	ev.Filled = filled
	ev.Remasked = sel
	g.observe(ev)
}

// record appends the --save entries of iteration it.
func (g *generation) record(it int, pred []int32, sel [][]int) {
	if !g.o.Record {
		return
	}
	for b := 0; b < g.B; b++ {
		idx := []int{}
		if sel != nil {
			idx = append(idx, sel[b]...)
		}
		g.res.Iterations[b] = append(g.res.Iterations[b], IterationRecord{
			Iteration:       it + 1,
			InputMasked:     append([]int32(nil), g.row(g.tokens, b)...),
			OutputUnmasked:  append([]int32(nil), g.row(pred, b)...),
			RemaskedIndices: idx,
		})
	}
}

// predict fills the masked positions of pred (a copy of the input) by the
// naive path or the sampler-head wavefront. It leaves the LM logits of the
// input in g.logits and, with the critic-on-input compat switch, the critic
// logits of the input in g.critic.
func (g *generation) predict(ctx context.Context, it int, pred []int32) error {
	var h engine.Hidden
	g.hasCritic = false
	err := timed(&g.res.Timings.Forward, func() (err error) {
		if h, err = g.lm.Encode(ctx, g.tokens, g.B, g.T); err != nil {
			return err
		}
		if err = g.lm.Logits(ctx, h, g.logits); err != nil {
			return err
		}
		if g.o.Compat.CriticOnInput && (g.strategy == RemaskCritic || g.strategy == RemaskCalibrated) {
			g.hasCritic = true
			return g.lm.CriticLogits(ctx, h, g.critic)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return timed(&g.res.Timings.Sampling, func() error {
		if g.useSampler {
			return g.wavefront(ctx, it, h, pred)
		}
		return g.sampleNaive(it, pred)
	})
}

// drawAt draws the token of flat position p with sampler s from logits (V).
func (g *generation) drawAt(s *step.Sampler, it, p int, logits []float32) (int32, error) {
	b, pos := p/g.T, p%g.T
	u := rng.Uniform(g.o.Seed, uint32(b), uint32(it), uint32(pos), rng.Token)
	tok := s.Draw(logits, u)
	if tok < 0 {
		return 0, fmt.Errorf("%s gave no finite probability to any allowed token at sample %d, position %d (NaN or -inf logits): the model file is probably damaged", g.lmModel.Name(), b, pos)
	}
	return tok, nil
}

// sampleNaive draws every masked position of pred from the LM logits.
func (g *generation) sampleNaive(it int, pred []int32) error {
	for p, t := range pred {
		if t != g.mask {
			continue
		}
		tok, err := g.drawAt(g.naive, it, p, g.logits[p*g.V:(p+1)*g.V])
		if err != nil {
			return err
		}
		pred[p] = tok
	}
	return nil
}

// hostEvent is the event of host-loop iteration it, before its prediction.
func (g *generation) hostEvent(it int) Event {
	return Event{Iteration: it, Iterations: g.N, Masked: g.countMasked(g.tokens), Total: len(g.tokens),
		Ratio: math.NaN(), MinWrongness: math.NaN()}
}

// lmLogits runs the language model on the current tokens into g.logits,
// timed as forward.
func (g *generation) lmLogits(ctx context.Context) error {
	return timed(&g.res.Timings.Forward, func() error {
		h, err := g.lm.Encode(ctx, g.tokens, g.B, g.T)
		if err != nil {
			return err
		}
		return g.lm.Logits(ctx, h, g.logits)
	})
}

// multinomial resamples every unprotected position each iteration from the
// full distribution (no top-p, no remasking; sampler-spec 4.9).
func (g *generation) multinomial(ctx context.Context) error {
	next := make([]int32, len(g.tokens))
	for it := 0; it < g.N; it++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev := g.hostEvent(it)
		if err := g.lmLogits(ctx); err != nil {
			return err
		}
		err := timed(&g.res.Timings.Sampling, func() error {
			for p := range next {
				if g.protected[p] {
					next[p] = g.tokens[p]
					continue
				}
				tok, err := g.drawAt(g.naive, it, p, g.logits[p*g.V:(p+1)*g.V])
				if err != nil {
					return err
				}
				next[p] = tok
			}
			return nil
		})
		if err != nil {
			return err
		}
		g.recordMultinomial(it, next)
		g.emit(&ev, next, nil)
		copy(g.tokens, next)
		g.res.IterationsRun = it + 1
	}
	return nil
}

// recordMultinomial keeps the reference's multinomial --save layout
// (sampler-spec 4.12): entry k-1's remasked_indices are the positions that
// change in iteration k, and entry k's input_masked is the previous tokens
// with those positions replaced by the mask id.
func (g *generation) recordMultinomial(it int, next []int32) {
	if !g.o.Record {
		return
	}
	for b := 0; b < g.B; b++ {
		prev, cur := g.row(g.tokens, b), g.row(next, b)
		in := append([]int32(nil), prev...)
		if it > 0 {
			changed := []int{}
			for t := range cur {
				if cur[t] != prev[t] {
					changed = append(changed, t)
					in[t] = g.mask
				}
			}
			recs := g.res.Iterations[b]
			recs[len(recs)-1].RemaskedIndices = changed
		}
		g.res.Iterations[b] = append(g.res.Iterations[b], IterationRecord{
			Iteration: it + 1, InputMasked: in, OutputUnmasked: append([]int32(nil), cur...), RemaskedIndices: []int{},
		})
	}
}
