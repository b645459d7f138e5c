package model

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// caseVariant returns the bytes of the golden model with the `model`
// metadata key n_layer spelt N_LAYER (same length, so the header length
// still fits): a file that a case-insensitive JSON decoder reads as valid.
func caseVariant(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", "lm_rope_bidir_bias.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(data, []byte(`\"n_layer\"`)) != 1 {
		t.Fatal("the golden file does not hold n_layer once")
	}
	return bytes.Replace(data, []byte(`\"n_layer\"`), []byte(`\"N_LAYER\"`), 1)
}

// TestReadHeaderStrict: ReadHeader is as strict as Parse (issue 12 item 3:
// the API's own header parser accepted N_LAYER, which the model reader
// refuses), reads only the header, and works without a known size.
func TestReadHeaderStrict(t *testing.T) {
	bad := caseVariant(t)
	const want = `metadata "model": unknown field "N_LAYER"`
	if _, err := Parse("x.safetensors", bad); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Parse: %v, want %q", err, want)
	}
	for _, size := range []int64{int64(len(bad)), -1} {
		if _, err := ReadHeader("x.safetensors", bytes.NewReader(bad), size); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadHeader(size %d): %v, want %q", size, err, want)
		}
	}

	good, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", "lm_rope_bidir_bias.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(good)
	h, err := ReadHeader("good", r, int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse("good", good)
	if err != nil {
		t.Fatal(err)
	}
	if h.Config.NLayer != m.Config.NLayer || h.DType != m.DType || len(h.Vocab.Tokens) != len(m.Vocab.Tokens) || h.Card != m.Card {
		t.Errorf("header %+v differs from the model's", h.Config)
	}
	if rest := int64(r.Len()); h.Bytes+rest != int64(len(good)) {
		t.Errorf("ReadHeader read %d bytes, want exactly the %d-byte header", int64(len(good))-rest, h.Bytes)
	}
	// With the size known, a cut file is truncated; unknown, the header alone reads.
	cut := good[:h.Bytes+10]
	if _, err := ReadHeader("cut", bytes.NewReader(cut), int64(len(cut))); !errors.Is(err, ErrTruncated) {
		t.Errorf("cut file: %v, want ErrTruncated", err)
	}
	if _, err := ReadHeader("stream", bytes.NewReader(cut), -1); err != nil {
		t.Errorf("header of a stream of unknown size: %v", err)
	}
	// A header length that promises 99 MB of a 100-byte stream allocates
	// what came, and says the file ends inside its header.
	lying := append([]byte{0, 0, 0xe7, 0x05, 0, 0, 0, 0}, bytes.Repeat([]byte(" "), 100)...)
	if _, err := ReadHeader("lying", io.MultiReader(bytes.NewReader(lying)), -1); !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "ends inside its") {
		t.Errorf("lying length: %v", err)
	}
}
