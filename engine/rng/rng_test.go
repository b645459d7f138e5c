package rng

import "testing"

// Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
func TestPhiloxKnownAnswers(t *testing.T) {
	cases := []struct {
		ctr  [4]uint32
		key  [2]uint32
		want [4]uint32
	}{
		{[4]uint32{0, 0, 0, 0}, [2]uint32{0, 0}, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{[4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff}, [4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0}, [4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	}
	for _, c := range cases {
		if got := Philox4x32(c.ctr, c.key); got != c.want {
			t.Errorf("Philox4x32(%#x, %#x) = %#x, want %#x", c.ctr, c.key, got, c.want)
		}
	}
}

func TestUniformRangeAndIndependence(t *testing.T) {
	const n = 200000
	var sum float64
	buckets := make([]int, 10)
	for i := uint32(0); i < n; i++ {
		u := Uniform(42, i%7, i/7%5, i, Token)
		if u < 0 || u >= 1 {
			t.Fatalf("uniform %v out of [0,1)", u)
		}
		sum += float64(u)
		buckets[int(u*10)]++
	}
	if m := sum / n; m < 0.497 || m > 0.503 {
		t.Errorf("mean %v, want about 0.5", m)
	}
	for i, b := range buckets {
		if b < n/10*97/100 || b > n/10*103/100 {
			t.Errorf("bucket %d has %d of %d draws", i, b, n)
		}
	}
	if Uniform(1, 0, 0, 0, Token) == Uniform(1, 0, 0, 0, RemaskNoise) {
		t.Error("purposes share a stream")
	}
	if Uniform(1, 0, 0, 0, Token) == Uniform(2, 0, 0, 0, Token) {
		t.Error("seeds share a stream")
	}
	if Uniform(1<<32, 0, 0, 0, Token) == Uniform(0, 0, 0, 0, Token) {
		t.Error("the high 32 bits of the seed are ignored")
	}
}
