package shaders

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// f16Variants are the F16 forms of the generated matmul the tests validate:
// the tilings engine/gpu uses (single- and double-buffered, K-split and
// not), each with every weight dtype.
func f16Variants() []map[string]string {
	var out []map[string]string
	for _, c := range unrolledVariants() {
		for _, extra := range []map[string]string{{}, {"DB": "1u", "SHMAX": "32768u"}, {"KSPLIT": "4u"}} {
			v := map[string]string{"F16": "1u"}
			for k, x := range c {
				v[k] = x
			}
			for k, x := range extra {
				v[k] = x
			}
			out = append(out, v)
		}
	}
	return out
}

// TestF16Variants validates every F16 form of MatmulUnrolled with the naga
// and Tint CLIs (the WGSL compilers of wgpu 25+ and of Chrome; the naga
// inside wgpu-native v22, which engine/gpu links, has no f16 at all:
// docs/gpu.md, "Precision"), checks their structure (f16 shared tiles and
// per-tile sums, f32 accumulators, epilogue and output), and pins that
// F16 = 0 generates exactly the f32 kernel.
func TestF16Variants(t *testing.T) {
	naga := validator(t, "naga", "nothing else validates the f16 kernels on this machine (wgpu-native v22 cannot compile them)")
	tint := validator(t, "tint", "nothing else validates the f16 kernels on this machine (wgpu-native v22 cannot compile them)")
	dir := t.TempDir()
	for i, c := range f16Variants() {
		src, err := Source(MatmulUnrolled, c)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		for _, want := range []string{"enable f16;", "var<workgroup> As: array<vec4<f16>,", "var<workgroup> Ws: array<vec4<f16>,",
			"var h_0_0 = vec4<f16>(0.0);", "c_0_0 += vec4<f32>(h_0_0);", "var c_0_0 = vec4<f32>(0.0);",
			"var<storage, read> A: array<vec4<f32>>;", "var<storage, read_write> OUT: array<vec4<f32>>;"} {
			if !strings.Contains(src, want) {
				t.Errorf("%v: the f16 kernel lacks %q", c, want)
			}
		}
		if c["WDTYPE"] == UintLiteral(WeightF16) && !strings.Contains(src, "var<storage, read> W: array<vec4<f16>>;") {
			t.Errorf("%v: F16 weights are not bound as vec4<f16>", c)
		}
		p := filepath.Join(dir, fmt.Sprintf("f16_%d.wgsl", i))
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(naga, p).CombinedOutput(); err != nil {
			t.Errorf("naga %s %v: %v\n%s", MatmulUnrolled, c, err, out)
		}
		if out, err := exec.Command(tint, "--format", "wgsl", "-o", os.DevNull, p).CombinedOutput(); err != nil {
			t.Errorf("tint %s %v: %v\n%s", MatmulUnrolled, c, err, out)
		}
		// F16 = 0 is the f32 kernel, byte for byte.
		off := map[string]string{}
		plain := map[string]string{}
		for k, x := range c {
			off[k], plain[k] = x, x
		}
		off["F16"] = "0u"
		delete(plain, "F16")
		a, err1 := Source(MatmulUnrolled, off)
		b, err2 := Source(MatmulUnrolled, plain)
		if err1 != nil || err2 != nil || a != b || strings.Contains(a, "f16") {
			t.Errorf("%v: F16 = 0 does not give the f32 kernel (errors %v, %v)", c, err1, err2)
		}
	}
	if _, err := Source(MatmulUnrolled, map[string]string{"BM": "64u", "BN": "64u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "1u", "F16": "3u"}); err == nil {
		t.Errorf("F16 = 3 was accepted")
	}
	// F16 = 2: the same arithmetic emulated in f32 (engine/gpu's
	// TestF16Emulated runs it on lavapipe): no f16 type, every f16 result
	// rounded through q16/q16v.
	for i, c := range f16Variants() {
		c["F16"] = "2u"
		src, err := Source(MatmulUnrolled, c)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if strings.Contains(src, "enable f16") || strings.Contains(src, "<f16>") || !strings.Contains(src, "h_0_0 = q16v(fma(") ||
			!strings.Contains(src, "[ac0] = q16(pa0.x);") || !strings.Contains(src, "c_0_0 += vec4<f32>(h_0_0);") {
			t.Errorf("%v: the emulated kernel does not round every f16 result, or uses f16 types", c)
		}
		p := filepath.Join(dir, fmt.Sprintf("f16emu_%d.wgsl", i))
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(naga, p).CombinedOutput(); err != nil {
			t.Errorf("naga %s %v: %v\n%s", MatmulUnrolled, c, err, out)
		}
		if out, err := exec.Command(tint, "--format", "wgsl", "-o", os.DevNull, p).CombinedOutput(); err != nil {
			t.Errorf("tint %s %v: %v\n%s", MatmulUnrolled, c, err, out)
		}
	}
	t.Logf("naga and tint validated %d f16 variants of %s and as many emulated ones", len(f16Variants()), MatmulUnrolled)
}
