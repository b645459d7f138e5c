package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestParseErrors corrupts a valid language-model file (rotary, critic and
// sampler heads, F16) in every way the reader must catch, and checks that
// the message names the file, the tensor or field, and expected vs found.
func TestParseErrors(t *testing.T) {
	m := testModel(t, testConfigs()[0].cfg, 5)
	valid := writeBytes(t, m, F16)
	const C = 8
	fromFile := func(edit func(t *testing.T, f *rawFile)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			f := splitFile(t, valid)
			edit(t, &f)
			return f.bytes(t)
		}
	}
	editMeta := func(key string, edit func(map[string]any)) func(t *testing.T) []byte {
		return fromFile(func(t *testing.T, f *rawFile) { f.Meta[key] = editJSON(t, f.Meta[key], edit) })
	}
	// withHeader replaces the header text, keeping the data section.
	withHeader := func(edit func(h string) string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			f := splitFile(t, valid)
			h, section := f.header(t)
			return assemble([]byte(edit(string(h))), section)
		}
	}
	header := valid[8 : 8+binary.LittleEndian.Uint64(valid)]
	section := valid[8+len(header):]

	for _, c := range []struct {
		name string
		file func(t *testing.T) []byte
		want []string
	}{
		// The container.
		{"empty file", func(*testing.T) []byte { return nil }, []string{"truncated", "0 bytes", "8-byte header length"}},
		{"cut in the length", func(*testing.T) []byte { return valid[:5] }, []string{"truncated", "5 bytes"}},
		{"cut in the header", func(*testing.T) []byte { return valid[:100] }, []string{"truncated", fmt.Sprintf("header is %d bytes but only 92 bytes follow", len(header))}},
		{"cut in the data", func(*testing.T) []byte { return valid[:len(valid)-3] }, []string{"truncated", fmt.Sprintf("data section of %d bytes but the file has only %d", len(section), len(section)-3)}},
		{"header over 100 MB", func(*testing.T) []byte {
			return append(binary.LittleEndian.AppendUint64(nil, 100_000_001), header...)
		}, []string{"100000001", "100000000-byte limit"}},
		{"a PyTorch zip", func(*testing.T) []byte { return []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00rest of the archive") }, []string{"zip", "remask convert"}},
		{"trailing bytes", func(*testing.T) []byte { return append(append([]byte(nil), valid...), 1, 2, 3, 4) }, []string{"4 trailing bytes", fmt.Sprintf("end at byte %d of a %d-byte data section", len(section), len(section)+4)}},
		{"header not JSON", func(*testing.T) []byte { return assemble([]byte(`{"a": [1, 2`), nil) }, []string{"header is not a valid JSON object"}},
		{"header not an object", func(*testing.T) []byte { return assemble([]byte(`[1, 2]`), nil) }, []string{"header is not a valid JSON object", "want a JSON object"}},
		{"header junk after the object", func(*testing.T) []byte { return assemble([]byte(`{} x`), nil) }, []string{"after the closing brace"}},
		{"header not UTF-8", func(*testing.T) []byte { return assemble([]byte("{\"a\xff\": 1}"), nil) }, []string{"not valid UTF-8"}},
		{"duplicate tensor name", withHeader(func(h string) string {
			return strings.Replace(h, `"transformer.ln_f.weight"`, `"transformer.h.0.ln_1.weight"`, 1)
		}), []string{`tensor "transformer.h.0.ln_1.weight" twice`}},
		{"duplicate metadata key", withHeader(func(h string) string {
			return strings.Replace(h, `"card":`, `"format":"remask/1","card":`, 1)
		}), []string{"__metadata__", `duplicate key "format"`}},
		{"metadata value not a string", withHeader(func(h string) string {
			return strings.Replace(h, `"format":"remask/1"`, `"format":1`, 1)
		}), []string{"__metadata__", `"format"`, "want a string"}},
		{"unknown dtype", fromFile(func(t *testing.T, f *rawFile) { f.find(t, "critic_head.weight").DType = "F64" }), []string{`tensor "critic_head.weight"`, `dtype "F64" is not supported`, "remask convert"}},
		{"integer dtype", fromFile(func(t *testing.T, f *rawFile) { f.find(t, "critic_head.weight").DType = "I32" }), []string{`tensor "critic_head.weight"`, `"I32"`}},
		{"shape disagrees with bytes", fromFile(func(t *testing.T, f *rawFile) { f.find(t, "transformer.ln_f.weight").Shape = []int{C + 1} }), []string{`tensor "transformer.ln_f.weight"`, "shape [9] need 18 bytes", "span 16 bytes"}},
		{"negative dimension", fromFile(func(t *testing.T, f *rawFile) { f.find(t, "transformer.ln_f.weight").Shape = []int{-8} }), []string{`tensor "transformer.ln_f.weight"`, "negative"}},
		{"shape overflows", fromFile(func(t *testing.T, f *rawFile) {
			f.find(t, "transformer.ln_f.weight").Shape = []int{1 << 40, 1 << 40}
		}), []string{`tensor "transformer.ln_f.weight"`, "too many elements"}},
		{"missing data_offsets", withHeader(func(h string) string {
			return strings.Replace(h, `"data_offsets":[0,`, `"offsets":[0,`, 1)
		}), []string{"invalid header entry", `unknown field "offsets"`}},
		{"key in another case", withHeader(func(h string) string {
			return strings.Replace(h, `"data_offsets":[0,`, `"Data_Offsets":[0,`, 1)
		}), []string{`tensor "transformer.wte.weight"`, `unknown field "Data_Offsets"`}},
		{"dimension -0", withHeader(func(h string) string {
			return strings.Replace(h, `"shape":[12,8]`, `"shape":[-0,8]`, 1)
		}), []string{"shape: -0 is negative"}},
		{"dimension 8.0", withHeader(func(h string) string {
			return strings.Replace(h, `"shape":[12,8]`, `"shape":[12,8.0]`, 1)
		}), []string{"shape: 8.0 is not a natural number"}},
		{"offset as a string", withHeader(func(h string) string {
			return strings.Replace(h, `"data_offsets":[0,`, `"data_offsets":["0",`, 1)
		}), []string{`tensor "transformer.wte.weight": data_offsets: "0" is not a natural number`}},
		{"reversed offsets", fromFile(func(t *testing.T, f *rawFile) {
			f.find(t, "transformer.ln_f.weight").Offsets = &[2]uint64{20, 4}
		}), []string{`tensor "transformer.ln_f.weight"`, "[20, 4] end before they begin"}},
		{"overlapping offsets", fromFile(func(t *testing.T, f *rawFile) {
			f.find(t, "transformer.h.0.ln_1.weight").Offsets = &[2]uint64{0, 2 * C}
		}), []string{"overlap", `"transformer.wte.weight"`, `"transformer.h.0.ln_1.weight"`}},
		{"gap at the start", fromFile(func(t *testing.T, f *rawFile) {
			f.find(t, "transformer.wte.weight").Offsets = &[2]uint64{2, 2 + 12*C*2}
		}), []string{"starts with 2 bytes that belong to no tensor", `"transformer.wte.weight"`}},

		// The metadata.
		{"no metadata", fromFile(func(t *testing.T, f *rawFile) { f.Meta = nil }), []string{`no "format"`, "plain safetensors file", "remask convert"}},
		{"null metadata", func(*testing.T) []byte { return assemble([]byte(`{"__metadata__": null}`), nil) }, []string{`no "format"`, "remask convert"}},
		{"format pt", fromFile(func(t *testing.T, f *rawFile) { f.Meta = map[string]string{"format": "pt"} }), []string{`format is "pt", want "remask/1"`, "remask convert"}},
		{"newer format", fromFile(func(t *testing.T, f *rawFile) { f.Meta["format"] = "remask/2" }), []string{`"remask/2"`, "newer remask", "upgrade"}},
		{"no model", fromFile(func(t *testing.T, f *rawFile) { delete(f.Meta, "model") }), []string{`no "model" object`}},
		{"model not an object", fromFile(func(t *testing.T, f *rawFile) { f.Meta["model"] = `[1]` }), []string{`metadata "model" is not a valid JSON object`}},
		{"model bad JSON type", editMeta("model", func(o map[string]any) { o["n_layer"] = "two" }), []string{`metadata "model"`, "n_layer"}},
		{"model unknown field", editMeta("model", func(o map[string]any) { o["dropout"] = 0.1 }), []string{`metadata "model"`, `unknown field "dropout"`}},
		{"model field in another case", editMeta("model", func(o map[string]any) { o["N_Layer"] = 2 }), []string{`metadata "model"`, `unknown field "N_Layer"`}},
		{"model nested unknown field", editMeta("model", func(o map[string]any) {
			o["heads"] = map[string]any{"critic": true, "sampler": true, "Critic": false}
		}), []string{`metadata "model"`, `unknown field "heads.Critic"`}},
		{"model heads not an object", editMeta("model", func(o map[string]any) { o["heads"] = 5 }), []string{`metadata "model" is not a valid JSON object (heads: want a JSON object, found 5)`}},
		{"model duplicate field", fromFile(func(t *testing.T, f *rawFile) {
			f.Meta["model"] = strings.Replace(f.Meta["model"], `"n_layer":2`, `"n_layer":2,"n_layer":3`, 1)
		}), []string{`metadata "model"`, `duplicate key "n_layer"`}},
		{"model invalid", editMeta("model", func(o map[string]any) { o["n_head"] = 3 }), []string{`metadata "model"`, "model.n_embd 8 is not a multiple of model.n_head 3"}},
		{"model sampler without mask id", editMeta("vocab", func(o map[string]any) { o["mask_token_id"] = nil }), []string{`metadata "vocab"`, "mask_token_id is null"}},
		{"vocab unknown field", editMeta("vocab", func(o map[string]any) { o["stoi"] = map[string]any{} }), []string{`metadata "vocab"`, `unknown field "stoi"`}},
		{"vocab invalid", editMeta("vocab", func(o map[string]any) { o["type"] = "bpe" }), []string{`metadata "vocab"`, `vocab.type is "bpe", want "char"`}},
		{"no vocab", fromFile(func(t *testing.T, f *rawFile) { delete(f.Meta, "vocab") }), []string{`no "vocab" object`}},
		{"no source", fromFile(func(t *testing.T, f *rawFile) { delete(f.Meta, "source") }), []string{`no "source" object`}},
		{"source bad type", editMeta("source", func(o map[string]any) { o["iter_num"] = "x" }), []string{`metadata "source"`, "iter_num"}},

		// The tensors against the architecture.
		{"missing tensors", fromFile(func(t *testing.T, f *rawFile) {
			f.remove(t, "critic_head.weight")
			f.remove(t, "transformer.h.1.attn.c_proj.weight")
		}), []string{"missing tensor critic_head.weight, want shape [1 8]", "missing tensor transformer.h.1.attn.c_proj.weight, want shape [8 8]", "language_model"}},
		{"unexpected tensor", fromFile(func(t *testing.T, f *rawFile) {
			f.Tensors = append(f.Tensors, rawTensor{Name: "transformer.h.0.attn.bias", DType: F16, Shape: []int{1, 1, 16, 16}, Data: make([]byte, 512)})
		}), []string{"unexpected tensor transformer.h.0.attn.bias (converted with an older converter? run `remask convert` again)"}},
		{"transposed shape", fromFile(func(t *testing.T, f *rawFile) {
			f.find(t, "transformer.h.0.attn.c_attn.weight").Shape = []int{C, 3 * C}
		}), []string{"tensor transformer.h.0.attn.c_attn.weight: shape [8 24], want [24 8]"}},
		{"mixed dtypes", fromFile(func(t *testing.T, f *rawFile) {
			r := f.find(t, "transformer.ln_f.weight")
			r.DType, r.Data = F32, f32Bytes(make([]float32, C))
		}), []string{"mixed dtypes", `"transformer.ln_f.weight" is F32`, "F16"}},
		{"untied lm_head", fromFile(func(t *testing.T, f *rawFile) {
			wte := f.find(t, "transformer.wte.weight")
			head := rawTensor{Name: "lm_head.weight", DType: F16, Shape: wte.Shape, Data: append([]byte(nil), wte.Data...)}
			head.Data[10] ^= 1
			f.Tensors = append(f.Tensors, head)
		}), []string{"lm_head.weight is stored and differs from transformer.wte.weight", "tied"}},
		{"lm_head of another shape", fromFile(func(t *testing.T, f *rawFile) {
			f.Tensors = append(f.Tensors, rawTensor{Name: "lm_head.weight", DType: F16, Shape: []int{11, C}, Data: make([]byte, 11*C*2)})
		}), []string{"lm_head.weight has shape [11 8] but transformer.wte.weight has [12 8]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := c.file(t)
			m, err := Parse("bad.safetensors", data)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if m != nil {
				t.Error("Parse returned a model with its error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "bad.safetensors: ") {
				t.Errorf("error %q does not start with the file name", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "truncated") != errors.Is(err, ErrTruncated) {
				t.Errorf("error %q: errors.Is(err, ErrTruncated) = %v", msg, errors.Is(err, ErrTruncated))
			}
		})
	}
}

// TestParseAcceptsTiedCopy: a stored lm_head.weight byte-identical to wte
// (a converter that kept the tied tensor twice) loads, and is tied.
func TestParseAcceptsTiedCopy(t *testing.T) {
	m := testModel(t, testConfigs()[0].cfg, 5)
	f := splitFile(t, writeBytes(t, m, BF16))
	wte := f.find(t, "transformer.wte.weight")
	f.Tensors = append(f.Tensors, rawTensor{Name: "lm_head.weight", DType: BF16, Shape: wte.Shape, Data: wte.Data})
	got, err := Parse("tied.safetensors", f.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.Tensors["lm_head.weight"] != got.Tensors["transformer.wte.weight"] {
		t.Error("lm_head.weight is not tied after load")
	}
}

// TestParseUnknownMetadataKeysIgnored: tools may add metadata keys.
func TestParseUnknownMetadataKeysIgnored(t *testing.T) {
	f := splitFile(t, writeBytes(t, testModel(t, testConfigs()[5].cfg, 5), F32))
	f.Meta["license"] = "MIT"
	f.Meta["source"] = editJSON(t, f.Meta["source"], func(o map[string]any) {
		o["git_commit"] = "abc"
		o["Dataset"] = "not the dataset" // not "dataset": ignored, as Python would
	})
	m, err := Parse("x", f.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.Source.Dataset != "char_diffusion" {
		t.Errorf("source.dataset = %q, want %q", m.Source.Dataset, "char_diffusion")
	}
}

// TestTruncatedEverywhere cuts a small file at every byte: each prefix must
// fail with a "truncated" error, never a JSON error or a panic.
func TestTruncatedEverywhere(t *testing.T) {
	cfg := testConfigs()[0].cfg
	cfg.NLayer = 1
	cfg.NEmbd, cfg.NHead = 4, 2
	data := writeBytes(t, testModel(t, cfg, 9), F16)
	for k := 0; k < len(data); k++ {
		_, err := Parse("cut.safetensors", data[:k])
		if err == nil {
			t.Fatalf("Parse of the first %d of %d bytes succeeded", k, len(data))
		}
		if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("Parse of the first %d of %d bytes: %v; want a truncated error", k, len(data), err)
		}
	}
	if _, err := Parse("whole.safetensors", data); err != nil {
		t.Fatal(err)
	}
}
