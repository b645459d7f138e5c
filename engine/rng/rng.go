// Package rng is remask's counter-based randomness: every random number is a
// pure function of (seed, sample index, iteration, position, purpose), computed
// with Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
// 3", SC'11). Nothing is stateful, so
//   - the same seed gives the same text on the same backend,
//   - sample i does not change when the batch size changes,
//   - a GPU kernel computing the same function (the WGSL twin in shaders/)
//     draws bit-identical numbers, whatever order work is done in.
//
// Layout: counter = (position, sample, iteration, purpose), key = (seed low 32
// bits, seed high 32 bits). A uniform float32 in [0, 1) takes the top 24 bits
// of the first output word, so it is exact in float32 on every backend.
package rng

import "math/bits"

// Purpose separates the independent streams drawn at the same coordinates.
type Purpose uint32

const (
	// SeedPlacement draws the random start of the seed text (sample 0, iteration 0, position 0).
	SeedPlacement Purpose = 1
	// Token draws the multinomial sample of a token (naive, sampler-head and multinomial paths).
	Token Purpose = 2
	// RemaskNoise is the u of the randomness_strength blend (1-r)*score + r*u.
	RemaskNoise Purpose = 3
	// RemaskLuck is the independent u2 of calibrated-critic remasking (score = u2 / w').
	RemaskLuck Purpose = 4
	// RemaskRandom orders the candidates of random remasking.
	RemaskRandom Purpose = 5
	// OrderNoise is the u of the unmask method's orderings: the Gumbel noise
	// of order_temperature and the random ordering.
	OrderNoise Purpose = 6
)

const (
	m0 = 0xD2511F53
	m1 = 0xCD9E8D57
	w0 = 0x9E3779B9
	w1 = 0xBB67AE85
)

// Philox4x32 is Philox4x32-10 on one counter block.
func Philox4x32(ctr [4]uint32, key [2]uint32) [4]uint32 {
	for i := 0; i < 10; i++ {
		if i > 0 {
			key[0] += w0
			key[1] += w1
		}
		hi0, lo0 := bits.Mul32(m0, ctr[0])
		hi1, lo1 := bits.Mul32(m1, ctr[2])
		ctr = [4]uint32{hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0}
	}
	return ctr
}

// Bits returns the 4 random words at the given coordinates.
func Bits(seed uint64, sample, iteration, position uint32, p Purpose) [4]uint32 {
	return Philox4x32([4]uint32{position, sample, iteration, uint32(p)}, [2]uint32{uint32(seed), uint32(seed >> 32)})
}

// ToUnit maps a random word to a float32 in [0, 1) with 24 bits of resolution.
func ToUnit(x uint32) float32 { return float32(x>>8) * (1.0 / 16777216.0) }

// Uniform returns a float32 in [0, 1) at the given coordinates.
func Uniform(seed uint64, sample, iteration, position uint32, p Purpose) float32 {
	return ToUnit(Bits(seed, sample, iteration, position, p)[0])
}
