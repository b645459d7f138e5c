package checkpoint

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/model"
)

// forkDir holds the fork-format fixtures written by
// tools/train/fork_checkpoints.py: NAME.pt and NAME.expected.json.
const forkDir = "../../testdata/fork"

func fixture(name string) string { return filepath.Join(forkDir, name) }

// expected is the golden schema of testdata/golden (make_fixtures.py).
type expected struct {
	Model        string        `json:"model"`
	Kind         model.Kind    `json:"kind"`
	Tokens       [][]int32     `json:"tokens"`
	Logits       [][][]float64 `json:"logits"`
	CriticLogits [][]float64   `json:"critic_logits"`
	Sampler      *struct {
		Pos    []int32     `json:"pos"`
		Left   []int32     `json:"left"`
		Right  []int32     `json:"right"`
		Logits [][]float64 `json:"logits"`
	} `json:"sampler"`
	Evaluation []float64 `json:"evaluation"`
}

func readExpected(t testing.TB, name string) *expected {
	t.Helper()
	data, err := os.ReadFile(fixture(name + ".expected.json"))
	if err != nil {
		t.Fatalf("%v (run /usr/bin/python3 tools/train/fork_checkpoints.py)", err)
	}
	var e expected
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("%s.expected.json: %v", name, err)
	}
	return &e
}

func open(t testing.TB, name string) *Checkpoint {
	t.Helper()
	c, err := Open(fixture(name + ".pt"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// errors of each output against the expected one: the largest absolute
// difference per output, by name.
type outputErrors map[string]float64

func (e outputErrors) max() (string, float64) {
	name, worst := "", 0.0
	for k, v := range e {
		if v >= worst {
			name, worst = k, v
		}
	}
	return name, worst
}

// compareOutputs runs m on the CPU backend and measures every output of e.
func compareOutputs(t testing.TB, m *model.Model, e *expected) outputErrors {
	t.Helper()
	if m.Config.Kind != e.Kind {
		t.Fatalf("kind %q, expected.json says %q", m.Config.Kind, e.Kind)
	}
	net, err := cpu.New(1).Load(m)
	if err != nil {
		t.Fatal(err)
	}
	B, T := len(e.Tokens), len(e.Tokens[0])
	var tokens []int32
	for _, row := range e.Tokens {
		tokens = append(tokens, row...)
	}
	ctx := context.Background()
	h, err := net.Encode(ctx, tokens, B, T)
	if err != nil {
		t.Fatal(err)
	}
	errs := outputErrors{}
	maxDiff := func(got []float32, want []float64) float64 {
		if len(got) != len(want) {
			t.Fatalf("%d outputs, want %d", len(got), len(want))
		}
		d := 0.0
		for i := range got {
			d = math.Max(d, math.Abs(float64(got[i])-want[i]))
		}
		return d
	}
	count := 0
	if e.Logits != nil {
		var want []float64
		for _, row := range e.Logits {
			for _, v := range row {
				want = append(want, v...)
			}
		}
		got := make([]float32, len(want))
		if err := net.Logits(ctx, h, got); err != nil {
			t.Fatal(err)
		}
		errs["logits"] = maxDiff(got, want)
		count++
	}
	if e.CriticLogits != nil {
		var want []float64
		for _, row := range e.CriticLogits {
			want = append(want, row...)
		}
		got := make([]float32, len(want))
		if err := net.CriticLogits(ctx, h, got); err != nil {
			t.Fatal(err)
		}
		errs["critic_logits"] = maxDiff(got, want)
		count++
	}
	if s := e.Sampler; s != nil {
		var want []float64
		for _, row := range s.Logits {
			want = append(want, row...)
		}
		got := make([]float32, len(want))
		if err := net.SamplerLogits(ctx, h, s.Pos, s.Left, s.Right, got); err != nil {
			t.Fatal(err)
		}
		errs["sampler"] = maxDiff(got, want)
		count++
	}
	if e.Evaluation != nil {
		got := make([]float32, len(e.Evaluation))
		if err := net.JudgeEval(ctx, h, got); err != nil {
			t.Fatal(err)
		}
		errs["evaluation"] = maxDiff(got, e.Evaluation)
		count++
	}
	if count == 0 {
		t.Fatal("expected.json has no outputs")
	}
	return errs
}
