package api

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/remask/remask/engine/model"
)

// ModelInfo describes a model of the library (GET /v1/models, `remask
// models --json`). The architecture fields are empty when the file could
// not be read; Error then says why.
type ModelInfo struct {
	ID               string       `json:"id"`
	Kind             model.Kind   `json:"kind,omitempty"`
	NLayer           int          `json:"n_layer,omitempty"`
	NHead            int          `json:"n_head,omitempty"`
	NEmbd            int          `json:"n_embd,omitempty"`
	BlockSize        int          `json:"block_size,omitempty"`
	VocabSize        int          `json:"vocab_size,omitempty"`
	Attention        string       `json:"attention,omitempty"`
	PositionEncoding string       `json:"position_encoding,omitempty"`
	Heads            *model.Heads `json:"heads,omitempty"`
	// SamplerNeighbors is the sampler head's neighbour mode (models with a sampler head).
	SamplerNeighbors string `json:"sampler_neighbors,omitempty"`
	NumTokenClasses  int    `json:"num_token_classes,omitempty"`
	// Parameters counts the weights (the tied LM head once).
	Parameters int64 `json:"parameters,omitempty"`
	// DType is the stored dtype of the weights: F32, F16 or BF16.
	DType string `json:"dtype,omitempty"`
	// Bytes is the file size when known.
	Bytes  int64  `json:"bytes,omitempty"`
	Loaded bool   `json:"loaded"`
	Source string `json:"source"`
	Error  string `json:"error,omitempty"`
}

// fill sets the architecture fields from a model configuration.
func (mi *ModelInfo) fill(c *model.Config) {
	mi.Kind = c.Kind
	mi.NLayer, mi.NHead, mi.NEmbd = c.NLayer, c.NHead, c.NEmbd
	mi.BlockSize, mi.VocabSize = c.BlockSize, c.VocabSize
	mi.Attention, mi.PositionEncoding = c.Attention, c.PositionEncoding
	if c.Kind == model.LanguageModel {
		h := model.Heads{Critic: c.HasCritic(), Sampler: c.HasSampler()}
		mi.Heads = &h
	}
	if c.HasSampler() && c.Sampler != nil {
		mi.SamplerNeighbors = c.Sampler.Neighbors
	}
	mi.NumTokenClasses = c.NumTokenClasses
	mi.Parameters = 0
	for _, t := range model.Expected(c) {
		n := int64(1)
		for _, d := range t.Shape {
			n *= int64(d)
		}
		mi.Parameters += n
	}
}

// InfoOf describes a loaded model (ID and Source are left to the caller,
// Bytes is not known).
func InfoOf(m *model.Model) ModelInfo {
	var mi ModelInfo
	mi.fill(&m.Config)
	mi.DType = m.DType
	mi.Loaded = true
	mi.Source = m.Path
	return mi
}

// ReadInfo describes the model file at source from its header alone (the
// 8-byte length and the JSON header), without reading the weights. It
// checks the `model` metadata like the full reader does; the tensors are
// checked only by a full load.
func ReadInfo(ctx context.Context, l Loader, source string) (ModelInfo, error) {
	mi := ModelInfo{Source: source}
	body, size, err := l.Open(ctx, source)
	if err != nil {
		return mi, err
	}
	defer body.Close()
	if size >= 0 {
		mi.Bytes = size
	}
	cfg, dtype, err := readHeader(source, body, size)
	if err != nil {
		return mi, err
	}
	mi.fill(cfg)
	mi.DType = dtype
	return mi, nil
}

// readHeader decodes the `model` metadata and the weights' dtype from the
// start of a remask/1 file.
func readHeader(name string, r io.Reader, size int64) (*model.Config, string, error) {
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, "", fmt.Errorf("%s: %w: shorter than the 8-byte header length that starts every safetensors file", name, model.ErrTruncated)
		}
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > model.MaxHeaderBytes || size >= 0 && n > uint64(size-8) {
		return nil, "", fmt.Errorf("%s: the header length is %d bytes, which does not fit the file: not a safetensors file, or a truncated one", name, n)
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(r, header); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, "", fmt.Errorf("%s: %w: the file ends inside its %d-byte header; download it again", name, model.ErrTruncated, n)
		}
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(header, &top); err != nil {
		return nil, "", fmt.Errorf("%s: the header is not a JSON object (%v): the file is corrupted", name, err)
	}
	var meta map[string]string
	if raw, ok := top["__metadata__"]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, "", fmt.Errorf("%s: __metadata__ is not a string map (%v)", name, err)
		}
	}
	if f := meta["format"]; f != model.Format {
		return nil, "", fmt.Errorf("%s: metadata format is %q, want %q: not a remask model file; run `remask convert` on the original checkpoint", name, f, model.Format)
	}
	var cfg model.Config
	if err := json.Unmarshal([]byte(meta["model"]), &cfg); err != nil {
		return nil, "", fmt.Errorf("%s: metadata \"model\" is not valid (%v)", name, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, "", fmt.Errorf("%s: metadata \"model\": %v", name, err)
	}
	dtype := ""
	for key, raw := range top {
		if key == "__metadata__" {
			continue
		}
		var t struct {
			DType string `json:"dtype"`
		}
		if json.Unmarshal(raw, &t) == nil && t.DType != "" {
			dtype = t.DType
			break
		}
	}
	return &cfg, dtype, nil
}
