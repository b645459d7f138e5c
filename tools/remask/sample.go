package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/safefile"
	"github.com/remask/remask/internal/termsafe"
)

// The shipped default models, looked up by findDefaultModel.
const (
	defaultModelName = "shakespeare.safetensors"
	defaultJudgeName = "shakespeare-judge.safetensors"
)

// sampleArgs are the flags of `remask sample`. The sampling options are
// parsed straight into opts; the rest needs converting or is not a sampling
// option.
type sampleArgs struct {
	opts          sampler.Options
	seed          int64
	maskingRatios string
	compat        string

	modelPath    string
	judgePath    string
	remaskerPath string
	backend      string
	threads      int
	limits       string
	precision    string
	maxMemory    string

	verbose    bool
	noProgress bool
	jsonOut    bool
	save       string
	force      bool
	live       string // auto | on | off
	liveRows   int
	heatmap    bool
}

func sampleFlags() (*flagSet, *sampleArgs) {
	a := &sampleArgs{}
	d := sampler.Defaults()
	fs := newFlagSet("sample", "[flags]",
		"Generates --num-samples texts of --sequence-length characters by masked diffusion: start\n"+
			"from all [MASK], predict every masked position, remask the least trusted ones, repeat for\n"+
			"--iterations. Without --model it uses the shipped models/shakespeare.safetensors.\n"+
			"Flags may be written --name value or --name=value.")

	fs.group("Models")
	fs.stringVar(&a.modelPath, "model", "", "FILE", "language model (.safetensors, format remask/1)")
	fs.showDefault("model", "models/"+defaultModelName+", looked up in $REMASK_MODELS, ./models, ~/.local/share/remask/models ($XDG_DATA_HOME), <executable dir>/../models")
	fs.stringVar(&a.judgePath, "judge", "", "FILE", "judge model (kind sequence_scorer) for the judge quality metric")
	fs.showDefault("judge", "models/"+defaultJudgeName+" next to the default model, if present; none with --model")
	fs.stringVar(&a.remaskerPath, "remasking-model", "", "FILE", "token classifier (kind token_classifier) for --remasking model")
	fs.showDefault("remasking-model", "none")
	fs.stringVar(&a.backend, "backend", "auto", "NAME", "compute backend: auto | cpu | gpu; auto = WebGPU on a hardware adapter, else cpu (saying which); gpu = any WebGPU adapter, software ones included")
	fs.intVar(&a.threads, "threads", 0, "N", "CPU backend threads; 0 = one per CPU core, else 1 to 1024")
	fs.stringVar(&a.limits, "limits", "adapter", "WHICH", limitsHelp)
	fs.stringVar(&a.precision, "precision", "auto", "P", precisionHelp)
	fs.stringVar(&a.maxMemory, "max-memory", "auto", "SIZE", maxMemoryHelp)

	fs.group("Sampling")
	fs.stringVar(&a.opts.Method, "method", d.Method, "NAME", "diffusion (predict masked positions, remask, repeat) | multinomial (resample every position) | unmask (commit positions for good, never remask; the Unmask flags)")
	fs.intVar(&a.opts.NumSamples, "num-samples", d.NumSamples, "N", "number of samples, generated as one batch; 1 or more")
	fs.intVar(&a.opts.SequenceLength, "sequence-length", d.SequenceLength, "N", "characters per sample; 1 to the model's block_size (a --template sets it)")
	fs.intVar(&a.opts.Iterations, "iterations", d.Iterations, "N", "diffusion iterations, or the most steps of --method unmask; 1 or more (replaced by the count of --masking-ratios)")
	fs.floatVar(&a.opts.Temperature, "temperature", d.Temperature, "X", "logit divisor; > 0, lower is greedier")
	fs.floatVar(&a.opts.TopP, "top-p", d.TopP, "X", "nucleus sampling mass; in (0, 1], 1 disables it")
	fs.stringVar(&a.opts.ScheduleMode, "schedule-mode", d.ScheduleMode, "MODE", "ratio (remask a fixed fraction) | threshold (remask every position whose wrongness exceeds 1 - ratio)")
	fs.floatVar(&a.opts.StartRatio, "start-ratio", d.StartRatio, "X", "remask ratio of the linear schedule at the first iteration; in [0, 1]")
	fs.floatVar(&a.opts.EndRatio, "end-ratio", d.EndRatio, "X", "remask ratio at the last iteration, and past the end of --masking-ratios; in [0, 1]")
	fs.stringVar(&a.maskingRatios, "masking-ratios", "", "LIST", "custom schedule: comma-separated ratios in [0, 1] (empty items skipped); sets --iterations to their count")
	fs.floatVar(&a.opts.RandomnessStrength, "randomness-strength", d.RandomnessStrength, "X", "blend of random noise into the remasking scores; in [0, 1]")
	fs.stringVar(&a.opts.SeedText, "seed-text", d.SeedText, "TEXT", "protected text placed in every sample; at most --sequence-length characters of the model's vocabulary")
	fs.stringVar(&a.opts.SeedPlacement, "seed-placement", d.SeedPlacement, "WHERE", "prefix (at position 0) | random (one random offset for the batch)")
	fs.stringVar(&a.opts.Template, "template", d.Template, "TEXT", "the whole sequence: every --placeholder character is generated, the rest is kept; excludes --seed-text")
	fs.stringVar(&a.opts.Placeholder, "placeholder", d.Placeholder, "CHAR", "the character of --template to generate; exactly one character")
	fs.stringVar(&a.opts.UnknownChars, "unknown-chars", d.UnknownChars, "WHAT", "seed/template characters outside the vocabulary: error | drop (the reference drops them silently)")
	fs.int64Var(&a.seed, "seed", -1, "N", "random seed; -1 = a random 63-bit seed (printed), else 0 to 9223372036854775807")
	fs.stringVar(&a.opts.Remasking, "remasking", d.Remasking, "NAME", "auto (model > calibrated > critic > self) | critic | calibrated | self | random | model")
	fs.boolVar(&a.opts.DisableSampler, "disable-sampler", d.DisableSampler, "predict with the LM head even if the model has a sampler head")
	fs.stringVar(&a.opts.SamplerNeighbors, "sampler-neighbors", d.SamplerNeighbors, "MODE", "sampler head neighbour input: zeros | embeddings")
	fs.showDefault("sampler-neighbors", "the model file's sampler.neighbors")
	fs.stringVar(&a.opts.QualityMetric, "quality-metric", d.QualityMetric, "NAME", "auto (judge if loaded, else node if the model has a critic, else self) | judge | node | self | none")
	fs.stringVar(&a.compat, "compat", "", "LIST", "reproduce reference quirks: comma-separated "+strings.Join(sampler.CompatNames, ", ")+", or all")
	fs.showDefault("compat", "none")

	fs.group("Unmask method (--method unmask; docs/sampling.md)")
	fs.stringVar(&a.opts.Ordering, "ordering", d.Ordering, "NAME", "which masked positions to commit first: confidence (top-1 probability) | margin (top-1 - top-2) | entropy (lowest entropy) | random")
	fs.showDefault("ordering", "confidence")
	fs.floatVar(&a.opts.OrderTemperature, "order-temperature", d.OrderTemperature, "X", "Gumbel noise on the ordering scores at this temperature (Dream's alg_temp); >= 0, 0 = none")
	fs.stringVar(&a.opts.UnmaskSchedule, "unmask-schedule", d.UnmaskSchedule, "NAME", "positions committed per step: linear | cosine (MaskGIT) | ratio (the fork's --start-ratio/--end-ratio/--masking-ratios)")
	fs.showDefault("unmask-schedule", "linear")
	fs.floatVar(&a.opts.ConfidenceThreshold, "confidence-threshold", d.ConfidenceThreshold, "X", "also commit every position whose top-1 probability is >= X (Fast-dLLM; adaptive steps); in [0, 1], 0 = off")
	fs.intVar(&a.opts.BlockLength, "block-length", d.BlockLength, "N", "decode block by block, left to right, N positions each (semi-autoregressive); 0 = one block; --iterations must be at least the number of blocks")
	fs.floatVar(&a.opts.EarlyCommitGap, "early-commit-gap", d.EarlyCommitGap, "X", "commit everything and stop when every remaining position's top-1 - top-2 probability gap is >= X (Prophet); in [0, 1], 0 = off")

	fs.group("Output")
	fs.boolVar(&a.verbose, "verbose", false, "print the model details and, in the plain progress lines (not the live view), per-iteration timing and remasking detail")
	fs.boolVar(&a.noProgress, "no-progress", false, "no header, no per-iteration lines and no live view on stderr")
	fs.boolVar(&a.jsonOut, "json", false, "print one JSON object on stdout instead of text (implies --no-progress)")
	fs.stringVar(&a.save, "save", "", "PATH", "write every iteration of every sample as JSON (the reference's --save format)")
	fs.showDefault("save", "none")
	fs.boolVar(&a.force, "force", false, "let --save replace an existing file (never one of the model files); without it an existing path is refused before the generation starts")
	fs.stringVar(&a.live, "live", liveAuto, "MODE", "live view of sample 1 redrawn on stderr each iteration: auto (when stderr is a terminal, TERM is not dumb and neither --no-progress nor --json is given) | on (always, even into a pipe) | off (the plain progress lines)")
	fs.intVar(&a.liveRows, "live-rows", defaultLiveRows, "N", "most lines of text in the live view (also capped by the terminal's height); 1 to 1000")
	fs.boolVar(&a.heatmap, "heatmap", false, "colour each cell of the live view by its wrongness (critic probability etc.), with a legend; needs colour (NO_COLOR unset)")
	return fs, a
}

// options turns the flags into sampling options, checking the ones that do
// not depend on the model.
func (a *sampleArgs) options(fs *flagSet) (sampler.Options, error) {
	o := a.opts
	if a.maskingRatios != "" {
		ratios, err := parseRatios(a.maskingRatios)
		if err != nil {
			return o, err
		}
		o.MaskingRatios = ratios
	}
	c, err := sampler.ParseCompat(a.compat)
	if err != nil {
		return o, err
	}
	o.Compat = c
	if o.Template != "" && !fs.wasSet("sequence-length") {
		o.SequenceLength = 0 // the template sets the length
	}
	if a.seed < -1 {
		return o, flagError("seed", "%d is out of range; use -1 for a random seed, or 0 to %d", a.seed, int64(math.MaxInt64))
	}
	if a.seed >= 0 {
		o.Seed = uint64(a.seed)
	}
	if o.MaxMemory, err = memoryBudget("max-memory", a.maxMemory); err != nil {
		return o, err
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	if o.Remasking == sampler.RemaskModel && a.remaskerPath == "" {
		return o, flagError("remasking", "model needs a token classifier: pass --remasking-model FILE")
	}
	if a.threads < 0 {
		return o, flagError("threads", "%d is out of range; use 0 for one thread per CPU core, or 1 or more", a.threads)
	}
	if err := a.checkLive(); err != nil {
		return o, err
	}
	return o, nil
}

// parseRatios parses --masking-ratios: comma-separated floats, empty items
// skipped (the reference's rule).
func parseRatios(s string) ([]float64, error) {
	var out []float64
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		r, err := strconv.ParseFloat(item, 64)
		if err != nil {
			return nil, flagError("masking-ratios", "item %d (%q) is not a number; give comma-separated ratios in [0, 1], e.g. 0.9,0.6,0.3", i+1, item)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, flagError("masking-ratios", "%q holds no ratio; give comma-separated ratios in [0, 1], e.g. 0.9,0.6,0.3, or leave the flag out", s)
	}
	return out, nil
}

// randomSeed draws a 63-bit seed from the operating system.
func randomSeed() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("drawing a random seed: %w; pass --seed N", err)
	}
	return binary.LittleEndian.Uint64(b[:]) & math.MaxInt64, nil
}

func runSample(ctx context.Context, c *cli, args []string) error {
	fs, a := sampleFlags()
	if err := fs.parse(args, c.stdout); err != nil {
		return err
	}
	o, err := a.options(fs)
	if err != nil {
		return err
	}
	gopts, err := deviceOptions(a.backend, a.limits, a.precision)
	if err != nil {
		return err
	}
	be, backendNote, err := openBackend(ctx, a.backend, a.threads, gopts)
	if err != nil {
		return err
	}
	modelPath, judgePath, err := c.modelPaths(a.modelPath, a.judgePath, wantsJudge(o.QualityMetric))
	if err != nil {
		return err
	}
	if a.save != "" {
		if err := checkSaveDir(a.save); err != nil {
			return err
		}
		if err := safefile.CheckOutput(a.save, a.saveOptions(modelPath, judgePath)); err != nil {
			return &usageError{msg: err.Error()}
		}
	}

	if a.seed == -1 {
		seed, err := randomSeed()
		if err != nil {
			return err
		}
		o.Seed = seed
		fmt.Fprintf(c.stderr, "Seed: %d (random; pass --seed %d to repeat)\n", seed, seed)
	}
	o.Record = a.save != ""

	m, err := loadModels(ctx, be, modelPath, judgePath, a.remaskerPath)
	if err != nil {
		return err
	}

	// Every check Generate makes before computing, so that the header and
	// the estimate are not printed for a job the sampler refuses.
	var judgeModel, remaskerModel *model.Model
	if m.Judge != nil {
		judgeModel = m.Judge.Model()
	}
	if m.Remasker != nil {
		remaskerModel = m.Remasker.Model()
	}
	if _, err := sampler.Check(m.LM.Model(), judgeModel, remaskerModel, o); err != nil {
		return err
	}
	T := runLength(&o, &m.LM.Model().Vocab)
	quiet := a.noProgress || a.jsonOut
	if !quiet {
		printHeader(c.stderr, &o, a, m, be.Name(), backendNote, T)
	}
	if be.Name() == "cpu" {
		est, err := estimateJob(ctx, m.LM, &o, o.NumSamples, T)
		if err != nil {
			return err
		}
		warnLongJob(c.stderr, est, &o, o.NumSamples, T, be.Name())
	}
	var observe func(*sampler.Event)
	var header func(T int) // printed above, before the first iteration
	_, _, tty := termSize(c.stderr)
	var live *liveView
	switch {
	case useLive(a.live, quiet, tty, c.getenv):
		size := func() (cols, rows int) { // asked every frame: the window may be resized
			cols, rows, ok := termSize(c.stderr)
			if !ok || cols <= 0 {
				cols = liveWidth(c.getenv)
			}
			return cols, rows
		}
		live = newLiveView(c.stderr, &m.LM.Model().Vocab, &o, a, !noColor(c.getenv), size, time.Now, header)
		defer live.done(nil) // shows the cursor again if the generation fails
		observe = live.observe
	case !quiet:
		p := newProgress(c.stderr, &m.LM.Model().Vocab, &o, a.verbose, header)
		observe = p.observe
	}
	if a.heatmap && live == nil {
		fmt.Fprintf(c.stderr, "warning: %s\n", liveNote(a, tty))
	}
	res, err := sampler.Generate(ctx, m, o, observe)
	if err != nil {
		return err
	}
	if live != nil {
		live.done(res)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", termsafe.EscapeText(w))
	}

	if a.save != "" {
		if err := saveIterations(a.save, a.saveOptions(modelPath, judgePath), modelPath, &m.LM.Model().Vocab, res); err != nil {
			return err
		}
		iters := 0
		if len(res.Iterations) > 0 {
			iters = len(res.Iterations[0])
		}
		fmt.Fprintf(c.stderr, "Saved %d samples with %d iterations each\n", len(res.Iterations), iters)
	}
	if a.jsonOut {
		return writeJSONResult(c.stdout, res, &o, a, modelPath, judgePath, be.Name())
	}
	printResults(c.stdout, res, be.Name())
	return nil
}

// saveOptions are how --save is written: never over one of the model
// files, over an existing file only with --force.
func (a *sampleArgs) saveOptions(modelPath, judgePath string) safefile.CreateOptions {
	return safefile.CreateOptions{Force: a.force, Flag: "--save", Inputs: []string{modelPath, judgePath, a.remaskerPath}}
}

// wantsJudge says whether a quality metric uses a judge (auto uses the
// shipped one when it is found).
func wantsJudge(metric string) bool {
	return metric == sampler.MetricAuto || metric == sampler.MetricJudge
}

// loadModels loads the language model and, where their paths are given,
// the judge and the remasking model.
func loadModels(ctx context.Context, be engine.Backend, modelPath, judgePath, remaskerPath string) (sampler.Models, error) {
	var m sampler.Models
	var err error
	if m.LM, err = loadNet(ctx, be, "model", modelPath, model.LanguageModel); err != nil {
		return m, err
	}
	if judgePath != "" {
		if m.Judge, err = loadNet(ctx, be, "judge", judgePath, model.SequenceScorer); err != nil {
			return m, err
		}
	}
	if remaskerPath != "" {
		if m.Remasker, err = loadNet(ctx, be, "remasking-model", remaskerPath, model.TokenClassifier); err != nil {
			return m, err
		}
	}
	return m, nil
}

// modelPaths resolves the language model and judge files: the given paths,
// else the shipped model and (when wantJudge) the shipped judge next to it.
func (c *cli) modelPaths(modelPath, judgePath string, wantJudge bool) (string, string, error) {
	if modelPath != "" {
		return modelPath, judgePath, nil
	}
	dirs := modelDirs(c.getenv, c.executable)
	found, dir := findInDirs(dirs, defaultModelName)
	if found == "" {
		return "", "", &usageError{msg: "no model given and the shipped model " + defaultModelName +
			" is in none of the model folders; pass --model FILE, or put the model into the per-user folder" +
			" (remask pull URL downloads it there; README.md says how)\n(looked in: " + strings.Join(dirs, ", ") + ")"}
	}
	if j := filepath.Join(dir, defaultJudgeName); judgePath == "" && wantJudge && fileExists(j) {
		judgePath = j
	}
	return found, judgePath, nil
}

// modelDirs are the folders searched for the shipped models, in the order
// `remask models` lists them in (libraryDirs).
func modelDirs(getenv func(string) string, executable func() (string, error)) []string {
	var dirs []string
	for _, d := range libraryDirs("", getenv, executable) {
		dirs = append(dirs, d.Path)
	}
	return dirs
}

// findInDirs returns the first dir/name that exists, and its dir.
func findInDirs(dirs []string, name string) (path, dir string) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fileExists(p) {
			return p, d
		}
	}
	return "", ""
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// checkSaveDir fails early, before a long generation, when --save cannot be
// written.
func checkSaveDir(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return flagError("save", "cannot write %s: folder %s does not exist; create it or choose another path", path, dir)
	}
	if !st.IsDir() {
		return flagError("save", "cannot write %s: %s is not a folder", path, dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return flagError("save", "%s is a folder; give a file path such as %s", path, filepath.Join(path, "iterations.json"))
	}
	return nil
}

// loadModel reads a model file named by a flag. A path that is not there is
// a usage error; a file that is there but broken is a failure.
func loadModel(flag, path string) (*model.Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, flagError(flag, "%s does not exist or cannot be read (%v)", path, err)
	}
	if st.IsDir() {
		return nil, flagError(flag, "%s is a folder; give the .safetensors file", path)
	}
	if err := checkInput(flag, path); err != nil { // a FIFO or a device
		return nil, err
	}
	m, err := model.Load(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return m, nil
}

// kindNames say in words what each model kind is for, in messages.
var kindNames = map[model.Kind]string{
	model.LanguageModel:   "a language model (for --model)",
	model.SequenceScorer:  "a judge (for --judge)",
	model.TokenClassifier: "a token classifier (for --remasking-model)",
}

// loadNet reads a model file, checks that it is the kind the flag takes, and
// loads it on the backend.
func loadNet(ctx context.Context, be engine.Backend, flag, path string, want model.Kind) (engine.Net, error) {
	m, err := loadModel(flag, path)
	if err != nil {
		return nil, err
	}
	if m.Config.Kind != want {
		got, ok := kindNames[m.Config.Kind]
		if !ok {
			got = string(m.Config.Kind)
		}
		return nil, flagError(flag, "%s is %s (kind %s), but --%s takes kind %s", path, got, m.Config.Kind, flag, want)
	}
	net, err := be.Load(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("--%s: loading %s on the %s backend: %w", flag, path, be.Name(), err)
	}
	return net, nil
}
