package sampler

import (
	"fmt"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/checked"
	"github.com/remask/remask/internal/units"
)

// Memory budget: a generation is refused before anything proportional to
// the batch is allocated when its estimated peak memory exceeds the budget,
// so that no size asks the process to die of "out of memory".

// DefaultMemoryBudget is the budget when Options.MaxMemory is 0: 8 GiB.
// The CLI replaces it by a share of the machine's available memory.
const DefaultMemoryBudget int64 = 8 << 30

// MaxTokens caps num_samples x sequence_length of one generation whatever
// the budget (the batch's positions are indexed by int32 on the GPU).
const MaxTokens = 1 << 28

// Per-position float32 counts of one network's forward pass (what the CPU
// backend keeps per position: residual, LayerNorm, q/k/v, v transposed,
// attention output, projection, 4C MLP, final LayerNorm = 13 C), and of the
// sampler's host buffers besides the logits (tokens, protection, critic,
// prediction, wrongness and selection: 8 words).
const (
	trunkFloatsPerEmbd = 13
	hostWordsPerToken  = 8
	recordBytesPerStep = 16 // one position of one iteration in --save records
)

// NetBytes estimates the activation bytes one network of configuration c
// keeps for bt positions (its trunk: trunkFloatsPerEmbd float32s of n_embd
// each), or false when that overflows. MemoryNeed counts it for every
// network; servers use it for each model's share of a request.
func NetBytes(c *model.Config, bt int) (int64, bool) {
	per, ok := checked.Mul64(int64(c.NEmbd), 4*trunkFloatsPerEmbd)
	if !ok {
		return 0, false
	}
	return checked.Mul64(per, int64(bt))
}

// MemoryNeed estimates the peak bytes of a generation of B rows of T tokens
// with the given networks (judge and remasker may be nil): every network's
// trunk activations, the logits twice (the backend's and the host's copy),
// the host's per-position buffers, and with record the per-iteration records.
// ok is false when the estimate overflows int64 (certainly too large).
func MemoryNeed(lm, judge, remasker *model.Config, B, T, iterations int, record bool) (need int64, ok bool) {
	tokens, ok := checked.Mul64(int64(B), int64(T))
	if !ok {
		return 0, false
	}
	per := int64(4 * hostWordsPerToken)
	for _, c := range []*model.Config{lm, judge, remasker} {
		if c == nil {
			continue
		}
		trunk, ok1 := checked.Mul64(int64(c.NEmbd), 4*trunkFloatsPerEmbd)
		out, ok2 := checked.Mul64(int64(c.OutputSize()), 2*4)
		if per, ok = checked.Add64(per, trunk); !ok || !ok1 || !ok2 {
			return 0, false
		}
		if per, ok = checked.Add64(per, out); !ok {
			return 0, false
		}
	}
	if need, ok = checked.Mul64(tokens, per); !ok {
		return 0, false
	}
	if record {
		rec, ok1 := checked.Mul64(tokens, int64(iterations))
		rec, ok2 := checked.Mul64(rec, recordBytesPerStep)
		if need, ok = checked.Add64(need, rec); !ok || !ok1 || !ok2 {
			return 0, false
		}
	}
	return need, true
}

// checkSize refuses B x T over MaxTokens or over the memory budget (budget
// <= 0: DefaultMemoryBudget), naming num_samples and sequence_length, the
// estimate and the limit.
func checkSize(lm, judge, remasker *model.Config, B, T, iterations int, record bool, budget int64) error {
	if n, ok := checked.Mul(B, T); !ok || n > MaxTokens {
		return optErr("num_samples", "num_samples x sequence_length = %d x %d is more than the %d tokens one generation may have; lower num_samples or sequence_length", B, T, MaxTokens)
	}
	if budget <= 0 {
		budget = DefaultMemoryBudget
	}
	need, ok := MemoryNeed(lm, judge, remasker, B, T, iterations, record)
	if !ok || need > budget {
		est := "more than 8 EiB"
		if ok {
			est = FormatBytes(need)
		}
		fit := "not one sample of this length fits"
		if row, ok := MemoryNeed(lm, judge, remasker, 1, T, iterations, record); ok && row > 0 && budget/row > 0 {
			fit = fmt.Sprintf("at most %d samples of this length fit", budget/row)
		}
		return optErr("num_samples", "num_samples x sequence_length = %d x %d needs about %s of memory, more than the memory budget of %s (max_memory); %s: lower num_samples or sequence_length, or raise the budget",
			B, T, est, FormatBytes(budget), fit)
	}
	return nil
}

// FormatBytes writes n bytes in binary units: "512 B", "1.5 GiB"
// (internal/units.Bytes, the repository's one byte-size format).
func FormatBytes(n int64) string { return units.Bytes(n) }

// CheckMemory is the size check Generate and Score make before they
// allocate: B rows of T tokens with these models (judge and remasker may be
// nil) against MaxTokens and the budget o.MaxMemory, with o's iterations
// and recording. Callers that build the rows themselves (a scorer cutting
// windows out of a file) call it first.
func CheckMemory(lm, judge, remasker *model.Model, B, T int, o Options) error {
	if lm == nil {
		return optErr("model", "no language model given")
	}
	return checkSize(&lm.Config, configOf(judge), configOf(remasker), B, T, o.EffectiveIterations(), o.Record, o.MaxMemory)
}

// configOf is m's configuration, nil for no model.
func configOf(m *model.Model) *model.Config {
	if m == nil {
		return nil
	}
	return &m.Config
}
