package sampler

import (
	"context"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/step"
)

// Models are the networks one generation uses. LM is required; Judge (a
// sequence scorer) and Remasker (a token classifier) are optional.
type Models struct {
	LM       engine.Net
	Judge    engine.Net
	Remasker engine.Net
}

// Generate runs one generation: diffusion (predict, remask, repeat) or
// multinomial resampling, then the quality metrics. observe, when not nil,
// is called once per iteration. Option errors are *OptionError.
func Generate(ctx context.Context, m Models, o Options, observe func(*Event)) (*Result, error) {
	g, err := newGeneration(m, o)
	if err != nil {
		return nil, err
	}
	g.observe = observe
	start := time.Now()
	ln := g.loopNet()
	g.guardFinite(ln != nil) // NaN/Inf from a head is an error (finite.go)
	if ln != nil {
		return g.runDevice(ctx, ln, start)
	}
	g.res.Loop = "host"
	switch o.Method {
	case Multinomial:
		err = g.multinomial(ctx)
	case Unmask:
		err = g.unmask(ctx)
	default:
		err = g.diffusion(ctx)
	}
	if err != nil {
		return nil, err
	}
	g.res.Seconds = time.Since(start).Seconds()
	if g.res.Seconds > 0 {
		g.res.TokensPerSecond = float64(g.B*g.T) / g.res.Seconds
	}
	return g.finish(ctx)
}

// finish computes the quality metrics (timed as Timings.Metrics) and copies
// the final tokens and their text into the result: the end of Generate and
// of Score.
func (g *generation) finish(ctx context.Context) (*Result, error) {
	t0 := time.Now()
	if err := g.metrics(ctx); err != nil {
		return nil, err
	}
	g.res.Timings.Metrics = time.Since(t0).Seconds()
	g.finishSamples()
	return &g.res, nil
}

// finishSamples copies the final tokens and their text into the result.
func (g *generation) finishSamples() {
	for b := 0; b < g.B; b++ {
		row := append([]int32(nil), g.row(g.tokens, b)...)
		g.res.Samples[b].Tokens = row
		g.res.Samples[b].Text = Decode(g.vocab, row)
	}
}

// generation is the state of one Generate call.
type generation struct {
	o       Options
	lm      engine.Net
	judge   engine.Net
	remaskr engine.Net
	cfg     *model.Config
	vocab   *model.Vocab
	observe func(*Event)

	B, T, V, N int
	mask       int32
	strategy   string        // the remasking strategy's name (Result.Strategy)
	remasking  step.Strategy // the same, resolved
	metric     string
	useSampler bool
	neighbors  string // zeros | embeddings

	tokens    []int32   // (B, T) current input
	protected []bool    // (B, T) seed / template positions
	logits    []float32 // (B, T, V) LM logits of the last predict pass
	critic    []float32 // (B, T) critic logits used by remasking
	hasCritic bool      // critic holds the logits of this iteration

	templateIDs []int32 // template ids, -1 at placeholders
	seedIDs     []int32 // seed text ids
	// wrong is the remasking strategy's wrongness per position (B, T) of
	// the current iteration's prediction, nil when it has none.
	wrong []float64

	// Remasking scratch, reused every iteration: scores and wrongness (B, T),
	// the token classifier's logits (B, T, K).
	scoreBuf, wrongBuf []float64
	classBuf           []float32

	// The models' descriptions (planning reads only these).
	lmModel, judgeModel, remaskModel *model.Model

	naive *step.Sampler // naive, multinomial and unmask paths

	// The unmask method, resolved (planUnmask).
	ordering  step.Ordering
	schedule  step.UnmaskSchedule
	numBlocks int
	sampler   *step.Sampler // sampler-head path

	res Result
}

func (g *generation) row(x []int32, b int) []int32 { return x[b*g.T : (b+1)*g.T] }
