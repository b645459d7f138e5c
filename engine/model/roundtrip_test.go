package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
)

// stored returns what a float32 becomes after a trip through dtype.
func stored(v float32, dtype string) float32 {
	switch dtype {
	case F16:
		h, _ := Float32ToFloat16(v)
		return Float16ToFloat32(h)
	case BF16:
		b, _ := Float32ToBFloat16(v)
		return BFloat16ToFloat32(b)
	}
	return v
}

func TestRoundTrip(t *testing.T) {
	for _, c := range testConfigs() {
		for _, dtype := range []string{F32, F16, BF16} {
			t.Run(c.name+"/"+dtype, func(t *testing.T) {
				m := testModel(t, c.cfg, 42)
				data := writeBytes(t, m, dtype)
				got, err := Parse("rt.safetensors", data)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got.Path != "rt.safetensors" || got.DType != dtype {
					t.Errorf("Path, DType = %q, %q; want %q, %q", got.Path, got.DType, "rt.safetensors", dtype)
				}
				if !reflect.DeepEqual(got.Config, m.Config) {
					t.Errorf("Config = %+v, want %+v", got.Config, m.Config)
				}
				if !reflect.DeepEqual(got.Vocab, m.Vocab) || !reflect.DeepEqual(got.Source, m.Source) || got.Card != m.Card {
					t.Errorf("Vocab/Source/Card changed: %+v %+v %q", got.Vocab, got.Source, got.Card)
				}
				if len(got.Tensors) != len(m.Tensors) {
					t.Errorf("%d tensors, want %d", len(got.Tensors), len(m.Tensors))
				}
				for name, want := range m.Tensors {
					g := got.Tensors[name]
					if g == nil || !reflect.DeepEqual(g.Shape, want.Shape) || len(g.Data) != len(want.Data) {
						t.Fatalf("tensor %s: got %v, want shape %v", name, g, want.Shape)
					}
					for i, v := range want.Data {
						if math.Float32bits(g.Data[i]) != math.Float32bits(stored(v, dtype)) {
							t.Fatalf("tensor %s[%d] = %v, want %v (%v stored as %s)", name, i, g.Data[i], stored(v, dtype), v, dtype)
						}
					}
				}
				if c.cfg.Kind == LanguageModel && got.Tensors["lm_head.weight"] != got.Tensors["transformer.wte.weight"] {
					t.Error("lm_head.weight is not the same *Tensor as transformer.wte.weight")
				}
				// Writing what was read gives the same bytes.
				if again := writeBytes(t, got, dtype); !bytes.Equal(again, data) {
					t.Error("Write(Parse(Write(m))) differs from Write(m)")
				}
				checkContainer(t, data, m, dtype)
			})
		}
	}
}

// checkContainer checks the safetensors conventions Python readers rely on:
// a header that starts with '{' and is padded with spaces to a multiple of
// 8 bytes, offsets relative to the data section, tensors in Expected order,
// no lm_head for language models; and that the library reads it.
func checkContainer(t *testing.T, data []byte, m *Model, dtype string) {
	t.Helper()
	n := binary.LittleEndian.Uint64(data)
	header := data[8 : 8+n]
	if n%8 != 0 || header[0] != '{' {
		t.Errorf("header length %d (want a multiple of 8), first byte %q (want '{')", n, header[0])
	}
	if trimmed := bytes.TrimRight(header, " "); trimmed[len(trimmed)-1] != '}' {
		t.Errorf("header padding is not spaces: ends with %q", header[len(header)-8:])
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(header, &hdr); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	if _, ok := hdr["lm_head.weight"]; ok && m.Config.Kind == LanguageModel {
		t.Error("a language model file stores lm_head.weight")
	}
	var meta map[string]string
	json.Unmarshal(hdr["__metadata__"], &meta)
	if meta["format"] != Format || meta["model"] == "" || meta["vocab"] == "" || meta["source"] == "" || meta["card"] != m.Card {
		t.Errorf("metadata = %v", meta)
	}
	var end uint64
	for _, s := range Expected(&m.Config) {
		var e struct {
			DType   string    `json:"dtype"`
			Offsets [2]uint64 `json:"data_offsets"`
		}
		json.Unmarshal(hdr[s.Name], &e)
		if e.DType != dtype || e.Offsets[0] != end {
			t.Fatalf("tensor %s: dtype %s offsets %v, want %s starting at %d (Expected order)", s.Name, e.DType, e.Offsets, dtype, end)
		}
		end = e.Offsets[1]
	}
	if uint64(len(data))-8-n != end {
		t.Errorf("data section is %d bytes, tensors end at %d", uint64(len(data))-8-n, end)
	}
	st, err := safetensors.Deserialize(data)
	if err != nil {
		t.Fatalf("safetensors.Deserialize: %v", err)
	}
	if st.Len() != len(Expected(&m.Config)) {
		t.Errorf("library sees %d tensors, want %d", st.Len(), len(Expected(&m.Config)))
	}
}

func TestWriteOmitsEmptyCard(t *testing.T) {
	m := testModel(t, testConfigs()[4].cfg, 1)
	m.Card = ""
	data := writeBytes(t, m, F32)
	if f := splitFile(t, data); f.Meta["card"] != "" || len(f.Meta) != 4 {
		t.Errorf("metadata keys = %v, want format, model, vocab, source", f.Meta)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	m := testModel(t, testConfigs()[0].cfg, 7)
	if err := Save(path, m, F16); err != nil {
		t.Fatal(err)
	}
	// Overwrite with another dtype: the rename replaces the file whole.
	if err := Save(path, m, BF16); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Path != path || got.DType != BF16 || !reflect.DeepEqual(got.Config, m.Config) {
		t.Errorf("Load: Path %q DType %q Config %+v", got.Path, got.DType, got.Config)
	}
	// An invalid model leaves neither a file nor a temporary behind.
	bad := testModel(t, testConfigs()[0].cfg, 7)
	delete(bad.Tensors, "critic_head.weight")
	if err := Save(filepath.Join(dir, "bad.safetensors"), bad, F32); err == nil || !strings.Contains(err.Error(), "missing tensor critic_head.weight") {
		t.Errorf("Save(invalid) error = %v, want missing tensor critic_head.weight", err)
	}
	// A value that overflows F16 is found before anything is created.
	big := testModel(t, testConfigs()[0].cfg, 7)
	big.Tensors["transformer.h.1.mlp.c_fc.weight"].Data[5] = 1e5
	if err := Save(filepath.Join(dir, "big.safetensors"), big, F16); err == nil || !strings.Contains(err.Error(), "transformer.h.1.mlp.c_fc.weight") {
		t.Errorf("Save(overflow) error = %v, want it to name the tensor", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "m.safetensors" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only m.safetensors", names)
	}
	if _, err := Load(filepath.Join(dir, "nope.safetensors")); err == nil || !strings.Contains(err.Error(), "nope.safetensors") {
		t.Errorf("Load(missing file) error = %v", err)
	}
	if err := Save(filepath.Join(dir, "no", "such", "dir.safetensors"), m, F32); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return w.n, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteErrors(t *testing.T) {
	lm := testConfigs()[0].cfg
	for _, c := range []struct {
		name  string
		edit  func(m *Model)
		dtype string
		want  []string
	}{
		{"bad dtype", func(m *Model) {}, "F64", []string{`"F64"`, "F32, F16 or BF16"}},
		{"invalid config", func(m *Model) { m.Config.NHead = 3 }, F32, []string{"n_head 3"}},
		{"invalid vocab", func(m *Model) { m.Vocab.Tokens = m.Vocab.Tokens[:5] }, F32, []string{"vocab.tokens has 5 entries"}},
		{"missing tensor", func(m *Model) { delete(m.Tensors, "transformer.ln_f.weight") }, F32, []string{"missing tensor transformer.ln_f.weight [8]"}},
		{"unexpected tensor", func(m *Model) { m.Tensors["extra"] = &Tensor{Shape: []int{1}, Data: []float32{0}} }, F32, []string{"unexpected tensor extra"}},
		{"wrong shape", func(m *Model) { m.Tensors["critic_head.weight"].Shape = []int{8, 1} }, F32, []string{"tensor critic_head.weight: shape [8 1], want [1 8]"}},
		{"short data", func(m *Model) {
			w := m.Tensors["transformer.h.0.ln_1.weight"]
			w.Data = w.Data[:3]
		}, F32, []string{"transformer.h.0.ln_1.weight: 3 values, want 8"}},
		{"untied lm head", func(m *Model) {
			wte := m.Tensors["transformer.wte.weight"]
			head := &Tensor{Shape: wte.Shape, Data: append([]float32(nil), wte.Data...)}
			head.Data[17] += 1
			m.Tensors["lm_head.weight"] = head
		}, F32, []string{"lm_head.weight differs from transformer.wte.weight at element 17", "tied"}},
		{"f16 overflow", func(m *Model) { m.Tensors["sampler_head.mlp.0.weight"].Data[3] = -7e4 }, F16, []string{"sampler_head.mlp.0.weight", "element 3", "overflows F16"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := testModel(t, lm, 3)
			c.edit(m)
			var b bytes.Buffer
			err := Write(&b, m, c.dtype)
			if err == nil {
				t.Fatal("Write succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if b.Len() != 0 {
				t.Errorf("%d bytes written before the error", b.Len())
			}
		})
	}
	t.Run("bf16 holds what f16 cannot", func(t *testing.T) {
		m := testModel(t, lm, 3)
		m.Tensors["sampler_head.mlp.0.weight"].Data[3] = -7e4
		writeBytes(t, m, BF16)
	})
	t.Run("an equal untied copy is accepted as the tie", func(t *testing.T) {
		m := testModel(t, lm, 3)
		wte := m.Tensors["transformer.wte.weight"]
		m.Tensors["lm_head.weight"] = &Tensor{Shape: wte.Shape, Data: append([]float32(nil), wte.Data...)}
		writeBytes(t, m, F16)
	})
	t.Run("writer error", func(t *testing.T) {
		m := testModel(t, lm, 3)
		if err := Write(&failWriter{n: 100}, m, F32); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("error = %v, want disk full", err)
		}
	})
}
