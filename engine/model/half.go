package model

import "math"

// Half-precision conversions used by the reader and the writer.
//
// float16 is IEEE 754 binary16 (1 sign bit, 5 exponent bits, 10 mantissa
// bits); bfloat16 is the top half of a float32 (1, 8, 7). Widening to float32
// is exact for every value, subnormals, infinities and NaN payloads included.
// Narrowing rounds to nearest, ties to even, and reports a finite value that
// rounds to infinity (overflow), so a writer can refuse to turn a weight
// into inf silently.

const (
	f16SignMask = 0x8000
	f16ExpMask  = 0x7c00 // exponent all ones: inf or NaN
	f16Quiet    = 0x0200 // the quiet bit of a float16 NaN
	bf16Quiet   = 0x0040 // the quiet bit of a bfloat16 NaN
)

// Float16ToFloat32 widens an IEEE binary16 value to float32, exactly.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&f16SignMask) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0 && man == 0: // ±0
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: man * 2^-24, exact in float32
		f := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	case exp == 0x1f: // inf (man == 0) or NaN (payload kept)
		return math.Float32frombits(sign | 0xff<<23 | man<<13)
	}
	// Normal: rebias the exponent from 15 to 127, widen the mantissa.
	return math.Float32frombits(sign | (exp-15+127)<<23 | man<<13)
}

// Float32ToFloat16 narrows f to IEEE binary16, rounding to nearest with ties
// to even. ok is false when a finite f is too large and became ±inf; every
// other input (infinities and NaN included) gives ok == true. NaNs stay NaN
// (quiet) with their sign and the top mantissa bits of their payload.
func Float32ToFloat16(f float32) (h uint16, ok bool) {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & f16SignMask
	exp := int(bits>>23) & 0xff
	man := bits & 0x7fffff

	switch {
	case exp == 0xff && man == 0: // ±inf
		return sign | f16ExpMask, true
	case exp == 0xff: // NaN
		return sign | f16ExpMask | f16Quiet | uint16(man>>13), true
	case exp == 0: // ±0 and float32 subnormals (< 2^-126): far below half the smallest float16
		return sign, true
	}

	e := exp - 127 // unbiased exponent: f = 1.man * 2^e
	if e > 15 {
		return sign | f16ExpMask, false
	}
	if e >= -14 {
		// Normal float16: keep the top 10 of 23 mantissa bits, round on the 13
		// dropped ones. A carry out of the mantissa correctly bumps the exponent.
		h = uint16(e+15)<<10 | uint16(man>>13)
		rem := man & 0x1fff
		if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
			h++
		}
		if h&f16ExpMask == f16ExpMask {
			return sign | h, false // rounded up past 65504
		}
		return sign | h, true
	}
	// Subnormal float16: the result counts units of 2^-24.
	// f = mant * 2^(e-23) with the implicit bit, so f / 2^-24 = mant >> shift.
	mant := man | 0x800000
	shift := uint(-(e + 1)) // >= 14
	if shift >= 32 {
		return sign, true
	}
	q := mant >> shift
	rem := mant & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++ // q == 0x400 is the smallest normal, which is the right encoding
	}
	return sign | uint16(q), true
}

// BFloat16ToFloat32 widens a bfloat16 value to float32, exactly.
func BFloat16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// Float32ToBFloat16 narrows f to bfloat16, rounding to nearest with ties to
// even. ok is false when a finite f rounds to ±inf. NaNs stay NaN (quiet).
func Float32ToBFloat16(f float32) (b uint16, ok bool) {
	bits := math.Float32bits(f)
	exp := (bits >> 23) & 0xff
	if exp == 0xff {
		if bits&0x7fffff != 0 { // NaN: truncating could clear the payload, so force the quiet bit
			return uint16(bits>>16) | bf16Quiet, true
		}
		return uint16(bits >> 16), true // ±inf
	}
	// Round on the low 16 bits; the carry runs into the exponent as needed,
	// which also handles subnormals and the step to the next binade.
	rounded := bits + 0x7fff + (bits>>16)&1
	b = uint16(rounded >> 16)
	if (b>>7)&0xff == 0xff {
		return b, false
	}
	return b, true
}
