package sampler

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
)

// fakeNet is an engine.Net whose outputs are functions of the input tokens,
// so sampler tests can state exactly what each head says.
type fakeNet struct {
	m *model.Model
	// logits(row, t) returns the V (or K) logits at position t of a row.
	logits func(row []int32, t int) []float32
	// rowLogits, when set, replaces logits and also sees the row index b
	// (to make rows with identical tokens differ, e.g. for the global bootstrap).
	rowLogits func(b int, row []int32, t int) []float32
	// critic(row, t) is the critic logit.
	critic func(row []int32, t int) float32
	// sampler(h row, t, left, right) returns V logits for the sampler head.
	sampler func(row []int32, t int, left, right int32) []float32
	// judge(row) is the evaluation.
	judge func(row []int32) float32

	encodes int // number of Encode calls
	// failEncode, when > 0, makes the failEncode-th Encode call fail;
	// failLogits makes every Logits call fail.
	failEncode int
	failLogits bool
	// encoded holds a copy of the tokens of every Encode call, with its T.
	encoded []encodeCall
	// criticSeen holds the tokens (B*T) every CriticLogits call scored.
	criticSeen [][]int32
	// samplerCalls records every SamplerLogits call (one per wave).
	samplerCalls []samplerCall
}

type encodeCall struct {
	tokens []int32
	B, T   int
}

type samplerCall struct {
	pos, left, right []int32
}

type fakeHidden struct {
	tokens []int32
	B, T   int
}

func (h *fakeHidden) Dims() (int, int) { return h.B, h.T }

func (f *fakeNet) Model() *model.Model { return f.m }

func (f *fakeNet) Encode(ctx context.Context, tokens []int32, B, T int) (engine.Hidden, error) {
	if len(tokens) != B*T {
		return nil, fmt.Errorf("fake: %d tokens for B=%d T=%d", len(tokens), B, T)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= f.m.Config.VocabSize {
			return nil, fmt.Errorf("fake: token %d at %d out of range", t, i)
		}
	}
	if f.failEncode > 0 && f.encodes+1 == f.failEncode {
		return nil, fmt.Errorf("fake: encode %d failed", f.failEncode)
	}
	if T > f.m.Config.BlockSize {
		return nil, fmt.Errorf("fake: T=%d above block_size %d", T, f.m.Config.BlockSize)
	}
	f.encodes++
	cp := append([]int32(nil), tokens...)
	f.encoded = append(f.encoded, encodeCall{cp, B, T})
	return &fakeHidden{cp, B, T}, nil
}

func (f *fakeNet) Logits(ctx context.Context, h engine.Hidden, dst []float32) error {
	if f.failLogits {
		return fmt.Errorf("fake: logits failed")
	}
	fh := h.(*fakeHidden)
	W := f.m.Config.OutputSize()
	for b := 0; b < fh.B; b++ {
		row := fh.tokens[b*fh.T : (b+1)*fh.T]
		for t := range row {
			var l []float32
			if f.rowLogits != nil {
				l = f.rowLogits(b, row, t)
			} else {
				l = f.logits(row, t)
			}
			copy(dst[(b*fh.T+t)*W:], l[:W])
		}
	}
	return nil
}

func (f *fakeNet) CriticLogits(ctx context.Context, h engine.Hidden, dst []float32) error {
	if f.critic == nil {
		return fmt.Errorf("fake: no critic")
	}
	fh := h.(*fakeHidden)
	f.criticSeen = append(f.criticSeen, fh.tokens)
	for b := 0; b < fh.B; b++ {
		row := fh.tokens[b*fh.T : (b+1)*fh.T]
		for t := range row {
			dst[b*fh.T+t] = f.critic(row, t)
		}
	}
	return nil
}

func (f *fakeNet) SamplerLogits(ctx context.Context, h engine.Hidden, pos, left, right []int32, dst []float32) error {
	if f.sampler == nil {
		return fmt.Errorf("fake: no sampler head")
	}
	fh := h.(*fakeHidden)
	V := f.m.Config.VocabSize
	f.samplerCalls = append(f.samplerCalls, samplerCall{
		append([]int32(nil), pos...), append([]int32(nil), left...), append([]int32(nil), right...)})
	for i, p := range pos {
		b, t := int(p)/fh.T, int(p)%fh.T
		copy(dst[i*V:(i+1)*V], f.sampler(fh.tokens[b*fh.T:(b+1)*fh.T], t, left[i], right[i]))
	}
	return nil
}

func (f *fakeNet) JudgeEval(ctx context.Context, h engine.Hidden, dst []float32) error {
	fh := h.(*fakeHidden)
	for b := 0; b < fh.B; b++ {
		dst[b] = f.judge(fh.tokens[b*fh.T : (b+1)*fh.T])
	}
	return nil
}

func ip(i int) *int { return &i }

// Ids of the tiny vocabularies.
const (
	idA, idB, idC, idD, idE, idF, idG, idH = 0, 1, 2, 3, 4, 5, 6, 7
	idMask, idPad, idCLS, idExtra          = 8, 9, 10, 11
)

// tinyVocab is "abcdefgh" + [MASK]=8 + [PAD]=9 (+ [CLS]=10 when cls).
func tinyVocab(cls bool) model.Vocab {
	v := model.Vocab{Type: "char", Tokens: []string{"a", "b", "c", "d", "e", "f", "g", "h", "[MASK]", "[PAD]"},
		MaskTokenID: ip(8), PadTokenID: ip(9), BaseVocabSize: 8}
	if cls {
		v.Tokens = append(v.Tokens, "[CLS]")
		v.CLSTokenID = ip(10)
	}
	return v
}

// tinyLM is a language-model description for fake nets.
func tinyLM(critic, sampler bool, neighbors string) *model.Model {
	return newLM(lmSpec{critic: critic, sampler: sampler, neighbors: neighbors, minRatio: 0.01})
}

// lmSpec describes a tiny language model for newLM.
type lmSpec struct {
	critic, sampler bool
	neighbors       string  // sampler.neighbors
	minRatio        float64 // sampler.min_neighbors_ratio
	cls             bool    // [CLS]=10 in the vocabulary (a [D7] vocabulary)
	extra           bool    // also "[EXTRA]"=11: at or above base_vocab_size but not named special
	calib           []float64
	block           int // block_size (64 when 0)
}

func newLM(s lmSpec) *model.Model {
	v := tinyVocab(s.cls || s.extra)
	if s.extra {
		v.Tokens = append(v.Tokens, "[EXTRA]")
	}
	block := s.block
	if block == 0 {
		block = 64
	}
	cfg := model.Config{Kind: model.LanguageModel, NLayer: 1, NHead: 1, NEmbd: 4, BlockSize: block,
		VocabSize: len(v.Tokens), Attention: model.Bidirectional, PositionEncoding: model.Rotary,
		RopeBase: 10000, LayerNormEps: 1e-5, Heads: &model.Heads{Critic: s.critic, Sampler: s.sampler},
		CriticCalibration: s.calib}
	if s.cls {
		cfg.CLSTokenID = ip(idCLS)
	}
	if s.sampler {
		cfg.Sampler = &model.SamplerConfig{Neighbors: s.neighbors, MinNeighborsRatio: s.minRatio}
	}
	return &model.Model{Path: "tiny.safetensors", Config: cfg, Vocab: v}
}

// tinyJudge is a sequence scorer over the tiny vocabulary (+[CLS]=10).
func tinyJudge(block int, cls bool) *model.Model {
	v := tinyVocab(true)
	cfg := model.Config{Kind: model.SequenceScorer, NLayer: 1, NHead: 1, NEmbd: 4, BlockSize: block,
		VocabSize: len(v.Tokens), Attention: model.Bidirectional, PositionEncoding: model.Rotary,
		RopeBase: 10000, LayerNormEps: 1e-5}
	if cls {
		cfg.CLSTokenID = ip(idCLS)
	}
	return &model.Model{Path: "judge.safetensors", Config: cfg, Vocab: v}
}

// tinyClassifier is a token classifier with K classes over the tiny vocabulary.
func tinyClassifier(K int) *model.Model {
	v := tinyVocab(false)
	cfg := model.Config{Kind: model.TokenClassifier, NLayer: 1, NHead: 1, NEmbd: 4, BlockSize: 64,
		VocabSize: len(v.Tokens), Attention: model.Bidirectional, PositionEncoding: model.Rotary,
		RopeBase: 10000, LayerNormEps: 1e-5, NumTokenClasses: K}
	return &model.Model{Path: "classifier.safetensors", Config: cfg, Vocab: v}
}

// oneHot returns V logits with big at id and 0 elsewhere.
func oneHot(V, id int, big float32) []float32 {
	l := make([]float32, V)
	l[id] = big
	return l
}

// baseOpts are small, deterministic options: one sample of 8 tokens, one
// iteration, prefix placement, no quality metric.
func baseOpts() Options {
	o := Defaults()
	o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 1, 8, 1, 1
	o.SeedPlacement = PlacePrefix
	o.QualityMetric = MetricNone
	return o
}

// generate runs Generate and fails the test on an error.
func generate(t *testing.T, m Models, o Options, observe func(*Event)) *Result {
	t.Helper()
	res, err := Generate(context.Background(), m, o, observe)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return res
}

// newGen builds a generation (the state of Generate before its loop) for
// tests that drive remask, predict or the metrics directly.
func newGen(t *testing.T, m Models, o Options) *generation {
	t.Helper()
	g, err := newGeneration(m, o)
	if err != nil {
		t.Fatalf("newGeneration: %v", err)
	}
	return g
}

// ids turns a string of tiny-vocabulary characters into ids; '#' is [MASK].
func ids(s string) []int32 {
	out := make([]int32, 0, len(s))
	for _, r := range s {
		switch {
		case r == '#':
			out = append(out, idMask)
		case r >= 'a' && r <= 'h':
			out = append(out, int32(r-'a'))
		default:
			panic(fmt.Sprintf("ids: %q", r))
		}
	}
	return out
}

// str is the inverse of ids ('#' for [MASK], 'P' for [PAD], 'C' for [CLS], 'X' for [EXTRA]).
func str(x []int32) string {
	b := make([]byte, len(x))
	for i, t := range x {
		switch {
		case t >= 0 && t < 8:
			b[i] = byte('a' + t)
		case t == idMask:
			b[i] = '#'
		case t == idPad:
			b[i] = 'P'
		case t == idCLS:
			b[i] = 'C'
		case t == idExtra:
			b[i] = 'X'
		default:
			b[i] = '?'
		}
	}
	return string(b)
}

func hasMask(row []int32) bool {
	for _, t := range row {
		if t == idMask {
			return true
		}
	}
	return false
}

func approx(a, b, tol float64) bool { return math.Abs(a-b) <= tol }
