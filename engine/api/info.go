package api

import (
	"context"
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
// start of a remask/1 file, with model.ReadHeader: as strictly as a full
// load reads it.
func readHeader(name string, r io.Reader, size int64) (*model.Config, string, error) {
	h, err := model.ReadHeader(name, r, size)
	if err != nil {
		return nil, "", err
	}
	return &h.Config, h.DType, nil
}
