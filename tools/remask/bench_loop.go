package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/gpu"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
)

// `remask bench --job standard|small` times whole generations: the shipped
// model, critic remasking, 15 iterations; standard = 16 x 1024, small =
// 1 x 256 (the interactive case). Each variant (sampler head on/off, the
// reference's critic-on-input work, the device loop and, on a backend with
// one, the host loop as the before-picture) runs --reps times after a
// warm-up; the median is reported with tokens/s, device submits and
// dispatches per iteration, bytes read back per iteration and sampler-head
// waves. --baseline runs the vectorized PyTorch loop
// (tools/train/bench_loop.py) in the same command on the same machine and
// the report gives remask's time as a ratio of it.

type loopJob struct {
	name    string
	B, T, N int
}

var loopJobs = map[string]loopJob{
	"standard": {"standard", 16, 1024, 15},
	"small":    {"small", 1, 256, 15},
}

// loopVariant is one timed configuration of a job.
type loopVariant struct {
	Sampler bool   `json:"sampler"`
	Compat  string `json:"compat"` // "" or "critic-on-input"
	Loop    string `json:"loop"`   // device | host
}

type loopResult struct {
	loopVariant
	Job          string  `json:"job"`
	B            int     `json:"batch"`
	T            int     `json:"length"`
	N            int     `json:"iterations"`
	Reps         int     `json:"reps"`
	Seconds      float64 `json:"seconds"`     // median wall time of Generate, metrics included
	SecondsMin   float64 `json:"seconds_min"` // fastest rep
	LoopSeconds  float64 `json:"loop_seconds"`
	TokensPerSec float64 `json:"tokens_per_second"`
	// The device loop's work per iteration (absent for the host loop; 0 is
	// reported, e.g. no bytes read back).
	SubmitsPerIt  *float64           `json:"submits_per_iteration,omitempty"`
	DispatchPerIt *float64           `json:"dispatches_per_iteration,omitempty"`
	ReadPerIt     *float64           `json:"read_bytes_per_iteration,omitempty"`
	Waves         *int               `json:"waves,omitempty"`
	StagesMs      map[string]float64 `json:"gpu_stage_ms,omitempty"`
	HostMs        map[string]float64 `json:"device_host_ms,omitempty"` // the last rep's sampler.DeviceWork.HostMs
	Timings       sampler.Timings    `json:"host_timings"`
	// BaselineRatio is Seconds over the PyTorch loop's seconds for the same
	// sampler/compat variant, per PyTorch dtype.
	BaselineRatio map[string]float64 `json:"ratio_to_pytorch,omitempty"`
	// TextAgreementF32 (--precision f16 only) is the fraction of the
	// generated characters that equal those of the same generation (same
	// seed and options) in precision f32 on the same adapter.
	TextAgreementF32 *float64 `json:"text_agreement_f32,omitempty"`
	text             string   // the last rep's samples, concatenated
}

type loopReport struct {
	Job       string          `json:"job"`
	Backend   string          `json:"backend"`
	Precision string          `json:"precision"` // of the trunk's matmuls: f32, or f16 (--precision)
	Model     string          `json:"model"`
	Results   []loopResult    `json:"results"`
	Baseline  json.RawMessage `json:"pytorch_baseline,omitempty"`
	// BaselineError says why no baseline ran (never left out silently).
	BaselineError string `json:"pytorch_baseline_error,omitempty"`
	Command       string `json:"command"`
}

func runLoopBench(ctx context.Context, c *cli, a *benchArgs, gopts gpu.Options) error {
	job := loopJobs[a.job]
	if a.batch > 0 {
		job.B = a.batch
	}
	if a.length > 0 {
		job.T = a.length
	}
	if a.iterations > 0 {
		job.N = a.iterations
	}
	if a.reps < 1 {
		return flagError("reps", "%d is out of range; at least 1", a.reps)
	}
	path, _, err := c.modelPaths(a.modelPath, "", false)
	if err != nil {
		return err
	}
	m, err := loadModel("model", path)
	if err != nil {
		return err
	}
	if job.T > m.Config.BlockSize {
		return flagError("length", "%d exceeds the model's block_size %d", job.T, m.Config.BlockSize)
	}
	be, net, err := c.benchNet(ctx, a, m, gopts)
	if err != nil {
		return err
	}
	rep := loopReport{Job: job.name, Backend: be.Name(), Precision: precisionOf(be), Model: m.Name(), Command: "remask " + strings.Join(os.Args[1:], " ")}
	loops := []string{"host"}
	if _, ok := net.(engine.LoopNet); ok {
		loops = []string{"device"}
		if a.hostLoop {
			loops = append(loops, "host")
		}
	}
	samplerModes := []bool{false}
	if m.Config.HasSampler() {
		samplerModes = []bool{true, false}
	}
	for _, loop := range loops {
		for _, sm := range samplerModes {
			for _, compat := range []string{"", "critic-on-input"} {
				v := loopVariant{Sampler: sm, Compat: compat, Loop: loop}
				r, err := benchLoop(ctx, net, job, v, a.reps)
				if err != nil {
					return fmt.Errorf("bench %s %+v: %w", job.name, v, err)
				}
				fmt.Fprintf(c.stderr, "%s sampler=%v compat=%q loop=%s: %.4f s\n", job.name, sm, compat, loop, r.Seconds)
				rep.Results = append(rep.Results, r)
			}
		}
	}
	if rep.Precision == "f16" {
		if err := textAgreement(ctx, c, a, gopts, m, job, rep.Results); err != nil {
			return err
		}
	}
	if a.baseline != "none" {
		raw, err := runBaseline(ctx, a.baseline, path, job, a.reps)
		if err != nil {
			rep.BaselineError = err.Error()
			fmt.Fprintf(c.stderr, "pytorch baseline: %v\n", err)
		} else {
			rep.Baseline = raw
			addRatios(&rep, raw)
		}
	}
	if a.jsonOut {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(c.stdout, "job %s (%d x %d x %d)\nbackend: %s\nmodel: %s\n", job.name, job.B, job.T, job.N, rep.Backend, rep.Model)
	for _, r := range rep.Results {
		fmt.Fprintf(c.stdout, "  sampler %-5v compat %-16q loop %-6s %8.4f s  %9.0f tok/s", r.Sampler, r.Compat, r.Loop, r.Seconds, r.TokensPerSec)
		if r.SubmitsPerIt != nil {
			fmt.Fprintf(c.stdout, "  %.1f submits/it  %.0f dispatches/it  %.0f B read/it  %d waves", *r.SubmitsPerIt, *r.DispatchPerIt, *r.ReadPerIt, *r.Waves)
		}
		if r.TextAgreementF32 != nil {
			fmt.Fprintf(c.stdout, "  text = f32's on %.1f%%", 100**r.TextAgreementF32)
		}
		for _, k := range sortedKeys(r.BaselineRatio) {
			fmt.Fprintf(c.stdout, "  %.2fx pytorch-%s", r.BaselineRatio[k], k)
		}
		fmt.Fprintln(c.stdout)
	}
	if rep.BaselineError != "" {
		fmt.Fprintf(c.stdout, "pytorch baseline: not run: %s\n", rep.BaselineError)
	}
	return nil
}

func sortedKeys(m map[string]float64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// textAgreement sets TextAgreementF32 of every result: it opens the
// adapter again in precision f32, runs each variant once with the same
// options and seed, and compares the texts character by character.
func textAgreement(ctx context.Context, c *cli, a *benchArgs, gopts gpu.Options, m *model.Model, job loopJob, results []loopResult) error {
	fo := gopts
	fo.Precision = "f32"
	be, net, err := c.benchNet(ctx, &benchArgs{backend: "gpu", threads: a.threads}, m, fo)
	if err != nil {
		return fmt.Errorf("text agreement with f32: %w", err)
	}
	defer be.(*gpu.Backend).Close()
	for i := range results {
		r := &results[i]
		res, err := sampler.Generate(ctx, sampler.Models{LM: net}, loopOptions(net, job, r.loopVariant), nil)
		if err != nil {
			return fmt.Errorf("text agreement with f32, %+v: %w", r.loopVariant, err)
		}
		x, y := []rune(r.text), []rune(samplesText(res))
		same := 0
		for k := range min(len(x), len(y)) {
			if x[k] == y[k] {
				same++
			}
		}
		f := float64(same) / float64(max(len(x), len(y), 1))
		r.TextAgreementF32 = &f
	}
	return nil
}

func samplesText(res *sampler.Result) string {
	var s strings.Builder
	for _, x := range res.Samples {
		s.WriteString(x.Text)
	}
	return s.String()
}

// loopOptions are the sampler options of variant v of job.
func loopOptions(net engine.Net, job loopJob, v loopVariant) sampler.Options {
	o := sampler.Defaults()
	o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = job.B, job.T, job.N, 1
	o.Remasking = sampler.RemaskCritic
	if !net.Model().Config.HasCritic() {
		o.Remasking = sampler.RemaskSelf
	}
	o.DisableSampler = !v.Sampler
	o.Compat.CriticOnInput = v.Compat == "critic-on-input"
	o.HostLoop = v.Loop == "host"
	return o
}

// benchLoop times one variant: a warm-up generation, then reps timed ones
// (no observer: the fast path that reads back only what it must).
func benchLoop(ctx context.Context, net engine.Net, job loopJob, v loopVariant, reps int) (loopResult, error) {
	o := loopOptions(net, job, v)
	r := loopResult{loopVariant: v, Job: job.name, B: job.B, T: job.T, N: job.N, Reps: reps}
	if _, err := sampler.Generate(ctx, sampler.Models{LM: net}, o, nil); err != nil {
		return r, err
	}
	var secs []float64
	var last *sampler.Result
	for i := 0; i < reps; i++ {
		t0 := time.Now()
		res, err := sampler.Generate(ctx, sampler.Models{LM: net}, o, nil)
		if err != nil {
			return r, err
		}
		secs = append(secs, time.Since(t0).Seconds())
		last = res
	}
	if _, ok := net.(engine.LoopNet); ok && v.Loop == "device" {
		// One more generation with GPU timestamps per stage (it waits for
		// every submission, so it is not one of the timed reps).
		po := o
		po.ProfileStages = true
		res, err := sampler.Generate(ctx, sampler.Models{LM: net}, po, nil)
		if err != nil {
			return r, err
		}
		if res.Device != nil {
			r.StagesMs = res.Device.StagesMs
		}
	}
	sort.Float64s(secs)
	r.Seconds, r.SecondsMin = secs[len(secs)/2], secs[0]
	r.LoopSeconds = last.Seconds
	r.text = samplesText(last)
	r.TokensPerSec = float64(job.B*job.T) / r.Seconds
	r.Timings = last.Timings
	if d := last.Device; d != nil {
		it := float64(last.IterationsRun)
		sub, disp, read, waves := float64(d.Submits)/it, float64(d.Dispatches)/it, float64(d.ReadBytes)/it, d.Waves
		r.SubmitsPerIt, r.DispatchPerIt, r.ReadPerIt, r.Waves = &sub, &disp, &read, &waves
		r.HostMs = d.HostMs
	}
	return r, nil
}

// runBaseline runs the PyTorch loop and returns its JSON. spec "auto" is
// python3 tools/train/bench_loop.py; anything else is the command to run
// (split on spaces) with the job's arguments appended.
func runBaseline(ctx context.Context, spec, modelPath string, job loopJob, reps int) (json.RawMessage, error) {
	argv := strings.Fields(spec)
	if spec == "auto" {
		script := "tools/train/bench_loop.py"
		if _, err := os.Stat(script); err != nil {
			return nil, fmt.Errorf("%s not found (run from the repository root, or pass --baseline none)", script)
		}
		argv = []string{"python3", script}
	}
	argv = append(argv, "--model", modelPath, "--job", job.name, "--batch", fmt.Sprint(job.B), "--length", fmt.Sprint(job.T),
		"--iterations", fmt.Sprint(job.N), "--dtype", "all", "--sampler", "both", "--compat", "both", "--reps", fmt.Sprint(reps))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		tail := errb.String()
		if len(tail) > 600 {
			tail = tail[len(tail)-600:]
		}
		return nil, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(tail))
	}
	raw := bytes.TrimSpace(out.Bytes())
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%s printed no JSON object", strings.Join(argv, " "))
	}
	return raw, nil
}

// addRatios sets each result's ratio to the PyTorch run of the same
// sampler/compat variant, per dtype.
func addRatios(rep *loopReport, raw json.RawMessage) {
	var b struct {
		Runs []struct {
			Dtype   string  `json:"dtype"`
			Sampler any     `json:"sampler"`
			Compat  any     `json:"compat"`
			Seconds float64 `json:"seconds"`
		} `json:"runs"`
	}
	if json.Unmarshal(raw, &b) != nil {
		return
	}
	on := func(x any) bool {
		switch v := x.(type) {
		case bool:
			return v
		case string:
			return v == "on" || v == "true"
		}
		return false
	}
	compat := func(x any) string {
		if s, ok := x.(string); ok && s != "none" && s != "off" {
			return s
		}
		if v, ok := x.(bool); ok && v {
			return "critic-on-input"
		}
		return ""
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		for _, run := range b.Runs {
			if on(run.Sampler) == r.Sampler && compat(run.Compat) == r.Compat && run.Seconds > 0 && !math.IsNaN(run.Seconds) {
				if r.BaselineRatio == nil {
					r.BaselineRatio = map[string]float64{}
				}
				r.BaselineRatio[run.Dtype] = r.Seconds / run.Seconds
			}
		}
	}
}
