package checkpoint

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/remask/remask/engine/model"
)

// Options are the inputs of a conversion besides the checkpoint.
type Options struct {
	// Meta is the vocabulary to use. When nil, MetaPath is read; when that
	// is empty too, the checkpoint's own config['meta'] is used.
	Meta *Meta
	// MetaPath is a meta.pkl file (the --meta flag).
	MetaPath string
	// CalibrationPath is a [D7] calibration.json (the --calibration flag).
	CalibrationPath string
	// Created is the `source.created` timestamp; empty means now (UTC).
	Created string
	// SamplerNeighbors overrides the sampler head's neighbour mode ("zeros"
	// or "embeddings"; empty: "embeddings" when the checkpoint's
	// config['sampler_neighbors'] says so (remask's trainer), else "zeros").
	SamplerNeighbors string
}

// Conversion is what Convert decided: the model plus everything a person
// should know about how it was made.
type Conversion struct {
	Family Family
	Model  *model.Model
	// Warnings are things that may make the model behave differently from
	// what its user expects (untrained heads, missing calibration, ...).
	Warnings []string
	// Actions list what was done to the state dict and where the
	// vocabulary came from, one line each.
	Actions []string
}

// Convert builds the remask/1 model that the checkpoint describes. The
// returned strings are warnings to show the user. The model passed
// model.Model.Validate: its tensors are exactly model.Expected's.
func (c *Checkpoint) Convert(opts Options) (*model.Model, []string, error) {
	conv, err := c.Plan(opts)
	if err != nil {
		return nil, nil, err
	}
	return conv.Model, conv.Warnings, nil
}

// Plan is Convert with the full record of what was done. On error the
// returned Conversion holds what was settled before the failure (at least
// the family and, when model_args could be read, Model.Config), for
// `remask inspect`.
func (c *Checkpoint) Plan(opts Options) (*Conversion, error) {
	conv := &Conversion{Model: &model.Model{}}
	err := c.plan(opts, conv)
	if err != nil {
		return conv, fmt.Errorf("%s: %w", c.Path, err)
	}
	return conv, nil
}

func (c *Checkpoint) plan(opts Options, conv *Conversion) error {
	fam, err := c.Family()
	if err != nil {
		return err
	}
	conv.Family = fam
	a := argReader{d: c.ModelArgs}
	var arch *architecture
	switch fam {
	case SH:
		arch, err = shArchitecture(a, conv)
	case D7:
		arch, err = d7Architecture(a, c.Config, conv)
	}
	if err != nil {
		return err
	}
	m := conv.Model
	m.Config = arch.cfg
	if err := c.samplerNeighbors(opts, &m.Config, conv); err != nil {
		return err
	}
	meta, metaErr := c.meta(opts)
	if isBPEVocabSize(arch.cfg.VocabSize) {
		// Refuse before anything else about the vocabulary: a char meta
		// could only name a few of these ids.
		if meta == nil || meta.Itos == nil || meta.VocabSize == nil || *meta.VocabSize != arch.cfg.VocabSize {
			return bpeError(arch.cfg.VocabSize)
		}
	}
	if err := m.Config.Validate(); err != nil {
		return fmt.Errorf("model_args describe a model remask cannot run: %v", err)
	}

	// Vocabulary.
	if metaErr != nil {
		return metaErr
	}
	if meta == nil {
		return fmt.Errorf("%w: the checkpoint has no config['meta'] (the dataset's vocabulary); pass the dataset's meta.pkl with --meta (the fork keeps it at data/%s/meta.pkl)", errNoMeta, c.dataset("<dataset>"))
	}
	vocab, vw, err := buildVocab(meta, m.Config.VocabSize, arch.maskID, arch.padID)
	if err != nil {
		return err
	}
	m.Vocab = vocab
	conv.Actions = append(conv.Actions, "vocabulary from "+meta.Source)
	if opts.Meta != nil || opts.MetaPath != "" {
		if _, embedded := c.Config["meta"].(Dict); embedded {
			conv.Warnings = append(conv.Warnings, fmt.Sprintf("the checkpoint embeds its own vocabulary (config['meta']); using %s instead, as asked", meta.Source))
		}
	}
	conv.Warnings = append(conv.Warnings, vw...)
	if err := m.Vocab.Validate(&m.Config); err != nil {
		return fmt.Errorf("vocabulary from %s does not fit the model: %v", meta.Source, err)
	}

	// Tensors.
	tensors, actions, err := c.mapTensors(arch)
	if err != nil {
		return err
	}
	m.Tensors = tensors
	conv.Actions = append(conv.Actions, actions...)

	// [D7] critic calibration.
	if err := c.calibrate(opts, arch, conv); err != nil {
		return err
	}

	conv.Warnings = append(conv.Warnings, c.trainingWarnings(arch)...)
	m.Source = model.Source{
		ConvertedFrom: filepath.Base(c.Path),
		ForkFamily:    string(fam),
		IterNum:       c.IterNum,
		Trainer:       c.trainerName(fam),
		Dataset:       c.dataset(""),
		Created:       opts.Created,
	}
	if m.Source.Created == "" {
		m.Source.Created = time.Now().UTC().Format(time.RFC3339)
	}
	m.DType = c.storedDType()
	m.Card = c.card(conv)
	if err := m.Validate(); err != nil {
		return fmt.Errorf("the converted model is invalid (a converter bug; please report it): %v", err)
	}
	return nil
}

// samplerNeighbors settles the sampler head's neighbour mode. Heads trained
// by the fork saw zero neighbours (spec Q2); remask's trainer (tools/train)
// trains with real neighbour embeddings and records
// config['sampler_neighbors'] = 'embeddings' in the checkpoint.
func (c *Checkpoint) samplerNeighbors(opts Options, cfg *model.Config, conv *Conversion) error {
	if cfg.Sampler == nil {
		if opts.SamplerNeighbors != "" {
			return fmt.Errorf("--sampler-neighbors %s given, but the model has no sampler head", opts.SamplerNeighbors)
		}
		return nil
	}
	if v, ok := c.Config["sampler_neighbors"]; ok {
		s, _ := v.(string)
		switch s {
		case model.NeighborsZeros, model.NeighborsEmbeddings:
			cfg.Sampler.Neighbors = s
			conv.Actions = slices.DeleteFunc(conv.Actions, func(a string) bool { return strings.HasPrefix(a, "sampler head written with") })
			conv.Actions = append(conv.Actions, fmt.Sprintf("sampler.neighbors %q from config['sampler_neighbors'] (the trainer's record of how the head was trained)", s))
		default:
			return fmt.Errorf("config['sampler_neighbors'] is %s; want 'zeros' or 'embeddings'", describe(v))
		}
	}
	switch opts.SamplerNeighbors {
	case "":
	case model.NeighborsZeros, model.NeighborsEmbeddings:
		if opts.SamplerNeighbors != cfg.Sampler.Neighbors {
			conv.Warnings = append(conv.Warnings, fmt.Sprintf("sampler.neighbors set to %q by --sampler-neighbors (the checkpoint says %q): a head only works with the neighbours it was trained on", opts.SamplerNeighbors, cfg.Sampler.Neighbors))
		}
		cfg.Sampler.Neighbors = opts.SamplerNeighbors
	default:
		return fmt.Errorf("--sampler-neighbors %q: want zeros or embeddings", opts.SamplerNeighbors)
	}
	return nil
}

// trainerName is config['trainer'] when the checkpoint records it (remask's
// trainer does), else the fork generation that wrote it.
func (c *Checkpoint) trainerName(f Family) string {
	if t, ok := c.Config["trainer"].(string); ok && t != "" {
		return t
	}
	if f == SH {
		return "diffusion-first nanoGPT fork, [SH] model.py (feature/sampler-head)"
	}
	return "diffusion-first nanoGPT fork, [D7] model.py (diffusion_07_10)"
}

// meta picks the vocabulary source: Options first, then config['meta'].
func (c *Checkpoint) meta(opts Options) (*Meta, error) {
	switch {
	case opts.Meta != nil:
		return opts.Meta, nil
	case opts.MetaPath != "":
		return ReadMeta(opts.MetaPath)
	}
	d, ok := c.Config["meta"].(Dict)
	if !ok {
		return nil, nil
	}
	return ParseMeta("config['meta'] of "+filepath.Base(c.Path), d)
}

func (c *Checkpoint) dataset(def string) string {
	if s, ok := c.Config["dataset"].(string); ok && s != "" {
		return s
	}
	return def
}

// storedDType is the dtype of the state dict's weights ("F32", or a list
// when they are mixed).
func (c *Checkpoint) storedDType() string {
	seen := map[string]bool{}
	for _, t := range c.StateDict {
		seen[t.DType] = true
	}
	var ds []string
	for d := range seen {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	return strings.Join(ds, "+")
}
