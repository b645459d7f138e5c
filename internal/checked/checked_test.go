package checked

import (
	"math"
	"testing"
)

func TestMul(t *testing.T) {
	for _, c := range []struct {
		a, b, want int
		ok         bool
	}{
		{0, 0, 0, true},
		{3, 4, 12, true},
		{math.MaxInt, 1, math.MaxInt, true},
		{math.MaxInt, 2, 0, false},
		{math.MaxInt, 32, 0, false}, // the --num-samples 2^63-1 --sequence-length 32 case
		{1 << 32, 1 << 31, 0, false},
		{-1, 5, 0, false},
		{5, -1, 0, false},
		{1 << 40, 0, 0, true},
	} {
		got, ok := Mul(c.a, c.b)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("Mul(%d, %d) = %d, %v; want %d, %v", c.a, c.b, got, ok, c.want, c.ok)
		}
	}
}

func TestMulAll(t *testing.T) {
	if p, ok := MulAll(); !ok || p != 1 {
		t.Errorf("MulAll() = %d, %v; want 1, true", p, ok)
	}
	if p, ok := MulAll(2, 3, 7); !ok || p != 42 {
		t.Errorf("MulAll(2,3,7) = %d, %v", p, ok)
	}
	// numel*4 must not wrap to 0: 2^62 * 4 overflows.
	if _, ok := MulAll(1<<31, 1<<31, 4); ok {
		t.Error("MulAll(2^31, 2^31, 4) did not report the overflow")
	}
	if AtMost(16384, math.MaxInt, 32) {
		t.Error("AtMost accepted an overflowing product")
	}
	if !AtMost(16384, 16, 1024) || AtMost(16383, 16, 1024) {
		t.Error("AtMost wrong at the limit")
	}
}

func TestMul64Add(t *testing.T) {
	if _, ok := Mul64(math.MaxInt64/2+1, 2); ok {
		t.Error("Mul64 overflow not reported")
	}
	if v, ok := Mul64(1<<31, 1<<31); !ok || v != 1<<62 {
		t.Errorf("Mul64(2^31, 2^31) = %d, %v", v, ok)
	}
	if _, ok := Add(math.MaxInt, 1); ok {
		t.Error("Add overflow not reported")
	}
	if _, ok := Add64(-1, 1); ok {
		t.Error("Add64 accepted a negative")
	}
	if v, ok := Add64(2, 3); !ok || v != 5 {
		t.Errorf("Add64(2,3) = %d, %v", v, ok)
	}
}
