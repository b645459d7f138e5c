package model

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fuzzCorpusDir holds the committed seed corpus of FuzzParse (Go's corpus
// file format), so that `go test` replays it and fuzzing starts from it.
const fuzzCorpusDir = "testdata/fuzz/FuzzParse"

// fuzzSeeds are small valid files of each kind and corrupted variants.
// Regenerate the committed copies with
//
//	REMASK_WRITE_FUZZ_CORPUS=1 go test -run TestFuzzCorpus ./engine/model/
func fuzzSeeds(t testing.TB) map[string][]byte {
	// Seeds are kept tiny (C = 2, one layer, no card): the fuzzer minimizes
	// every new interesting input byte by byte, which is slow on big inputs.
	tiny := func(c Config, vocab int) *Model {
		c.NLayer, c.NEmbd, c.NHead, c.BlockSize, c.VocabSize = 1, 2, 1, 4, vocab
		c.CriticCalibration = nil
		if c.CLSTokenID != nil {
			c.CLSTokenID = intp(vocab - 2) // the PAD alias of the fork's judges
		}
		m := testModel(t, c, uint64(vocab))
		m.Card, m.Source = "", Source{ForkFamily: "sh"}
		return m
	}
	cfgs := testConfigs()
	lm := writeBytes(t, tiny(cfgs[0].cfg, 4), F16)
	judge := writeBytes(t, tiny(cfgs[4].cfg, 5), BF16)
	classifier := writeBytes(t, tiny(cfgs[5].cfg, 4), F32)
	absolute := writeBytes(t, tiny(cfgs[1].cfg, 4), F16)

	n := binary.LittleEndian.Uint64(lm)
	flipped := bytes.Clone(lm)
	flipped[8+n/2] ^= 0x20 // somewhere in the header JSON
	badOffsets := bytes.Replace(lm, []byte(`"data_offsets":[0,`), []byte(`"data_offsets":[8,`), 1)
	plain := splitFile(t, classifier)
	plain.Meta = map[string]string{"format": "pt"}

	return map[string][]byte{
		"valid_lm_heads_f16":      lm,
		"valid_judge_bf16":        judge,
		"valid_classifier_f32":    classifier,
		"valid_lm_absolute_f16":   absolute,
		"truncated_lm_data":       lm[:len(lm)-5],
		"truncated_lm_header":     lm[:8+n/3],
		"corrupt_lm_header_byte":  flipped,
		"corrupt_lm_offsets":      badOffsets,
		"plain_safetensors_pt":    plain.bytes(t),
		"corrupt_judge_last_byte": append(bytes.Clone(judge), 0),
	}
}

// FuzzParse: Parse never panics, every error names the file, the
// pre-checks catch whatever the safetensors library rejects, and whatever
// Parse accepts writes back to a fixed point. Inputs of a few KB make Go's
// byte-by-byte minimizer slow (up to its default 60 s per new input), so for
// long runs add -fuzzminimizetime 2s:
//
//	go test -run XXX -fuzz FuzzParse -fuzztime 5m -fuzzminimizetime 2s ./engine/model/
func FuzzParse(f *testing.F) {
	for _, data := range fuzzSeeds(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.safetensors", data)
		if err != nil {
			if m != nil {
				t.Fatal("Parse returned a model with its error")
			}
			if !strings.HasPrefix(err.Error(), "fuzz.safetensors: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			// The pre-checks must catch everything the library rejects,
			// with a precise message.
			if strings.Contains(err.Error(), "invalid safetensors container") {
				t.Fatalf("the pre-checks let through what the safetensors library rejects: %v", err)
			}
			return
		}
		// Whatever Parse accepts is a valid model that writes back and
		// reads again: Write(Parse(Write(m))) == Write(m).
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse accepted a model that Validate rejects: %v", err)
		}
		var once bytes.Buffer
		if err := Write(&once, m, m.DType); err != nil {
			t.Fatalf("Write of a parsed model: %v", err)
		}
		again, err := Parse("again", once.Bytes())
		if err != nil {
			t.Fatalf("Parse of a written model: %v", err)
		}
		if !reflect.DeepEqual(again.Config, m.Config) || !reflect.DeepEqual(again.Vocab, m.Vocab) {
			t.Fatalf("config or vocab changed through Write: %+v vs %+v", again.Config, m.Config)
		}
		var twice bytes.Buffer
		if err := Write(&twice, again, again.DType); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatal("Write is not a fixed point after one Parse")
		}
	})
}

// TestFuzzCorpus checks that the committed seed corpus matches fuzzSeeds
// (and writes it when REMASK_WRITE_FUZZ_CORPUS=1). Files the fuzzer adds
// to the directory (regressions it found) are left alone.
func TestFuzzCorpus(t *testing.T) {
	write := os.Getenv("REMASK_WRITE_FUZZ_CORPUS") == "1"
	total := 0
	for name, data := range fuzzSeeds(t) {
		want := []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n")
		total += len(want)
		path := filepath.Join(fuzzCorpusDir, name)
		if write {
			if err := os.MkdirAll(fuzzCorpusDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale (%v): regenerate with REMASK_WRITE_FUZZ_CORPUS=1 go test -run TestFuzzCorpus ./engine/model/", path, err)
		}
	}
	if total > 200_000 {
		t.Errorf("the seed corpus is %d bytes, keep it under 200 KB", total)
	}
}
