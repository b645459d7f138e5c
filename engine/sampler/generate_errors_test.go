package sampler

import (
	"context"
	"math"
	"strings"
	"testing"
)

// A model whose logits are all NaN must stop generation with an error that
// names the position, never write an invalid id into the sequence.
func TestNaNLogitsAreAnError(t *testing.T) {
	m := tinyLM(false, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 {
		l := make([]float32, V)
		for i := range l {
			l[i] = float32(math.NaN())
		}
		return l
	}}
	for _, method := range []string{Diffusion, Multinomial} {
		o := Defaults()
		o.Method, o.NumSamples, o.SequenceLength, o.Iterations = method, 1, 8, 2
		_, err := Generate(context.Background(), Models{LM: f}, o, nil)
		if err == nil || !strings.Contains(err.Error(), "LM head gave NaN") || !strings.Contains(err.Error(), "position") {
			t.Errorf("%s: err = %v, want an error naming the position", method, err)
		}
	}
}

// Every non-final iteration of critic remasking reports the critic
// probability of each position; the last iteration reports none.
func TestEventWrongness(t *testing.T) {
	m := tinyLM(true, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m,
		logits: func(row []int32, t int) []float32 { return oneHot(V, t%8, 3) },
		critic: func(row []int32, t int) float32 { return float32(t) - 4 },
	}
	o := Defaults()
	o.NumSamples, o.SequenceLength, o.Iterations, o.Remasking = 2, 8, 3, RemaskCritic
	var got [][]float64
	_, err := Generate(context.Background(), Models{LM: f}, o, func(ev *Event) {
		got = append(got, append([]float64(nil), ev.Wrongness...))
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || len(got[0]) != 16 || len(got[2]) != 0 {
		t.Fatalf("wrongness lengths %d/%d/%d, want 16, 16, 0", len(got[0]), len(got[1]), len(got[2]))
	}
	for p, w := range got[1] {
		want := 1 / (1 + math.Exp(-float64(p%8-4)))
		if math.Abs(w-want) > 1e-12 {
			t.Errorf("position %d: wrongness %v, want sigmoid(%d) = %v", p, w, p%8-4, want)
		}
	}
}

// Score computes the same metrics Generate reports for a generated sample
// when given that sample's tokens.
func TestScoreMatchesGenerateMetrics(t *testing.T) {
	m := tinyLM(true, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m,
		logits: func(row []int32, t int) []float32 { return oneHot(V, int(row[(t+1)%len(row)])%8, 2) },
		critic: func(row []int32, t int) float32 { return float32(row[t]) - 3 },
	}
	o := Defaults()
	o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 3, 12, 4, 11
	res, err := Generate(context.Background(), Models{LM: f}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]int32
	for _, s := range res.Samples {
		rows = append(rows, s.Tokens)
	}
	sc, err := Score(context.Background(), Models{LM: f}, rows, Defaults())
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		g, s := res.Samples[i], sc.Samples[i]
		if *g.SelfConfidence != *s.SelfConfidence || *g.Critic != *s.Critic || g.Text != s.Text {
			t.Errorf("sample %d: generate %v %+v %q, score %v %+v %q", i, *g.SelfConfidence, *g.Critic, g.Text, *s.SelfConfidence, *s.Critic, s.Text)
		}
	}
	if _, err := Score(context.Background(), Models{LM: f}, [][]int32{{1, 2}, {3}}, Defaults()); err == nil || !strings.Contains(err.Error(), "row 1") {
		t.Errorf("ragged rows: err = %v", err)
	}
	if _, err := Score(context.Background(), Models{LM: f}, [][]int32{{1, 99}}, Defaults()); err == nil || !strings.Contains(err.Error(), "id 99") {
		t.Errorf("bad id: err = %v", err)
	}
}
