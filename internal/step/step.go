// Package step holds the pure steps of remask's sampling loop: the remask
// scores of every strategy, the per-row selection, the token draw, the wave
// plan of the sampler head and the quality statistics. They take slices and
// numbers, call no network and keep no state between calls.
//
// engine/sampler's host loop is written with them, and engine/gpu's kernel
// tests compare every device kernel of the loop with them (one reference,
// not a copy per test). Everything is float64, as the host loop computes;
// the kernels compute in f32, so their tests compare with a tolerance.
//
// The behaviour is specified in docs/sampling.md; the numbers of Strategy
// are the STRATEGY_* constants of shaders/remask.wgsl (a test pins them).
package step

import (
	"fmt"
	"math"
)

// Strategy is a remasking strategy, numbered as shaders/remask.wgsl's
// STRATEGY_* constants. engine/sampler's Options.Remasking names them
// (sampler.RemaskCritic, ...); String returns those names.
type Strategy uint32

const (
	Critic     Strategy = 0 // raw critic logits
	Calibrated Strategy = 1 // calibrated critic: table[bucket of sigmoid(critic)]
	Self       Strategy = 2 // 1 - softmax(LM logits of the input)[prediction]
	Random     Strategy = 3 // uniform scores, no wrongness
	Model      Strategy = 4 // an external token classifier's class-1 logit
)

// Strategies lists every strategy in numeric order.
var Strategies = []Strategy{Critic, Calibrated, Self, Random, Model}

var strategyNames = [...]string{Critic: "critic", Calibrated: "calibrated", Self: "self", Random: "random", Model: "model"}

// String returns the strategy's name as engine/sampler's options spell it.
func (s Strategy) String() string {
	if s.Valid() {
		return strategyNames[s]
	}
	return fmt.Sprintf("Strategy(%d)", uint32(s))
}

// Valid reports whether s is one of the five strategies.
func (s Strategy) Valid() bool { return int(s) < len(strategyNames) }

// ParseStrategy returns the strategy named name; an unknown name is an error.
func ParseStrategy(name string) (Strategy, error) {
	for i, n := range strategyNames {
		if n == name {
			return Strategy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown remasking strategy %q (want critic, calibrated, self, random or model)", name)
}

// Sigmoid is 1 / (1 + e^-x).
func Sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// softmaxAt is softmax(row)[i] in float64: exp(row[i] - max) / sum exp(row - max).
func softmaxAt(row []float32, i int) float64 {
	maxL := math.Inf(-1)
	for _, l := range row {
		maxL = math.Max(maxL, float64(l))
	}
	var z float64
	for _, l := range row {
		z += math.Exp(float64(l) - maxL)
	}
	return math.Exp(float64(row[i])-maxL) / z
}
