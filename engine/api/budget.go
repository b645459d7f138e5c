package api

import (
	"fmt"
	"net/http"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/checked"
	"github.com/remask/remask/internal/units"
)

// Bytes per position that a generation allocates, from the buffers of
// engine/cpu (activations) and engine/sampler (the batch's state):
//
//   - each Net's trunk keeps x, ln, vᵀ, the attention output, the
//     projection and h (C floats each), qkv (3C) and c_fc (4C): 13·C float32s;
//   - the sampler holds the language model's logits and the sampler head's
//     output (V float32s each), and about 64 bytes of tokens, flags,
//     critic values and scores;
//   - a remasking model's class scores: K float32s;
//   - a streamed iteration event with tokens, text and wrongness: about 32.
const (
	trunkFloatsPerC   = 13
	samplerBytesPerBT = 64
	eventBytesPerBT   = 32
)

// netActivationBytes is what a Net of m keeps for B·T positions.
func netActivationBytes(m *model.Model, bt int) (int, bool) {
	return checked.MulAll(4, trunkFloatsPerC, m.Config.NEmbd, bt)
}

// checkMemory estimates the bytes the generation j allocates for length
// positions per sample, before anything is allocated, and refuses it with
// 413 too_much_memory over Config.MaxRequestMemory. It records each Net's
// share in j.acts for the model cache.
func (s *Server) checkMemory(j *job, length int) *apiError {
	o := &j.opts.Options
	bt, ok := checked.Mul(o.NumSamples, length)
	total := 0
	add := func(n int, good bool) {
		if !good {
			ok = false
			return
		}
		if total, good = checked.Add(total, n); !good {
			ok = false
		}
	}
	for i, m := range j.models {
		if m == nil {
			continue
		}
		n, good := netActivationBytes(m, bt)
		add(n, good)
		j.acts[i] = int64(n)
	}
	lm := j.models[0]
	perPos, good := checked.Add(8*lm.Config.VocabSize, samplerBytesPerBT)
	if good && j.opts.Stream {
		perPos, good = checked.Add(perPos, eventBytesPerBT)
	}
	if r := j.models[2]; r != nil && good {
		perPos, good = checked.Add(perPos, 4*r.Config.NumTokenClasses)
	}
	if good {
		n, good2 := checked.Mul(perPos, bt)
		add(n, good2)
	} else {
		ok = false
	}
	if ok && int64(total) <= s.cfg.MaxRequestMemory {
		return nil
	}
	need := "more than 2^63 bytes"
	if ok {
		need = fmt.Sprintf("about %s", units.Bytes(int64(total)))
	}
	ae := &apiError{status: http.StatusRequestEntityTooLarge, Code: "too_much_memory", Field: "num_samples",
		Message: fmt.Sprintf("num_samples x sequence_length = %d x %d positions on model %q (n_embd %d, vocab %d) need %s of activations, over this server's limit of %s per request (--max-request-memory); lower num_samples or the length",
			o.NumSamples, length, j.lm.id, lm.Config.NEmbd, lm.Config.VocabSize, need, units.Bytes(s.cfg.MaxRequestMemory)),
		Limit: int(s.cfg.MaxRequestMemory)}
	if ok {
		ae.Requested = total
	}
	return ae
}
