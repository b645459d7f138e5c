package shaders

import (
	"strings"
	"testing"
)

// TestKernelFootprint checks the parser on kernels whose footprint is known
// by hand, and that it reads every file and generated variant.
func TestKernelFootprint(t *testing.T) {
	for _, tc := range []struct {
		file   string
		consts map[string]string
		want   Footprint
	}{
		// red: 128 floats.
		{"layernorm.wgsl", nil, Footprint{[3]int{128, 1, 1}, 512}},
		// PR 1024 floats, RED 256 floats, PICK and LAST one word each
		// (16 bytes apiece as WebGPU counts them).
		{"sample.wgsl", nil, Footprint{[3]int{256, 1, 1}, 4096 + 1024 + 16 + 16}},
		{"sample.wgsl", map[string]string{"WG": "64u"}, Footprint{[3]int{64, 1, 1}, 4096 + 256 + 16 + 16}},
		// Ks and Vs: BC·D = 32·16 floats each.
		{"attention.wgsl", nil, Footprint{[3]int{64, 1, 1}, 2 * 32 * 16 * 4}},
		{"embednorm.wgsl", nil, Footprint{[3]int{128, 1, 1}, 512}},
		// 128x128 tiles, BK 8, double-buffered: 2·(8·128/4 + 8·128/4) vec4s.
		{MatmulUnrolled, map[string]string{"BM": "128u", "BN": "128u", "BK": "8u", "TM": "8u", "TN": "8u", "WDTYPE": "0u", "DB": "1u", "KSPLIT": "1u", "SHMAX": "16384u"},
			Footprint{[3]int{256, 1, 1}, MatmulTiling{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8}.SharedBytes(true)}},
		// The same as nested arrays (NEST), and 64 threads of 16x8 nested.
		{MatmulUnrolled, map[string]string{"BM": "128u", "BN": "128u", "BK": "8u", "TM": "8u", "TN": "8u", "WDTYPE": "0u", "DB": "1u", "NEST": "1u", "WX": "8u"},
			Footprint{[3]int{256, 1, 1}, MatmulTiling{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8}.SharedBytes(true)}},
		{MatmulUnrolled, map[string]string{"BM": "128u", "BN": "64u", "BK": "16u", "TM": "16u", "TN": "8u", "WDTYPE": "0u", "NEST": "1u", "SHMAX": "49152u"},
			Footprint{[3]int{64, 1, 1}, 4 * 16 * (128 + 64)}},
		// Sliced K: 4 groups of 64 threads; 32x32x16 tiles (4 KiB) and the
		// partial sums of 3 groups (3·32·32 floats, 12 KiB).
		{MatmulUnrolled, map[string]string{"BM": "32u", "BN": "32u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "KW": "4u"},
			Footprint{[3]int{256, 1, 1}, 4*16*64 + 3*32*32*4}},
		{MatmulUnrolled, map[string]string{"BM": "32u", "BN": "32u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "KW": "2u", "NEST": "1u", "DB": "1u"},
			Footprint{[3]int{128, 1, 1}, MatmulTiling{BM: 32, BN: 32, BK: 16, TM: 4, TN: 4, KW: 2}.SharedBytes(true)}},
		{AttentionTiled, nil, Footprint{[3]int{64, 1, 1}, AttentionTiledShared}},
	} {
		src, err := Source(tc.file, tc.consts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := KernelFootprint(src)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.file, tc.consts, err)
		}
		if got != tc.want {
			t.Errorf("%s %v: footprint %+v, want %+v", tc.file, tc.consts, got, tc.want)
		}
	}
	n := 0
	for _, f := range Families() {
		src, err := Source(f.File, nil)
		if err != nil {
			t.Fatal(err)
		}
		fp, err := KernelFootprint(src)
		if err != nil {
			t.Errorf("%s: %v", f.File, err)
		}
		if fp.Invocations() < 1 || fp.Invocations() > 256 || fp.SharedBytes > DefaultWorkgroupStorage {
			t.Errorf("%s: footprint %+v exceeds WebGPU's default limits as written", f.File, fp)
		}
		n++
	}
	for _, v := range genVariants() {
		src, err := Source(v.file, v.consts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := KernelFootprint(src); err != nil {
			t.Errorf("%s %v: %v", v.file, v.consts, err)
		}
		n++
	}
	t.Logf("read the footprint of %d kernels", n)
	// A size the parser cannot evaluate is an error, not zero.
	bad := "var<workgroup> A: array<f32, NOPE>;\n@compute @workgroup_size(64)\nfn main() {}"
	if _, err := KernelFootprint(bad); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("an unknown constant in a workgroup array gave %v, want an error naming it", err)
	}
}
