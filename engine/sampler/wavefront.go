package sampler

import (
	"context"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/internal/step"
)

// wavefront fills the masked positions of pred with the sampler head, wave
// by wave (sampler-spec 4.5; step.Wave plans each wave): a wave takes every masked position with an
// unmasked left or right neighbour in its row, conditions the head on those
// neighbours (or on zeros), and writes the whole wave at once. A row whose
// masked positions have no unmasked neighbour is bootstrapped: its
// max(1, floor(n_masked * min_neighbors_ratio)) positions with the largest
// raw LM logit join the wave (per row by default; a global top-k over the
// batch with the global-bootstrap compat switch). There is one trunk pass per
// iteration (h); waves only re-run the small sampler MLP. Without the
// wave-cap compat switch every mask is filled; with it at most T waves run.
func (g *generation) wavefront(ctx context.Context, it int, h engine.Hidden, pred []int32) error {
	V := g.V
	w := step.Wave{B: g.B, T: g.T, V: V, Mask: g.mask, Ratio: g.cfg.Sampler.MinNeighborsRatio,
		Global: g.o.Compat.GlobalBootstrap, Embeddings: g.neighbors == "embeddings"}
	var out []float32
	drawn := []int32{}
	for waves := 0; ; waves++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if g.o.Compat.WaveCap && waves >= g.T {
			return nil
		}
		pos, left, right, masked := w.Plan(pred, g.logits)
		if masked == 0 {
			return nil
		}
		if cap(out) < len(pos)*V {
			out = make([]float32, len(pos)*V)
		}
		out = out[:len(pos)*V]
		if err := g.lm.SamplerLogits(ctx, h, pos, left, right, out); err != nil {
			return err
		}
		drawn = drawn[:0]
		for i, p := range pos {
			tok, err := g.drawAt(g.sampler, it, int(p), out[i*V:(i+1)*V])
			if err != nil {
				return err
			}
			drawn = append(drawn, tok)
		}
		for i, p := range pos {
			pred[p] = drawn[i]
		}
	}
}
