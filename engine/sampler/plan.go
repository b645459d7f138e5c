package sampler

import (
	"fmt"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/rng"
	"github.com/remask/remask/internal/step"
)

// Planning: every check of the options against the models, the strategy
// and metric resolution, and the initial tokens. Check runs it alone
// (servers refuse a request before queueing it); Generate runs it and then
// the loop (host.go or device.go).

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
		return nil, optErr("remasking_model", "the %s method never remasks; drop the remasking model or use method diffusion", o.Method)
	}
	if o.Method == Unmask {
		if err := g.planUnmask(warn); err != nil {
			return nil, err
		}
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

	g.naive = step.NewSampler(g.excluded(false), o.Temperature, o.TopP)
	g.sampler = step.NewSampler(g.excluded(true), o.Temperature, o.TopP)
	if o.Method == Multinomial { // the reference applies no top-p in multinomial mode
		g.naive.TopP = 1
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
	r, err := step.ParseStrategy(s)
	if err != nil {
		return optErr("remasking", "%v", err)
	}
	g.strategy, g.remasking = s, r
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
