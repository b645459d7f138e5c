package sampler

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/rng"
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
	if o.Method == Multinomial {
		err = g.multinomial(ctx)
	} else {
		err = g.diffusion(ctx)
	}
	if err != nil {
		return nil, err
	}
	g.res.Seconds = time.Since(start).Seconds()
	if g.res.Seconds > 0 {
		g.res.TokensPerSecond = float64(g.B*g.T) / g.res.Seconds
	}
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
	strategy   string
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

	naive   *tokenSampler // naive and multinomial paths
	sampler *tokenSampler // sampler-head path

	res Result
}

func (g *generation) row(x []int32, b int) []int32 { return x[b*g.T : (b+1)*g.T] }

// Check runs every check Generate makes before it computes anything: the
// options, and the options against the models (sequence length against
// block_size, seed and template characters against the vocabulary, the heads
// a strategy or metric needs, the kinds of the judge and the remasking model).
// judge and remasker may be nil. It returns the warnings Generate would give.
// Servers call it to refuse a request before queueing it.
func Check(lm, judge, remasker *model.Model, o Options) ([]string, error) {
	g, err := plan(lm, judge, remasker, o)
	if err != nil {
		return nil, err
	}
	return g.res.Warnings, nil
}

func newGeneration(m Models, o Options) (*generation, error) {
	if m.LM == nil {
		return nil, optErr("model", "no language model given")
	}
	var judge, remasker *model.Model
	if m.Judge != nil {
		judge = m.Judge.Model()
	}
	if m.Remasker != nil {
		remasker = m.Remasker.Model()
	}
	g, err := plan(m.LM.Model(), judge, remasker, o)
	if err != nil {
		return nil, err
	}
	g.lm, g.judge, g.remaskr = m.LM, m.Judge, m.Remasker
	g.alloc()
	return g, nil
}

// plan validates o against the models and resolves the strategy, the metric
// and the sequence, allocating nothing proportional to the batch.
func plan(lmm, judge, remasker *model.Model, o Options) (*generation, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if lmm == nil {
		return nil, optErr("model", "no language model given")
	}
	cfg := &lmm.Config
	if cfg.Kind != model.LanguageModel {
		return nil, optErr("model", "%s is a %s, not a language_model; pass a language model (a judge goes to --judge, a token classifier to --remasking-model)", lmm.Name(), cfg.Kind)
	}
	v := &lmm.Vocab
	if v.MaskTokenID == nil {
		return nil, optErr("model", "%s has no [MASK] token in its vocabulary, so it cannot be sampled by masked diffusion", lmm.Name())
	}
	g := &generation{o: o, lmModel: lmm, judgeModel: judge, remaskModel: remasker, cfg: cfg, vocab: v,
		B: o.NumSamples, V: cfg.VocabSize, N: o.EffectiveIterations(), mask: int32(*v.MaskTokenID)}
	warn := func(format string, a ...any) { g.res.Warnings = append(g.res.Warnings, fmt.Sprintf(format, a...)) }

	// Sequence: a template fixes the length; otherwise sequence_length.
	if o.Template != "" {
		if err := g.prepareTemplate(warn); err != nil {
			return nil, err
		}
	} else {
		g.T = o.SequenceLength
		if g.T > cfg.BlockSize {
			return nil, optErr("sequence_length", "%d is out of range; the model's block_size is %d, so it must be in [1, %d]", g.T, cfg.BlockSize, cfg.BlockSize)
		}
		ids, dropped, err := EncodeText(v, o.SeedText, o.UnknownChars, "seed_text")
		if err != nil {
			return nil, err
		}
		if len(dropped) > 0 {
			warn("dropped %d characters of the seed text that are not in the vocabulary (%q)", len([]rune(o.SeedText))-len(ids), string(dropped))
		}
		if len(ids) > g.T {
			return nil, optErr("seed_text", "is %d characters long but the sequence is %d; shorten the seed text or raise sequence_length (at most the block_size %d)", len(ids), g.T, cfg.BlockSize)
		}
		g.seedIDs = ids
	}
	if o.Method == Diffusion { // multinomial never remasks
		if err := g.resolveStrategy(warn); err != nil {
			return nil, err
		}
	} else if remasker != nil {
		return nil, optErr("remasking_model", "the multinomial method never remasks; drop the remasking model or use method diffusion")
	}
	if err := g.resolveMetric(); err != nil {
		return nil, err
	}
	g.useSampler = o.Method == Diffusion && cfg.HasSampler() && !o.DisableSampler
	if g.useSampler {
		g.neighbors = cfg.Sampler.Neighbors
		if o.SamplerNeighbors != "" {
			g.neighbors = o.SamplerNeighbors
		}
	}
	if o.Method == Multinomial && o.TopP < 1 {
		warn("top_p %v is ignored by the multinomial method (as in the reference)", o.TopP)
	}
	if o.Method == Diffusion && o.ScheduleMode == ScheduleThreshold && o.RandomnessStrength > 0 && g.strategy != RemaskRandom {
		warn("randomness_strength is ignored in threshold mode (as in the reference)")
	}
	if err := checkSize(cfg, configOf(judge), configOf(remasker), g.B, g.T, g.N, o.Record, o.MaxMemory); err != nil {
		return nil, err
	}
	g.res.Strategy = g.strategy
	g.res.Metric = g.metric
	return g, nil
}

// alloc allocates the batch's buffers and writes the initial tokens.
func (g *generation) alloc() {
	o := &g.o
	n := g.B * g.T
	g.tokens = make([]int32, n)
	g.protected = make([]bool, n)
	g.logits = make([]float32, n*g.V)
	g.critic = make([]float32, n)
	if o.Template == "" {
		for i := range g.tokens {
			g.tokens[i] = g.mask
		}
		g.placeSeed(g.seedIDs)
	} else {
		g.applyTemplate()
	}

	g.naive = newTokenSampler(g.excluded(false), o.Temperature, o.TopP)
	g.sampler = newTokenSampler(g.excluded(true), o.Temperature, o.TopP)
	if o.Method == Multinomial { // the reference applies no top-p in multinomial mode
		g.naive.topP = 1
	}
	g.res.Samples = make([]Sample, g.B)
	if o.Record {
		g.res.Iterations = make([][]IterationRecord, g.B)
	}
}

// templateIDs is set by prepareTemplate: the template's ids with -1 at placeholders.
func (g *generation) prepareTemplate(warn func(string, ...any)) error {
	o := &g.o
	ph := []rune(o.Placeholder)[0]
	var ids []int32
	var unknown []rune
	chars := charIDs(g.vocab)
	seen := map[rune]int{}
	for _, r := range o.Template {
		if r == ph {
			ids = append(ids, -1)
			continue
		}
		id, ok := chars[r]
		if !ok {
			if seen[r] == 0 {
				unknown = append(unknown, r)
			}
			seen[r]++
			continue
		}
		ids = append(ids, id)
	}
	if len(unknown) > 0 {
		if o.UnknownChars != UnknownDrop {
			_, _, err := EncodeText(g.vocab, string(unknown), UnknownError, "template")
			return err
		}
		warn("dropped characters of the template that are not in the vocabulary: %q", string(unknown))
	}
	if o.SequenceLength != 0 && o.SequenceLength != len(ids) {
		return optErr("sequence_length", "is %d but the template is %d characters long; a template sets the length: leave sequence_length at 0 (unset) or make it %d", o.SequenceLength, len(ids), len(ids))
	}
	if len(ids) > g.cfg.BlockSize {
		return optErr("template", "is %d characters long; the model's block_size is %d", len(ids), g.cfg.BlockSize)
	}
	g.T = len(ids)
	g.templateIDs = ids
	return nil
}

// placeSeed writes the seed ids into every row at the same start and
// protects them (sampler-spec 4.3). The random start is one counter-based
// draw, so it is the same for every row and every batch size.
func (g *generation) placeSeed(seed []int32) {
	if len(seed) == 0 {
		return
	}
	start := 0
	if g.o.SeedPlacement == PlaceRandom {
		span := g.T - len(seed) + 1
		start = int(float64(rng.Uniform(g.o.Seed, 0, 0, 0, rng.SeedPlacement)) * float64(span))
		if start >= span {
			start = span - 1
		}
	}
	g.res.SeedStart = start
	for b := 0; b < g.B; b++ {
		for i, id := range seed {
			p := b*g.T + start + i
			g.tokens[p] = id
			g.protected[p] = true
		}
	}
}

func (g *generation) applyTemplate() {
	for b := 0; b < g.B; b++ {
		for t, id := range g.templateIDs {
			p := b*g.T + t
			if id < 0 {
				g.tokens[p] = g.mask
				continue
			}
			g.tokens[p] = id
			g.protected[p] = true
		}
	}
}

// excluded is the set of ids never sampled. By default every special id
// (mask, pad, cls and every id at or above base_vocab_size); with the
// mask-pad-only compat switch, [MASK] and [PAD] in the naive and multinomial
// paths and [MASK] alone in the sampler-head path, as the reference.
func (g *generation) excluded(samplerPath bool) []bool {
	ex := make([]bool, g.V)
	set := func(id *int) {
		if id != nil && *id >= 0 && *id < g.V {
			ex[*id] = true
		}
	}
	set(g.vocab.MaskTokenID)
	if g.o.Compat.MaskPadOnly {
		if !samplerPath {
			set(g.vocab.PadTokenID)
		}
		return ex
	}
	set(g.vocab.PadTokenID)
	set(g.vocab.CLSTokenID)
	set(g.cfg.CLSTokenID)
	for id := g.vocab.BaseVocabSize; id < g.V; id++ {
		ex[id] = true
	}
	return ex
}

func (g *generation) resolveStrategy(warn func(string, ...any)) error {
	o := &g.o
	s := o.Remasking
	if s == RemaskAuto {
		switch {
		case g.remaskModel != nil:
			s = RemaskModel
		case g.cfg.HasCritic() && len(g.cfg.CriticCalibration) > 0:
			s = RemaskCalibrated
		case g.cfg.HasCritic():
			s = RemaskCritic
		default:
			s = RemaskSelf
		}
	}
	switch s {
	case RemaskCritic, RemaskCalibrated:
		if !g.cfg.HasCritic() {
			return optErr("remasking", "%q needs a critic head, and %s has none; use remasking self, random or model", s, g.lmModel.Name())
		}
		if s == RemaskCalibrated && len(g.cfg.CriticCalibration) == 0 {
			warn("the model file has no critic calibration table; calibrated remasking uses the reference's default ramp 0.01..0.99")
		}
	case RemaskModel:
		if g.remaskModel == nil {
			return optErr("remasking_model", "remasking %q needs a token classifier model (--remasking-model FILE)", s)
		}
		rc := &g.remaskModel.Config
		if rc.Kind != model.TokenClassifier {
			return optErr("remasking_model", "%s is a %s, not a token_classifier", g.remaskModel.Name(), rc.Kind)
		}
		if rc.VocabSize < g.cfg.VocabSize {
			return optErr("remasking_model", "%s reads %d token ids but the language model produces %d", g.remaskModel.Name(), rc.VocabSize, g.cfg.VocabSize)
		}
	case RemaskRandom:
		if o.ScheduleMode == ScheduleThreshold && o.Method == Diffusion {
			warn("random remasking has no threshold; it falls back to the ratio schedule (as in the reference)")
		}
	}
	if g.remaskModel != nil && s != RemaskModel {
		return optErr("remasking_model", "a remasking model was given but remasking is %q; use remasking model (or auto)", s)
	}
	g.strategy = s
	return nil
}

func (g *generation) resolveMetric() error {
	m := g.o.QualityMetric
	if g.judgeModel != nil {
		jc := &g.judgeModel.Config
		if jc.Kind != model.SequenceScorer {
			return optErr("judge", "%s is a %s, not a sequence_scorer (judge)", g.judgeModel.Name(), jc.Kind)
		}
		if jc.VocabSize < g.cfg.VocabSize {
			return optErr("judge", "%s reads %d token ids but the language model produces %d", g.judgeModel.Name(), jc.VocabSize, g.cfg.VocabSize)
		}
	}
	switch m {
	case MetricAuto:
		switch {
		case g.judgeModel != nil:
			m = MetricJudge
		case g.cfg.HasCritic():
			m = MetricNode
		default:
			m = MetricSelf
		}
	case MetricJudge:
		if g.judgeModel == nil {
			return optErr("quality_metric", "judge needs a judge model (--judge FILE); or use node, self or none")
		}
	case MetricNode:
		if !g.cfg.HasCritic() {
			return optErr("quality_metric", "node needs a critic head, and %s has none; use self, judge or none", g.lmModel.Name())
		}
	}
	g.metric = m
	return nil
}

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
		ev := Event{Iteration: it, Iterations: g.N, Masked: g.countMasked(g.tokens), Total: len(g.tokens),
			Ratio: math.NaN(), MinWrongness: math.NaN()}
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
func (g *generation) drawAt(s *tokenSampler, it, p int, logits []float32) (int32, error) {
	b, pos := p/g.T, p%g.T
	u := rng.Uniform(g.o.Seed, uint32(b), uint32(it), uint32(pos), rng.Token)
	tok := s.draw(logits, u)
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

// multinomial resamples every unprotected position each iteration from the
// full distribution (no top-p, no remasking; sampler-spec 4.9).
func (g *generation) multinomial(ctx context.Context) error {
	next := make([]int32, len(g.tokens))
	for it := 0; it < g.N; it++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev := Event{Iteration: it, Iterations: g.N, Masked: g.countMasked(g.tokens), Total: len(g.tokens),
			Ratio: math.NaN(), MinWrongness: math.NaN()}
		err := timed(&g.res.Timings.Forward, func() error {
			h, err := g.lm.Encode(ctx, g.tokens, g.B, g.T)
			if err != nil {
				return err
			}
			return g.lm.Logits(ctx, h, g.logits)
		})
		if err != nil {
			return err
		}
		err = timed(&g.res.Timings.Sampling, func() error {
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
