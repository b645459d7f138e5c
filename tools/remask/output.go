package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/safefile"
	"github.com/remask/remask/internal/termsafe"
)

// This file is what `remask sample` prints: the header and the progress lines
// on stderr (sampler-spec 4.13), the results and the performance summary on
// stdout, the --json object, and the --save file (sampler-spec 4.12).

const (
	headerRule = "============================================================" // 60 '='
	sampleRule = "────────────────────────────────────────"                     // 40 '─'
	sampleShow = 100                                                            // characters of row 0 shown in progress
)

// printHeader prints the settings block, before the first iteration (after
// sampler.Check, so that an option the sampler rejects for this model is not
// preceded by a header); T is the sequence length that runs.
func printHeader(w io.Writer, o *sampler.Options, a *sampleArgs, m sampler.Models, backend, note string, T int) {
	fmt.Fprintf(w, "Starting %s generation:\n", o.Method)
	lm := m.LM.Model()
	fmt.Fprintf(w, "  - Model: %s (%s)\n", lm.Name(), describeModel(lm))
	if m.Judge != nil {
		fmt.Fprintf(w, "  - Judge: %s\n", m.Judge.Model().Name())
	}
	if m.Remasker != nil {
		fmt.Fprintf(w, "  - Remasking model: %s\n", m.Remasker.Model().Name())
	}
	fmt.Fprintf(w, "  - Samples: %d\n", o.NumSamples)
	if o.Template != "" {
		fmt.Fprintf(w, "  - Length: %d (the template)\n", T)
	} else {
		fmt.Fprintf(w, "  - Length: %d\n", T)
	}
	fmt.Fprintf(w, "  - Iterations: %d\n", o.EffectiveIterations())
	fmt.Fprintf(w, "  - Temperature: %g, Top-p: %g\n", o.Temperature, o.TopP)
	if o.Method == sampler.Diffusion {
		switch {
		case len(o.MaskingRatios) > 0:
			fmt.Fprintf(w, "  - Custom schedule with %d ratios (%s-based)\n", len(o.MaskingRatios), o.ScheduleMode)
		default:
			fmt.Fprintf(w, "  - Schedule: linear (%.1f%% -> %.1f%%), %s-based\n", 100*o.StartRatio, 100*o.EndRatio, o.ScheduleMode)
		}
		fmt.Fprintf(w, "  - Remasking: %s, randomness strength %g\n", o.Remasking, o.RandomnessStrength)
	}
	if o.Method == sampler.Unmask {
		or, sc := o.Ordering, o.UnmaskSchedule
		if or == "" {
			or = sampler.OrderConfidence
		}
		if sc == "" {
			sc = sampler.UnmaskLinear
		}
		fmt.Fprintf(w, "  - Unmask: ordering %s (Gumbel temperature %g), schedule %s, block length %d, confidence threshold %g, early-commit gap %g (0 = off)\n",
			or, o.OrderTemperature, sc, o.BlockLength, o.ConfidenceThreshold, o.EarlyCommitGap)
	}
	fmt.Fprintf(w, "  - Quality metric: %s\n", o.QualityMetric)
	if o.SeedText != "" {
		fmt.Fprintf(w, "  - Seed text: %q (%s)\n", o.SeedText, o.SeedPlacement)
	}
	if s := o.Compat.String(); s != "" {
		fmt.Fprintf(w, "  - Compat: %s\n", s)
	}
	fmt.Fprintf(w, "  - Seed: %d\n", o.Seed)
	if note != "" {
		fmt.Fprintf(w, "  - Backend: %s (%s)\n", backend, note)
	} else {
		fmt.Fprintf(w, "  - Backend: %s\n", backend)
	}
	if a.verbose {
		verboseModel(w, "model", lm)
		if m.Judge != nil {
			verboseModel(w, "judge", m.Judge.Model())
		}
		if m.Remasker != nil {
			verboseModel(w, "remasking model", m.Remasker.Model())
		}
	}
	fmt.Fprintln(w, headerRule)
}

// describeModel is a one-line summary of a model's architecture.
func describeModel(m *model.Model) string {
	c := &m.Config
	s := fmt.Sprintf("%s, %d layers, %d heads, n_embd %d, block_size %d, vocab %d", c.Kind, c.NLayer, c.NHead, c.NEmbd, c.BlockSize, c.VocabSize)
	var heads []string
	if c.HasCritic() {
		heads = append(heads, "critic")
	}
	if c.HasSampler() {
		heads = append(heads, "sampler")
	}
	if len(heads) > 0 {
		s += "; heads: " + strings.Join(heads, ", ")
	}
	return s
}

// verboseModel prints what --verbose adds about one model.
func verboseModel(w io.Writer, role string, m *model.Model) {
	c := &m.Config
	fmt.Fprintf(w, "  - %s details: %s attention, %s positions, bias %v, dtype %s\n", role, c.Attention, c.PositionEncoding, c.Bias, m.DType)
	if c.Sampler != nil && c.HasSampler() {
		fmt.Fprintf(w, "    sampler head: neighbors %s, min_neighbors_ratio %g\n", c.Sampler.Neighbors, c.Sampler.MinNeighborsRatio)
	}
	if len(c.CriticCalibration) > 0 {
		fmt.Fprintf(w, "    critic calibration table: %d entries\n", len(c.CriticCalibration))
	}
	fmt.Fprintf(w, "    vocabulary: %s\n", describeVocab(&m.Vocab))
	src := m.Source
	var parts []string
	for _, kv := range [][2]string{{"converted_from", src.ConvertedFrom}, {"fork_family", src.ForkFamily}, {"trainer", src.Trainer}, {"dataset", src.Dataset}, {"created", src.Created}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if src.IterNum != nil {
		parts = append(parts, fmt.Sprintf("iter_num %d", *src.IterNum))
	}
	if len(parts) > 0 { // strings from the file: escaped
		fmt.Fprintf(w, "    source: %s\n", termsafe.Escape(strings.Join(parts, ", ")))
	}
}

// describeVocab is the short description of an embedded vocabulary used by
// --verbose and as the "meta" of the --save file.
func describeVocab(v *model.Vocab) string {
	id := func(p *int) string {
		if p == nil {
			return "none"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("embedded %s vocabulary: %d tokens, %d ordinary (mask %s, pad %s, cls %s)",
		v.Type, len(v.Tokens), v.BaseVocabSize, id(v.MaskTokenID), id(v.PadTokenID), id(v.CLSTokenID))
}

// progress prints the header (once) and one line per iteration.
type progress struct {
	w       io.Writer
	header  func(T int) // nil once printed
	vocab   *model.Vocab
	mode    string
	batch   int // B
	verbose bool
	last    time.Time
}

func newProgress(w io.Writer, v *model.Vocab, o *sampler.Options, verbose bool, header func(T int)) *progress {
	mode := o.ScheduleMode
	if o.Method == sampler.Multinomial {
		mode = ""
	}
	return &progress{w: w, header: header, vocab: v, mode: mode, batch: o.NumSamples, verbose: verbose, last: time.Now()}
}

func (p *progress) observe(e *sampler.Event) {
	if p.header != nil {
		if p.batch > 0 {
			p.header(e.Total / p.batch)
		}
		p.header = nil
	}
	now := time.Now()
	elapsed := now.Sub(p.last)
	p.last = now

	pct := 0.0
	if e.Total > 0 {
		pct = 100 * float64(e.Masked) / float64(e.Total)
	}
	line := fmt.Sprintf("Iteration %d/%d: %d/%d masked (%.1f%%)", e.Iteration+1, e.Iterations, e.Masked, e.Total, pct)
	if !math.IsNaN(e.Ratio) {
		switch p.mode {
		case sampler.ScheduleRatio:
			line += fmt.Sprintf(", next_ratio=%.3f", e.Ratio)
		case sampler.ScheduleThreshold:
			line += fmt.Sprintf(", threshold=%.3f", 1-e.Ratio)
		}
	}
	if !math.IsNaN(e.MinWrongness) {
		line += fmt.Sprintf(", min_wrongness=%.4f", e.MinWrongness)
	}
	fmt.Fprintln(p.w, line)

	last := e.Iteration == e.Iterations-1 || e.EarlyStop
	if (e.Iteration == 0 || last) && p.batch > 0 {
		// Row 0 of the (B, T) tokens the iteration reports.
		if T := len(e.Tokens) / p.batch; T > 0 {
			fmt.Fprintf(p.w, "  Sample: %s\n", preview(sampler.Decode(p.vocab, e.Tokens[:T]), sampleShow))
		}
	}
	if p.verbose {
		var counts []string
		total := 0
		for _, r := range e.Remasked {
			counts = append(counts, fmt.Sprint(len(r)))
			total += len(r)
		}
		filled := 0
		for _, f := range e.Filled {
			if f {
				filled++
			}
		}
		detail := fmt.Sprintf("  Iter %d: %.1f ms | filled %d | remasked %d", e.Iteration+1, float64(elapsed.Microseconds())/1000, filled, total)
		if len(counts) > 1 {
			detail += " (per sample: " + strings.Join(counts, " ") + ")"
		}
		fmt.Fprintln(p.w, detail)
	}
	if e.EarlyStop {
		fmt.Fprintln(p.w, "  Early termination: nothing is left above the threshold")
	}
}

// preview shows the first n characters of s on one line ("..." when longer).
func preview(s string, n int) string {
	r := []rune(s)
	more := ""
	if len(r) > n {
		r, more = r[:n], "..."
	}
	return termsafe.Escape(string(r)) + more
}

// printResults prints the samples and the performance summary on stdout.
func printResults(w io.Writer, res *sampler.Result, backend string) {
	fmt.Fprintln(w, "RESULTS")
	fmt.Fprintf(w, "Generation completed in %.2f seconds (%d iterations; remasking: %s; quality metric: %s)\n",
		res.Seconds, res.IterationsRun, orNone(res.Strategy), orNone(res.Metric))
	n := len(res.Samples)
	var judge []float64
	for i, s := range res.Samples {
		fmt.Fprintln(w, sampleRule)
		fmt.Fprintf(w, "SAMPLE %d/%d\n", i+1, n)
		if s.Steps > 0 {
			fmt.Fprintf(w, "Steps: %d\n", s.Steps)
		}
		if s.JudgeScore != nil {
			fmt.Fprintf(w, "Judge score: %.4f\n", *s.JudgeScore)
			judge = append(judge, *s.JudgeScore)
		}
		if s.SelfConfidence != nil {
			c := *s.SelfConfidence
			switch {
			case math.IsInf(c, -1):
				fmt.Fprintln(w, "Self-confidence: -inf (no position to score)")
			case c <= -100:
				fmt.Fprintf(w, "Self-confidence: %.4f (prob: 0)\n", c)
			default:
				fmt.Fprintf(w, "Self-confidence: %.4f (prob: %.4f)\n", c, math.Exp(c))
			}
		}
		if s.Critic != nil {
			cs := s.Critic
			if res.Metric == sampler.MetricNode {
				fmt.Fprintf(w, "Critic prob stats: mean=%.4f p10/median/p90=%.4f/%.4f/%.4f\n", cs.Mean, cs.P10, cs.P50, cs.P90)
			} else {
				fmt.Fprintf(w, "Critic probabilities p10/median/p90: %.4f / %.4f / %.4f\n", cs.P10, cs.P50, cs.P90)
			}
		}
		fmt.Fprintln(w, sampleRule)
		fmt.Fprintln(w, termsafe.EscapeText(s.Text)) // the vocabulary's strings, from the file
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "PERFORMANCE SUMMARY")
	fmt.Fprintf(w, "Backend: %s\n", backend)
	printTiming(w, res)
	if len(judge) > 0 {
		sorted := append([]float64(nil), judge...)
		sort.Float64s(sorted)
		mean := 0.0
		for _, x := range judge {
			mean += x
		}
		mean /= float64(len(judge))
		fmt.Fprintf(w, "Judge score mean: %.4f | min: %.4f | max: %.4f\n", mean, sorted[0], sorted[len(sorted)-1])
	}
}

// summaryStage is one part of the wall time in the performance summary.
type summaryStage struct {
	name string
	sec  float64
}

// summaryStages splits the wall time of a generation into parts that add up
// to the total: the generation loop (res.Seconds) and the quality metrics
// after it. On the host loop the loop splits into the timed stages and
// "other" (the progress display and bookkeeping between them); on the
// device loop the GPU runs forward, sampling and remasking in one submission
// per iteration, so the loop is one part, which includes the metrics pass
// the device runs with the final read (sampler.Result.Seconds).
func summaryStages(res *sampler.Result) []summaryStage {
	t := res.Timings
	if res.Loop == "device" {
		name := "device loop (forward, sampling, remasking)"
		if res.Metric != "" && res.Metric != sampler.MetricNone {
			name = "device loop (forward, sampling, remasking, metrics pass)"
		}
		return []summaryStage{{name, res.Seconds}, {"metrics", t.Metrics}}
	}
	other := res.Seconds - t.Forward - t.Sampling - t.Remasking
	if other < 0 {
		other = 0
	}
	return []summaryStage{{"forward", t.Forward}, {"sampling", t.Sampling}, {"remasking", t.Remasking}, {"other", other}, {"metrics", t.Metrics}}
}

// printTiming prints the wall time, the throughput and the stages of the
// performance summary; the stages add up to the total.
func printTiming(w io.Writer, res *sampler.Result) {
	stages := summaryStages(res)
	total := 0.0
	for _, s := range stages {
		total += s.sec
	}
	n := len(res.Samples)
	perSample := 0.0
	if n > 0 {
		perSample = total / float64(n)
	}
	tokens := 0
	for _, s := range res.Samples {
		tokens += len(s.Tokens)
	}
	fmt.Fprintf(w, "Total wall time: %.3f s (generation %.3f s + metrics %.3f s) | Time per sample: %.3f s\n",
		total, res.Seconds, res.Timings.Metrics, perSample)
	fmt.Fprintf(w, "Throughput: %.1f tokens/s (tokens: %d) over the generation\n", sampler.FiniteOrZero(res.TokensPerSecond), tokens)
	var parts []string
	for _, s := range stages {
		pct := 0.0
		if total > 0 {
			pct = 100 * s.sec / total
		}
		parts = append(parts, fmt.Sprintf("%s %.3f s (%.1f%%)", s.name, s.sec, pct))
	}
	fmt.Fprintf(w, "Stages: %s\n", strings.Join(parts, " | "))
	if d := res.Device; d != nil && len(d.StagesMs) > 0 {
		names := make([]string, 0, len(d.StagesMs))
		for k := range d.StagesMs {
			names = append(names, k)
		}
		sort.Strings(names)
		var gpu []string
		for _, k := range names {
			gpu = append(gpu, fmt.Sprintf("%s %.1f ms", k, d.StagesMs[k]))
		}
		fmt.Fprintf(w, "GPU time per stage (timestamp queries): %s\n", strings.Join(gpu, " | "))
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// jsonOptions are the sampling options as run, with the ones that
// sampler.Options does not serialise.
type jsonOptions struct {
	sampler.Options
	Compat         string `json:"compat"`
	Model          string `json:"model"`
	Judge          string `json:"judge"`
	RemaskingModel string `json:"remasking_model"`
	Backend        string `json:"backend"`
	Threads        int    `json:"threads"`
}

type jsonResult struct {
	sampler.ResultJSON
	Backend       string      `json:"backend"`
	Seed          uint64      `json:"seed"`
	IterationsRun int         `json:"iterations_run"`
	Strategy      string      `json:"strategy"`
	Metric        string      `json:"metric"`
	Warnings      []string    `json:"warnings"`
	Options       jsonOptions `json:"options"`
}

// writeJSONResult prints the --json object: exactly one JSON value on w.
func writeJSONResult(w io.Writer, res *sampler.Result, o *sampler.Options, a *sampleArgs, modelPath, judgePath, backend string) error {
	out := jsonResult{
		ResultJSON:    res.JSON(),
		Backend:       backend,
		Seed:          o.Seed,
		IterationsRun: res.IterationsRun,
		Strategy:      res.Strategy,
		Metric:        res.Metric,
		Warnings:      res.Warnings,
		Options: jsonOptions{Options: *o, Compat: o.Compat.String(), Model: modelPath, Judge: judgePath,
			RemaskingModel: a.remaskerPath, Backend: a.backend, Threads: a.threads},
	}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("writing the JSON result: %w", err)
	}
	return nil
}

// The --save file (sampler-spec 4.12).
type saveFile struct {
	Generator string       `json:"generator"`
	Meta      string       `json:"meta"`
	Samples   []saveSample `json:"samples"`
}

type saveSample struct {
	SampleID   int                       `json:"sample_id"`
	Iterations []sampler.IterationRecord `json:"iterations"`
}

// saveIterations writes the reference's iteration JSON with 2-space
// indentation through safefile: atomically (a temporary file in the same
// folder, then a rename), never over an input, over an existing file only
// with --force (opt).
func saveIterations(path string, opt safefile.CreateOptions, generator string, v *model.Vocab, res *sampler.Result) error {
	f := saveFile{Generator: generator, Meta: describeVocab(v), Samples: make([]saveSample, len(res.Iterations))}
	for i, recs := range res.Iterations {
		its := make([]sampler.IterationRecord, len(recs))
		for k, r := range recs {
			if r.RemaskedIndices == nil {
				r.RemaskedIndices = []int{} // the reference writes [], never null
			}
			its[k] = r
		}
		f.Samples[i] = saveSample{SampleID: i, Iterations: its}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("--save: encoding %s: %w", path, err)
	}
	data = append(data, '\n')
	return safefile.WriteFile(path, opt, func(w io.Writer) error {
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("--save: writing %s (%d bytes): %w", path, len(data), err)
		}
		return nil
	})
}
