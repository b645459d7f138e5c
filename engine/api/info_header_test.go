package api

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadInfoStrict: the model info reads the header with
// model.ReadHeader, as strictly as a load (issue 12 item 3: its own loose
// parser accepted the case variant N_LAYER).
func TestReadInfoStrict(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", "lm_rope_bidir_bias.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	bad := filepath.Join(dir, "bad.safetensors")
	os.WriteFile(good, data, 0o644)
	os.WriteFile(bad, bytes.Replace(data, []byte(`\"n_layer\"`), []byte(`\"N_LAYER\"`), 1), 0o644)
	if mi, err := ReadInfo(context.Background(), SourceLoader{}, good); err != nil || mi.NLayer != 2 || mi.DType != "F32" {
		t.Errorf("good: %+v, %v", mi, err)
	}
	_, err = ReadInfo(context.Background(), SourceLoader{}, bad)
	if err == nil || !strings.Contains(err.Error(), `unknown field "N_LAYER"`) {
		t.Errorf("N_LAYER: %v, want the unknown-field error", err)
	}
}
