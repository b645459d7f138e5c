package checkpoint

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
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

// ---- model_args -------------------------------------------------------------------

// argReader reads model_args fields with the fork's GPTConfig defaults.
type argReader struct{ d Dict }

func (a argReader) has(key string) bool { _, ok := a.d[key]; return ok }

// size reads a required positive int (the fork's defaults of 12 layers etc.
// would only produce a flood of shape errors).
func (a argReader) size(key string) (int, error) {
	v, ok := a.d[key]
	if !ok {
		return 0, fmt.Errorf("model_args has no %q: the checkpoint does not say the model's size", key)
	}
	n, ok := v.(int)
	if !ok || n < 1 {
		return 0, fmt.Errorf("model_args %s is %s, want an int >= 1", key, describe(v))
	}
	return n, nil
}

func (a argReader) optInt(key string) (*int, error) {
	p, err := optInt(a.d, key)
	if err != nil {
		return nil, fmt.Errorf("model_args %v", err)
	}
	return p, nil
}

func (a argReader) intOr(key string, def int) (int, error) {
	p, err := a.optInt(key)
	if err != nil || p == nil {
		return def, err
	}
	return *p, nil
}

func (a argReader) boolOr(key string, def bool) (bool, error) {
	v, ok := a.d[key]
	if !ok || v == nil {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("model_args %s is %s, want True or False", key, describe(v))
	}
	return b, nil
}

func (a argReader) floatOr(key string, def float64) (float64, error) {
	v, ok := a.d[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case float64:
		return x, nil
	case int:
		return float64(x), nil
	}
	return 0, fmt.Errorf("model_args %s is %s, want a number", key, describe(v))
}

func (a argReader) strOr(key, def string) (string, error) {
	v, ok := a.d[key]
	if !ok || v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("model_args %s is %s, want a string", key, describe(v))
	}
	return s, nil
}

// architecture is what model_args say, in remask/1 terms plus the [D7]
// extras that only the converter needs.
type architecture struct {
	family Family
	cfg    model.Config
	// maskID, padID are model_args' special ids (the vocabulary's win).
	maskID, padID *int
	// training schedule, for the Q25 warnings
	startSampler, startCritic, endCritic int
	// [D7]
	loraAttn, loraMLP bool
	loraRank          int
	loraScale         float64
	shareMain         bool
	guidance          bool
	// dropHeads lists [D7] heads present in the file but unused by the mode.
	dropLM, dropSequence, dropCritic bool
}

// sizes reads the fields every fork model has.
func sizes(a argReader, cfg *model.Config) error {
	var err error
	for _, f := range []struct {
		key string
		dst *int
	}{{"n_layer", &cfg.NLayer}, {"n_head", &cfg.NHead}, {"n_embd", &cfg.NEmbd}, {"block_size", &cfg.BlockSize}, {"vocab_size", &cfg.VocabSize}} {
		if *f.dst, err = a.size(f.key); err != nil {
			return err
		}
	}
	// GPTConfig's dataclass default is bias=True (train.py passes its own).
	if cfg.Bias, err = a.boolOr("bias", true); err != nil {
		return err
	}
	cfg.RopeBase = 10000
	cfg.LayerNormEps = 1e-5
	return nil
}

func shArchitecture(a argReader, conv *Conversion) (*architecture, error) {
	arch := &architecture{family: SH}
	cfg := &arch.cfg
	if err := sizes(a, cfg); err != nil {
		return nil, err
	}
	mode := model.LanguageModel
	switch v := a.d["mode"].(type) {
	case nil:
	case ModelMode:
		mode = model.Kind(v)
	case string: // a checkpoint re-saved with the enum turned into its value
		mode = model.Kind(v)
	default:
		return nil, fmt.Errorf("model_args mode is %s, want a model.ModelMode member", describe(v))
	}
	switch mode {
	case model.LanguageModel, model.SequenceScorer, model.TokenClassifier:
	default:
		return nil, fmt.Errorf("model_args mode is ModelMode %q; remask knows language_model, sequence_scorer and token_classifier", string(mode))
	}
	binary, err := a.boolOr("binary_classification", false)
	if err != nil {
		return nil, err
	}
	if binary && mode == model.LanguageModel {
		// Legacy flag: the fork turns a language model into a 2-class classifier (spec 1.1).
		mode = model.TokenClassifier
		conv.Actions = append(conv.Actions, "binary_classification=True: a token classifier with 2 classes, as the fork builds it")
	}
	cfg.Kind = mode

	// The [SH] loaders default these when absent (spec 2.3); the model maps
	// any other string to causal / no positions (spec 1.1).
	attn, err := a.strOr("attention_type", "causal")
	if err != nil {
		return nil, err
	}
	if !a.has("attention_type") {
		conv.Actions = append(conv.Actions, "model_args has no attention_type: causal, as the [SH] loader assumes")
	}
	switch attn {
	case "bidirectional":
		cfg.Attention = model.Bidirectional
	case "causal":
		cfg.Attention = model.Causal
	default:
		cfg.Attention = model.Causal
		conv.Warnings = append(conv.Warnings, fmt.Sprintf("model_args attention_type is %q, which the fork treats as causal: converted as causal", attn))
	}
	if mode != model.LanguageModel && cfg.Attention != model.Bidirectional {
		cfg.Attention = model.Bidirectional // forced by the fork for these modes (spec 1.1)
		conv.Actions = append(conv.Actions, fmt.Sprintf("attention bidirectional: the fork forces it for %s models", mode))
	}
	pos, err := a.strOr("position_encoding", "absolute")
	if err != nil {
		return nil, err
	}
	if !a.has("position_encoding") {
		conv.Actions = append(conv.Actions, "model_args has no position_encoding: absolute, as the [SH] loader assumes")
	}
	switch pos {
	case "rotary":
		cfg.PositionEncoding = model.Rotary
	case "absolute":
		cfg.PositionEncoding = model.Absolute
	default:
		cfg.PositionEncoding = model.NoPos
		conv.Warnings = append(conv.Warnings, fmt.Sprintf("model_args position_encoding is %q, which the fork treats as no position information: converted with position_encoding none", pos))
	}

	if arch.maskID, err = a.optInt("mask_token_id"); err != nil {
		return nil, err
	}
	if arch.padID, err = a.optInt("pad_token_id"); err != nil {
		return nil, err
	}
	cls, err := a.optInt("cls_token_id")
	if err != nil {
		return nil, err
	}
	switch mode {
	case model.LanguageModel:
		critic, err := a.boolOr("add_critic_head", false)
		if err != nil {
			return nil, err
		}
		sampler, err := a.boolOr("add_sampler_head", false)
		if err != nil {
			return nil, err
		}
		cfg.Heads = &model.Heads{Critic: critic, Sampler: sampler}
		if sampler {
			// The fork refuses to build these (spec 1.1), so the file cannot hold one.
			if cfg.Attention != model.Bidirectional {
				return nil, fmt.Errorf("model_args add_sampler_head is True with causal attention, which the fork cannot build: the checkpoint is inconsistent")
			}
			if arch.maskID == nil {
				return nil, fmt.Errorf("model_args add_sampler_head is True without mask_token_id, which the fork cannot build: the checkpoint is inconsistent")
			}
			ratio, err := a.floatOr("sampler_min_neighbors_ratio", 0.01)
			if err != nil {
				return nil, err
			}
			// Fork sampler heads never saw their neighbours (spec Q2).
			cfg.Sampler = &model.SamplerConfig{Neighbors: model.NeighborsZeros, MinNeighborsRatio: ratio}
			conv.Actions = append(conv.Actions, "sampler head written with sampler.neighbors \"zeros\": the fork trained it on zero neighbour embeddings (sampler-spec Q2)")
		}
	case model.TokenClassifier:
		if cfg.NumTokenClasses, err = a.intOr("num_token_classes", 2); err != nil {
			return nil, err
		}
		if binary {
			cfg.NumTokenClasses = 2
		}
	case model.SequenceScorer:
		// [SH] creates cls_embedding for judges only; the judge's own
		// model_args say which id it replaces (spec Q9).
		cfg.CLSTokenID = cls
	}
	if cls != nil && mode != model.SequenceScorer {
		conv.Actions = append(conv.Actions, fmt.Sprintf("model_args cls_token_id %d ignored: the [SH] model has a CLS embedding in judges only", *cls))
	}
	if arch.startSampler, err = a.intOr("start_sampler_iteration", 0); err != nil {
		return nil, err
	}
	if arch.startCritic, err = a.intOr("start_critic_iteration", 0); err != nil {
		return nil, err
	}
	if arch.endCritic, err = a.intOr("end_critic_iteration", 0); err != nil {
		return nil, err
	}
	return arch, nil
}

func d7Architecture(a argReader, config Dict, conv *Conversion) (*architecture, error) {
	arch := &architecture{family: D7}
	cfg := &arch.cfg
	if err := sizes(a, cfg); err != nil {
		return nil, err
	}
	// [D7] is always bidirectional with RoPE (spec 1.1); its loaders drop
	// stale attention_type / position_encoding fields.
	cfg.Attention = model.Bidirectional
	cfg.PositionEncoding = model.Rotary
	for _, f := range []struct{ key, want string }{{"attention_type", "bidirectional"}, {"position_encoding", "rotary"}} {
		key, want := f.key, f.want
		if s, _ := a.strOr(key, want); s != want {
			conv.Warnings = append(conv.Warnings, fmt.Sprintf("model_args %s is %q, which the [D7] model ignores (it is always %s): converted as %s", key, s, want, want))
		}
	}
	mode := "language_model"
	switch v := config["model_mode"].(type) {
	case string:
		mode = v
	case nil:
		conv.Warnings = append(conv.Warnings, "config has no model_mode: converted as a language model (the [D7] sampling scripts' default)")
	default:
		return nil, fmt.Errorf("config model_mode is %s, want 'language_model' or 'sequence_scorer'", describe(v))
	}
	var err error
	if arch.maskID, err = a.optInt("mask_token_id"); err != nil {
		return nil, err
	}
	if arch.padID, err = a.optInt("pad_token_id"); err != nil {
		return nil, err
	}
	// [D7] creates cls_embedding in every mode when cls_token_id is set.
	if cfg.CLSTokenID, err = a.optInt("cls_token_id"); err != nil {
		return nil, err
	}
	critic, err := a.boolOr("add_critic_head", false)
	if err != nil {
		return nil, err
	}
	switch mode {
	case "language_model":
		cfg.Kind = model.LanguageModel
		cfg.Heads = &model.Heads{Critic: critic}
		arch.dropSequence = true
	case "sequence_scorer":
		cfg.Kind = model.SequenceScorer
		arch.dropLM = true
		arch.dropCritic = critic
	default:
		return nil, fmt.Errorf("config model_mode is %q; a [D7] model is a 'language_model' or a 'sequence_scorer'", mode)
	}
	if arch.loraAttn, err = a.boolOr("use_lora_attn", false); err != nil {
		return nil, err
	}
	if arch.loraMLP, err = a.boolOr("use_lora_mlp", false); err != nil {
		return nil, err
	}
	if arch.loraRank, err = a.intOr("lora_rank", 8); err != nil {
		return nil, err
	}
	alpha, err := a.floatOr("lora_alpha", 16)
	if err != nil {
		return nil, err
	}
	if arch.loraRank <= 0 {
		// The fork builds no adapters without a positive rank.
		arch.loraAttn, arch.loraMLP = false, false
	} else {
		arch.loraScale = alpha / float64(arch.loraRank)
	}
	if arch.shareMain, err = a.boolOr("share_main_matrices", false); err != nil {
		return nil, err
	}
	// GPTConfig defaults use_guidance to True (spec Q11).
	if arch.guidance, err = a.boolOr("use_guidance", true); err != nil {
		return nil, err
	}
	if arch.startCritic, err = a.intOr("start_critic_iteration", 0); err != nil {
		return nil, err
	}
	if arch.endCritic, err = a.intOr("end_critic_iteration", 0); err != nil {
		return nil, err
	}
	return arch, nil
}

// ---- tensors ----------------------------------------------------------------------

var (
	reCausalMask = regexp.MustCompile(`^transformer\.h\.\d+\.attn\.bias$`)
	reRopeBuffer = regexp.MustCompile(`\.(inv_freq|cos_cached|sin_cached)$`)
	reGuidance   = regexp.MustCompile(`^(plan_encoder\.|transformer\.h\.\d+\.(cross|ln_cross)\.)`)
	reLoRA       = regexp.MustCompile(`^transformer\.h\.\d+\.(attn\.lora_(qkv|out)|mlp\.lora_(fc|proj))\.`)
)

// loraTargets pairs each base Linear of a block with its [D7] adapter.
var loraTargets = []struct{ base, lora string }{
	{"attn.c_attn", "attn.lora_qkv"},
	{"attn.c_proj", "attn.lora_out"},
	{"mlp.c_fc", "mlp.lora_fc"},
	{"mlp.c_proj", "mlp.lora_proj"},
}

// maxProblems bounds the tensor problems listed in one error.
const maxProblems = 40

// mapTensors turns the state dict into exactly the tensors of
// model.Expected, checking names and shapes, merging LoRA and dropping what
// inference does not use.
func (c *Checkpoint) mapTensors(arch *architecture) (map[string]*model.Tensor, []string, error) {
	cfg := &arch.cfg
	var actions []string

	// Strip the torch.compile prefix (the loaders strip a leading one only).
	sd := make(map[string]*Tensor, len(c.StateDict))
	prefixed := 0
	for _, k := range sortedNames(c.StateDict) {
		name := k
		if strings.HasPrefix(k, "_orig_mod.") {
			name = strings.TrimPrefix(k, "_orig_mod.")
			prefixed++
		}
		if _, dup := sd[name]; dup {
			return nil, nil, fmt.Errorf("the state dict has both %s and _orig_mod.%s", name, name)
		}
		sd[name] = c.StateDict[k]
	}
	if prefixed > 0 {
		actions = append(actions, fmt.Sprintf("stripped the _orig_mod. prefix (torch.compile) from %d keys", prefixed))
	}
	used := map[string]bool{}
	var problems []string
	drop := func(names []string, why string) {
		if len(names) == 0 {
			return
		}
		for _, n := range names {
			used[n] = true
		}
		actions = append(actions, fmt.Sprintf("dropped %s: %s", countNames(names), why))
	}
	matching := func(re *regexp.Regexp) []string {
		var out []string
		for _, n := range sortedNames(sd) {
			if re.MatchString(n) {
				out = append(out, n)
			}
		}
		return out
	}

	// Buffers inference recomputes.
	var masks []string
	for _, n := range matching(reCausalMask) {
		if s := sd[n].Shape; len(s) == 4 && s[0] == 1 && s[1] == 1 && s[2] == s[3] {
			masks = append(masks, n)
		}
	}
	drop(masks, "causal-mask buffers (attn.bias) of the non-SDPA attention")
	drop(matching(reRopeBuffer), "RoPE buffers (recomputed from rope_base)")

	// Heads.
	if head, ok := sd["lm_head.weight"]; ok {
		switch {
		case cfg.Kind == model.LanguageModel:
			wte, ok := sd["transformer.wte.weight"]
			if ok {
				if err := checkTied(head, wte); err != nil {
					return nil, nil, err
				}
				drop([]string{"lm_head.weight"}, "tied to transformer.wte.weight (equal values; remask ties it back)")
			}
		case arch.dropLM:
			drop([]string{"lm_head.weight"}, "the [D7] LM head, unused by a sequence_scorer")
		}
	}
	if arch.dropSequence {
		var seq []string
		for _, n := range []string{"sequence_head.base_predictor.weight", "sequence_head.A", "sequence_head.B", "sequence_head.temperature"} {
			if _, ok := sd[n]; ok {
				seq = append(seq, n)
			}
		}
		drop(seq, "the [D7] sequence head, unused by a language model")
	}
	if arch.dropCritic {
		if _, ok := sd["critic_head.weight"]; ok {
			drop([]string{"critic_head.weight"}, "the critic head, unused by a sequence_scorer")
		}
	}
	if arch.family == D7 && arch.guidance {
		drop(matching(reGuidance), "guidance weights (plan_encoder, cross, ln_cross), never used at sampling time (sampler-spec 1.7)")
	}

	// The tensors the architecture needs.
	out := map[string]*model.Tensor{}
	shared := 0
	for _, spec := range model.Expected(cfg) {
		name := spec.Name
		t, ok := sd[name]
		if !ok && arch.shareMain {
			// Shared matrices are listed under every block; tolerate a file
			// that lists them under block 0 only.
			if src, isBase := block0(name); isBase {
				if t, ok = sd[src]; ok {
					shared++
				}
			}
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("missing tensor %s, shape %v", name, spec.Shape))
			continue
		}
		used[name] = true
		if !slices.Equal(t.Shape, spec.Shape) {
			problems = append(problems, fmt.Sprintf("tensor %s: shape %v, want %v", name, t.Shape, spec.Shape))
			continue
		}
		if t.Data == nil {
			problems = append(problems, fmt.Sprintf("tensor %s: dtype %s, want a floating-point tensor", name, t.DType))
			continue
		}
		out[name] = &model.Tensor{Shape: slices.Clone(spec.Shape), Data: slices.Clone(t.Data)}
	}
	switch {
	case shared > 0:
		actions = append(actions, fmt.Sprintf("share_main_matrices: %d base matrices and biases not listed under their block were taken from block 0", shared))
	case arch.shareMain:
		actions = append(actions, "share_main_matrices: every block keeps its own copy of block 0's base matrices, so that each block's LoRA is merged into its own copy")
	}

	// LoRA: W' = W + (alpha/rank) * B @ A, per block (adapters are per block
	// even when the base matrices are shared).
	if arch.family == D7 && (arch.loraAttn || arch.loraMLP) {
		merged := 0
		for i := 0; i < cfg.NLayer; i++ {
			for _, tg := range loraTargets {
				if strings.HasPrefix(tg.base, "attn.") && !arch.loraAttn || strings.HasPrefix(tg.base, "mlp.") && !arch.loraMLP {
					continue
				}
				p := fmt.Sprintf("transformer.h.%d.", i)
				w := out[p+tg.base+".weight"]
				if w == nil {
					continue // already reported
				}
				nOut, nIn := w.Shape[0], w.Shape[1]
				aName, bName := p+tg.lora+".A.weight", p+tg.lora+".B.weight"
				A, okA := sd[aName]
				B, okB := sd[bName]
				if !okA {
					problems = append(problems, fmt.Sprintf("missing tensor %s, shape %v (model_args enable LoRA with rank %d)", aName, []int{arch.loraRank, nIn}, arch.loraRank))
				}
				if !okB {
					problems = append(problems, fmt.Sprintf("missing tensor %s, shape %v (model_args enable LoRA with rank %d)", bName, []int{nOut, arch.loraRank}, arch.loraRank))
				}
				if !okA || !okB {
					continue
				}
				used[aName], used[bName] = true, true
				r := arch.loraRank
				if !slices.Equal(A.Shape, []int{r, nIn}) || A.Data == nil {
					problems = append(problems, fmt.Sprintf("tensor %s: shape %v %s, want %v float", aName, A.Shape, A.DType, []int{r, nIn}))
					continue
				}
				if !slices.Equal(B.Shape, []int{nOut, r}) || B.Data == nil {
					problems = append(problems, fmt.Sprintf("tensor %s: shape %v %s, want %v float", bName, B.Shape, B.DType, []int{nOut, r}))
					continue
				}
				mergeLoRA(w.Data, A.Data, B.Data, nOut, nIn, r, arch.loraScale)
				merged++
			}
		}
		if merged > 0 {
			actions = append(actions, fmt.Sprintf("merged LoRA into %d matrices: W + (alpha/rank) * B @ A with rank %d, scaling %g", merged, arch.loraRank, arch.loraScale))
		}
	}

	// Everything else is unexpected.
	for _, n := range sortedNames(sd) {
		if used[n] {
			continue
		}
		problems = append(problems, fmt.Sprintf("unexpected tensor %s, shape %v%s", n, sd[n].Shape, unexpectedHint(n, arch)))
	}
	if len(problems) > 0 {
		if len(problems) > maxProblems {
			problems = append(problems[:maxProblems], fmt.Sprintf("... and %d more", len(problems)-maxProblems))
		}
		return nil, nil, fmt.Errorf("the state dict does not match the %s %s that model_args describe (n_layer %d, n_head %d, n_embd %d, vocab_size %d, bias %v%s):\n  %s",
			arch.family.Label(), cfg.Kind, cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.VocabSize, cfg.Bias, headsNote(cfg), strings.Join(problems, "\n  "))
	}
	if cfg.Kind == model.LanguageModel {
		out["lm_head.weight"] = out["transformer.wte.weight"]
	}
	return out, actions, nil
}

// block0 maps a shared base matrix of block i to block 0's name.
func block0(name string) (string, bool) {
	var i int
	var rest string
	if n, _ := fmt.Sscanf(name, "transformer.h.%d.%s", &i, &rest); n != 2 || i == 0 {
		return "", false
	}
	for _, tg := range loraTargets {
		if rest == tg.base+".weight" || rest == tg.base+".bias" {
			return "transformer.h.0." + rest, true
		}
	}
	return "", false
}

// unexpectedHint says which model_args flag would explain a tensor.
func unexpectedHint(name string, arch *architecture) string {
	switch {
	case strings.HasPrefix(name, "sampler_head."):
		return " (model_args add_sampler_head is not True)"
	case strings.HasPrefix(name, "critic_head."):
		return " (model_args add_critic_head is not True)"
	case name == "cls_embedding":
		return " (model_args cls_token_id is not set, or this mode has no CLS embedding)"
	case name == "transformer.wpe.weight":
		return " (the model_args position encoding is not absolute)"
	case reLoRA.MatchString(name):
		return " (model_args do not enable LoRA for this layer)"
	case reGuidance.MatchString(name):
		return " (model_args use_guidance is False)"
	case strings.HasSuffix(name, ".bias") && !arch.cfg.Bias:
		return " (model_args bias is False)"
	}
	return ""
}

func headsNote(cfg *model.Config) string {
	if cfg.Heads == nil {
		return ""
	}
	return fmt.Sprintf(", critic %v, sampler %v", cfg.Heads.Critic, cfg.Heads.Sampler)
}

// checkTied accepts an LM head only as a copy of the token embedding.
func checkTied(head, wte *Tensor) error {
	if head.Data == nil || wte.Data == nil {
		return fmt.Errorf("lm_head.weight (%s) or transformer.wte.weight (%s) is not a floating-point tensor: the checkpoint is not a fork model", head.DType, wte.DType)
	}
	if !slices.Equal(head.Shape, wte.Shape) {
		return fmt.Errorf("lm_head.weight has shape %v but transformer.wte.weight has %v: remask supports only LM heads tied to the token embedding (the fork ties them)", head.Shape, wte.Shape)
	}
	for i := range head.Data {
		if math.Float32bits(head.Data[i]) != math.Float32bits(wte.Data[i]) {
			return fmt.Errorf("lm_head.weight differs from transformer.wte.weight (element %d: %v vs %v): an untied LM head is not supported by remask/1 (the fork's models tie it)", i, head.Data[i], wte.Data[i])
		}
	}
	return nil
}

// mergeLoRA adds scale * B @ A to w in place: w (out, in), a (r, in), b (out, r).
// Sums are taken in float64 and rounded once.
func mergeLoRA(w, a, b []float32, nOut, nIn, r int, scale float64) {
	row := make([]float64, nIn)
	for o := 0; o < nOut; o++ {
		clear(row)
		for k := 0; k < r; k++ {
			bk := float64(b[o*r+k])
			ak := a[k*nIn : (k+1)*nIn]
			for i, v := range ak {
				row[i] += bk * float64(v)
			}
		}
		wo := w[o*nIn : (o+1)*nIn]
		for i := range wo {
			wo[i] = float32(float64(wo[i]) + scale*row[i])
		}
	}
}

func sortedNames[T any](m map[string]T) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// countNames is "3 tensors (a, b, c)", abbreviated after a few names.
func countNames(names []string) string {
	const show = 4
	list := names
	more := ""
	if len(list) > show {
		list, more = list[:show], fmt.Sprintf(", ... %d more", len(names)-show)
	}
	noun := "tensors"
	if len(names) == 1 {
		noun = "tensor"
	}
	return fmt.Sprintf("%d %s (%s%s)", len(names), noun, strings.Join(list, ", "), more)
}

// ---- warnings and card ------------------------------------------------------------

// trainingWarnings: heads saved before their training started or finished
// ramping up are still used by the reference (sampler-spec Q25).
func (c *Checkpoint) trainingWarnings(arch *architecture) []string {
	cfg := &arch.cfg
	if !cfg.HasCritic() && !cfg.HasSampler() {
		return nil
	}
	if c.IterNum == nil {
		return []string{"the checkpoint has no iter_num: cannot tell whether its critic/sampler heads were trained"}
	}
	it := *c.IterNum
	var w []string
	if cfg.HasSampler() && it < arch.startSampler {
		w = append(w, fmt.Sprintf("sampler head untrained: saved at iter_num %d, before start_sampler_iteration %d, so its weights are random; sample with --disable-sampler, or convert a later checkpoint", it, arch.startSampler))
	}
	if cfg.HasCritic() {
		switch {
		case it < arch.startCritic:
			w = append(w, fmt.Sprintf("critic head untrained: saved at iter_num %d, before start_critic_iteration %d, so its scores are random; do not use critic-based remasking with this checkpoint", it, arch.startCritic))
		case it < arch.endCritic:
			w = append(w, fmt.Sprintf("critic head half-trained: saved at iter_num %d, before end_critic_iteration %d (its loss weight was still ramping up); its scores may be unreliable", it, arch.endCritic))
		}
	}
	return w
}

// card is the model card: what the file is and where it came from.
func (c *Checkpoint) card(conv *Conversion) string {
	m := conv.Model
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", strings.TrimSuffix(filepath.Base(c.Path), filepath.Ext(c.Path)))
	fmt.Fprintf(&b, "A %s converted by `remask convert` from the diffusion-first nanoGPT fork checkpoint `%s` (%s family).\n\n",
		m.Config.Kind, filepath.Base(c.Path), conv.Family.Label())
	fmt.Fprintf(&b, "- size: %d layers, %d heads, n_embd %d, block_size %d, vocabulary %d\n", m.Config.NLayer, m.Config.NHead, m.Config.NEmbd, m.Config.BlockSize, m.Config.VocabSize)
	if c.IterNum != nil {
		fmt.Fprintf(&b, "- iter_num: %d\n", *c.IterNum)
	}
	if c.BestValLoss != nil {
		fmt.Fprintf(&b, "- best_val_loss (as saved; the latest validation loss when always_save_checkpoint is set): %.4f\n", *c.BestValLoss)
	}
	if d := c.dataset(""); d != "" {
		fmt.Fprintf(&b, "- dataset: %s\n", d)
	}
	for _, a := range conv.Actions {
		fmt.Fprintf(&b, "- conversion: %s\n", a)
	}
	for _, w := range conv.Warnings {
		fmt.Fprintf(&b, "- warning: %s\n", w)
	}
	return b.String()
}
