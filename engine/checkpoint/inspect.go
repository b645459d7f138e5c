package checkpoint

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/safefile"
)

// Summary describes a model file or a fork checkpoint for `remask inspect`:
// for a checkpoint, the model that `remask convert` would write, how, and
// with which warnings.
type Summary struct {
	File string `json:"file"`
	// Format is "remask/1" or "fork-checkpoint".
	Format string `json:"format"`
	// ForkFamily is "sh" or "d7" for checkpoints and converted files.
	ForkFamily string `json:"fork_family,omitempty"`
	IterNum    *int   `json:"iter_num,omitempty"`

	Kind       model.Kind `json:"kind,omitempty"`
	NLayer     int        `json:"n_layer,omitempty"`
	NHead      int        `json:"n_head,omitempty"`
	NEmbd      int        `json:"n_embd,omitempty"`
	BlockSize  int        `json:"block_size,omitempty"`
	VocabSize  int        `json:"vocab_size,omitempty"`
	Parameters int64      `json:"parameters,omitempty"`
	// Heads lists the outputs: "lm", "critic", "sampler", "judge", "classifier".
	Heads             []string `json:"heads,omitempty"`
	SamplerNeighbors  string   `json:"sampler_neighbors,omitempty"`
	MinNeighborsRatio float64  `json:"min_neighbors_ratio,omitempty"`
	NumTokenClasses   int      `json:"num_token_classes,omitempty"`
	Attention         string   `json:"attention,omitempty"`
	PositionEncoding  string   `json:"position_encoding,omitempty"`
	RopeBase          float64  `json:"rope_base,omitempty"`
	Bias              bool     `json:"bias"`
	// CLSTokenID is the id the model replaces by cls_embedding.
	CLSTokenID        *int          `json:"cls_token_id"`
	CriticCalibration bool          `json:"critic_calibration"`
	Vocab             *VocabSummary `json:"vocab,omitempty"`
	// DType is the stored dtype of the weights.
	DType  string        `json:"dtype,omitempty"`
	Source *model.Source `json:"source,omitempty"`
	Card   string        `json:"card,omitempty"`

	// Conversion lists what `remask convert` does (checkpoints only).
	Conversion []string `json:"conversion,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
	// Error says why the checkpoint cannot be converted ("" when it can).
	Error string `json:"error,omitempty"`
}

// VocabSummary describes a vocabulary.
type VocabSummary struct {
	Type          string         `json:"type"`
	Size          int            `json:"size"`
	BaseVocabSize int            `json:"base_vocab_size"`
	Special       []SpecialToken `json:"special"`
}

// SpecialToken is an id at or above base_vocab_size.
type SpecialToken struct {
	ID    int    `json:"id"`
	Token string `json:"token"`
	// Role is "mask", "pad", "cls" (several joined by "+"), or "" for
	// other special ids.
	Role string `json:"role,omitempty"`
}

// Summarize describes a loaded remask/1 model.
func Summarize(m *model.Model) *Summary {
	s := &Summary{File: m.Path, Format: model.Format, DType: m.DType, Card: m.Card}
	src := m.Source
	s.Source = &src
	s.ForkFamily = src.ForkFamily
	s.IterNum = src.IterNum
	s.fill(&m.Config, &m.Vocab)
	return s
}

// fill sets the architecture and vocabulary fields; vocab may be nil.
func (s *Summary) fill(cfg *model.Config, vocab *model.Vocab) {
	s.Kind = cfg.Kind
	s.NLayer, s.NHead, s.NEmbd, s.BlockSize, s.VocabSize = cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.BlockSize, cfg.VocabSize
	s.Attention, s.PositionEncoding, s.Bias = cfg.Attention, cfg.PositionEncoding, cfg.Bias
	if cfg.PositionEncoding == model.Rotary {
		s.RopeBase = cfg.RopeBase
	}
	s.CLSTokenID = cfg.CLSTokenID
	s.CriticCalibration = cfg.CriticCalibration != nil
	switch cfg.Kind {
	case model.LanguageModel:
		s.Heads = []string{"lm"}
		if cfg.HasCritic() {
			s.Heads = append(s.Heads, "critic")
		}
		if cfg.HasSampler() {
			s.Heads = append(s.Heads, "sampler")
			s.SamplerNeighbors = cfg.Sampler.Neighbors
			s.MinNeighborsRatio = cfg.Sampler.MinNeighborsRatio
		}
	case model.SequenceScorer:
		s.Heads = []string{"judge"}
	case model.TokenClassifier:
		s.Heads = []string{"classifier"}
		s.NumTokenClasses = cfg.NumTokenClasses
	}
	if cfg.Validate() == nil {
		for _, t := range model.Expected(cfg) {
			n := int64(1)
			for _, d := range t.Shape {
				n *= int64(d)
			}
			s.Parameters += n
		}
	}
	if vocab == nil || len(vocab.Tokens) == 0 {
		return
	}
	v := &VocabSummary{Type: vocab.Type, Size: len(vocab.Tokens), BaseVocabSize: vocab.BaseVocabSize}
	for id := vocab.BaseVocabSize; id < len(vocab.Tokens); id++ {
		var roles []string
		for _, r := range []struct {
			name string
			id   *int
		}{{"mask", vocab.MaskTokenID}, {"pad", vocab.PadTokenID}, {"cls", vocab.CLSTokenID}} {
			if r.id != nil && *r.id == id {
				roles = append(roles, r.name)
			}
		}
		v.Special = append(v.Special, SpecialToken{ID: id, Token: vocab.Tokens[id], Role: strings.Join(roles, "+")})
	}
	s.Vocab = v
}

// Inspect describes the model that Convert would produce with opts, with
// the conversion steps and warnings. It does not fail: when the checkpoint
// cannot be converted, Error says why and the fields hold what was known.
func (c *Checkpoint) Inspect(opts Options) *Summary {
	s := &Summary{File: c.Path, Format: "fork-checkpoint", IterNum: c.IterNum, DType: c.storedDType()}
	conv, err := c.Plan(opts)
	s.ForkFamily = string(conv.Family)
	s.Conversion = conv.Actions
	s.Warnings = conv.Warnings
	m := conv.Model
	if m.Config.NLayer > 0 {
		var vocab *model.Vocab
		if len(m.Vocab.Tokens) > 0 {
			vocab = &m.Vocab
		}
		s.fill(&m.Config, vocab)
	}
	if err != nil {
		s.Error = err.Error()
		return s
	}
	src := m.Source
	src.Created = "" // the conversion's time, not the checkpoint's
	s.Source = &src
	s.Card = m.Card
	return s
}

// InspectFile describes a remask/1 .safetensors file or a fork ckpt.pt,
// recognised by content. opts apply to checkpoints only.
func InspectFile(path string, opts Options) (*Summary, error) {
	zip, err := isZip(path)
	if err != nil {
		return nil, err
	}
	if zip {
		c, err := Open(path)
		if err != nil {
			return nil, err
		}
		return c.Inspect(opts), nil
	}
	if opts.Meta != nil || opts.MetaPath != "" || opts.CalibrationPath != "" {
		return nil, fmt.Errorf("%s is not a fork checkpoint: a vocabulary or calibration file applies to checkpoints only (a remask/1 file carries its own)", path)
	}
	m, err := model.Load(path)
	if err != nil {
		return nil, err
	}
	return Summarize(m), nil
}

func isZip(path string) (bool, error) {
	f, _, err := safefile.OpenRegular(path)
	if err != nil {
		return false, fmt.Errorf("inspect: %w", openError(err))
	}
	defer f.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return false, fmt.Errorf("inspect %s: %v", path, err)
	}
	return bytes.Equal(head[:n], []byte("PK\x03\x04")), nil
}
