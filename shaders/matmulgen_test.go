package shaders

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// genVariants are generated kernels beyond the plain unrolled matmul that
// engine/gpu runs: double-buffered tiles (one of them over 16 KiB), K-split
// matmuls and their reduce kernel, the key-split attention and its combine
// kernel, and the tiled attention.
func genVariants() []struct {
	file   string
	consts map[string]string
} {
	type v = struct {
		file   string
		consts map[string]string
	}
	var out []v
	mm := func(bm, bn, bk, tm, tn, wd, db, ks, shmax int) map[string]string {
		return map[string]string{"BM": UintLiteral(bm), "BN": UintLiteral(bn), "BK": UintLiteral(bk), "TM": UintLiteral(tm), "TN": UintLiteral(tn),
			"WDTYPE": UintLiteral(wd), "DB": UintLiteral(db), "KSPLIT": UintLiteral(ks), "SHMAX": UintLiteral(shmax)}
	}
	for _, wd := range []int{WeightF32, WeightF16, WeightBF16} {
		out = append(out,
			v{MatmulUnrolled, mm(128, 128, 8, 8, 8, wd, 1, 1, 16384)},
			v{MatmulUnrolled, mm(128, 128, 16, 8, 8, wd, 1, 1, 32768)},
			v{MatmulUnrolled, mm(64, 64, 16, 4, 4, wd, 1, 1, 16384)},
			v{MatmulUnrolled, mm(32, 32, 16, 4, 4, wd, 1, 4, 16384)},
			v{MatmulUnrolled, mm(32, 32, 16, 4, 4, wd, 0, 8, 16384)})
	}
	out = append(out,
		v{MatmulReduce, map[string]string{"S": "4u"}},
		v{AttentionUnrolled, map[string]string{"D": "64u", "BR": "64u", "BC": "32u", "KS": "64u"}},
		v{AttentionUnrolled, map[string]string{"D": "4u", "BR": "64u", "BC": "32u", "KS": "32u"}},
		v{AttentionCombine, map[string]string{"D": "64u", "S": "8u"}},
		v{AttentionTiled, nil})
	return out
}

// TestGeneratedValidate validates every variant of genVariants with the
// naga and Tint CLIs where they are installed (outside CI a missing CLI
// skips its half; engine/gpu's kernel tests compile every variant through
// wgpu-native either way).
func TestGeneratedValidate(t *testing.T) {
	dir := t.TempDir()
	tools := map[string][]string{"naga": nil, "tint": {"--format", "wgsl", "-o", os.DevNull}}
	for _, name := range []string{"naga", "tint"} {
		bin, err := exec.LookPath(name)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s CLI not on PATH, and CI must validate the generated kernels with it", name)
			}
			t.Logf("%s CLI not on PATH: skipped its half", name)
			continue
		}
		for i, g := range genVariants() {
			src, err := Source(g.file, g.consts)
			if err != nil {
				t.Fatalf("%s %v: %v", g.file, g.consts, err)
			}
			p := filepath.Join(dir, fmt.Sprintf("gen%d.wgsl", i))
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, append(tools[name], p)...).CombinedOutput(); err != nil {
				t.Errorf("%s %s %v: %v\n%s", name, g.file, g.consts, err, out)
			}
		}
	}
}

func TestGeneratedShape(t *testing.T) {
	for _, g := range genVariants() {
		src, err := Source(g.file, g.consts)
		if err != nil {
			t.Fatal(err)
		}
		// No function-local arrays (the reason these kernels are generated).
		if strings.Contains(src, "var acc") || strings.Contains(src, "array<f32, ") {
			t.Errorf("%s %v declares a local array", g.file, g.consts)
		}
		if !strings.Contains(src, "struct Params") {
			t.Errorf("%s %v: no struct Params", g.file, g.consts)
		}
	}
	// The double-buffered tile has one barrier inside its K loop, the
	// single-buffered one two.
	for db, want := range map[string]int{"0u": 2, "1u": 1} {
		src, err := Source(MatmulUnrolled, map[string]string{"BM": "64u", "BN": "64u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "DB": db})
		if err != nil {
			t.Fatal(err)
		}
		loop := src[strings.Index(src, "for (var k0"):]
		loop = loop[:strings.Index(loop, "let N4")]
		if n := strings.Count(loop, "workgroupBarrier()"); n != want {
			t.Errorf("DB=%s: %d barriers in the K loop, want %d", db, n, want)
		}
	}
	bad := []struct {
		file   string
		consts map[string]string
	}{
		{MatmulUnrolled, map[string]string{"BM": "128u", "BN": "128u", "BK": "16u", "TM": "8u", "TN": "8u", "WDTYPE": "0u", "DB": "1u"}},                    // 32 KiB > default
		{MatmulUnrolled, map[string]string{"BM": "128u", "BN": "128u", "BK": "16u", "TM": "8u", "TN": "8u", "WDTYPE": "0u", "DB": "1u", "SHMAX": "32767u"}}, // 32 KiB > limit
		{MatmulUnrolled, map[string]string{"BM": "64u", "BN": "64u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "DB": "2u"}},
		{MatmulUnrolled, map[string]string{"BM": "64u", "BN": "64u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "KSPLIT": "0u"}},
		{MatmulReduce, map[string]string{"S": "0u"}},
		{MatmulReduce, map[string]string{"S": "2u", "X": "1u"}},
		{AttentionUnrolled, map[string]string{"D": "64u", "BR": "64u", "BC": "32u", "KS": "48u"}}, // KS % BC
		{AttentionCombine, map[string]string{"D": "6u", "S": "2u"}},
		{AttentionCombine, map[string]string{"D": "64u"}},
		{AttentionTiled, map[string]string{"D": "64u"}},
	}
	for _, b := range bad {
		if _, err := Source(b.file, b.consts); err == nil {
			t.Errorf("%s %v was accepted", b.file, b.consts)
		}
	}
}
