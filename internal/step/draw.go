package step

import (
	"math"
	"sort"
)

// Sampler draws one token from a row of logits: excluded ids get
// probability 0, the logits are divided by the temperature, the nucleus rule
// keeps the top-p set, and a uniform u in [0, 1) picks the token by inverse
// CDF over ids in ascending order (docs/sampling.md). It owns scratch space
// and is not safe for concurrent use.
type Sampler struct {
	Exclude     []bool // (V) ids never sampled
	Temperature float64
	TopP        float64   // 1 disables the nucleus rule
	probs       []float64 // (V) scratch
	order       []int     // (V) scratch for the nucleus sort
}

// NewSampler returns a Sampler for a vocabulary of len(exclude) ids.
func NewSampler(exclude []bool, temperature, topP float64) *Sampler {
	v := len(exclude)
	return &Sampler{Exclude: exclude, Temperature: temperature, TopP: topP,
		probs: make([]float64, v), order: make([]int, v)}
}

// Distribution returns the (unnormalised) sampling distribution of logits
// (V) after exclusion, temperature and the nucleus rule, and its total
// mass. The slice is the sampler's scratch: valid until the next call.
func (s *Sampler) Distribution(logits []float32) (probs []float64, total float64) {
	p := s.probs
	maxL := math.Inf(-1)
	for i, l := range logits {
		if s.Exclude[i] {
			continue
		}
		if x := float64(l) / s.Temperature; x > maxL {
			maxL = x
		}
	}
	for i, l := range logits {
		if s.Exclude[i] || math.IsInf(maxL, -1) {
			p[i] = 0
			continue
		}
		p[i] = math.Exp(float64(l)/s.Temperature - maxL)
		total += p[i]
	}
	if s.TopP < 1 && total > 0 {
		total = s.nucleus(total)
	}
	return p, total
}

// nucleus zeroes every probability outside the top-p set and returns the
// remaining mass. Sorted by probability descending (ties: lower id first),
// the token at rank r is kept iff r == 0 or the cumulative probability of
// ranks 0..r-1 is <= top_p: the set runs up to and including the first token
// whose cumulative probability exceeds top_p.
func (s *Sampler) nucleus(total float64) float64 {
	p, order := s.probs, s.order
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		pa, pb := p[order[a]], p[order[b]]
		if pa != pb {
			return pa > pb
		}
		return order[a] < order[b]
	})
	var cum, kept float64
	for r, id := range order {
		if r == 0 || cum <= s.TopP {
			cum += p[id] / total
			kept += p[id]
			continue
		}
		p[id] = 0
	}
	return kept
}

// Draw picks an id from logits with the uniform u in [0, 1); -1 when no id
// has probability > 0 (every id excluded, or NaN and -inf logits).
func (s *Sampler) Draw(logits []float32, u float32) int32 {
	p, total := s.Distribution(logits)
	return Pick(p, total, u)
}

// Pick is the inverse-CDF draw: the first id (ascending) whose cumulative
// mass exceeds u·total. If rounding leaves none, the last id with mass
// wins; -1 when no id has mass.
func Pick(p []float64, total float64, u float32) int32 {
	target := float64(u) * total
	var cum float64
	last := -1
	for i, x := range p {
		if x == 0 {
			continue
		}
		cum += x
		last = i
		if cum > target {
			return int32(i)
		}
	}
	return int32(last)
}
