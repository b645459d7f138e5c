package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/checked"
)

// generateRequest is the POST /v1/generate body: every option of `remask
// sample` under its sampler.Options JSON name, plus the fields below. The
// embedded Options start as sampler.Defaults(); absent fields keep them.
type generateRequest struct {
	sampler.Options
	// SequenceLength shadows Options' field to tell "absent" (the template
	// sets the length) from a value.
	SequenceLength *int `json:"sequence_length"`
	// Seed shadows Options' field: absent = a random seed.
	Seed           *uint64 `json:"seed"`
	Model          string  `json:"model"`
	Judge          string  `json:"judge"`
	RemaskingModel string  `json:"remasking_model"`
	Compat         string  `json:"compat"`
	Stream         bool    `json:"stream"`
	IncludeTokens  bool    `json:"include_tokens"`
	IncludeText    bool    `json:"include_text"`
	// IncludeWrongness asks for each iteration's per-position wrongness.
	IncludeWrongness bool `json:"include_wrongness"`
}

const generateExample = `{"num_samples": 2, "sequence_length": 256, "seed": 1}`

// runOptions are the options a generation ran with, in the request's own
// format: posting them again repeats the generation.
type runOptions struct {
	sampler.Options
	Model            string `json:"model"`
	Judge            string `json:"judge"`
	RemaskingModel   string `json:"remasking_model,omitempty"`
	Compat           string `json:"compat"`
	Stream           bool   `json:"stream"`
	IncludeTokens    bool   `json:"include_tokens"`
	IncludeText      bool   `json:"include_text"`
	IncludeWrongness bool   `json:"include_wrongness"`
}

// job is a validated generation, ready to run when the device is free.
type job struct {
	opts     runOptions
	lm       *entry
	judge    *entry // nil: none
	remasker *entry // nil: none
	models   [3]*model.Model
	warnings []string
	acts     [3]int64 // estimated activation bytes of each model's Net
	release  func()   // ends the use of the entries (always set by prepare)
}

type startEvent struct {
	Event   string     `json:"event"`
	Seed    uint64     `json:"seed"`
	Model   string     `json:"model"`
	Backend string     `json:"backend"`
	Options runOptions `json:"options"`
}

type iterationEvent struct {
	Event      string `json:"event"`
	Iteration  int    `json:"iteration"` // 1-based
	Iterations int    `json:"iterations"`
	// Masked is the number of masked positions in the batch at the start of
	// the iteration.
	Masked int `json:"masked"`
	// Remasked are each row's positions masked again after the iteration.
	Remasked [][]int   `json:"remasked"`
	Tokens   [][]int32 `json:"tokens,omitempty"`
	Text     []string  `json:"text,omitempty"`
	// Wrongness (with include_wrongness) is the remasking strategy's
	// wrongness of each position of Tokens, one row per sample; absent on
	// the last iteration and for random remasking.
	Wrongness []wrongnessRow `json:"wrongness,omitempty"`
	EarlyStop bool           `json:"early_stop,omitempty"`
}

type criticJSON struct {
	Mean *float64 `json:"mean"`
	P10  *float64 `json:"p10"`
	P50  *float64 `json:"p50"`
	P90  *float64 `json:"p90"`
}

type sampleJSON struct {
	Text           string      `json:"text"`
	Tokens         []int32     `json:"tokens"`
	JudgeScore     *float64    `json:"judge_score"`
	SelfConfidence *float64    `json:"self_confidence"`
	Critic         *criticJSON `json:"critic"`
	// Steps is the sample's own step count (method unmask, whose steps are adaptive).
	Steps int `json:"steps,omitempty"`
}

type doneEvent struct {
	Event           string          `json:"event"`
	Samples         []sampleJSON    `json:"samples"`
	Timings         sampler.Timings `json:"timings"`
	Seconds         float64         `json:"seconds"`
	TokensPerSecond float64         `json:"tokens_per_second"`
	IterationsRun   int             `json:"iterations_run"`
	Backend         string          `json:"backend"`
	Seed            uint64          `json:"seed"`
	Model           string          `json:"model"`
	Judge           string          `json:"judge"`
	Strategy        string          `json:"strategy"`
	Metric          string          `json:"metric"`
	SeedStart       int             `json:"seed_start"`
	Warnings        []string        `json:"warnings"`
}

func (s *Server) serveGenerate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	req := generateRequest{Options: sampler.Defaults()}
	if ae := decodeBody(w, r, s.cfg.MaxBodyBytes, &req, generateExample); ae != nil {
		writeError(w, ae)
		return
	}
	j, err := s.prepare(ctx, &req)
	if err != nil {
		if ctx.Err() == nil {
			writeError(w, asAPIError(err, "internal"))
		} else if ae := s.endedBy(ctx); ae != nil {
			writeError(w, ae)
		}
		return
	}
	defer j.release()
	t, err := s.queue.join()
	if err != nil {
		writeError(w, queueFull(err))
		return
	}
	defer s.queue.leave(t)

	var st *stream
	var onMove func(int)
	if j.opts.Stream {
		st = newStream(w)
		st.writeTimeout = s.cfg.StreamWriteTimeout
		onMove = func(p int) { st.send(queuedEvent{Event: "queued", Position: p}) }
	} else {
		onMove = func(int) {}
	}
	fail := func(ae *apiError) {
		if st != nil {
			st.fail(ae)
		} else {
			writeError(w, ae)
		}
	}
	if err := s.queue.wait(ctx, t, onMove); err != nil {
		if ae := s.endedBy(ctx); ae != nil {
			fail(ae)
		}
		return // else the client went away
	}
	done, err := s.run(ctx, j, st, w)
	s.queue.leave(t) // free the device before the last write
	if err != nil {
		if ctx.Err() != nil {
			if ae := s.endedBy(ctx); ae != nil {
				fail(ae)
			}
			return
		}
		ae := asAPIError(err, "generation_failed")
		if st != nil {
			st.fail(ae)
		} else {
			writeError(w, ae)
		}
		return
	}
	if st != nil {
		st.send(done)
		return
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout))
	writeJSON(w, http.StatusOK, done)
}

// prepare checks the whole request before anything is written: options,
// limits, model ids, then (with the models read) every option that depends
// on the models. Errors are *apiError, or ctx's error.
func (s *Server) prepare(ctx context.Context, req *generateRequest) (*job, error) {
	o := req.Options
	switch {
	case req.SequenceLength != nil:
		o.SequenceLength = *req.SequenceLength
	case o.Template != "":
		o.SequenceLength = 0 // the template sets the length
	}
	c, err := sampler.ParseCompat(req.Compat)
	if err != nil {
		return nil, fromOptionError(err)
	}
	o.Compat = c
	if err := o.Validate(); err != nil {
		return nil, fromOptionError(err)
	}
	if !req.Stream {
		if req.IncludeTokens {
			return nil, invalidOption("include_tokens", "per-iteration tokens come with streaming only; set \"stream\": true")
		}
		if req.IncludeText {
			return nil, invalidOption("include_text", "per-iteration text comes with streaming only; set \"stream\": true")
		}
		if req.IncludeWrongness {
			return nil, invalidOption("include_wrongness", "per-iteration wrongness comes with streaming only; set \"stream\": true")
		}
	}
	if n := o.EffectiveIterations(); n > s.cfg.MaxIterations {
		field := "iterations"
		if len(o.MaskingRatios) > 0 {
			field = "masking_ratios"
		}
		return nil, invalidOption(field, "%d iterations is over this server's limit of %d per request", n, s.cfg.MaxIterations)
	}
	length, what := o.SequenceLength, "sequence_length"
	if o.Template != "" && o.SequenceLength == 0 {
		length, what = utf8.RuneCountInString(o.Template), "the template's length"
	}
	if tokens, ok := checked.Mul(o.NumSamples, length); !ok || tokens > s.cfg.MaxTokens {
		ae := &apiError{status: http.StatusRequestEntityTooLarge, Code: "too_many_tokens", Field: "num_samples",
			Message: fmt.Sprintf("num_samples x %s = %d x %d = %s tokens is over this server's limit of %d tokens per request (--max-tokens); lower num_samples or the length",
				what, o.NumSamples, length, productString(ok, tokens), s.cfg.MaxTokens),
			Limit: s.cfg.MaxTokens}
		if ok {
			ae.Requested = tokens
		}
		return nil, ae
	}
	iters := o.EffectiveIterations()
	if work, ok := checked.MulAll(o.NumSamples, length, iters); !ok || int64(work) > s.cfg.MaxWork {
		field := "iterations"
		if len(o.MaskingRatios) > 0 {
			field = "masking_ratios"
		}
		ae := &apiError{status: http.StatusRequestEntityTooLarge, Code: "too_much_work", Field: field,
			Message: fmt.Sprintf("num_samples x %s x iterations = %d x %d x %d = %s token-iterations is over this server's limit of %d per request (--max-work); lower the iterations, num_samples or the length",
				what, o.NumSamples, length, iters, productString(ok, work), s.cfg.MaxWork),
			Limit: int(s.cfg.MaxWork)}
		if ok {
			ae.Requested = work
		}
		return nil, ae
	}
	if req.Seed != nil {
		o.Seed = *req.Seed
	} else {
		seed, err := s.cfg.NewSeed()
		if err != nil {
			return nil, err
		}
		o.Seed = seed
	}

	j := &job{opts: runOptions{Options: o, Compat: c.String(), Stream: req.Stream,
		IncludeTokens: req.IncludeTokens, IncludeText: req.IncludeText, IncludeWrongness: req.IncludeWrongness}}

	// Models: ids first (404s), then the files.
	j.opts.Model = req.Model
	if j.opts.Model == "" {
		j.opts.Model = s.cfg.DefaultModel
		if j.lm = s.lookup(j.opts.Model); j.lm == nil {
			ae := s.unknownModel("model", j.opts.Model)
			ae.Message = fmt.Sprintf("no model given, and the default model %q is not in the library; pass \"model\" (%s)", j.opts.Model, s.knownList())
			return nil, ae
		}
	} else if j.lm = s.lookup(j.opts.Model); j.lm == nil {
		return nil, s.unknownModel("model", j.opts.Model)
	}
	defaultJudge := false
	switch req.Judge {
	case "none":
	case "":
		wantJudge := o.QualityMetric == sampler.MetricAuto || o.QualityMetric == sampler.MetricJudge
		if wantJudge && s.cfg.DefaultJudge != "none" {
			j.judge = s.lookup(s.cfg.DefaultJudge)
			defaultJudge = j.judge != nil
		}
	default:
		if j.judge = s.lookup(req.Judge); j.judge == nil {
			return nil, s.unknownModel("judge", req.Judge)
		}
	}
	switch req.RemaskingModel {
	case "", "none":
	default:
		if j.remasker = s.lookup(req.RemaskingModel); j.remasker == nil {
			return nil, s.unknownModel("remasking_model", req.RemaskingModel)
		}
		j.opts.RemaskingModel = req.RemaskingModel
	}
	// The entries are in use from here on: never dropped from the cache
	// while this request needs them.
	var used []*entry
	for _, e := range []*entry{j.lm, j.judge, j.remasker} {
		if e != nil {
			s.acquire(e)
			used = append(used, e)
		}
	}
	j.release = func() {
		for _, e := range used {
			s.release(e)
		}
	}
	ok := false
	defer func() {
		if !ok {
			j.release()
		}
	}()
	for i, pair := range []struct {
		field string
		e     *entry
	}{{"model", j.lm}, {"judge", j.judge}, {"remasking_model", j.remasker}} {
		if pair.e == nil {
			continue
		}
		m, err := s.ensureModel(ctx, pair.e, nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			ae := loadFailure(pair.field, err)
			ae.Message = fmt.Sprintf("model %q could not be read: %s", pair.e.id, ae.Message)
			return nil, ae
		}
		j.models[i] = m
	}
	if defaultJudge {
		if why := judgeMismatch(j.models[1], j.models[0]); why != "" {
			if o.QualityMetric == sampler.MetricJudge {
				return nil, invalidOption("judge", "the default judge %q %s; name a judge that fits model %q", j.judge.id, why, j.lm.id)
			}
			j.warnings = append(j.warnings, fmt.Sprintf("the default judge %q was not used: it %s", j.judge.id, why))
			j.judge, j.models[1] = nil, nil
		}
	}
	j.opts.Judge = "none"
	if j.judge != nil {
		j.opts.Judge = j.judge.id
	}
	if err := s.preflight(j); err != nil {
		return nil, err
	}
	if ae := s.checkMemory(j, length); ae != nil {
		return nil, ae
	}
	ok = true
	return j, nil
}

// productString is a product for a message: its value, or "more than
// 2^63" when it overflowed.
func productString(ok bool, v int) string {
	if !ok {
		return "more than 2^63"
	}
	return strconv.Itoa(v)
}

// judgeMismatch says why judge cannot score lm's samples ("" when it can):
// it must be a judge reading the same characters under the same ids.
func judgeMismatch(judge, lm *model.Model) string {
	if judge.Config.Kind != model.SequenceScorer {
		return fmt.Sprintf("is a %s, not a sequence_scorer", judge.Config.Kind)
	}
	jv, lv := &judge.Vocab, &lm.Vocab
	if judge.Config.VocabSize < lm.Config.VocabSize || len(jv.Tokens) < lv.BaseVocabSize ||
		!slices.Equal(jv.Tokens[:lv.BaseVocabSize], lv.Tokens[:lv.BaseVocabSize]) {
		return "reads a different vocabulary"
	}
	return ""
}

// preflight runs the sampler's own option checks against the models (the
// sequence length against block_size, seed and template characters against
// the vocabulary, the heads a strategy needs, the kinds of the judge and
// the remasking model) without touching the device.
func (s *Server) preflight(j *job) error {
	if _, err := sampler.Check(j.models[0], j.models[1], j.models[2], j.opts.Options); err != nil {
		return fromOptionError(err)
	}
	return nil
}

// run generates j while holding the device's turn, streaming start and
// iteration events when st is not nil.
func (s *Server) run(ctx context.Context, j *job, st *stream, w http.ResponseWriter) (*doneEvent, error) {
	s.closeRetired()
	var nets [3]engine.Net
	for i, e := range []*entry{j.lm, j.judge, j.remasker} {
		if e == nil {
			continue
		}
		s.noteActivations(e, j.acts[i])
		net, err := s.netFor(e, j.models[i])
		if err != nil {
			return nil, &apiError{status: http.StatusInternalServerError, Code: "backend_load_failed", Message: err.Error()}
		}
		nets[i] = net
	}
	ms := sampler.Models{LM: nets[0], Judge: nets[1], Remasker: nets[2]}
	backend := s.cfg.Backend.Name()
	o := j.opts.Options
	genCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var observe func(*sampler.Event)
	if st != nil {
		send := st.send
		if err := send(startEvent{Event: "start", Seed: o.Seed, Model: j.lm.id, Backend: backend, Options: j.opts}); err != nil {
			return nil, err
		}
		vocab := &j.models[0].Vocab
		observe = func(ev *sampler.Event) {
			if err := send(iterationOf(ev, o.NumSamples, vocab, j.opts.IncludeTokens, j.opts.IncludeText, j.opts.IncludeWrongness)); err != nil {
				cancel() // the client is gone: stop at the next check
			}
		}
	}
	res, err := sampler.Generate(genCtx, ms, o, observe)
	if err != nil {
		return nil, err
	}
	return doneOf(res, j, backend), nil
}

// iterationOf turns a sampler event into the wire format: 1-based iteration,
// a remasked list per row, and the payloads asked for.
func iterationOf(ev *sampler.Event, B int, vocab *model.Vocab, tokens, text, wrongness bool) iterationEvent {
	out := iterationEvent{Event: "iteration", Iteration: ev.Iteration + 1, Iterations: ev.Iterations,
		Masked: ev.Masked, Remasked: make([][]int, B), EarlyStop: ev.EarlyStop}
	for b := range out.Remasked {
		if b < len(ev.Remasked) && ev.Remasked[b] != nil {
			out.Remasked[b] = ev.Remasked[b]
		} else {
			out.Remasked[b] = []int{}
		}
	}
	if B > 0 && (tokens || text) {
		T := len(ev.Tokens) / B
		for b := 0; b < B; b++ {
			row := ev.Tokens[b*T : (b+1)*T] // encoded before the observer returns
			if tokens {
				out.Tokens = append(out.Tokens, row)
			}
			if text {
				out.Text = append(out.Text, sampler.Decode(vocab, row))
			}
		}
	}
	if B > 0 && wrongness && len(ev.Wrongness) > 0 {
		T := len(ev.Wrongness) / B
		for b := 0; b < B; b++ {
			out.Wrongness = append(out.Wrongness, wrongnessRow(ev.Wrongness[b*T:(b+1)*T]))
		}
	}
	return out
}

// wrongnessRow is one sample's wrongness per position, written with 3
// decimals (a heatmap needs no more; it keeps the events small) and null
// for a value that is not finite. It aliases the sampler's slice, so it is
// encoded before the observer returns.
type wrongnessRow []float64

// MarshalJSON implements json.Marshaler.
func (r wrongnessRow) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+6*len(r))
	b = append(b, '[')
	for i, w := range r {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(w) || math.IsInf(w, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, math.Round(w*1000)/1000, 'f', -1, 64)
	}
	return append(b, ']'), nil
}

func doneOf(res *sampler.Result, j *job, backend string) *doneEvent {
	d := &doneEvent{
		Event:           "done",
		Samples:         make([]sampleJSON, len(res.Samples)),
		Timings:         res.Timings,
		Seconds:         finiteOr0(res.Seconds),
		TokensPerSecond: finiteOr0(res.TokensPerSecond),
		IterationsRun:   res.IterationsRun,
		Backend:         backend,
		Seed:            j.opts.Seed,
		Model:           j.lm.id,
		Judge:           j.opts.Judge,
		Strategy:        res.Strategy,
		Metric:          res.Metric,
		SeedStart:       res.SeedStart,
		Warnings:        append(append([]string{}, j.warnings...), res.Warnings...),
	}
	for i, smp := range res.Samples {
		sj := sampleJSON{Text: smp.Text, Tokens: smp.Tokens, JudgeScore: numPtr(smp.JudgeScore), SelfConfidence: numPtr(smp.SelfConfidence), Steps: smp.Steps}
		if sj.Tokens == nil {
			sj.Tokens = []int32{}
		}
		if c := smp.Critic; c != nil {
			sj.Critic = &criticJSON{Mean: num(c.Mean), P10: num(c.P10), P50: num(c.P50), P90: num(c.P90)}
		}
		d.Samples[i] = sj
	}
	return d
}

// num is x for JSON: null when x is NaN or infinite, which JSON cannot
// carry (a critic over a row with no valid position is NaN).
func num(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func numPtr(p *float64) *float64 {
	if p == nil {
		return nil
	}
	return num(*p)
}

func finiteOr0(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
