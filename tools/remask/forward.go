package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/checked"
)

// `remask forward` runs one forward pass of a model on token ids and prints
// every head's raw output as JSON. It is how the goldens made with PyTorch
// are checked against remask, and a way to look at a model's numbers.

type forwardArgs struct {
	modelPath string
	backend   string
	neighbors string
	threads   int
	jsonOut   bool
}

func forwardFlags() (*flagSet, *forwardArgs) {
	a := &forwardArgs{}
	fs := newFlagSet("forward", "--model FILE [flags] --json < input.json",
		"Reads {\"tokens\": [[id, ...], ...]} on stdin (rows of equal length, 1 to block_size ids each,\n"+
			"every id in [0, vocab_size-1]) and prints one JSON object on stdout:\n"+
			"  language model:   {\"logits\": [B][T][V], \"critic_logits\": [B][T], \"sampler_logits\": [B][T][V]}\n"+
			"                    (critic and sampler only when the model has those heads; the sampler head\n"+
			"                    is evaluated at every position)\n"+
			"  judge:            {\"evaluation\": [B], \"score\": [B]}  (score = 1 - evaluation; the model's CLS id\n"+
			"                    is prepended to every row, so rows hold at most block_size-1 ids)\n"+
			"  token classifier: {\"logits\": [B][T][K]}")
	fs.group("Flags")
	fs.stringVar(&a.modelPath, "model", "", "FILE", "model file (.safetensors, format remask/1) of any kind")
	fs.showDefault("model", "none; required")
	fs.stringVar(&a.backend, "backend", "auto", "NAME", "compute backend: auto | cpu | gpu; auto = WebGPU on a hardware adapter, else cpu (saying which); gpu = any WebGPU adapter, software ones included")
	fs.stringVar(&a.neighbors, "sampler-neighbors", "", "MODE",
		"sampler head neighbour input: zeros (always zero vectors) | embeddings (the ids at p-1 and p+1 when they exist and are not [MASK])")
	fs.showDefault("sampler-neighbors", "the model file's sampler.neighbors")
	fs.intVar(&a.threads, "threads", 0, "N", "CPU backend threads; 0 = one per CPU core, else 1 to 1024")
	fs.boolVar(&a.jsonOut, "json", false, "JSON is the only output format; the flag is accepted for clarity")
	return fs, a
}

type forwardOutput struct {
	Logits        [][][]float32 `json:"logits,omitempty"`
	CriticLogits  [][]float32   `json:"critic_logits,omitempty"`
	SamplerLogits [][][]float32 `json:"sampler_logits,omitempty"`
	Evaluation    []float32     `json:"evaluation,omitempty"`
	Score         []float32     `json:"score,omitempty"`
}

func runForward(ctx context.Context, c *cli, args []string) error {
	fs, a := forwardFlags()
	if err := fs.parse(args, c.stdout); err != nil {
		return err
	}
	if a.modelPath == "" {
		return flagError("model", "is required: pass the model file, e.g. --model models/shakespeare.safetensors")
	}
	switch a.neighbors {
	case "", model.NeighborsZeros, model.NeighborsEmbeddings:
	default:
		return flagError("sampler-neighbors", "%q is not a neighbour mode; allowed: zeros, embeddings", a.neighbors)
	}
	if a.threads < 0 {
		return flagError("threads", "%d is out of range; use 0 for one thread per CPU core, or 1 or more", a.threads)
	}
	be, _, err := newBackend(ctx, a.backend, a.threads)
	if err != nil {
		return err
	}
	m, err := loadModel("model", a.modelPath)
	if err != nil {
		return err
	}
	budget, err := memoryBudget("max-memory", "auto")
	if err != nil {
		return err
	}
	rows, err := readTokenRows(&cappedReader{r: c.stdin, left: budget / 16, limit: budget / 16})
	if err != nil {
		return err
	}
	tokens, B, T, err := checkRows(rows, m)
	if err != nil {
		return err
	}
	if need, ok := forwardNeed(&m.Config, B, T); !ok || need > budget {
		return &usageError{msg: fmt.Sprintf("stdin: %d rows of %d ids need about %s of memory for the forward pass and its JSON output, more than the memory budget of %s (3/4 of the available memory); send fewer rows",
			B, T, sampler.FormatBytes(need), sampler.FormatBytes(budget))}
	}
	net, err := be.Load(ctx, m)
	if err != nil {
		return fmt.Errorf("--model: loading %s on the %s backend: %w", a.modelPath, be.Name(), err)
	}
	neighbors := a.neighbors
	if m.Config.HasSampler() && neighbors == "" {
		neighbors = m.Config.Sampler.Neighbors
	}
	if !m.Config.HasSampler() && a.neighbors != "" {
		fmt.Fprintf(c.stderr, "warning: --sampler-neighbors ignored: %s has no sampler head\n", m.Name())
	}
	out, err := forward(ctx, net, tokens, B, T, neighbors)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(c.stdout)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("writing the output of %s: %w", m.Name(), err)
	}
	return bw.Flush()
}

// readTokenRows decodes {"tokens": [[...], ...]} and checks that every id is
// an integer; rows are checked against the model by checkRows.
func readTokenRows(r io.Reader) ([][]int64, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var in map[string]any
	if err := dec.Decode(&in); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &usageError{msg: `stdin is empty; give {"tokens": [[id, ...], ...]}`}
		}
		return nil, &usageError{msg: fmt.Sprintf(`stdin is not a JSON object of the form {"tokens": [[id, ...], ...]}: %v`, err)}
	}
	if dec.More() {
		return nil, &usageError{msg: `stdin holds more than one JSON value; give one {"tokens": [[id, ...], ...]} object`}
	}
	var unknown []string
	for k := range in {
		if k != "tokens" {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, &usageError{msg: fmt.Sprintf(`stdin: unknown key %s; the input is {"tokens": [[id, ...], ...]} and nothing else`, unknown[0])}
	}
	raw, ok := in["tokens"]
	if !ok {
		return nil, &usageError{msg: `stdin: no "tokens" key; give {"tokens": [[id, ...], ...]}`}
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, &usageError{msg: fmt.Sprintf(`stdin: "tokens" is %s, want an array of rows [[id, ...], ...]`, jsonType(raw))}
	}
	if len(list) == 0 {
		return nil, &usageError{msg: `stdin: "tokens" has no rows; give at least one row of ids`}
	}
	rows := make([][]int64, len(list))
	for i, rv := range list {
		row, ok := rv.([]any)
		if !ok {
			return nil, &usageError{msg: fmt.Sprintf(`stdin: row %d is %s, want an array of token ids`, i, jsonType(rv))}
		}
		rows[i] = make([]int64, len(row))
		for j, v := range row {
			n, ok := v.(json.Number)
			if !ok {
				return nil, &usageError{msg: fmt.Sprintf("stdin: row %d, column %d is %s, want an integer token id", i, j, jsonType(v))}
			}
			id, err := strconv.ParseInt(n.String(), 10, 64)
			if err != nil {
				return nil, &usageError{msg: fmt.Sprintf("stdin: row %d, column %d: %s is not an integer token id", i, j, n)}
			}
			rows[i][j] = id
		}
	}
	return rows, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// checkRows checks the rows against the model and flattens them, (B, T)
// row-major. For a judge with a CLS id, the CLS column is prepended.
func checkRows(rows [][]int64, m *model.Model) (tokens []int32, B, T int, err error) {
	c := &m.Config
	maxLen := c.BlockSize
	cls := c.Kind == model.SequenceScorer && c.CLSTokenID != nil
	if cls {
		maxLen--
	}
	width := len(rows[0])
	for i, row := range rows {
		if len(row) == 0 {
			return nil, 0, 0, &usageError{msg: fmt.Sprintf("stdin: row %d is empty; every row needs 1 to %d token ids", i, maxLen)}
		}
		if len(row) != width {
			return nil, 0, 0, &usageError{msg: fmt.Sprintf("stdin: row %d has %d ids but row 0 has %d; all rows must have the same length", i, len(row), width)}
		}
	}
	if width > maxLen {
		why := fmt.Sprintf("the block_size of %s", m.Name())
		if cls {
			why += " minus 1 for the CLS column that forward prepends"
		}
		return nil, 0, 0, &usageError{msg: fmt.Sprintf("stdin: rows have %d ids; at most %d fit (%s)", width, maxLen, why)}
	}
	B, T = len(rows), width
	if cls {
		T++
	}
	tokens = make([]int32, 0, B*T)
	for i, row := range rows {
		if cls {
			tokens = append(tokens, int32(*c.CLSTokenID))
		}
		for j, id := range row {
			if id < 0 || id >= int64(c.VocabSize) {
				return nil, 0, 0, &usageError{msg: fmt.Sprintf("stdin: row %d, column %d: id %d is out of range; ids must be in [0, %d] (vocab_size %d)", i, j, id, c.VocabSize-1, c.VocabSize)}
			}
			tokens = append(tokens, int32(id))
		}
	}
	return tokens, B, T, nil
}

// forward runs the trunk once and every head the model has.
func forward(ctx context.Context, net engine.Net, tokens []int32, B, T int, neighbors string) (*forwardOutput, error) {
	m := net.Model()
	c := &m.Config
	h, err := net.Encode(ctx, tokens, B, T)
	if err != nil {
		return nil, fmt.Errorf("%s: trunk: %w", m.Name(), err)
	}
	out := &forwardOutput{}
	switch c.Kind {
	case model.LanguageModel, model.TokenClassifier:
		K := c.OutputSize()
		logits := make([]float32, B*T*K) // (B, T, K)
		if err := net.Logits(ctx, h, logits); err != nil {
			return nil, fmt.Errorf("%s: lm_head: %w", m.Name(), err)
		}
		out.Logits = split3(logits, B, T, K)
		if c.HasCritic() {
			critic := make([]float32, B*T) // (B, T)
			if err := net.CriticLogits(ctx, h, critic); err != nil {
				return nil, fmt.Errorf("%s: critic head: %w", m.Name(), err)
			}
			out.CriticLogits = split2(critic, B, T)
		}
		if c.HasSampler() {
			pos, left, right := samplerInputs(tokens, B, T, neighbors, m.Vocab.MaskTokenID)
			V := c.VocabSize
			sl := make([]float32, B*T*V) // (B*T, V)
			if err := net.SamplerLogits(ctx, h, pos, left, right, sl); err != nil {
				return nil, fmt.Errorf("%s: sampler head: %w", m.Name(), err)
			}
			out.SamplerLogits = split3(sl, B, T, V)
		}
	case model.SequenceScorer:
		eval := make([]float32, B) // (B)
		if err := net.JudgeEval(ctx, h, eval); err != nil {
			return nil, fmt.Errorf("%s: sequence head: %w", m.Name(), err)
		}
		out.Evaluation = eval
		out.Score = make([]float32, B)
		for b, e := range eval {
			out.Score[b] = 1 - e
		}
	default:
		return nil, fmt.Errorf("%s: model kind %q has no forward output", m.Name(), c.Kind)
	}
	return out, nil
}

// samplerInputs lists every position of a (B, T) batch with its neighbour
// ids: in "embeddings" mode the ids at t-1 and t+1 of the same row when they
// exist and are not the mask id, else -1 (a zero vector); in "zeros" mode
// always -1.
func samplerInputs(tokens []int32, B, T int, neighbors string, maskID *int) (pos, left, right []int32) {
	n := B * T
	pos, left, right = make([]int32, n), make([]int32, n), make([]int32, n)
	neighbor := func(b, t int) int32 {
		if neighbors != model.NeighborsEmbeddings || t < 0 || t >= T {
			return -1
		}
		id := tokens[b*T+t]
		if maskID != nil && int(id) == *maskID {
			return -1
		}
		return id
	}
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			i := b*T + t
			pos[i] = int32(i)
			left[i] = neighbor(b, t-1)
			right[i] = neighbor(b, t+1)
		}
	}
	return pos, left, right
}

// split2 views a flat (B, T) buffer as [B][T].
func split2(x []float32, B, T int) [][]float32 {
	out := make([][]float32, B)
	for b := range out {
		out[b] = x[b*T : (b+1)*T]
	}
	return out
}

// split3 views a flat (B, T, K) buffer as [B][T][K].
func split3(x []float32, B, T, K int) [][][]float32 {
	out := make([][][]float32, B)
	for b := range out {
		out[b] = make([][]float32, T)
		for t := range out[b] {
			i := (b*T + t) * K
			out[b][t] = x[i : i+K]
		}
	}
	return out
}

// cappedReader fails once more than left bytes were read: stdin is decoded
// into memory, so its size is bounded by the memory budget.
type cappedReader struct {
	r           io.Reader
	left, limit int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("stdin is larger than the memory budget allows (%s); send fewer rows", sampler.FormatBytes(c.limit))
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// forwardNeed estimates the memory of one forward pass of B rows of T ids
// and of its JSON output, which encoding/json builds whole (about 16 bytes
// a value, twice while its buffer grows). ok is false on overflow.
func forwardNeed(c *model.Config, B, T int) (int64, bool) {
	need, ok := sampler.MemoryNeed(c, nil, nil, B, T, 1, false)
	values, ok2 := checked.MulAll(B, T, c.OutputSize()+2)
	text, ok3 := checked.Mul64(int64(values), 32)
	total, ok4 := checked.Add64(need, text)
	return total, ok && ok2 && ok3 && ok4
}
