package checkpoint

import (
	"bytes"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
)

// tinySH is a convertible [SH] language-model checkpoint with sampler and
// critic heads, one layer, n_embd 2 and a 6-token vocabulary, built from
// model.Expected, with stored records whose CRC-32 is 0 (unchecked): a
// mutation of its pickle reaches the decoder instead of failing the zip
// checksum. A few hundred bytes of pickle, a few of tensors.
func tinySH(t testing.TB) []byte {
	t.Helper()
	cfg := model.Config{
		Kind: model.LanguageModel, NLayer: 1, NHead: 1, NEmbd: 2, BlockSize: 4, VocabSize: 6,
		Attention: model.Bidirectional, PositionEncoding: model.Rotary, Bias: true,
		Heads: &model.Heads{Critic: true, Sampler: true},
	}
	sd := pdict{}
	recs := []record{}
	for i, spec := range model.Expected(&cfg) {
		n := 1
		for _, d := range spec.Shape {
			n *= d
		}
		vals := make([]float32, n)
		for j := range vals {
			vals[j] = float32(math.Sin(float64(i*7 + j)))
		}
		key := strconv.Itoa(i)
		stride := make([]int, len(spec.Shape))
		s := 1
		for d := len(spec.Shape) - 1; d >= 0; d-- {
			stride[d] = s
			s *= spec.Shape[d]
		}
		sd = append(sd, pkv{spec.Name, ptensor{class: "FloatStorage", key: key, numel: n, size: spec.Shape, stride: stride}})
		recs = append(recs, record{name: "tiny/data/" + key, data: float32Bytes(vals), noCRC: true})
	}
	meta := pdict{
		{"vocab_size", 6},
		{"itos", map[int]string{0: "a", 1: "b", 2: "c", 3: "d", 4: "[MASK]", 5: "[PAD]"}},
		{"stoi", map[string]any{"a": 0, "b": 1, "c": 2, "d": 3, "[MASK]": 4, "[PAD]": 5}},
		{"mask_token_id", 4},
		{"pad_token_id", 5},
	}
	top := pdict{
		{"model", sd},
		{"optimizer", pdict{}},
		{"model_args", pdict{
			{"n_layer", 1}, {"n_head", 1}, {"n_embd", 2}, {"block_size", 4}, {"vocab_size", 6}, {"bias", true},
			{"mode", pcall{pglobal{"model", "ModelMode"}, ptuple{"language_model"}}},
			{"attention_type", "bidirectional"}, {"position_encoding", "rotary"},
			{"add_critic_head", true}, {"add_sampler_head", true},
			{"mask_token_id", 4}, {"pad_token_id", 5},
			{"start_sampler_iteration", 0}, {"start_critic_iteration", 0}, {"end_critic_iteration", 0},
		}},
		{"iter_num", 10},
		{"best_val_loss", 1.5},
		{"config", pdict{{"meta", meta}, {"dataset", "tiny"}}},
	}
	recs = append([]record{{name: "tiny/data.pkl", data: pickleBytes(top), noCRC: true}}, recs...)
	return zipBytes(t, recs...)
}

// fuzzSeeds are the real fork checkpoints of testdata/fork, a tiny
// convertible one, and the crafted crash cases of the hardening tests.
func fuzzSeeds(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{"tiny_sh": tinySH(t)}
	for _, name := range []string{"sh_lm", "sh_lm_abs_causal", "sh_lm_compiled", "sh_judge", "sh_classifier", "d7_lora", "bpe"} {
		data, err := os.ReadFile(fixture(name + ".pt"))
		if err != nil {
			t.Fatal(err)
		}
		seeds[name] = data
	}
	view := func(numel, offset int, size, stride []int) []byte {
		return craftedCheckpoint(t, oneTensor(ptensor{class: "FloatStorage", key: "0", numel: numel, offset: offset, size: size, stride: stride}),
			map[string][]byte{"0": float32Bytes(make([]float32, 16))})
	}
	seeds["stride_wraps"] = view(16, 0, []int{3, 2}, []int{1 << 62, 1})
	seeds["offset_wraps"] = view(16, math.MaxInt-100, []int{2144}, []int{1})
	seeds["storage_bytes_wrap"] = view(1<<62, 0, []int{2}, []int{1})
	seeds["small_bomb"] = zipBytes(t,
		record{name: "archive/data.pkl", data: pickleBytes(oneTensor(ptensor{class: "HalfStorage", key: "0", numel: 1 << 20, size: []int{2144}, stride: []int{1}}))},
		record{name: "archive/data/0", raw: deflatedZeros(t, 2<<20), rawSize: 2 << 20, noCRC: true},
	)
	return seeds
}

// TestTinySeedConverts keeps the tiny seed meaningful: it converts, so
// that the fuzzer's mutations of it reach every stage.
func TestTinySeedConverts(t *testing.T) {
	c, err := read("tiny.pt", bytes.NewReader(tinySH(t)), int64(len(tinySH(t))), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Plan(Options{Created: "2026-01-01T00:00:00Z"}); err != nil {
		t.Fatal(err)
	}
}

// FuzzCheckpoint: the checkpoint reader (zip, pickle, storages, views) and
// the conversion never panic, hang or exceed their memory limit on any
// input; every error names the file; whatever converts is a valid model
// that writes; the reader allocates no more than its limit. Seeds: the fork checkpoints of testdata/fork, a tiny
// convertible checkpoint, and the crash cases of issue 11. Findings go to
// testdata/fuzz/FuzzCheckpoint. The seeds are up to 250 KB, so add
// -fuzzminimizetime for long runs:
//
//	go test -run XXX -fuzz FuzzCheckpoint -fuzztime 5m -fuzzminimizetime 2s ./engine/checkpoint/
func FuzzCheckpoint(f *testing.F) {
	for _, data := range fuzzSeeds(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c *Checkpoint
		var err error
		// The reader keeps to its memory limit (what it charges is an
		// upper bound of what it allocates).
		if n, limit := allocated(func() {
			c, err = read("fuzz.pt", bytes.NewReader(data), int64(len(data)), Limits{})
		}), DefaultMaxBytes(int64(len(data))); n > uint64(limit) {
			t.Fatalf("read allocated %d bytes, over its limit of %d", n, limit)
		}
		if err != nil {
			if c != nil {
				t.Fatal("read returned a checkpoint with its error")
			}
			if !strings.HasPrefix(err.Error(), "fuzz.pt: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		s := c.Inspect(Options{Created: "2026-01-01T00:00:00Z"})
		conv, err := c.Plan(Options{Created: "2026-01-01T00:00:00Z"})
		if err != nil {
			if s.Error == "" {
				t.Fatalf("Plan failed (%v) but Inspect reports no error", err)
			}
			return
		}
		if err := conv.Model.Validate(); err != nil {
			t.Fatalf("Plan returned an invalid model: %v", err)
		}
		// F32 holds every float32 (F16 refuses values beyond its range:
		// the first finding, testdata/fuzz/FuzzCheckpoint/88460d0ab6ad57f1).
		if err := model.Write(io.Discard, conv.Model, model.F32); err != nil {
			t.Fatalf("Write of a converted model: %v", err)
		}
	})
}
