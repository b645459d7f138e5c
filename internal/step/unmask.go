package step

import (
	"fmt"
	"math"
	"sort"
)

// The pure steps of the unmask method (docs/sampling.md, "Method unmask"):
// positions are committed and never remasked; an ordering ranks the masked
// positions of the current block, a schedule says how many to commit per
// step, a confidence threshold can commit more (Fast-dLLM), and a top-1/top-2
// gap test can commit everything at once (Prophet).

// Ordering ranks masked positions for commitment: larger keys first.
type Ordering int

const (
	OrderConfidence Ordering = iota // top-1 probability (MaskGIT, LLaDA low_confidence)
	OrderMargin                     // top-1 minus top-2 probability (Dream topk_margin)
	OrderEntropy                    // negative entropy, sum p ln p (Dream entropy)
	OrderRandom                     // a uniform draw (LLaDA random)
)

var orderingNames = [...]string{OrderConfidence: "confidence", OrderMargin: "margin", OrderEntropy: "entropy", OrderRandom: "random"}

// OrderingNames lists the orderings' names in numeric order.
func OrderingNames() []string { return append([]string(nil), orderingNames[:]...) }

func (o Ordering) String() string {
	if o >= 0 && int(o) < len(orderingNames) {
		return orderingNames[o]
	}
	return fmt.Sprintf("Ordering(%d)", int(o))
}

// ParseOrdering returns the ordering named name; an unknown name is an error.
func ParseOrdering(name string) (Ordering, error) {
	for i, n := range orderingNames {
		if n == name {
			return Ordering(i), nil
		}
	}
	return 0, fmt.Errorf("unknown ordering %q (want confidence, margin, entropy or random)", name)
}

// Certainty summarises a position's sampling distribution: p (unnormalised,
// as Sampler.Distribution returns it) with total mass total > 0. P1 and P2
// are the two largest normalised probabilities (P2 = 0 when one id has all
// the mass) and NegEntropy is sum p ln p over the ids with mass (<= 0).
type Certainty struct {
	P1, P2, NegEntropy float64
}

// Certain computes the Certainty of p.
func Certain(p []float64, total float64) Certainty {
	var c Certainty
	for _, x := range p {
		if x <= 0 {
			continue
		}
		q := x / total
		switch {
		case q > c.P1:
			c.P1, c.P2 = q, c.P1
		case q > c.P2:
			c.P2 = q
		}
		c.NegEntropy += q * math.Log(q)
	}
	return c
}

// Gap is the Prophet gap, P1 - P2.
func (c Certainty) Gap() float64 { return c.P1 - c.P2 }

// Score is the ordering score of a position with certainty c; u is the
// position's OrderNoise uniform (OrderRandom's score as it is). The
// confidence, margin and entropy scores are rounded to 1/1024 (RoundScore)
// and their ties broken by u (TieBreak).
func (o Ordering) Score(c Certainty, u float64) float64 {
	switch o {
	case OrderMargin:
		return RoundScore(c.Gap()) + TieBreak(u)
	case OrderEntropy:
		return RoundScore(c.NegEntropy) + TieBreak(u)
	case OrderRandom:
		return u
	}
	return RoundScore(c.P1) + TieBreak(u)
}

// TieBreak is what an ordering adds to a rounded score so that equal
// rounded scores rank in a random order (the position's OrderNoise draw)
// rather than left to right: the top 11 bits of u times 2^-21, in [0,
// 2^-10), less than one step of RoundScore, so it never reorders different
// rounded scores. The sum is exact in float64 and, for |score| < 8 (every
// score of a vocabulary up to e^8 ids), in f32, so the device ranks alike;
// equal sums (the same 11 bits) go to the lower position.
func TieBreak(u float64) float64 {
	return math.Floor(u*2048) / (1 << 21)
}

// RoundScore rounds an ordering score to a multiple of 1/1024 (halves away
// from zero, Go's math.Round), as BootstrapConfidence rounds the bootstrap's
// max logits and for the same reason: on an all-[MASK] row of a model
// without absolute positions every position has the same distribution up
// to float rounding (~1e-7), so unrounded scores would rank by rounding
// noise, differently per backend and per loop (float64 host, f32 device).
// Rounded, they tie, and TieBreak orders them by a random draw that both
// loops compute exactly.
func RoundScore(x float64) float64 {
	return math.Round(x*1024) / 1024
}

// GumbelKey is the ordering key with Gumbel noise at temperature temp:
// score/temp + g, g = -ln(-ln u), u in [0, 1) the position's OrderNoise
// uniform. The top k keys are then a draw of k positions without
// replacement with probabilities softmax(score/temp), which is Dream's
// alg_temp (its multinomial over softmax(confidence/alg_temp)). temp = 0
// returns score (no noise). u = 0 gives -inf: never first.
func GumbelKey(score, temp, u float64) float64 {
	if temp == 0 {
		return score
	}
	return score/temp - math.Log(-math.Log(u))
}

// UnmaskSchedule says how many positions of a block stay masked after each step.
type UnmaskSchedule int

const (
	ScheduleLinear UnmaskSchedule = iota // LLaDA: m0/S per step, the remainder first
	ScheduleCosine                       // MaskGIT: floor(m0·cos(π/2·(s+1)/S)) stay masked
	ScheduleRatio                        // the fork's ratio schedule: floor(m0·ratio(s+1)) stay masked
)

var scheduleNames = [...]string{ScheduleLinear: "linear", ScheduleCosine: "cosine", ScheduleRatio: "ratio"}

func (s UnmaskSchedule) String() string {
	if s >= 0 && int(s) < len(scheduleNames) {
		return scheduleNames[s]
	}
	return fmt.Sprintf("UnmaskSchedule(%d)", int(s))
}

// ParseUnmaskSchedule returns the schedule named name; unknown names are errors.
func ParseUnmaskSchedule(name string) (UnmaskSchedule, error) {
	for i, n := range scheduleNames {
		if n == name {
			return UnmaskSchedule(i), nil
		}
	}
	return 0, fmt.Errorf("unknown unmask schedule %q (want linear, cosine or ratio)", name)
}

// ForkRatio is the fork's schedule value at index i of an n-iteration
// schedule: list[i] while i < len(list), else end, when a custom list is
// given; otherwise start - i/(n-1)·(start-end) for n > 1 and end for n <= 1.
func ForkRatio(start, end float64, list []float64, i, n int) float64 {
	if len(list) > 0 {
		if i < len(list) {
			return list[i]
		}
		return end
	}
	if n <= 1 {
		return end
	}
	return start - float64(i)/float64(n-1)*(start-end)
}

// StillMasked is how many of a block's m0 masked positions (at the block's
// first step) the schedule leaves masked after step s (0-based) of S; 0
// after the last step. ratio(i) is the fork's ratio at index i (ScheduleRatio only).
func (sc UnmaskSchedule) StillMasked(m0, S, s int, ratio func(i int) float64) int {
	if s >= S-1 {
		return 0
	}
	var left int
	switch sc {
	case ScheduleCosine:
		left = int(math.Floor(float64(m0) * math.Cos(math.Pi/2*float64(s+1)/float64(S))))
	case ScheduleRatio:
		left = int(math.Floor(float64(m0) * ratio(s+1)))
	default: // linear: step i commits m0/S, plus one for i < m0%S
		base, rem := m0/S, m0%S
		left = m0 - (s+1)*base - min(s+1, rem)
	}
	return min(max(left, 0), m0)
}

// CommitCount is how many positions a step commits when masked are still
// masked in the block and the schedule wants left: masked - left, at least
// one, at most masked.
func CommitCount(masked, left int) int {
	return min(max(masked-left, 1), masked)
}

// SelectCommits returns the positions of cands to commit: the k with the
// largest keys (ties: the lower position; cands ascending), together with
// every candidate whose top-1 probability conf is >= tau when tau > 0
// (Fast-dLLM's threshold), ascending. keys and conf are indexed like cands.
func SelectCommits(cands []int, keys, conf []float64, k int, tau float64) []int {
	idx := make([]int, len(cands))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return keys[idx[a]] > keys[idx[b]] })
	take := make([]bool, len(cands))
	for r, i := range idx {
		if r < k {
			take[i] = true
		}
		if tau > 0 && conf[i] >= tau {
			take[i] = true
		}
	}
	var out []int
	for i, p := range cands {
		if take[i] {
			out = append(out, p)
		}
	}
	return out
}

// EarlyCommit is Prophet's test: true when gap > 0 and the top-1/top-2 gap
// of every remaining masked position is at least gap (an empty list is
// false: nothing is left to commit).
func EarlyCommit(gaps []float64, gap float64) bool {
	if gap <= 0 || len(gaps) == 0 {
		return false
	}
	for _, g := range gaps {
		if !(g >= gap) {
			return false
		}
	}
	return true
}

// Blocks is the number of semi-autoregressive blocks of length L in a row
// of T positions (L <= 0 or L >= T: one block).
func Blocks(T, L int) int {
	if L <= 0 || L >= T {
		return 1
	}
	n := T / L
	if T%L != 0 {
		n++
	}
	return n
}

// BlockSteps is the step budget of block j when N steps are shared by nb
// blocks: N/nb, plus one for j < N%nb (so they sum to N). N >= nb.
func BlockSteps(N, nb, j int) int {
	s := N / nb
	if j < N%nb {
		s++
	}
	return s
}
