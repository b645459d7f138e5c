package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/safefile"
	"github.com/remask/remask/internal/termsafe"
)

// scoreArgs are the flags of `remask score`.
type scoreArgs struct {
	modelPath, judgePath string
	textFile, text       string
	length, windows      int
	metric, compat       string
	unknown              string
	backend              string
	threads              int
	maxMemory            string
	jsonOut              bool
}

func scoreFlags() (*flagSet, *scoreArgs) {
	a := &scoreArgs{}
	fs := newFlagSet("score", "(--text-file FILE | --text TEXT) [flags]",
		"Computes the quality metrics of `remask sample` (judge score, self-confidence, critic statistics)\n"+
			"for given text instead of generated text: --num-samples windows of --sequence-length characters\n"+
			"from --text-file, each starting at a line start, spread evenly over the file; or the one --text.\n"+
			"It is how generated text is compared with real text (the model cards' 'held-out real text').")
	fs.group("Models")
	fs.stringVar(&a.modelPath, "model", "", "FILE", "language model (.safetensors, format remask/1)")
	fs.showDefault("model", "models/"+defaultModelName+", looked up like `remask sample`")
	fs.stringVar(&a.judgePath, "judge", "", "FILE", "judge model (kind sequence_scorer)")
	fs.showDefault("judge", "models/"+defaultJudgeName+" next to the default model, if present; none with --model")
	fs.stringVar(&a.backend, "backend", "auto", "NAME", "compute backend: auto | cpu | gpu")
	fs.intVar(&a.threads, "threads", 0, "N", "CPU backend threads; 0 = one per CPU core, else 1 to 1024")
	fs.stringVar(&a.maxMemory, "max-memory", "auto", "SIZE", maxMemoryHelp)
	fs.group("Text")
	fs.stringVar(&a.textFile, "text-file", "", "FILE", "text to cut into windows")
	fs.showDefault("text-file", "none")
	fs.stringVar(&a.text, "text", "", "TEXT", "one text to score as a single window (excludes --text-file)")
	fs.showDefault("text", "none")
	fs.intVar(&a.length, "sequence-length", 1024, "N", "characters per window of --text-file; 1 to the model's block_size")
	fs.intVar(&a.windows, "num-samples", 16, "N", "windows of --text-file; 1 or more")
	fs.stringVar(&a.unknown, "unknown-chars", sampler.UnknownError, "WHAT", "characters outside the vocabulary: error | drop")
	fs.group("Metrics")
	fs.stringVar(&a.metric, "quality-metric", sampler.MetricAuto, "NAME", "auto (judge if loaded, else node if the model has a critic, else self) | judge | node | self")
	fs.stringVar(&a.compat, "compat", "", "LIST", "judge-keep-last reproduces the reference's judge crop; the other switches do not affect scoring")
	fs.showDefault("compat", "none")
	fs.boolVar(&a.jsonOut, "json", false, "print one JSON object on stdout")
	return fs, a
}

// scoreWindow is one scored window.
type scoreWindow struct {
	Start          int                  `json:"start"` // character offset in --text-file
	Text           string               `json:"text"`
	JudgeScore     *float64             `json:"judge_score"`
	SelfConfidence *float64             `json:"self_confidence"`
	Critic         *sampler.CriticStats `json:"critic"`
}

// scoreMeans are the means over windows (null when no window has the metric).
type scoreMeans struct {
	JudgeScore     *float64 `json:"judge_score"`
	SelfConfidence *float64 `json:"self_confidence"`
	CriticMean     *float64 `json:"critic_mean"`
	CriticP10      *float64 `json:"critic_p10"`
	CriticP50      *float64 `json:"critic_p50"`
	CriticP90      *float64 `json:"critic_p90"`
}

type scoreOutput struct {
	Model   string        `json:"model"`
	Judge   string        `json:"judge"`
	Source  string        `json:"source"`
	Metric  string        `json:"metric"`
	Backend string        `json:"backend"`
	Seconds float64       `json:"seconds"`
	Mean    scoreMeans    `json:"mean"`
	Windows []scoreWindow `json:"windows"`
}

func scoreCommand(ctx context.Context, c *cli, args []string) error {
	fs, a := scoreFlags()
	if err := fs.parse(args, c.stdout); err != nil {
		return err
	}
	if (a.textFile == "") == (a.text == "") {
		return flagError("text-file", "give exactly one of --text-file FILE and --text TEXT")
	}
	if a.windows < 1 {
		return flagError("num-samples", "%d is out of range; must be at least 1", a.windows)
	}
	if a.length < 1 {
		return flagError("sequence-length", "%d is out of range; must be at least 1", a.length)
	}
	if a.metric == sampler.MetricNone {
		return flagError("quality-metric", "none computes nothing; use auto, judge, node or self")
	}
	compat, err := sampler.ParseCompat(a.compat)
	if err != nil {
		return err
	}
	if a.threads < 0 {
		return flagError("threads", "%d is out of range; use 0 for one thread per CPU core, or 1 or more", a.threads)
	}
	budget, err := memoryBudget("max-memory", a.maxMemory)
	if err != nil {
		return err
	}
	be, _, err := newBackend(ctx, a.backend, a.threads)
	if err != nil {
		return err
	}
	modelPath, judgePath, err := c.modelPaths(a.modelPath, a.judgePath, wantsJudge(a.metric))
	if err != nil {
		return err
	}
	m, err := loadModels(ctx, be, modelPath, judgePath, "")
	if err != nil {
		return err
	}
	vocab := &m.LM.Model().Vocab
	o := sampler.Defaults()
	o.QualityMetric, o.Compat, o.UnknownChars, o.MaxMemory = a.metric, compat, a.unknown, budget

	var rows [][]int32
	var starts []int
	source := "--text"
	if a.text != "" {
		ids, _, err := sampler.EncodeText(vocab, a.text, a.unknown, "text")
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return flagError("text", "holds no character of the model's vocabulary")
		}
		rows, starts = [][]int32{ids}, []int{0}
	} else {
		source = a.textFile
		// The windows are cut before the sampler sees them: their size is
		// checked first, and the file is read with a bound (text decodes
		// to 4 bytes a character, then to token ids).
		if err := sampler.CheckMemory(m.LM.Model(), judgeModel(m), nil, a.windows, a.length, o); err != nil {
			return err
		}
		data, err := safefile.ReadFile(a.textFile, budget/16)
		if err != nil {
			return flagError("text-file", "%v", err)
		}
		if !utf8.Valid(data) {
			return flagError("text-file", "%s is not UTF-8 text", a.textFile)
		}
		rows, starts, err = textWindows([]rune(string(data)), a.length, a.windows, func(s string) ([]int32, error) {
			ids, _, err := sampler.EncodeText(vocab, s, a.unknown, "text_file")
			return ids, err
		})
		if err != nil {
			return err
		}
	}
	res, err := sampler.Score(ctx, m, rows, o)
	if err != nil {
		return err
	}
	out := scoreOutput{Model: modelPath, Judge: judgePath, Source: source, Metric: res.Metric,
		Backend: be.Name(), Seconds: res.Timings.Metrics}
	var sums [6]float64
	var counts [6]int
	add := func(i int, p *float64) {
		if p != nil && !math.IsNaN(*p) && !math.IsInf(*p, 0) {
			sums[i] += *p
			counts[i]++
		}
	}
	for i, s := range res.Samples {
		w := scoreWindow{Start: starts[i], Text: s.Text, JudgeScore: sampler.JSONNumberPtr(s.JudgeScore), SelfConfidence: sampler.JSONNumberPtr(s.SelfConfidence), Critic: s.Critic}
		add(0, s.JudgeScore)
		add(1, s.SelfConfidence)
		if cs := s.Critic; cs != nil {
			add(2, &cs.Mean)
			add(3, &cs.P10)
			add(4, &cs.P50)
			add(5, &cs.P90)
		}
		out.Windows = append(out.Windows, w)
	}
	mean := func(i int) *float64 {
		if counts[i] == 0 {
			return nil
		}
		v := sums[i] / float64(counts[i])
		return &v
	}
	out.Mean = scoreMeans{mean(0), mean(1), mean(2), mean(3), mean(4), mean(5)}
	for _, w := range res.Warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", termsafe.EscapeText(w))
	}
	if a.jsonOut {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printScore(c.stdout, &out)
	return nil
}

// textWindows cuts n windows of length characters out of text, each starting
// at a line start, spread evenly: window i starts at the first line start at
// or after i*(len-length)/n (wrapping to the file's start when none is left).
func textWindows(text []rune, length, n int, encode func(string) ([]int32, error)) ([][]int32, []int, error) {
	if len(text) < length {
		return nil, nil, flagError("text-file", "has %d characters, fewer than --sequence-length %d", len(text), length)
	}
	span := len(text) - length
	var rows [][]int32
	var starts []int
	for i := 0; i < n; i++ {
		s := i * span / n
		for s > 0 && s <= span && text[s-1] != '\n' {
			s++
		}
		if s > span {
			s = 0
		}
		ids, err := encode(string(text[s : s+length]))
		if err != nil {
			return nil, nil, err
		}
		if len(ids) != length {
			return nil, nil, flagError("unknown-chars", "window %d at character %d lost %d characters outside the vocabulary; windows must keep --sequence-length characters, so clean the text", i, s, length-len(ids))
		}
		rows, starts = append(rows, ids), append(starts, s)
	}
	return rows, starts, nil
}

func printScore(w io.Writer, out *scoreOutput) {
	f := func(p *float64) string {
		if p == nil {
			return "n/a"
		}
		return fmt.Sprintf("%.4f", *p)
	}
	fmt.Fprintf(w, "Scored %d window%s of %s with %s (metric %s, backend %s, %.2fs)\n", len(out.Windows), plural(len(out.Windows)), out.Source, out.Model, out.Metric, out.Backend, out.Seconds)
	if out.Judge != "" {
		fmt.Fprintf(w, "Judge: %s\n", out.Judge)
	}
	fmt.Fprintf(w, "Mean judge score:     %s\n", f(out.Mean.JudgeScore))
	fmt.Fprintf(w, "Mean self-confidence: %s\n", f(out.Mean.SelfConfidence))
	fmt.Fprintf(w, "Mean critic prob:     %s (p10/median/p90 %s / %s / %s)\n", f(out.Mean.CriticMean), f(out.Mean.CriticP10), f(out.Mean.CriticP50), f(out.Mean.CriticP90))
	for i, win := range out.Windows {
		fmt.Fprintf(w, "window %d @%d: judge %s, self %s\n", i, win.Start, f(win.JudgeScore), f(win.SelfConfidence))
	}
}

// judgeModel is the judge's model description, nil without a judge.
func judgeModel(m sampler.Models) *model.Model {
	if m.Judge == nil {
		return nil
	}
	return m.Judge.Model()
}
