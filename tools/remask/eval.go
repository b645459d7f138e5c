package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/safefile"
)

// `remask eval`: quality against compute for decoding policies. For every
// policy and every step count it generates the same N samples (fixed seed)
// and reports the judge score, the self-confidence, the critic mean, the
// share of generated words found in a reference text, the trunk passes the
// loop actually ran and its wall time; a table on stdout, JSON and an SVG of
// the curves (eval_svg.go). docs/sampling.md "Which policy when" is its output.

type evalArgs struct {
	modelPath, judgePath, reference string
	backend                         string
	threads                         int
	policies, steps                 string
	numSamples, length              int
	seed                            int64
	temperature                     float64
	jsonPath, svgPath               string
	quality                         string
	force                           bool
	fromJSON                        string
}

// Default policies of `remask eval`: the fork's modes and each new policy once.
const defaultEvalPolicies = "fork,fork-naive,confidence,margin,entropy,random,cosine,threshold,blocks,prophet"

// evalPresets are the named policies; "name:key=value:..." overrides keys.
var evalPresets = map[string]string{
	"fork":        "diffusion",                         // the fork's default mode: remasking auto, the sampler head when the model has one
	"fork-naive":  "diffusion:disable-sampler=true",    // the same with the LM head's naive fill
	"multinomial": "multinomial",                       // resample every position
	"confidence":  "unmask:ordering=confidence",        // LLaDA low_confidence / MaskGIT, linear schedule
	"margin":      "unmask:ordering=margin",            // Dream topk_margin
	"entropy":     "unmask:ordering=entropy",           // Dream entropy
	"random":      "unmask:ordering=random",            // LLaDA random
	"cosine":      "unmask:schedule=cosine",            // MaskGIT's cosine schedule
	"ratio":       "unmask:schedule=ratio",             // the fork's ratio schedule, unmask-only
	"threshold":   "unmask:threshold=0.9",              // Fast-dLLM, tau 0.9
	"blocks":      "unmask:block-length=32",            // LLaDA semi-autoregressive, 32 per block
	"prophet":     "unmask:gap=0.5",                    // Prophet early commit at gap 0.5
	"alg-temp":    "unmask:ordering=margin:alg-temp=1", // Dream's margin with alg_temp 1
}

// evalPolicy is one policy: a label and the options it changes.
type evalPolicy struct {
	Label string
	apply func(o *sampler.Options)
}

// parsePolicy reads "preset" or "preset:key=value:key=value" (a preset is
// also a method name: diffusion, multinomial, unmask).
func parsePolicy(spec string) (evalPolicy, error) {
	spec = strings.TrimSpace(spec)
	parts := strings.Split(spec, ":")
	head := parts[0]
	if p, ok := evalPresets[head]; ok {
		parts = append(strings.Split(p, ":"), parts[1:]...)
		head = parts[0]
	}
	var mods []func(o *sampler.Options)
	switch head {
	case sampler.Diffusion, sampler.Multinomial, sampler.Unmask:
		m := head
		mods = append(mods, func(o *sampler.Options) { o.Method = m })
	default:
		names := make([]string, 0, len(evalPresets))
		for n := range evalPresets {
			names = append(names, n)
		}
		sort.Strings(names)
		return evalPolicy{}, flagError("policies", "%q: unknown policy %q; use one of %s, or a method (diffusion, multinomial, unmask), each optionally followed by :key=value", spec, head, strings.Join(names, ", "))
	}
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return evalPolicy{}, flagError("policies", "%q: %q is not key=value", spec, kv)
		}
		num := func() (float64, error) {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, flagError("policies", "%q: %s=%q is not a number", spec, k, v)
			}
			return x, nil
		}
		switch k {
		case "ordering":
			mods = append(mods, func(o *sampler.Options) { o.Ordering = v })
		case "schedule":
			mods = append(mods, func(o *sampler.Options) { o.UnmaskSchedule = v })
		case "remasking":
			mods = append(mods, func(o *sampler.Options) { o.Remasking = v })
		case "threshold", "gap", "alg-temp":
			x, err := num()
			if err != nil {
				return evalPolicy{}, err
			}
			switch k {
			case "threshold":
				mods = append(mods, func(o *sampler.Options) { o.ConfidenceThreshold = x })
			case "gap":
				mods = append(mods, func(o *sampler.Options) { o.EarlyCommitGap = x })
			default:
				mods = append(mods, func(o *sampler.Options) { o.OrderTemperature = x })
			}
		case "block-length":
			n, err := strconv.Atoi(v)
			if err != nil {
				return evalPolicy{}, flagError("policies", "%q: block-length=%q is not a whole number", spec, v)
			}
			mods = append(mods, func(o *sampler.Options) { o.BlockLength = n })
		case "disable-sampler":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return evalPolicy{}, flagError("policies", "%q: disable-sampler=%q is not true or false", spec, v)
			}
			mods = append(mods, func(o *sampler.Options) { o.DisableSampler = b })
		default:
			return evalPolicy{}, flagError("policies", "%q: unknown key %q; allowed: ordering, schedule, threshold, block-length, gap, alg-temp, remasking, disable-sampler", spec, k)
		}
	}
	return evalPolicy{Label: spec, apply: func(o *sampler.Options) {
		for _, m := range mods {
			m(o)
		}
	}}, nil
}

func evalFlags() (*flagSet, *evalArgs) {
	a := &evalArgs{}
	fs := newFlagSet("eval", "[flags]",
		"Generates the same samples (fixed seed) with every policy at every step count and\n"+
			"reports quality against compute: a table, --json and an --svg of the curves.\n"+
			"The loop runs on the host (it counts the trunk passes), over the backend's networks.")
	fs.group("Models")
	fs.stringVar(&a.modelPath, "model", "", "FILE", "language model (.safetensors)")
	fs.showDefault("model", "models/"+defaultModelName+", looked up as by remask sample")
	fs.stringVar(&a.judgePath, "judge", "", "FILE", "judge model for the judge score")
	fs.showDefault("judge", "models/"+defaultJudgeName+" next to the default model, if present; none with --model")
	fs.stringVar(&a.reference, "reference", "", "FILE", "text whose words count as real (e.g. the training text): reports the share of generated words found in it")
	fs.showDefault("reference", "none")
	fs.stringVar(&a.backend, "backend", "cpu", "NAME", "compute backend: auto | cpu | gpu")
	fs.intVar(&a.threads, "threads", 0, "N", "CPU backend threads; 0 = one per CPU core")
	fs.group("Grid")
	fs.stringVar(&a.policies, "policies", defaultEvalPolicies, "LIST", "comma-separated policies: presets ("+strings.Join(sortedPresets(), ", ")+") or a method (diffusion, multinomial, unmask), each optionally with :key=value overrides (ordering, schedule, threshold, block-length, gap, alg-temp, remasking, disable-sampler), e.g. unmask:ordering=margin:threshold=0.8")
	fs.stringVar(&a.steps, "steps", "4,8,16,32", "LIST", "comma-separated step counts (--iterations of each run; adaptive policies may run fewer)")
	fs.intVar(&a.numSamples, "num-samples", 4, "N", "samples per point (one batch); 1 or more")
	fs.intVar(&a.length, "sequence-length", 128, "N", "characters per sample")
	fs.int64Var(&a.seed, "seed", 1, "N", "the seed of every point (the same samples for every policy); 0 or more")
	fs.floatVar(&a.temperature, "temperature", sampler.Defaults().Temperature, "X", "sampling temperature of every point; > 0")
	fs.group("Output")
	fs.stringVar(&a.jsonPath, "json", "", "PATH", "write every point (and its texts) as JSON")
	fs.showDefault("json", "none")
	fs.stringVar(&a.svgPath, "svg", "", "PATH", "draw quality against trunk passes and against seconds as an SVG")
	fs.showDefault("svg", "none")
	fs.stringVar(&a.quality, "quality", "auto", "NAME", "the SVG's quality axis: auto (judge when a judge is loaded, else self) | judge | self | critic | reference")
	fs.boolVar(&a.force, "force", false, "replace existing --json and --svg files")
	fs.stringVar(&a.fromJSON, "from-json", "", "LIST", "generate nothing: merge these --json files of earlier runs (same model, samples, length, seed and temperature), print the table and write --json and --svg")
	fs.showDefault("from-json", "none")
	return fs, a
}

func sortedPresets() []string {
	names := make([]string, 0, len(evalPresets))
	for n := range evalPresets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// evalPoint is one (policy, steps) point.
type evalPoint struct {
	Policy string `json:"policy"`
	Steps  int    `json:"steps"`
	// Passes are the LM trunk passes the loop ran for the batch (the
	// critic's pass on the prediction included; the metrics pass not).
	Passes int `json:"passes"`
	// SamplePasses is the mean number of passes a sample needed: Passes,
	// or for method unmask the mean of its per-sample steps (adaptive).
	SamplePasses float64 `json:"sample_passes"`
	// Seconds is the wall time of the loop (metrics excluded), for the batch.
	Seconds        float64  `json:"seconds"`
	Judge          *float64 `json:"judge_score"`
	SelfConfidence *float64 `json:"self_confidence"`
	CriticMean     *float64 `json:"critic_mean"`
	ReferenceShare *float64 `json:"reference_share"`
	Words          int      `json:"words"`
	Texts          []string `json:"texts"`
}

type evalReport struct {
	Model          string      `json:"model"`
	Judge          string      `json:"judge"`
	Reference      string      `json:"reference"`
	Backend        string      `json:"backend"`
	NumSamples     int         `json:"num_samples"`
	SequenceLength int         `json:"sequence_length"`
	Seed           uint64      `json:"seed"`
	Temperature    float64     `json:"temperature"`
	TotalSeconds   float64     `json:"total_seconds"`
	Points         []evalPoint `json:"points"`
}

// countingNet counts the trunk passes (Encode calls) of a Net. It is not
// an engine.LoopNet, so the sampler runs its host loop over it.
type countingNet struct {
	engine.Net
	encodes int
}

func (c *countingNet) Encode(ctx context.Context, tokens []int32, B, T int) (engine.Hidden, error) {
	c.encodes++
	return c.Net.Encode(ctx, tokens, B, T)
}

func parseSteps(s string) ([]int, error) {
	var out []int
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n, err := strconv.Atoi(item)
		if err != nil || n < 1 || n > 100000 {
			return nil, flagError("steps", "%q is not a step count; give whole numbers from 1 to 100000, e.g. 4,8,16,32", item)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, flagError("steps", "%q holds no step count", s)
	}
	return out, nil
}

// words splits text into lower-case words: maximal runs of letters.
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) })
}

// maxReference bounds --reference (the training text is ~1 MB).
const maxReference = 256 << 20

func runEval(ctx context.Context, c *cli, args []string) error {
	fs, a := evalFlags()
	if err := fs.parse(args, c.stdout); err != nil {
		return err
	}
	switch a.quality {
	case "auto", "judge", "self", "critic", "reference":
	default:
		return flagError("quality", "%q is not allowed; allowed: auto, judge, self, critic, reference", a.quality)
	}
	if a.fromJSON != "" {
		rep, inputs, err := mergeReports(strings.Split(a.fromJSON, ","))
		if err != nil {
			return err
		}
		printEvalTable(c.stdout, rep)
		fmt.Fprintf(c.stdout, "merged %d points; the runs took %.0f s on %s\n", len(rep.Points), rep.TotalSeconds, rep.Backend)
		return a.writeOutputs(rep, inputs, rep.Judge != "")
	}
	var pols []evalPolicy
	for _, spec := range strings.Split(a.policies, ",") {
		if strings.TrimSpace(spec) == "" {
			continue
		}
		p, err := parsePolicy(spec)
		if err != nil {
			return err
		}
		pols = append(pols, p)
	}
	if len(pols) == 0 {
		return flagError("policies", "no policy given")
	}
	steps, err := parseSteps(a.steps)
	if err != nil {
		return err
	}
	if a.seed < 0 {
		return flagError("seed", "%d is out of range; eval needs a fixed seed, 0 or more", a.seed)
	}
	if a.threads < 0 {
		return flagError("threads", "%d is out of range; use 0 for one thread per CPU core, or 1 or more", a.threads)
	}
	// Every point's options, validated before anything is loaded.
	base := sampler.Defaults()
	base.NumSamples, base.SequenceLength, base.Seed, base.Temperature = a.numSamples, a.length, uint64(a.seed), a.temperature
	base.SeedPlacement = sampler.PlacePrefix
	base.HostLoop = true
	opts := make([][]sampler.Options, len(pols))
	for i, p := range pols {
		for _, n := range steps {
			o := base
			p.apply(&o)
			o.Iterations = n
			if err := o.Validate(); err != nil {
				return fmt.Errorf("--policies %s, %d steps: %w", p.Label, n, err)
			}
			opts[i] = append(opts[i], o)
		}
	}
	var refWords map[string]bool
	if a.reference != "" {
		b, err := safefile.ReadFile(a.reference, maxReference)
		if err != nil {
			return flagError("reference", "%v", err)
		}
		refWords = map[string]bool{}
		for _, w := range words(string(b)) {
			refWords[w] = true
		}
		if len(refWords) == 0 {
			return flagError("reference", "%s holds no words", a.reference)
		}
	}
	be, note, err := newBackend(ctx, a.backend, a.threads)
	if err != nil {
		return err
	}
	modelPath, judgePath, err := c.modelPaths(a.modelPath, a.judgePath, true)
	if err != nil {
		return err
	}
	lm, err := loadNet(ctx, be, "model", modelPath, model.LanguageModel)
	if err != nil {
		return err
	}
	var judge engine.Net
	if judgePath != "" {
		if judge, err = loadNet(ctx, be, "judge", judgePath, model.SequenceScorer); err != nil {
			return err
		}
	}
	for i := range opts {
		for _, o := range opts[i] {
			var jm *model.Model
			if judge != nil {
				jm = judge.Model()
			}
			if _, err := sampler.Check(lm.Model(), jm, nil, o); err != nil {
				return fmt.Errorf("--policies %s: %w", pols[i].Label, err)
			}
		}
	}
	if note != "" {
		fmt.Fprintln(c.stderr, note)
	}
	rep := &evalReport{Model: modelPath, Judge: judgePath, Reference: a.reference, Backend: be.Name(),
		NumSamples: a.numSamples, SequenceLength: a.length, Seed: uint64(a.seed), Temperature: a.temperature}
	start := time.Now()
	cn := &countingNet{Net: lm}
	for i, p := range pols {
		for j, o := range opts[i] {
			if err := ctx.Err(); err != nil {
				return err
			}
			cn.encodes = 0
			loopPasses := 0
			res, err := sampler.Generate(ctx, sampler.Models{LM: cn, Judge: judge}, o, func(*sampler.Event) { loopPasses = cn.encodes })
			if err != nil {
				return fmt.Errorf("%s, %d steps: %w", p.Label, steps[j], err)
			}
			pt := evalPoint{Policy: p.Label, Steps: steps[j], Passes: loopPasses, Seconds: res.Seconds}
			summarise(&pt, res, refWords)
			rep.Points = append(rep.Points, pt)
			fmt.Fprintf(c.stderr, "eval: %-22s %3d steps: %3d passes, %.1f s\n", p.Label, steps[j], pt.Passes, pt.Seconds)
		}
	}
	rep.TotalSeconds = time.Since(start).Seconds()
	printEvalTable(c.stdout, rep)
	fmt.Fprintf(c.stdout, "eval took %.0f s on %s (%d points)\n", rep.TotalSeconds, rep.Backend, len(rep.Points))
	inputs := []string{modelPath}
	if judgePath != "" {
		inputs = append(inputs, judgePath)
	}
	if a.reference != "" {
		inputs = append(inputs, a.reference)
	}
	return a.writeOutputs(rep, inputs, judge != nil)
}

// mergeReports reads --from-json files and concatenates their points.
func mergeReports(paths []string) (*evalReport, []string, error) {
	var rep *evalReport
	var inputs []string
	for _, p := range paths {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		b, err := safefile.ReadFile(p, 64<<20)
		if err != nil {
			return nil, nil, flagError("from-json", "%v", err)
		}
		var r evalReport
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, nil, flagError("from-json", "%s is not a remask eval --json file: %v", p, err)
		}
		inputs = append(inputs, p)
		if rep == nil {
			rep = &r
			continue
		}
		if r.Model != rep.Model || r.Judge != rep.Judge || r.Reference != rep.Reference || r.NumSamples != rep.NumSamples ||
			r.SequenceLength != rep.SequenceLength || r.Seed != rep.Seed || r.Temperature != rep.Temperature || r.Backend != rep.Backend {
			return nil, nil, flagError("from-json", "%s was run with other settings (model, judge, reference, samples, length, seed, temperature or backend) than %s", p, inputs[0])
		}
		rep.Points = append(rep.Points, r.Points...)
		rep.TotalSeconds += r.TotalSeconds
	}
	if rep == nil {
		return nil, nil, flagError("from-json", "no file given")
	}
	// Points of a policy in step order, policies in first-seen order.
	first := map[string]int{}
	for i, p := range rep.Points {
		if _, ok := first[p.Policy]; !ok {
			first[p.Policy] = i
		}
	}
	sort.SliceStable(rep.Points, func(i, j int) bool {
		a, b := rep.Points[i], rep.Points[j]
		if a.Policy != b.Policy {
			return first[a.Policy] < first[b.Policy]
		}
		return a.Steps < b.Steps
	})
	return rep, inputs, nil
}

// writeOutputs writes --json and --svg.
func (a *evalArgs) writeOutputs(rep *evalReport, inputs []string, haveJudge bool) error {
	if a.jsonPath != "" {
		err := safefile.WriteFile(a.jsonPath, safefile.CreateOptions{Force: a.force, Inputs: inputs, Flag: "--json"}, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		})
		if err != nil {
			return err
		}
	}
	if a.svgPath != "" {
		q := a.quality
		if q == "auto" {
			q = "self"
			if haveJudge {
				q = "judge"
			}
		}
		err := safefile.WriteFile(a.svgPath, safefile.CreateOptions{Force: a.force, Inputs: inputs, Flag: "--svg"}, func(w io.Writer) error {
			return writeEvalSVG(w, rep, q)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// summarise fills the quality columns of pt from res: means over samples
// of the judge score, self-confidence and critic mean, and the share of
// all generated words found in the reference.
func summarise(pt *evalPoint, res *sampler.Result, ref map[string]bool) {
	mean := func(get func(s *sampler.Sample) *float64) *float64 {
		var sum float64
		n := 0
		for i := range res.Samples {
			if x := get(&res.Samples[i]); x != nil && !math.IsNaN(*x) {
				sum += *x
				n++
			}
		}
		if n == 0 {
			return nil
		}
		m := sum / float64(n)
		return &m
	}
	pt.Judge = mean(func(s *sampler.Sample) *float64 { return s.JudgeScore })
	pt.SelfConfidence = mean(func(s *sampler.Sample) *float64 { return s.SelfConfidence })
	pt.CriticMean = mean(func(s *sampler.Sample) *float64 {
		if s.Critic == nil {
			return nil
		}
		return &s.Critic.Mean
	})
	var stepSum, found int
	for _, s := range res.Samples {
		pt.Texts = append(pt.Texts, s.Text)
		stepSum += s.Steps
		for _, w := range words(s.Text) {
			pt.Words++
			if ref[w] {
				found++
			}
		}
	}
	pt.SamplePasses = float64(pt.Passes)
	if stepSum > 0 { // method unmask: per-sample steps
		pt.SamplePasses = float64(stepSum) / float64(len(res.Samples))
	}
	if ref != nil && pt.Words > 0 {
		share := float64(found) / float64(pt.Words)
		pt.ReferenceShare = &share
	}
}

func printEvalTable(w io.Writer, rep *evalReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tsteps\tpasses\tpasses/sample\tseconds\tjudge\tself-conf\tcritic\tref words\t")
	f := func(x *float64, format string) string {
		if x == nil {
			return "-"
		}
		return fmt.Sprintf(format, *x)
	}
	for _, p := range rep.Points {
		share := "-"
		if p.ReferenceShare != nil {
			share = fmt.Sprintf("%.1f%%", 100**p.ReferenceShare)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t\n", p.Policy, p.Steps, p.Passes, p.SamplePasses, p.Seconds,
			f(p.Judge, "%.3f"), f(p.SelfConfidence, "%.3f"), f(p.CriticMean, "%.3f"), share)
	}
	tw.Flush()
}
