package engine

import (
	"context"

	"github.com/remask/remask/internal/step"
)

// The device loop: a Net that can run the whole sampling loop on its own
// device (the WebGPU backend) implements LoopNet. engine/sampler resolves
// every option into a LoopSpec (the plan), and the device then runs each
// iteration (trunk, heads, token draws, sampler-head waves, remask scores,
// per-row selection, the next input) without the host touching the logits.
// engine/sampler's host loop is the CPU twin of every step.

// LoopNet is a Net whose device can run the sampling loop.
type LoopNet interface {
	Net
	// NewLoop uploads the initial state of one generation. It returns an
	// error when the spec asks for something the device cannot run.
	NewLoop(ctx context.Context, spec *LoopSpec) (Loop, error)
}

// LoopSpec is one generation, fully resolved by engine/sampler.
type LoopSpec struct {
	B, T      int
	Tokens    []int32 // (B, T) initial input: [MASK] everywhere but seed/template
	Protected []bool  // (B, T) seed and template positions
	Mask      int32
	Seed      uint64

	Multinomial bool // method multinomial: every iteration redraws every unprotected position
	Iterations  int
	// Ratios[it] is the schedule value of the remask after iteration it
	// (ratio(it+1)), len Iterations-1.
	Ratios    []float64
	Threshold bool // schedule mode threshold (false: ratio)

	Temperature float64
	TopP        float64 // naive path (1 in multinomial mode)
	SamplerTopP float64
	// Excluded ids of the naive/multinomial path and of the sampler-head path.
	ExcludeNaive, ExcludeSampler []bool

	UseSampler        bool
	Embeddings        bool // neighbour mode embeddings (false: zeros)
	MinNeighborsRatio float64
	GlobalBootstrap   bool
	WaveCap           bool

	// Strategy is the remasking strategy (ignored by the multinomial
	// method); a backend refuses one it does not know.
	Strategy           step.Strategy
	CriticOnInput      bool
	RandomnessStrength float64
	Calibration        []float64 // 100 entries, calibrated strategy
	Remasker           Net       // token classifier of step.Model, on the same device

	// Unmask is the unmask method's plan (nil: diffusion or multinomial);
	// Ratios, Strategy and the sampler-head fields are then unused.
	Unmask *UnmaskSpec

	// Profile asks for GPU time per stage (timestamp queries where the
	// adapter has them); reading them waits for every submission.
	Profile bool
}

// UnmaskSpec is the unmask method (docs/sampling.md "Method unmask"),
// resolved by engine/sampler: the ordering and its Gumbel temperature, the
// blocks, the Fast-dLLM threshold and Prophet's gap, and the schedule as a
// table. LoopSpec.Iterations are the steps the blocks share.
type UnmaskSpec struct {
	Ordering            step.Ordering
	OrderTemperature    float64 // 0: no Gumbel noise
	ConfidenceThreshold float64 // 0: none
	EarlyCommitGap      float64 // 0: none
	Blocks              int     // >= 1, at most Iterations
	BlockLength         int     // positions per block (T when Blocks is 1)
	// Left[b·T + j·BlockLength + s] is how many of block j's [MASK]
	// positions of row b the schedule leaves masked after the block's step
	// s (step.StillMasked with the block's initial [MASK] count m0), for s
	// < min(its steps, m0); 0 in the other slots. A block never takes more
	// than m0 steps (each commits at least one position), so (B, T) holds
	// every step whatever the number of iterations.
	Left []int
}

// LoopStep is what one iteration reports. Pred, Selected and Wrongness are
// filled only when Step was asked for them (want).
type LoopStep struct {
	Pred      []int32   // (B, T) the prediction
	Selected  []bool    // (B, T) positions masked again for the next iteration
	Wrongness []float64 // (B, T) the strategy's wrongness, nil when it has none
	// Remasked is the number of positions masked again per row (always set
	// for diffusion iterations that remask; nil otherwise).
	Remasked     []int
	Scored       bool    // the remask ran (false: last iteration, or k <= 0 in ratio mode)
	MinWrongness float64 // smallest wrongness among the selected, NaN if none
	EarlyStop    bool    // threshold mode selected nothing in the whole batch; unmask: no row has a [MASK] left
	Steps        []int   // unmask: the steps each row has taken so far (Result's per-sample steps)
	// Submits, Dispatches and ReadBytes count this iteration's device work.
	Submits, Dispatches int
	ReadBytes           int
}

// LoopMetrics are the device-computed quality statistics of the final tokens.
type LoopMetrics struct {
	SelfConfidence []float64 // per row; NaN when every position is masked
	// Critic statistics per row over positions that are neither mask nor
	// pad: mean, p10, p50, p90 (linear interpolation); N is the count (0:
	// none). Nil without a critic.
	CriticMean, CriticP10, CriticP50, CriticP90 []float64
	CriticN                                     []int
	// CriticNonFinite per row: how many of those positions have a NaN or
	// infinite critic logit (a damaged model; the statistics themselves
	// need not show it, since a GPU may compute them assuming no NaN).
	CriticNonFinite []int
}

// LoopFinish says what Finish computes on the final tokens besides reading
// them back.
type LoopFinish struct {
	// Metrics asks for the self-confidence of every row: one trunk pass on
	// the final tokens, recorded in the same submission as their read.
	Metrics bool
	// Critic adds the critic statistics (with Metrics, on a model with a
	// critic head); Pad is the id they skip besides the mask (-1: none).
	Critic bool
	Pad    int32
}

// LoopFinal is the end of a generation: the final tokens and, when
// LoopFinish.Metrics asked for them, their metrics (else nil).
type LoopFinal struct {
	Tokens  []int32 // (B, T)
	Metrics *LoopMetrics
}

// Loop is one generation's device state. Steps run in order it = 0, 1, ...,
// then Finish once.
type Loop interface {
	// Step runs iteration it; want asks for Pred, Selected and Wrongness.
	Step(ctx context.Context, it int, want bool) (*LoopStep, error)
	// Finish reads the final tokens (after the last Step) and, as f asks,
	// computes their metrics: one submission and one read for both. A
	// failed draw or non-finite remasking score of any iteration is
	// reported here when no Step read it.
	Finish(ctx context.Context, f LoopFinish) (*LoopFinal, error)
	// Waves is the number of sampler-head waves run so far, as of the
	// latest read (after Finish: the generation's).
	Waves() int
	// StagesMs is the GPU time per stage so far (with LoopSpec.Profile, on
	// an adapter with timestamp queries), else nil.
	StagesMs() map[string]float64
	// Close frees the loop's device buffers.
	Close()
}
