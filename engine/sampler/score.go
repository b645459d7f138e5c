package sampler

import (
	"context"
	"fmt"
)

// Score computes the quality metrics of given token rows (all of one
// length) exactly as Generate computes them for its samples: self-confidence,
// critic statistics and, with a judge, the judge score. It is how generated
// text is compared with real text. Only QualityMetric, Compat and the
// model-dependent checks of o matter; the sequence length and batch size
// come from rows.
func Score(ctx context.Context, m Models, rows [][]int32, o Options) (*Result, error) {
	if len(rows) == 0 {
		return nil, optErr("tokens", "no rows to score")
	}
	T := len(rows[0])
	for i, r := range rows {
		if len(r) != T || T == 0 {
			return nil, optErr("tokens", "row %d has %d tokens; every row must have the same, non-zero length (%d)", i, len(r), T)
		}
	}
	o.NumSamples, o.SequenceLength = len(rows), T
	o.SeedText, o.Template = "", ""
	g, err := newGeneration(m, o)
	if err != nil {
		return nil, err
	}
	g.guardFinite(false)
	for b, r := range rows {
		for t, id := range r {
			if id < 0 || int(id) >= g.V {
				return nil, optErr("tokens", "row %d, position %d: id %d is outside the vocabulary [0, %d)", b, t, id, g.V)
			}
		}
		copy(g.row(g.tokens, b), r)
	}
	if g.metric == MetricNone {
		return nil, fmt.Errorf("sampler: scoring with quality_metric none computes nothing")
	}
	return g.finish(ctx)
}
