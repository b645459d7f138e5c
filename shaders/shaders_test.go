package shaders

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestParamsMatch checks every kernel family's Go Params twin against the
// WGSL struct Params, member by member.
func TestParamsMatch(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Families() {
		seen[f.File] = true
		if err := CheckParams(f.File, f.Params); err != nil {
			t.Error(err)
		}
		if got, want := len(Bytes(reflect.New(f.Params).Elem().Interface())), 4*f.Params.NumField(); got != want {
			t.Errorf("%s: Bytes gives %d bytes, want %d", f.File, got, want)
		}
	}
	for _, file := range Files() {
		if !seen[file] && file != SubgroupsFile { // blocks for other kernels, no kernel of its own
			t.Errorf("%s is embedded but not listed in Families", file)
		}
	}
}

// TestCheckParamsCatchesDrift makes sure the checker can fail.
func TestCheckParamsCatchesDrift(t *testing.T) {
	type swapped struct {
		N, M, K, Act, HasBias, Accumulate, Pad0, Pad1 uint32
	}
	if err := CheckParams("matmul.wgsl", reflect.TypeFor[swapped]()); err == nil {
		t.Error("a reordered struct passed")
	}
	type wrongType struct {
		N, C, HasBias uint32
		Eps           uint32
	}
	if err := CheckParams("layernorm.wgsl", reflect.TypeFor[wrongType]()); err == nil {
		t.Error("a u32 for an f32 passed")
	}
	type short struct{ N, C uint32 }
	if err := CheckParams("gather.wgsl", reflect.TypeFor[short]()); err == nil {
		t.Error("a struct with too few members passed")
	}
}

func TestSource(t *testing.T) {
	src, err := Source("attention.wgsl", map[string]string{"D": "64u", "BC": "16u"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(src, "const D: u32 = 64u;") || !strings.Contains(src, "const BC: u32 = 16u;") {
		t.Error("constants not substituted")
	}
	if _, err := Source("attention.wgsl", map[string]string{"NOPE": "1u"}); err == nil {
		t.Error("an unknown constant was accepted")
	}
	if _, err := Source("missing.wgsl", nil); err == nil {
		t.Error("a missing file was accepted")
	}
}

// validator returns the path of a shader validator's CLI. Without it the
// test skips, saying what checks the shaders instead, except in CI
// (CI=true), where it fails: CI must run every validator. ./build.sh setup
// says where the CLIs come from.
func validator(t *testing.T, name, instead string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s CLI not on PATH, and CI must validate the shaders with it; install it (see ./build.sh setup) and put it on PATH", name)
	}
	t.Skipf("%s CLI not on PATH (it is required in CI): %s", name, instead)
	return ""
}

// TestNaga validates every .wgsl with the naga CLI. Outside CI, without the
// CLI, engine/gpu's pipeline test (which makes wgpu-native run naga on
// every variant) is the check.
func TestNaga(t *testing.T) {
	naga := validator(t, "naga", "shaders are validated by engine/gpu's TestPipelines (wgpu-native runs naga on every module) instead")
	dir := t.TempDir()
	for _, file := range Files() {
		p := writeRaw(t, dir, file)
		if file == SubgroupsFile {
			p = writeNaga(t, dir, p) // naga does not parse `enable subgroups;` yet
		}
		out, err := exec.Command(naga, p).CombinedOutput()
		if err != nil {
			t.Errorf("naga %s: %v\n%s", file, err, out)
			continue
		}
		t.Logf("naga (%s) validated %s: %s", naga, file, strings.TrimSpace(string(out)))
	}
	for i, c := range unrolledVariants() {
		src, err := Source(MatmulUnrolled, c)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("unrolled%d.wgsl", i))
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(naga, p).CombinedOutput(); err != nil {
			t.Errorf("naga %s %v: %v\n%s", MatmulUnrolled, c, err, out)
		}
	}
	for _, c := range []map[string]string{{"D": "4u", "BR": "64u", "BC": "32u"}, {"D": "64u", "BR": "64u", "BC": "32u"}, {"D": "128u", "BR": "64u", "BC": "16u"}} {
		src, err := Source(AttentionUnrolled, c)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "attention_unrolled.wgsl")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(naga, p).CombinedOutput(); err != nil {
			t.Errorf("naga %s %v: %v\n%s", AttentionUnrolled, c, err, out)
		}
	}
	t.Logf("naga validated %d variants of %s and 3 of %s", len(unrolledVariants()), MatmulUnrolled, AttentionUnrolled)
}

// unrolledVariants are the generated matmul variants the tests validate:
// the tilings engine/gpu uses, each with every weight dtype.
func unrolledVariants() []map[string]string {
	var out []map[string]string
	for _, t := range [][5]int{{64, 64, 16, 4, 4}, {128, 128, 8, 8, 8}, {128, 128, 16, 8, 8}, {128, 64, 16, 8, 4}, {64, 128, 16, 4, 8}} {
		t := MatmulTiling{BM: t[0], BN: t[1], BK: t[2], TM: t[3], TN: t[4]}
		for _, wd := range []int{WeightF32, WeightF16, WeightBF16} {
			out = append(out, map[string]string{"BM": UintLiteral(t.BM), "BN": UintLiteral(t.BN), "BK": UintLiteral(t.BK),
				"TM": UintLiteral(t.TM), "TN": UintLiteral(t.TN), "WDTYPE": UintLiteral(wd)})
		}
	}
	return out
}

func TestUnrolledSource(t *testing.T) {
	for _, c := range unrolledVariants() {
		src, err := Source(MatmulUnrolled, c)
		if err != nil {
			t.Fatal(err)
		}
		// The point of the variant: no function-local array at all.
		if strings.Contains(src, "array<f32, ") || strings.Contains(src, "var acc") {
			t.Errorf("%v: the generated kernel declares a local array", c)
		}
		if !strings.Contains(src, "struct Params") {
			t.Errorf("%v: no struct Params", c)
		}
	}
	bad := []map[string]string{
		{"BM": "64u", "BN": "64u", "BK": "16u", "TM": "4u", "TN": "4u"},                                 // no WDTYPE
		{"BM": "64u", "BN": "64u", "BK": "6u", "TM": "4u", "TN": "4u", "WDTYPE": "0u"},                  // BK % 4
		{"BM": "128u", "BN": "128u", "BK": "32u", "TM": "8u", "TN": "8u", "WDTYPE": "0u"},               // 32 KiB shared
		{"BM": "64u", "BN": "64u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "FAST": "true"}, // unknown constant
	}
	for _, c := range bad {
		if _, err := Source(MatmulUnrolled, c); err == nil {
			t.Errorf("%v was accepted", c)
		}
	}
}

// TestTint validates every .wgsl (after the include splice) with Tint, the
// WGSL compiler of Chrome: Tint is stricter than naga about constant
// expressions (a literal just above the f32 maximum, a NaN constant), and
// the browser runs Tint. Outside CI, without the CLI, the browser tests
// (tools/browser-test) are the check.
func TestTint(t *testing.T) {
	tint := validator(t, "tint", "the browser tests (Chrome compiles every pipeline with Tint) are the check")
	dir := t.TempDir()
	for _, file := range Files() {
		p := writeRaw(t, dir, file)
		if out, err := exec.Command(tint, "--format", "wgsl", "-o", os.DevNull, p).CombinedOutput(); err != nil {
			t.Errorf("tint %s: %v\n%s", file, err, out)
		}
	}
}

// writeRaw writes file's text after the include splice into dir and
// returns its path (what the validator CLIs read).
func writeRaw(t *testing.T, dir, file string) string {
	t.Helper()
	src, err := Raw(file)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lnFamily reports whether file is layernorm.wgsl or one of the kernels
// that include its ln_row (the fused LayerNorms).
func lnFamily(file string) bool {
	return file == "layernorm.wgsl" || file == "addnorm.wgsl" || file == "embednorm.wgsl"
}

// TestFusedNormWG: the fused LayerNorms (addnorm.wgsl, embednorm.wgsl)
// include layernorm.wgsl's ln_row and reduce_sum, whose sums depend on the
// workgroup size: their WG must be layernorm.wgsl's, so that a fused
// LayerNorm gives the same bits as the unfused one.
func TestFusedNormWG(t *testing.T) {
	want, err := Const("layernorm.wgsl", "WG")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"addnorm.wgsl", "embednorm.wgsl"} {
		if err := CheckConst(file, "WG", want); err != nil {
			t.Error(err)
		}
		src, err := Raw(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range []string{"// ln_row begin", "// reduce_sum begin"} {
			if strings.Count(src, block) != 1 {
				t.Errorf("%s holds %q %d times, want once", file, block, strings.Count(src, block))
			}
		}
	}
}
