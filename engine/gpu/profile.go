package gpu

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// KernelTime is the measured time of one kernel of the trunk.
type KernelTime struct {
	Name  string  `json:"name"`  // e.g. "h.0.mlp.c_fc"
	Ms    float64 `json:"ms"`    // per dispatch
	Grid  string  `json:"grid"`  // workgroups, "x·y·z"
	Group string  `json:"group"` // the name without its layer, e.g. "mlp.c_fc"
}

// Profile times every kernel of the trunk at (B, T) on its own: each is
// recorded reps times into one command buffer, submitted and waited for, and
// the wall time is divided by reps (so the per-submission cost is spread
// out). The kernels run on the activations of tokens, but repeating the
// residual adds changes them: the hidden state of the latest Encode is
// invalid afterwards (Encode again before reading a head).
func (n *Net) Profile(ctx context.Context, tokens []int32, B, T, reps int) ([]KernelTime, error) {
	if reps < 1 {
		return nil, fmt.Errorf("gpu: profile: reps %d < 1", reps)
	}
	if _, err := n.Encode(ctx, tokens, B, T); err != nil {
		return nil, err
	}
	n.gen++ // the hidden state is about to be overwritten
	if err := n.Sync(ctx); err != nil {
		return nil, err
	}
	ops, err := n.trunkOps(B, T)
	if err != nil {
		return nil, err
	}
	out := make([]KernelTime, 0, len(ops))
	for _, o := range ops {
		batch := make([]op, reps)
		for i := range batch {
			batch[i] = o
		}
		var el time.Duration
		for pass := 0; pass < 2; pass++ { // the first pass makes the bind groups
			rec, err := n.d.p.newRecorder()
			if err != nil {
				return nil, err
			}
			if err := n.trunk.record(rec, batch); err != nil {
				rec.submit()
				return nil, fmt.Errorf("gpu: profile %s: %w", o.name, err)
			}
			start := time.Now()
			if err := n.d.submit(rec); err != nil {
				return nil, fmt.Errorf("gpu: profile %s: %w", o.name, err)
			}
			if err := n.Sync(ctx); err != nil {
				return nil, err
			}
			el = time.Since(start)
		}
		group := o.name
		if strings.HasPrefix(group, "h.") {
			if _, rest, ok := strings.Cut(group[2:], "."); ok {
				group = rest
			}
		}
		out = append(out, KernelTime{Name: o.name, Group: group,
			Ms:   el.Seconds() * 1000 / float64(reps),
			Grid: fmt.Sprintf("%d·%d·%d", o.wg[0], o.wg[1], o.wg[2])})
	}
	return out, nil
}
