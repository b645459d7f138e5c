package sampler

// What a generation returns (Result, Sample, ...) and what it reports to an
// observer on the way (Event).

// CriticStats are the critic probabilities of a final sample over its valid
// positions (not [MASK], not [PAD]). A row with none has no stats (Sample.Critic is nil).
type CriticStats struct {
	Mean float64 `json:"mean"`
	P10  float64 `json:"p10"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
}

// Sample is one generated sequence with its metrics (nil = not computed).
type Sample struct {
	Text           string       `json:"text"`
	Tokens         []int32      `json:"tokens"`
	JudgeScore     *float64     `json:"judge_score"`
	SelfConfidence *float64     `json:"self_confidence"`
	Critic         *CriticStats `json:"critic"`
	// Steps is the number of steps (trunk passes) in which this sample still
	// had masked positions: method unmask only, whose steps are adaptive
	// per sample (threshold decoding, early commit).
	Steps int `json:"steps,omitempty"`
}

// IterationRecord is one entry of the reference's --save JSON (sampler-spec 4.12).
type IterationRecord struct {
	Iteration       int     `json:"iteration"` // 1-based
	InputMasked     []int32 `json:"input_masked"`
	OutputUnmasked  []int32 `json:"output_unmasked"`
	RemaskedIndices []int   `json:"remasked_indices"`
}

// Timings are seconds spent per stage.
type Timings struct {
	Forward   float64 `json:"forward"`
	Sampling  float64 `json:"sampling"`
	Remasking float64 `json:"remasking"`
	Metrics   float64 `json:"metrics"`
}

// Result is a finished generation.
type Result struct {
	Samples []Sample `json:"samples"`
	// Iterations[i] are sample i's per-iteration records (Options.Record).
	Iterations [][]IterationRecord `json:"-"`
	// IterationsRun is the number of iterations executed (fewer than asked
	// after an early termination in threshold mode).
	IterationsRun int     `json:"iterations_run"`
	Timings       Timings `json:"timings"`
	// Seconds is the wall time of the generation loop (metrics excluded).
	// On the device loop the self-confidence and critic statistics are
	// computed in the same submission and read as the final tokens (one
	// trunk pass on them), so there Seconds includes that pass and
	// Timings.Metrics only what follows the read (the judge).
	Seconds float64 `json:"seconds"`
	// TokensPerSecond is num_samples * sequence_length / Seconds.
	TokensPerSecond float64 `json:"tokens_per_second"`
	// SeedStart is the position of the seed text in every row (0 without one).
	SeedStart int `json:"seed_start"`
	// Strategy is the remasking strategy that ran; Metric the quality metric.
	Strategy string `json:"strategy"`
	Metric   string `json:"metric"`
	// Warnings are things the user should know (an untrained head, ignored options).
	Warnings []string `json:"warnings,omitempty"`
	// Loop says where the sampling loop ran: "host" (engine/sampler, with
	// the backend computing the networks) or "device" (engine.LoopNet: the
	// whole loop on the GPU). Device has the device loop's counts.
	Loop   string      `json:"loop"`
	Device *DeviceWork `json:"device,omitempty"`
}

// DeviceWork counts what the device loop did over a generation.
type DeviceWork struct {
	Submits    int `json:"submits"`
	Dispatches int `json:"dispatches"`
	ReadBytes  int `json:"read_bytes"`
	Waves      int `json:"waves"`
	// StagesMs is GPU time per stage (timestamp queries), when the adapter has them.
	StagesMs map[string]float64 `json:"gpu_stage_ms,omitempty"`
	// HostMs is where the host's wall time of the generation went, in
	// milliseconds: "new loop" (the loop's buffers and uploads), "steps"
	// (recording and submitting the iterations, and any reads they make),
	// "tokens+metrics" (recording the metrics pass, waiting for the device
	// to finish the iterations and that pass, and the one read of the
	// tokens and the statistics; "tokens" with the metric none, which has
	// no pass) and, with the judge metric, "judge" (the judge's own net on
	// the final tokens, after that read). Steps far below the GPU's stage
	// times mean the device, not the host, bounds the generation.
	HostMs map[string]float64 `json:"host_ms,omitempty"`
}

// Event is reported once per iteration to an observer (the CLI's live view,
// the API's NDJSON stream).
type Event struct {
	Iteration  int // 0-based
	Iterations int // planned total
	// Masked is the number of mask ids in the batch at the start of the iteration.
	Masked int
	Total  int
	// Remasked are the positions of each row remasked after this iteration
	// (nil on the last iteration or when nothing was remasked).
	Remasked [][]int
	// Tokens is this iteration's prediction (B*T, row-major): the input with
	// its masks filled. The next iteration's input is Tokens with the
	// Remasked positions set back to the mask id. The observer must not keep
	// the slice past the call.
	Tokens []int32
	// Wrongness is the remasking strategy's wrongness of each position of
	// Tokens (B*T; the critic probability for critic remasking, the
	// calibrated w, 1 - p(token) for self, 1 - sigmoid(class-1 logit) for a
	// classifier): a heatmap for live views. nil on the last iteration and
	// for random remasking. Same lifetime as Tokens.
	Wrongness []float64
	// Filled marks positions that were masked at the start of the iteration.
	Filled []bool
	// Ratio is the schedule value applied after this iteration (NaN on the last).
	Ratio float64
	// MinWrongness is the smallest wrongness among remasked positions (NaN if none).
	MinWrongness float64
	// EarlyStop is set when threshold mode found nothing left to remask.
	EarlyStop bool
}
