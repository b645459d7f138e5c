// Package sampler is remask's sampling loop: every mode of the reference
// sampler (docs/sampling.md; docs/reference-sampler.md §4),
// written once above the engine.Net interface so that it runs unchanged on
// every backend.
package sampler

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Methods.
const (
	Diffusion   = "diffusion"
	Multinomial = "multinomial"
	// Unmask commits positions and never remasks them (LLaDA, Dream,
	// MaskGIT, Fast-dLLM; docs/sampling.md "Method unmask").
	Unmask = "unmask"
)

// Orderings of the unmask method (Options.Ordering; "" is confidence).
const (
	OrderConfidence = "confidence"
	OrderMargin     = "margin"
	OrderEntropy    = "entropy"
	OrderRandom     = "random"
)

// Unmask schedules (Options.UnmaskSchedule; "" is linear).
const (
	UnmaskLinear = "linear"
	UnmaskCosine = "cosine"
	UnmaskRatio  = "ratio"
)

// Schedule modes.
const (
	ScheduleRatio     = "ratio"
	ScheduleThreshold = "threshold"
)

// Seed placements.
const (
	PlacePrefix = "prefix"
	PlaceRandom = "random"
)

// Remasking strategies (Options.Remasking).
const (
	RemaskAuto       = "auto"       // model > calibrated (if the model has a table) > critic > self
	RemaskCritic     = "critic"     // raw critic logits ([SH]/[SEED])
	RemaskCalibrated = "calibrated" // calibrated critic ([D7])
	RemaskSelf       = "self"       // intelligent self-confidence: 1 - p(prediction)
	RemaskRandom     = "random"
	RemaskModel      = "model" // external token classifier (Models.Remasker)
)

// Quality metrics (Options.QualityMetric).
const (
	MetricAuto  = "auto" // judge when a judge is loaded, else node when the model has a critic, else self
	MetricJudge = "judge"
	MetricNode  = "node"
	MetricSelf  = "self"
	MetricNone  = "none"
)

// What to do with seed/template characters outside the vocabulary.
const (
	UnknownError = "error"
	UnknownDrop  = "drop"
)

// Compat switches: each reproduces one reference quirk (docs/reference-sampler.md §7).
// The zero value is remask's fixed behaviour.
type Compat struct {
	// WaveCap: at most T waves in the sampler-head fill; masks can survive (Q3).
	WaveCap bool
	// GlobalBootstrap: bootstrap positions chosen by a global top-k over the
	// batch instead of per sample (Q3).
	GlobalBootstrap bool
	// CriticOnInput: the critic scores the masked input of the iteration
	// instead of the prediction ([SH] sample_simple, Q4).
	CriticOnInput bool
	// MaskPadOnly: only [MASK] and [PAD] are excluded from sampling in the
	// naive and multinomial paths, and only [MASK] in the sampler-head path
	// (Q5, Q8); by default every special id is excluded.
	MaskPadOnly bool
	// JudgeKeepLast: the judge input CLS+tokens is cropped to its last
	// block_size columns, which drops CLS when T = block_size (Q12).
	JudgeKeepLast bool
}

// CompatNames lists the --compat names in docs/reference-sampler.md §7's order.
var CompatNames = []string{"wave-cap", "global-bootstrap", "critic-on-input", "mask-pad-only", "judge-keep-last"}

// ParseCompat parses a comma-separated list of compat names ("" = none; "all" = every switch).
func ParseCompat(s string) (Compat, error) {
	var c Compat
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "":
		case "all":
			c = Compat{true, true, true, true, true}
		case "wave-cap":
			c.WaveCap = true
		case "global-bootstrap":
			c.GlobalBootstrap = true
		case "critic-on-input":
			c.CriticOnInput = true
		case "mask-pad-only":
			c.MaskPadOnly = true
		case "judge-keep-last":
			c.JudgeKeepLast = true
		default:
			return c, &OptionError{Field: "compat", Msg: fmt.Sprintf("unknown compat switch %q; allowed: %s, all", name, strings.Join(CompatNames, ", "))}
		}
	}
	return c, nil
}

// String is the comma-separated list of enabled switches.
func (c Compat) String() string {
	on := []bool{c.WaveCap, c.GlobalBootstrap, c.CriticOnInput, c.MaskPadOnly, c.JudgeKeepLast}
	var names []string
	for i, b := range on {
		if b {
			names = append(names, CompatNames[i])
		}
	}
	return strings.Join(names, ",")
}

// Options are every sampling option of `remask sample`. JSON names are the
// CLI flag names in snake_case.
type Options struct {
	Method         string `json:"method"`
	NumSamples     int    `json:"num_samples"`
	SequenceLength int    `json:"sequence_length"`
	// Iterations is replaced by len(MaskingRatios) when MaskingRatios is set.
	Iterations  int     `json:"iterations"`
	Temperature float64 `json:"temperature"`
	TopP        float64 `json:"top_p"`
	// ScheduleMode is "ratio" (a fixed fraction is remasked) or "threshold"
	// (every candidate whose wrongness exceeds 1 - ratio is remasked).
	ScheduleMode string  `json:"schedule_mode"`
	StartRatio   float64 `json:"start_ratio"`
	EndRatio     float64 `json:"end_ratio"`
	// MaskingRatios is a custom schedule; the remask after iteration it uses
	// MaskingRatios[it+1] (the reference's indexing), EndRatio past the end.
	MaskingRatios      []float64 `json:"masking_ratios,omitempty"`
	RandomnessStrength float64   `json:"randomness_strength"`
	SeedText           string    `json:"seed_text"`
	SeedPlacement      string    `json:"seed_placement"`
	// Template, when set, is the whole sequence: every Placeholder character
	// is generated, everything else is protected. Excludes SeedText.
	Template    string `json:"template,omitempty"`
	Placeholder string `json:"placeholder"`
	// UnknownChars says what to do with seed/template characters outside the
	// vocabulary: "error" (default) or "drop" (the reference drops silently).
	UnknownChars string `json:"unknown_chars"`
	Seed         uint64 `json:"seed"`
	Remasking    string `json:"remasking"`
	// DisableSampler forces the naive path on a model with a sampler head.
	DisableSampler bool `json:"disable_sampler"`
	// SamplerNeighbors overrides the model file's sampler.neighbors ("" = the file's).
	SamplerNeighbors string `json:"sampler_neighbors,omitempty"`
	QualityMetric    string `json:"quality_metric"`

	// The unmask method's policies (docs/sampling.md "Method unmask"); each
	// is an error with another method. The zero values are the defaults.
	//
	// Ordering ranks the masked positions to commit: confidence (top-1
	// probability; ""), margin (top-1 - top-2), entropy (negative entropy) or random.
	Ordering string `json:"ordering,omitempty"`
	// OrderTemperature adds Gumbel noise to the ordering scores (Dream's
	// alg_temp): keys score/temp + Gumbel; 0 = none.
	OrderTemperature float64 `json:"order_temperature,omitempty"`
	// UnmaskSchedule says how many positions each step commits: linear
	// (""), cosine or ratio (the fork's start/end/masking_ratios schedule).
	UnmaskSchedule string `json:"unmask_schedule,omitempty"`
	// ConfidenceThreshold also commits every masked position of the block
	// whose top-1 probability is >= it (Fast-dLLM); 0 = off.
	ConfidenceThreshold float64 `json:"confidence_threshold,omitempty"`
	// BlockLength decodes semi-autoregressively, block by block, left to
	// right (LLaDA's block_length); 0 = one block.
	BlockLength int `json:"block_length,omitempty"`
	// EarlyCommitGap commits every remaining position of a row when all of
	// their top-1 - top-2 gaps are >= it (Prophet); 0 = off.
	EarlyCommitGap float64 `json:"early_commit_gap,omitempty"`

	Compat Compat `json:"-"`
	// Record keeps the per-iteration records of Result.Iterations (--save).
	Record bool `json:"-"`
	// HostLoop keeps the sampling loop on the host even when the model's
	// backend can run it on its device (engine.LoopNet): the CPU twin of the
	// device loop, for comparisons and debugging.
	HostLoop bool `json:"-"`
	// MaxMemory is the memory budget in bytes: a generation whose estimated
	// peak memory (MemoryNeed) exceeds it is refused before it allocates
	// anything proportional to the batch. 0 = DefaultMemoryBudget.
	MaxMemory int64 `json:"-"`
	// ProfileStages asks the device loop for GPU time per stage
	// (Result.Device.StagesMs); it waits for every submission.
	ProfileStages bool `json:"-"`
}

// Defaults returns the options of `remask sample` without flags: the
// reference sample_simple defaults, with remask's fixed behaviour.
func Defaults() Options {
	return Options{
		Method:         Diffusion,
		NumSamples:     16,
		SequenceLength: 1024,
		Iterations:     15,
		Temperature:    0.8,
		TopP:           1.0,
		ScheduleMode:   ScheduleRatio,
		StartRatio:     0.95,
		EndRatio:       0.05,
		SeedText:       "",
		SeedPlacement:  PlaceRandom,
		Placeholder:    "_",
		UnknownChars:   UnknownError,
		Remasking:      RemaskAuto,
		QualityMetric:  MetricAuto,
	}
}

// OptionError is a bad option: Field is the snake_case option name (the CLI
// turns it into --kebab-case).
type OptionError struct {
	Field string
	Msg   string
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Msg }

func optErr(field, format string, a ...any) error {
	return &OptionError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Validate checks every option that does not depend on the model (Generate
// also checks the ones that do: sequence length, vocabulary, heads).
func (o *Options) Validate() error {
	switch o.Method {
	case Diffusion, Multinomial, Unmask:
	default:
		return optErr("method", "%q is not a method; allowed: diffusion, multinomial, unmask", o.Method)
	}
	if o.NumSamples < 1 {
		return optErr("num_samples", "%d is out of range; must be at least 1", o.NumSamples)
	}
	if o.SequenceLength < 1 && o.Template == "" {
		return optErr("sequence_length", "%d is out of range; must be at least 1", o.SequenceLength)
	}
	if o.MaxMemory < 0 {
		return optErr("max_memory", "%d is out of range; 0 for the default budget, or a number of bytes", o.MaxMemory)
	}
	if len(o.MaskingRatios) == 0 && o.Iterations < 1 {
		return optErr("iterations", "%d is out of range; must be at least 1", o.Iterations)
	}
	if !finite(o.Temperature) || o.Temperature <= 0 {
		return optErr("temperature", "%v is out of range; must be > 0 (lower is greedier, e.g. 0.8)", o.Temperature)
	}
	if !finite(o.TopP) || o.TopP <= 0 || o.TopP > 1 {
		return optErr("top_p", "%v is out of range; must be in (0, 1] (1 disables nucleus sampling)", o.TopP)
	}
	switch o.ScheduleMode {
	case ScheduleRatio, ScheduleThreshold:
	default:
		return optErr("schedule_mode", "%q is not a schedule mode; allowed: ratio, threshold", o.ScheduleMode)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"start_ratio", o.StartRatio}, {"end_ratio", o.EndRatio}, {"randomness_strength", o.RandomnessStrength}} {
		if !finite(r.v) || r.v < 0 || r.v > 1 {
			return optErr(r.name, "%v is out of range; must be in [0, 1]", r.v)
		}
	}
	for i, r := range o.MaskingRatios {
		if !finite(r) || r < 0 || r > 1 {
			return optErr("masking_ratios", "item %d (%v) is out of range; every ratio must be in [0, 1]", i, r)
		}
	}
	switch o.SeedPlacement {
	case PlacePrefix, PlaceRandom:
	default:
		return optErr("seed_placement", "%q is not a placement; allowed: prefix, random", o.SeedPlacement)
	}
	if o.Template != "" {
		if o.SeedText != "" {
			return optErr("template", "cannot be combined with seed_text; put the seed text into the template instead")
		}
		if len([]rune(o.Placeholder)) != 1 {
			return optErr("placeholder", "%q must be exactly one character", o.Placeholder)
		}
		if !strings.Contains(o.Template, o.Placeholder) {
			return optErr("template", "contains no placeholder %q, so there is nothing to generate", o.Placeholder)
		}
	}
	switch o.UnknownChars {
	case UnknownError, UnknownDrop:
	default:
		return optErr("unknown_chars", "%q is not allowed; allowed: error, drop", o.UnknownChars)
	}
	switch o.Remasking {
	case RemaskAuto, RemaskCritic, RemaskCalibrated, RemaskSelf, RemaskRandom, RemaskModel:
	default:
		return optErr("remasking", "%q is not a strategy; allowed: auto, critic, calibrated, self, random, model", o.Remasking)
	}
	switch o.SamplerNeighbors {
	case "", "zeros", "embeddings":
	default:
		return optErr("sampler_neighbors", "%q is not a neighbour mode; allowed: zeros, embeddings", o.SamplerNeighbors)
	}
	switch o.QualityMetric {
	case MetricAuto, MetricJudge, MetricNode, MetricSelf, MetricNone:
	default:
		return optErr("quality_metric", "%q is not a metric; allowed: auto, judge, node, self, none", o.QualityMetric)
	}
	return o.validateUnmask()
}

// validateUnmask checks the unmask method's options, and that none is set
// with another method (where it would be silently ignored).
func (o *Options) validateUnmask() error {
	switch o.Ordering {
	case "", OrderConfidence, OrderMargin, OrderEntropy, OrderRandom:
	default:
		return optErr("ordering", "%q is not an ordering; allowed: confidence, margin, entropy, random", o.Ordering)
	}
	switch o.UnmaskSchedule {
	case "", UnmaskLinear, UnmaskCosine, UnmaskRatio:
	default:
		return optErr("unmask_schedule", "%q is not an unmask schedule; allowed: linear, cosine, ratio", o.UnmaskSchedule)
	}
	if !finite(o.OrderTemperature) || o.OrderTemperature < 0 {
		return optErr("order_temperature", "%v is out of range; must be >= 0 (0 = no Gumbel noise)", o.OrderTemperature)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"confidence_threshold", o.ConfidenceThreshold}, {"early_commit_gap", o.EarlyCommitGap}} {
		if !finite(r.v) || r.v < 0 || r.v > 1 {
			return optErr(r.name, "%v is out of range; must be in [0, 1] (0 = off)", r.v)
		}
	}
	if o.BlockLength < 0 {
		return optErr("block_length", "%d is out of range; must be >= 0 (0 = one block)", o.BlockLength)
	}
	if o.Method != Unmask {
		for _, f := range []struct {
			name string
			set  bool
		}{{"ordering", o.Ordering != ""}, {"order_temperature", o.OrderTemperature != 0}, {"unmask_schedule", o.UnmaskSchedule != ""},
			{"confidence_threshold", o.ConfidenceThreshold != 0}, {"block_length", o.BlockLength != 0}, {"early_commit_gap", o.EarlyCommitGap != 0}} {
			if f.set {
				return optErr(f.name, "applies to method unmask only (the method is %s); use method unmask or drop it", o.Method)
			}
		}
		return nil
	}
	if o.Ordering == OrderRandom && o.OrderTemperature != 0 {
		return optErr("order_temperature", "adds noise to a score, and the random ordering has none; drop it or pick another ordering")
	}
	if o.ScheduleMode != ScheduleRatio {
		return optErr("schedule_mode", "%q remasks by wrongness, and method unmask never remasks; use confidence_threshold for threshold decoding", o.ScheduleMode)
	}
	if o.RandomnessStrength != 0 {
		return optErr("randomness_strength", "blends noise into remasking scores, and method unmask never remasks; use order_temperature")
	}
	if o.Remasking != RemaskAuto {
		return optErr("remasking", "%q is a remasking strategy, and method unmask never remasks; use ordering", o.Remasking)
	}
	if len(o.MaskingRatios) > 0 && o.UnmaskSchedule != UnmaskRatio {
		return optErr("masking_ratios", "is the ratio schedule's list; add unmask_schedule ratio or drop it")
	}
	return nil
}

// EffectiveIterations is the number of iterations that will run at most.
func (o *Options) EffectiveIterations() int {
	if len(o.MaskingRatios) > 0 {
		return len(o.MaskingRatios)
	}
	return o.Iterations
}

// sortedKeys is a helper for stable map iteration in messages.
func sortedKeys(m map[rune]int) []rune {
	keys := make([]rune, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
