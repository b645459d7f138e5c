package model

import (
	"math"
	"testing"
)

// f16Reference computes the value of a binary16 pattern from its definition,
// in float64, independently of Float16ToFloat32.
func f16Reference(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	man := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(man, -24)
	case 0x1f:
		if man == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+man/1024, exp-15)
}

func TestFloat16AllValues(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := Float16ToFloat32(h)
		ref := f16Reference(h)
		if math.IsNaN(ref) {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("Float16ToFloat32(%#04x) = %v, want NaN", h, f)
			}
			back, ok := Float32ToFloat16(f)
			if !ok || back != h|f16Quiet {
				t.Fatalf("Float32ToFloat16(NaN from %#04x) = %#04x, %v; want %#04x (quiet, payload kept)", h, back, ok, h|f16Quiet)
			}
			continue
		}
		if float64(f) != ref || math.Signbit(float64(f)) != math.Signbit(ref) {
			t.Fatalf("Float16ToFloat32(%#04x) = %v, want %v", h, f, ref)
		}
		back, ok := Float32ToFloat16(f)
		if !ok || back != h {
			t.Fatalf("Float32ToFloat16(%v) = %#04x, %v; want %#04x, true", f, back, ok, h)
		}
	}
}

// TestFloat16Midpoints checks rounding at every boundary: the exact midpoint
// between two adjacent finite float16 values rounds to the one with an even
// mantissa, and the float32 values just below and just above it round down
// and up.
func TestFloat16Midpoints(t *testing.T) {
	for _, sign := range []uint16{0, 0x8000} {
		for lo := uint16(0); lo < 0x7bff; lo++ {
			a, b := lo|sign, (lo+1)|sign
			mid := float32((f16Reference(a) + f16Reference(b)) / 2) // exact: 12 significant bits
			even := a
			if a&1 == 1 {
				even = b
			}
			if got, _ := Float32ToFloat16(mid); got != even {
				t.Fatalf("Float32ToFloat16(%v) (midpoint of %#04x and %#04x) = %#04x, want %#04x", mid, a, b, got, even)
			}
			towardZero := math.Nextafter32(mid, 0)
			if got, _ := Float32ToFloat16(towardZero); got != a {
				t.Fatalf("Float32ToFloat16(%v) (just below the midpoint of %#04x and %#04x) = %#04x, want %#04x", towardZero, a, b, got, a)
			}
			away := math.Nextafter32(mid, float32(math.Inf(1-2*int(sign>>15))))
			if got, _ := Float32ToFloat16(away); got != b {
				t.Fatalf("Float32ToFloat16(%v) (just above the midpoint of %#04x and %#04x) = %#04x, want %#04x", away, a, b, got, b)
			}
		}
	}
}

func TestFloat32ToFloat16HandPicked(t *testing.T) {
	for _, c := range []struct {
		name string
		in   float32
		want uint16
		ok   bool
	}{
		{"one", 1, 0x3c00, true},
		{"tie 1+2^-11 to even 1", 1 + 1.0/2048, 0x3c00, true},
		{"tie 1+3*2^-11 to even 1+2^-9", 1 + 3.0/2048, 0x3c02, true},
		{"above tie rounds up", math.Nextafter32(1+1.0/2048, 2), 0x3c01, true},
		{"max finite", 65504, 0x7bff, true},
		{"just below the overflow tie", math.Nextafter32(65520, 0), 0x7bff, true},
		{"tie at 65520 rounds to even = inf", 65520, 0x7c00, false},
		{"overflow", 1e6, 0x7c00, false},
		{"negative overflow", -70000, 0xfc00, false},
		{"largest float32", math.MaxFloat32, 0x7c00, false},
		{"inf is not an overflow", float32(math.Inf(1)), 0x7c00, true},
		{"-inf", float32(math.Inf(-1)), 0xfc00, true},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000, true},
		{"smallest subnormal 2^-24", 1.0 / (1 << 24), 0x0001, true},
		{"tie 2^-25 to even zero", 1.0 / (1 << 25), 0x0000, true},
		{"above 2^-25 rounds to 2^-24", math.Nextafter32(1.0/(1<<25), 1), 0x0001, true},
		{"tie 3*2^-25 to even 2^-23", 3.0 / (1 << 25), 0x0002, true},
		{"largest subnormal", 1023.0 / (1 << 24), 0x03ff, true},
		{"subnormal rounds up to smallest normal", 1.0/(1<<14) - 1.0/(1<<26), 0x0400, true},
		{"float32 subnormal underflows", math.SmallestNonzeroFloat32, 0x0000, true},
		{"negative subnormal", -5.0 / (1 << 24), 0x8005, true},
		{"0.1", 0.1, 0x2e66, true},
		{"-2", -2, 0xc000, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Float32ToFloat16(c.in)
			if got != c.want || ok != c.ok {
				t.Errorf("Float32ToFloat16(%v) = %#04x, %v; want %#04x, %v", c.in, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestBFloat16AllValues(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		b := uint16(i)
		f := BFloat16ToFloat32(b)
		if math.Float32bits(f) != uint32(b)<<16 {
			t.Fatalf("BFloat16ToFloat32(%#04x) bits = %#08x, want %#08x", b, math.Float32bits(f), uint32(b)<<16)
		}
		back, ok := Float32ToBFloat16(f)
		want := b
		if math.IsNaN(float64(f)) {
			want = b | bf16Quiet
		}
		if !ok || back != want {
			t.Fatalf("Float32ToBFloat16(%v from %#04x) = %#04x, %v; want %#04x, true", f, b, back, ok, want)
		}
	}
}

// TestBFloat16Midpoints: the float32 halfway between two adjacent finite
// bfloat16 values rounds to the even one; one float32 ulp off it rounds to
// the nearer one.
func TestBFloat16Midpoints(t *testing.T) {
	for _, sign := range []uint32{0, 0x80000000} {
		for lo := uint32(0); lo < 0x7f7f; lo++ {
			a, b := uint16(lo|sign>>16), uint16((lo+1)|sign>>16)
			midBits := lo<<16 | 0x8000 | sign
			even := a
			if a&1 == 1 {
				even = b
			}
			for _, c := range []struct {
				bits uint32
				want uint16
			}{{midBits, even}, {midBits - 1, a}, {midBits + 1, b}} {
				if got, _ := Float32ToBFloat16(math.Float32frombits(c.bits)); got != c.want {
					t.Fatalf("Float32ToBFloat16(bits %#08x) = %#04x, want %#04x", c.bits, got, c.want)
				}
			}
		}
	}
}

func TestFloat32ToBFloat16HandPicked(t *testing.T) {
	for _, c := range []struct {
		name string
		in   float32
		want uint16
		ok   bool
	}{
		{"one", 1, 0x3f80, true},
		{"tie 1+2^-8 to even 1", 1 + 1.0/256, 0x3f80, true},
		{"tie 1+3*2^-8 to even 1+2^-6", 1 + 3.0/256, 0x3f82, true},
		{"1e5 fits", 1e5, 0x47c3, true},
		{"largest float32 overflows", math.MaxFloat32, 0x7f80, false},
		{"largest bfloat16", math.Float32frombits(0x7f7f0000), 0x7f7f, true},
		{"inf", float32(math.Inf(-1)), 0xff80, true},
		{"NaN with payload only in the low bits stays NaN", math.Float32frombits(0x7f800001), 0x7fc0, true},
		{"float32 subnormal rounds in place", math.Float32frombits(0x00018000), 0x0002, true},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Float32ToBFloat16(c.in)
			if got != c.want || ok != c.ok {
				t.Errorf("Float32ToBFloat16(%v) = %#04x, %v; want %#04x, %v", c.in, got, ok, c.want, c.ok)
			}
		})
	}
}
