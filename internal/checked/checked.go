// Package checked is the one home of overflow-safe size arithmetic. Every
// size that comes from a user (a flag, an API field, a file header, a
// checkpoint) is multiplied here before it is compared with a limit or used
// to allocate, so that a huge value is refused instead of wrapping around a
// bounds check (B*T with B = 2^63-1 wraps to a small number; numel*4 wraps
// to 0).
package checked

import "math"

// Mul returns a*b and true, or 0 and false when either factor is negative or
// the product does not fit an int.
func Mul(a, b int) (int, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	if a == 0 || b == 0 {
		return 0, true
	}
	if a > math.MaxInt/b {
		return 0, false
	}
	return a * b, true
}

// MulAll returns the product of the factors and true, or 0 and false when a
// factor is negative or the product overflows an int. The empty product is 1.
func MulAll(factors ...int) (int, bool) {
	p := 1
	for _, f := range factors {
		var ok bool
		if p, ok = Mul(p, f); !ok {
			return 0, false
		}
	}
	return p, true
}

// Mul64 is Mul for int64.
func Mul64(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	if a == 0 || b == 0 {
		return 0, true
	}
	if a > math.MaxInt64/b {
		return 0, false
	}
	return a * b, true
}

// Add returns a+b and true, or 0 and false when either is negative or the sum
// overflows an int.
func Add(a, b int) (int, bool) {
	if a < 0 || b < 0 || a > math.MaxInt-b {
		return 0, false
	}
	return a + b, true
}

// Add64 is Add for int64.
func Add64(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || a > math.MaxInt64-b {
		return 0, false
	}
	return a + b, true
}

// AtMost reports whether the product of the factors is at most limit,
// without overflowing: a product that does not fit an int is over every
// limit.
func AtMost(limit int, factors ...int) bool {
	p, ok := MulAll(factors...)
	return ok && p <= limit
}
