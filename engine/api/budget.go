package api

import (
	"fmt"
	"net/http"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/checked"
	"github.com/remask/remask/internal/units"
)

// eventBytesPerBT is what a streamed iteration event adds per position
// (tokens, text and wrongness): about 32 bytes. The rest of a generation's
// memory is the sampler's own estimate (sampler.MemoryNeed).
const eventBytesPerBT = 32

// config is m's configuration, or nil for no model.
func config(m *model.Model) *model.Config {
	if m == nil {
		return nil
	}
	return &m.Config
}

// checkMemory estimates the bytes the generation j allocates for length
// positions per sample (sampler.MemoryNeed, plus the streamed events),
// before anything is allocated, and refuses it with 413 too_much_memory
// over Config.MaxRequestMemory. It records each Net's share
// (sampler.NetBytes) in j.acts for the model cache.
func (s *Server) checkMemory(j *job, length int) *apiError {
	o := &j.opts.Options
	lm := j.models[0]
	total, ok := sampler.MemoryNeed(config(lm), config(j.models[1]), config(j.models[2]), o.NumSamples, length, o.EffectiveIterations(), false)
	bt, good := checked.Mul(o.NumSamples, length)
	ok = ok && good
	if ok && j.opts.Stream {
		ev, good := checked.Mul64(eventBytesPerBT, int64(bt))
		if good {
			total, good = checked.Add64(total, ev)
		}
		ok = good
	}
	if ok {
		for i, m := range j.models {
			if m != nil {
				j.acts[i], _ = sampler.NetBytes(&m.Config, bt) // at most total: no overflow
			}
		}
	}
	if ok && total <= s.cfg.MaxRequestMemory {
		return nil
	}
	need := "more than 2^63 bytes"
	if ok {
		need = fmt.Sprintf("about %s", units.Bytes(total))
	}
	ae := &apiError{status: http.StatusRequestEntityTooLarge, Code: "too_much_memory", Field: "num_samples",
		Message: fmt.Sprintf("num_samples x sequence_length = %d x %d positions on model %q (n_embd %d, vocab %d) need %s of activations, over this server's limit of %s per request (--max-request-memory); lower num_samples or the length",
			o.NumSamples, length, j.lm.id, lm.Config.NEmbd, lm.Config.VocabSize, need, units.Bytes(s.cfg.MaxRequestMemory)),
		Limit: int(s.cfg.MaxRequestMemory)}
	if ok {
		ae.Requested = int(total)
	}
	return ae
}
