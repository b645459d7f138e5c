package sampler

import (
	"context"
	"fmt"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/rng"
	"github.com/remask/remask/internal/step"
)

// The unmask method (docs/sampling.md "Method unmask"): each step runs the
// LM on the current tokens, draws a token at every masked position, and
// commits some of them for good; the rest go back to [MASK]. Which ones:
// the ordering's top k of the row's current block (k from the schedule),
// with every position whose top-1 probability reaches the confidence
// threshold, or all remaining positions of the row when Prophet's gap test
// passes. The device loop runs the same steps (engine/gpu unmask.go) from
// unmaskSpec.

// planUnmask resolves the unmask options against the sequence.
func (g *generation) planUnmask(warn func(string, ...any)) error {
	o := &g.o
	var err error
	name := o.Ordering
	if name == "" {
		name = OrderConfidence
	}
	if g.ordering, err = step.ParseOrdering(name); err != nil {
		return optErr("ordering", "%v", err)
	}
	sched := o.UnmaskSchedule
	if sched == "" {
		sched = UnmaskLinear
	}
	if g.schedule, err = step.ParseUnmaskSchedule(sched); err != nil {
		return optErr("unmask_schedule", "%v", err)
	}
	g.numBlocks = step.Blocks(g.T, o.BlockLength)
	if g.N < g.numBlocks {
		return optErr("iterations", "%d steps for %d blocks of block_length %d (sequence of %d): every block needs a step; use at least %d iterations or a longer block_length",
			g.N, g.numBlocks, o.BlockLength, g.T, g.numBlocks)
	}
	if o.SamplerNeighbors != "" {
		warn("sampler_neighbors is ignored by method unmask: it draws from the LM head")
	}
	return nil
}

// unmaskRow is a row's progress through its blocks.
type unmaskRow struct {
	block int // current block
	step  int // steps taken in the current block
	m0    int // masked positions of the block at its first step
	steps int // steps in which the row had masked positions
}

// blockRange returns the positions [t0, t1) of block j.
func (g *generation) blockRange(j int) (int, int) {
	L := g.T
	if g.numBlocks > 1 {
		L = g.o.BlockLength
	}
	return j * L, min((j+1)*L, g.T)
}

// maskedIn counts the mask ids of row b in [t0, t1).
func (g *generation) maskedIn(b, t0, t1 int) int {
	n := 0
	for _, t := range g.tokens[b*g.T+t0 : b*g.T+t1] {
		if t == g.mask {
			n++
		}
	}
	return n
}

// advance moves row b past finished blocks; false when the row is done.
func (g *generation) advance(b int, r *unmaskRow) bool {
	for r.block < g.numBlocks {
		t0, t1 := g.blockRange(r.block)
		if n := g.maskedIn(b, t0, t1); n > 0 {
			if r.step == 0 {
				r.m0 = n
			}
			return true
		}
		r.block++
		r.step = 0
	}
	return false
}

// unmaskLeft is how many of block j's m0 masked positions the schedule
// leaves masked after the block's step s.
func (g *generation) unmaskLeft(j, m0, s int) int {
	o := &g.o
	S := step.BlockSteps(g.N, g.numBlocks, j)
	return g.schedule.StillMasked(m0, S, s, func(i int) float64 {
		return step.ForkRatio(o.StartRatio, o.EndRatio, o.MaskingRatios, i, S)
	})
}

// unmaskSpec is the unmask method for the device loop. The schedule is a
// table per row: a block's masked count at its first step is its count in
// the initial tokens, since only the current block's positions are
// committed before it (an early commit finishes the row).
func (g *generation) unmaskSpec() *engine.UnmaskSpec {
	o := &g.o
	u := &engine.UnmaskSpec{Ordering: g.ordering, OrderTemperature: o.OrderTemperature,
		ConfidenceThreshold: o.ConfidenceThreshold, EarlyCommitGap: o.EarlyCommitGap,
		Blocks: g.numBlocks, BlockLength: g.T, Left: make([]int, g.B*g.T)}
	if g.numBlocks > 1 {
		u.BlockLength = o.BlockLength
	}
	for b := 0; b < g.B; b++ {
		for j := 0; j < g.numBlocks; j++ {
			t0, t1 := g.blockRange(j)
			m0 := g.maskedIn(b, t0, t1)
			S := step.BlockSteps(g.N, g.numBlocks, j)
			for s := 0; s < min(S, m0); s++ {
				u.Left[b*g.T+t0+s] = g.unmaskLeft(j, m0, s)
			}
		}
	}
	return u
}

func (g *generation) unmask(ctx context.Context) error {
	o := &g.o
	rows := make([]unmaskRow, g.B)
	pred := make([]int32, len(g.tokens))
	var (
		cands      []int
		keys, conf []float64
		gaps       []float64
		rest       []int
	)
	for it := 0; it < g.N; it++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		active := make([]bool, g.B)
		anyActive := false
		for b := range rows {
			active[b] = g.advance(b, &rows[b])
			anyActive = anyActive || active[b]
		}
		if !anyActive {
			break
		}
		ev := g.hostEvent(it)
		if err := g.lmLogits(ctx); err != nil {
			return err
		}
		copy(pred, g.tokens)
		sel := make([][]int, g.B)
		err := timed(&g.res.Timings.Sampling, func() error {
			for b := range rows {
				sel[b] = []int{}
				if !active[b] {
					continue
				}
				r := &rows[b]
				t0, t1 := g.blockRange(r.block)
				cands, keys, conf, gaps, rest = cands[:0], keys[:0], conf[:0], gaps[:0], rest[:0]
				for t := 0; t < g.T; t++ {
					p := b*g.T + t
					if g.tokens[p] != g.mask {
						continue
					}
					probs, total := g.naive.Distribution(g.logits[p*g.V : (p+1)*g.V])
					u := rng.Uniform(o.Seed, uint32(b), uint32(it), uint32(t), rng.Token)
					tok := step.Pick(probs, total, u)
					if tok < 0 {
						return fmt.Errorf("%s gave no finite probability to any allowed token at sample %d, position %d (NaN or -inf logits): the model file is probably damaged", g.lmModel.Name(), b, t)
					}
					c := step.Certain(probs, total)
					pred[p] = tok
					gaps = append(gaps, c.Gap())
					rest = append(rest, t)
					if t < t0 || t >= t1 {
						continue
					}
					un := float64(rng.Uniform(o.Seed, uint32(b), uint32(it), uint32(t), rng.OrderNoise))
					cands = append(cands, t)
					keys = append(keys, step.GumbelKey(g.ordering.Score(c, un), o.OrderTemperature, un))
					conf = append(conf, c.P1)
				}
				var commit []int
				if step.EarlyCommit(gaps, o.EarlyCommitGap) {
					commit = rest
				} else {
					left := g.unmaskLeft(r.block, r.m0, r.step)
					k := step.CommitCount(len(cands), left)
					commit = step.SelectCommits(cands, keys, conf, k, o.ConfidenceThreshold)
				}
				// Everything masked and not committed goes back to [MASK].
				keep := make(map[int]bool, len(commit))
				for _, t := range commit {
					keep[t] = true
				}
				for _, t := range rest {
					if !keep[t] {
						sel[b] = append(sel[b], t)
					}
				}
				r.step++
				r.steps++
			}
			return nil
		})
		if err != nil {
			return err
		}
		g.record(it, pred, sel)
		g.emit(&ev, pred, sel)
		copy(g.tokens, pred)
		for b, ps := range sel {
			for _, t := range ps {
				g.tokens[b*g.T+t] = g.mask
			}
		}
		g.res.IterationsRun = it + 1
	}
	for b := range rows {
		if g.advance(b, &rows[b]) {
			return fmt.Errorf("sampler: unmask: sample %d still has masked positions after %d steps (a bug)", b, g.N)
		}
		g.res.Samples[b].Steps = rows[b].steps
	}
	return nil
}
