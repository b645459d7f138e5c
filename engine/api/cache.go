package api

import (
	"slices"

	"github.com/remask/remask/engine/model"
)

// The model cache: models are parsed when first used and kept in memory
// for the next request, up to Config.MaxLoadedModels models and
// Config.MaxModelMemory bytes (weights plus the activation buffers their
// Nets keep). Beyond that the least recently used model that no request
// uses is dropped; a library model stays listed (and loads again when
// needed), a model added by POST /v1/models leaves the library.

// acquire marks e as used by one more request: it is not dropped until the
// matching release.
func (s *Server) acquire(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.users++
	s.useClock++
	e.lastUsed = s.useClock
}

func (s *Server) release(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.users--
}

// noteLoaded records the weights of e's newly parsed model, then drops
// other models if the cache is over its bounds.
func (s *Server) noteLoaded(e *entry, m *model.Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.weights = weightBytes(m)
	s.evictLocked()
}

// noteActivations records that e ran a request needing act bytes of
// activations (its Net keeps buffers that large), then applies the bounds.
func (s *Server) noteActivations(e *entry, act int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if act > e.act {
		e.act = act
	}
	s.evictLocked()
}

// evictLocked drops idle models, least recently used first, while the
// cache is over a bound. s.mu is held.
func (s *Server) evictLocked() {
	type held struct {
		e     *entry
		bytes int64
	}
	var loaded []held
	var total int64
	for _, id := range s.order {
		e := s.entries[id]
		e.mu.Lock()
		in := e.m != nil
		e.mu.Unlock()
		if in {
			b := e.weights + e.act
			loaded = append(loaded, held{e, b})
			total += b
		}
	}
	slices.SortFunc(loaded, func(a, b held) int { return int(a.e.lastUsed - b.e.lastUsed) })
	for _, h := range loaded {
		if len(loaded) <= s.cfg.MaxLoadedModels && total <= s.cfg.MaxModelMemory {
			return
		}
		if h.e.users > 0 {
			continue
		}
		s.dropLocked(h.e)
		total -= h.bytes
		loaded = slices.DeleteFunc(loaded, func(x held) bool { return x.e == h.e })
	}
}

// dropLocked forgets e's model; its Net is closed by the next request that
// holds the device (closing it now could race with the one running).
func (s *Server) dropLocked(e *entry) {
	e.mu.Lock()
	if e.loading != nil { // being read again: leave it to that read
		e.mu.Unlock()
		return
	}
	e.m = nil
	if e.net != nil {
		s.retired = append(s.retired, e.net)
		e.net = nil
	}
	e.mu.Unlock()
	e.weights, e.act = 0, 0
	s.log.Info("model dropped from memory", "id", e.id, "max_loaded_models", s.cfg.MaxLoadedModels, "max_model_memory", s.cfg.MaxModelMemory)
	if !e.library {
		delete(s.entries, e.id)
		s.order = slices.DeleteFunc(s.order, func(id string) bool { return id == e.id })
	}
}

// closeRetired frees the dropped Nets that can be closed. The caller holds
// the device's turn.
func (s *Server) closeRetired() {
	s.mu.Lock()
	nets := s.retired
	s.retired = nil
	s.mu.Unlock()
	for _, n := range nets {
		if c, ok := n.(interface{ Close() }); ok {
			c.Close()
		}
	}
}

// weightBytes is the memory of m's parsed weights (shared tensors once).
func weightBytes(m *model.Model) int64 {
	seen := map[*float32]bool{}
	var n int64
	for _, t := range m.Tensors {
		if len(t.Data) == 0 || seen[&t.Data[0]] {
			continue
		}
		seen[&t.Data[0]] = true
		n += int64(len(t.Data)) * 4
	}
	return n
}
