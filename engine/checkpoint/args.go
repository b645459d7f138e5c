package checkpoint

import (
	"fmt"

	"github.com/remask/remask/engine/model"
)

// Reading model_args: the fork's GPTConfig arguments, turned into a
// remask/1 model.Config plus what only the converter needs (LoRA, shared
// matrices, the heads to drop, the training schedule).

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
