package sampler

import (
	"math"
	"sort"
)

// tokenSampler draws one token from a row of logits: excluded ids get
// probability 0, the logits are divided by the temperature, the nucleus rule
// keeps the top-p set, and a uniform u in [0, 1) picks the token by inverse
// CDF over ids in ascending order (sampler-spec 4.4.1). It owns scratch space
// and is not safe for concurrent use.
type tokenSampler struct {
	exclude     []bool // (V) ids never sampled
	temperature float64
	topP        float64
	probs       []float64 // (V) scratch
	order       []int     // (V) scratch for the nucleus sort
}

func newTokenSampler(exclude []bool, temperature, topP float64) *tokenSampler {
	v := len(exclude)
	return &tokenSampler{exclude: exclude, temperature: temperature, topP: topP,
		probs: make([]float64, v), order: make([]int, v)}
}

// distribution fills s.probs with the (unnormalised) sampling distribution
// for logits (V) and returns its total mass.
func (s *tokenSampler) distribution(logits []float32) float64 {
	p := s.probs
	maxL := math.Inf(-1)
	for i, l := range logits {
		if s.exclude[i] {
			continue
		}
		if x := float64(l) / s.temperature; x > maxL {
			maxL = x
		}
	}
	var total float64
	for i, l := range logits {
		if s.exclude[i] || math.IsInf(maxL, -1) {
			p[i] = 0
			continue
		}
		p[i] = math.Exp(float64(l)/s.temperature - maxL)
		total += p[i]
	}
	if s.topP < 1 && total > 0 {
		total = s.nucleus(total)
	}
	return total
}

// nucleus zeroes every probability outside the top-p set and returns the
// remaining mass. Sorted by probability descending (ties: lower id first),
// the token at rank r is kept iff r == 0 or the cumulative probability of
// ranks 0..r-1 is <= top_p: the set runs up to and including the first token
// whose cumulative probability exceeds top_p.
func (s *tokenSampler) nucleus(total float64) float64 {
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
		if r == 0 || cum <= s.topP {
			cum += p[id] / total
			kept += p[id]
			continue
		}
		p[id] = 0
	}
	return kept
}

// draw picks an id from logits with the uniform u in [0, 1).
func (s *tokenSampler) draw(logits []float32, u float32) int32 {
	total := s.distribution(logits)
	return pick(s.probs, total, u)
}

// pick is the inverse-CDF draw: the first id (ascending) whose cumulative
// mass exceeds u*total. If rounding leaves none, the last id with mass wins.
func pick(p []float64, total float64, u float32) int32 {
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
