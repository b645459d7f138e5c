package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenCase is one testdata/golden/NAME.json, made by
// tools/train/make_fixtures.py with PyTorch.
type goldenCase struct {
	Model        string        `json:"model"`
	Kind         string        `json:"kind"`
	Tokens       [][]int       `json:"tokens"`
	Logits       [][][]float64 `json:"logits"`
	CriticLogits [][]float64   `json:"critic_logits"`
	Sampler      *struct {
		Pos    []int       `json:"pos"`
		Left   []int       `json:"left"`
		Right  []int       `json:"right"`
		Logits [][]float64 `json:"logits"`
	} `json:"sampler"`
	Evaluation []float64 `json:"evaluation"`
}

type forwardJSON struct {
	Logits        [][][]float64 `json:"logits"`
	CriticLogits  [][]float64   `json:"critic_logits"`
	SamplerLogits [][][]float64 `json:"sampler_logits"`
	Evaluation    []float64     `json:"evaluation"`
	Score         []float64     `json:"score"`
}

const goldenTol = 1e-4

func near(got, want float64) bool {
	return math.Abs(got-want) <= goldenTol*math.Max(1, math.Abs(want))
}

// compareFlat checks got against want element by element and reports the
// first few mismatches with their index.
func compareFlat(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	bad, worst := 0, 0.0
	for i := range want {
		d := math.Abs(got[i] - want[i])
		worst = math.Max(worst, d)
		if !near(got[i], want[i]) {
			if bad < 3 {
				t.Errorf("%s[%d] = %.7g, want %.7g (|diff| %.3g > %g)", what, i, got[i], want[i], d, goldenTol)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ; max |diff| %.3g", what, bad, len(want), worst)
	}
}

func flat3(x [][][]float64) []float64 {
	var out []float64
	for _, a := range x {
		for _, b := range a {
			out = append(out, b...)
		}
	}
	return out
}

func flat2(x [][]float64) []float64 {
	var out []float64
	for _, a := range x {
		out = append(out, a...)
	}
	return out
}

// neighbourMode says which --sampler-neighbors rule produced the golden's
// left/right ids: "zeros" when all are -1, else "embeddings" when every one
// is the id beside the position unless that is [MASK] or off the row.
func neighbourMode(t *testing.T, g *goldenCase) string {
	t.Helper()
	s := g.Sampler
	T := len(g.Tokens[0])
	zeros := true
	for i := range s.Pos {
		if s.Left[i] != -1 || s.Right[i] != -1 {
			zeros = false
		}
	}
	if zeros {
		return "zeros"
	}
	side := func(b, t int) int {
		if t < 0 || t >= T || g.Tokens[b][t] == maskID {
			return -1
		}
		return g.Tokens[b][t]
	}
	for i, p := range s.Pos {
		b, tt := p/T, p%T
		if s.Left[i] != side(b, tt-1) || s.Right[i] != side(b, tt+1) {
			t.Fatalf("golden sampler entry %d (pos %d): neighbours (%d, %d) follow neither the zeros nor the embeddings rule of remask forward",
				i, p, s.Left[i], s.Right[i])
		}
	}
	return "embeddings"
}

func TestForwardGoldens(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(golden, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no goldens in %s; they are committed: regenerate them with ./build.sh goldens", golden)
	}
	kinds := map[string]bool{}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var g goldenCase
			if err := json.Unmarshal(data, &g); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			kinds[g.Kind] = true
			rows := g.Tokens
			if g.Kind == "sequence_scorer" {
				// The golden rows start with the CLS column; forward adds it itself.
				for b, row := range rows {
					if row[0] != rows[0][0] {
						t.Fatalf("row %d starts with %d, row 0 with %d: not a CLS column", b, row[0], rows[0][0])
					}
				}
				stripped := make([][]int, len(rows))
				for b, row := range rows {
					stripped[b] = row[1:]
				}
				rows = stripped
			}
			in, _ := json.Marshal(map[string]any{"tokens": rows})
			args := []string{"forward", "--model", filepath.Join(golden, g.Model), "--json"}
			if g.Sampler != nil {
				args = append(args, "--sampler-neighbors", neighbourMode(t, &g))
			}
			code, out, errOut := runCLI(t, string(in), args...)
			if code != exitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, errOut)
			}
			var got forwardJSON
			raw := decodeOne(t, out, &got)

			B, T := len(g.Tokens), len(g.Tokens[0])
			want := map[string]bool{}
			switch g.Kind {
			case "language_model", "token_classifier":
				want["logits"] = true
				compareFlat(t, "logits", flat3(got.Logits), flat3(g.Logits))
				if len(got.Logits) != B || len(got.Logits[0]) != T {
					t.Errorf("logits are [%d][%d], want [%d][%d]", len(got.Logits), len(got.Logits[0]), B, T)
				}
				if g.CriticLogits != nil {
					want["critic_logits"] = true
					compareFlat(t, "critic_logits", flat2(got.CriticLogits), flat2(g.CriticLogits))
				}
				if s := g.Sampler; s != nil {
					want["sampler_logits"] = true
					if len(got.SamplerLogits) != B {
						t.Fatalf("sampler_logits has %d rows, want %d", len(got.SamplerLogits), B)
					}
					for i, p := range s.Pos {
						compareFlat(t, fmt.Sprintf("sampler_logits[%d][%d]", p/T, p%T), got.SamplerLogits[p/T][p%T], s.Logits[i])
					}
				}
			case "sequence_scorer":
				want["evaluation"], want["score"] = true, true
				compareFlat(t, "evaluation", got.Evaluation, g.Evaluation)
				score := make([]float64, len(g.Evaluation))
				for i, e := range g.Evaluation {
					score[i] = 1 - e
				}
				compareFlat(t, "score", got.Score, score)
			default:
				t.Fatalf("unknown kind %q", g.Kind)
			}
			for key := range raw {
				if !want[key] {
					t.Errorf("output has %q, which this model does not compute", key)
				}
			}
			for key := range want {
				if _, ok := raw[key]; !ok {
					t.Errorf("output lacks %q", key)
				}
			}
		})
	}
	for _, k := range []string{"language_model", "sequence_scorer", "token_classifier"} {
		if !kinds[k] {
			t.Errorf("no golden of kind %s", k)
		}
	}
}

func TestForwardNeighbourModes(t *testing.T) {
	// The same input through the sampler head with the two neighbour modes:
	// they must differ at a position with an unmasked neighbour, and agree
	// where both neighbours are masked or off the row.
	in := `{"tokens": [[18, 65, 65, 65, 47, 58]]}`
	get := func(mode string) [][]float64 {
		code, out, errOut := runCLI(t, in, "forward", "--model", lmFull, "--sampler-neighbors", mode)
		if code != exitOK {
			t.Fatalf("%s: exit %d; stderr:\n%s", mode, code, errOut)
		}
		var f forwardJSON
		decodeOne(t, out, &f)
		return f.SamplerLogits[0]
	}
	zeros, emb := get("zeros"), get("embeddings")
	same := func(a, b []float64) bool {
		for i := range a {
			if !near(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	cases := []struct {
		pos  int
		same bool
		why  string
	}{
		{0, true, "no left neighbour, right is [MASK]"},
		{1, false, "left is 18"},
		{2, true, "both neighbours are [MASK]"},
		{3, false, "left is [MASK], right is 47"},
		{5, false, "left is 47, no right neighbour"},
	}
	for _, tc := range cases {
		if got := same(zeros[tc.pos], emb[tc.pos]); got != tc.same {
			t.Errorf("position %d (%s): zeros and embeddings agree = %v, want %v", tc.pos, tc.why, got, tc.same)
		}
	}
}

func TestForwardInputErrors(t *testing.T) {
	cases := []struct {
		name  string
		model string
		in    string
		extra []string
		want  string
	}{
		{"empty stdin", lmFull, "", nil, "stdin is empty"},
		{"not JSON", lmFull, "tokens: 1 2 3", nil, "stdin is not a JSON object"},
		{"two values", lmFull, `{"tokens": [[1]]} {"tokens": [[1]]}`, nil, "more than one JSON value"},
		{"unknown key", lmFull, `{"tokens": [[1]], "logits": []}`, nil, `unknown key "logits"`},
		{"no tokens key", lmFull, `{}`, nil, `no "tokens" key`},
		{"tokens not an array", lmFull, `{"tokens": 5}`, nil, `"tokens" is a number, want an array of rows`},
		{"no rows", lmFull, `{"tokens": []}`, nil, `"tokens" has no rows`},
		{"row not an array", lmFull, `{"tokens": [[1, 2], "ab"]}`, nil, "row 1 is a string, want an array of token ids"},
		{"empty row", lmFull, `{"tokens": [[]]}`, nil, "row 0 is empty; every row needs 1 to 32 token ids"},
		{"ragged rows", lmFull, `{"tokens": [[1, 2, 3], [1, 2]]}`, nil, "row 1 has 2 ids but row 0 has 3; all rows must have the same length"},
		{"fraction", lmFull, `{"tokens": [[1, 2.5]]}`, nil, "row 0, column 1: 2.5 is not an integer token id"},
		{"string id", lmFull, `{"tokens": [[1, "a"]]}`, nil, "row 0, column 1 is a string, want an integer token id"},
		{"id too large", lmFull, `{"tokens": [[1, 2], [3, 67]]}`, nil, "row 1, column 1: id 67 is out of range; ids must be in [0, 66] (vocab_size 67)"},
		{"negative id", lmFull, `{"tokens": [[-1]]}`, nil, "row 0, column 0: id -1 is out of range; ids must be in [0, 66]"},
		{"row longer than block_size", lmFull, `{"tokens": [` + idRow(33) + `]}`, nil, "rows have 33 ids; at most 32 fit"},
		{"judge row leaves no room for CLS", judge, `{"tokens": [` + idRow(32) + `]}`, nil, "rows have 32 ids; at most 31 fit"},
		{"no model", "", `{"tokens": [[1]]}`, nil, "--model: is required"},
		{"missing model file", filepath.Join(t.TempDir(), "gone.safetensors"), `{"tokens": [[1]]}`, nil, "gone.safetensors does not exist"},
		{"bad neighbours", lmFull, `{"tokens": [[1]]}`, []string{"--sampler-neighbors", "both"}, `--sampler-neighbors: "both" is not a neighbour mode; allowed: zeros, embeddings`},
		{"negative threads", lmFull, `{"tokens": [[1]]}`, []string{"--threads", "-1"}, "--threads: -1 is out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := []string{"forward"}
			if tc.model != "" {
				a = append(a, "--model", tc.model)
			}
			a = append(a, tc.extra...)
			code, out, errOut := runCLI(t, tc.in, a...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, errOut)
			}
			if out != "" {
				t.Errorf("stdout is not empty: %.200q", out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errOut)
			}
		})
	}
}

// idRow is a JSON row of n valid ids.
func idRow(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(i % 65)
	}
	return "[" + strings.Join(ids, ",") + "]"
}

func TestForwardBrokenModelFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.safetensors")
	if err := os.WriteFile(path, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, `{"tokens": [[1]]}`, "forward", "--model", path)
	if code != exitFailure || out != "" {
		t.Fatalf("exit %d (want %d), stdout %q", code, exitFailure, out)
	}
	if !strings.Contains(errOut, "broken.safetensors") {
		t.Errorf("the error does not name the file:\n%s", errOut)
	}
}
