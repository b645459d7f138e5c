package shaders

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// genVariants are generated kernels beyond the plain unrolled matmul that
// engine/gpu runs: double-buffered tiles (one of them over 16 KiB), K-split
// matmuls and their reduce kernel, the layouts of MatmulTiling (nested
// shared tiles, warp tiles; with double buffering, a K split, per-thread
// tiles of 16x8 and 8x16, and the F16 form), sliced K (MatmulTiling.KW,
// with all of those), the key-split attention and
// its combine kernel, and the tiled attention.
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
		for _, l := range []struct{ bm, bn, bk, tm, tn, db, ks, shmax, nest, wx, cl int }{
			{128, 128, 8, 8, 8, 0, 1, 16384, 1, 0, 0}, {128, 128, 8, 8, 8, 0, 1, 16384, 1, 8, 2}, {128, 128, 8, 8, 8, 0, 1, 16384, 0, 4, 0},
			{128, 128, 16, 8, 8, 1, 1, 32768, 1, 0, 4}, {128, 128, 32, 8, 8, 0, 1, 32768, 1, 8, 8}, {256, 128, 8, 16, 8, 0, 1, 16384, 1, 8, 0},
			{128, 64, 8, 16, 8, 0, 1, 16384, 1, 4, 2}, {64, 128, 8, 8, 16, 0, 1, 16384, 1, 0, 0}, {32, 32, 16, 4, 4, 1, 4, 16384, 1, 4, 2},
			{128, 192, 16, 8, 12, 0, 1, 32768, 1, 8, 2}, {192, 128, 16, 12, 8, 0, 1, 32768, 1, 0, 0},
		} {
			c := mm(l.bm, l.bn, l.bk, l.tm, l.tn, wd, l.db, l.ks, l.shmax)
			c["NEST"], c["WX"], c["CL"] = UintLiteral(l.nest), UintLiteral(l.wx), UintLiteral(l.cl)
			out = append(out, v{MatmulUnrolled, c})
		}
		for _, f := range []int{1, 2} { // the F16 form, nested with warp tiles
			c := mm(128, 128, 8, 8, 8, wd, 1, 1, 16384)
			c["NEST"], c["WX"], c["F16"] = "1u", "8u", UintLiteral(f)
			out = append(out, v{MatmulUnrolled, c})
		}
		// Sliced K (KW): 2, 3 and 4 slices; with double buffering, a K
		// split, the layouts, guarded load rounds (32x32x16 with 4 slices:
		// 256 threads for 128 + 128 vec4s; 24x24: overlapping rounds) and
		// 4x8, 8x8 and 4x12 per thread; the F16 form.
		for _, l := range []struct{ bm, bn, bk, tm, tn, db, ks, shmax, nest, wx, cl, kw, f16 int }{
			{32, 32, 16, 4, 4, 0, 1, 16384, 0, 0, 0, 4, 0}, {32, 32, 16, 4, 4, 0, 4, 16384, 0, 0, 0, 2, 0}, {32, 32, 16, 4, 4, 1, 1, 32768, 1, 4, 2, 4, 0},
			{32, 32, 32, 4, 4, 0, 2, 32768, 1, 4, 0, 4, 0}, {32, 64, 16, 4, 8, 0, 1, 32768, 0, 0, 0, 4, 0}, {64, 64, 16, 8, 8, 1, 4, 32768, 1, 8, 2, 2, 0},
			{24, 24, 16, 4, 4, 0, 1, 16384, 0, 0, 0, 4, 0}, {32, 48, 48, 4, 12, 0, 1, 32768, 1, 0, 0, 3, 0}, {64, 32, 16, 4, 4, 1, 1, 32768, 0, 0, 0, 2, 0},
			{32, 32, 16, 4, 4, 0, 1, 16384, 1, 4, 0, 4, 1}, {32, 32, 16, 4, 4, 1, 4, 32768, 0, 0, 0, 2, 2}, {32, 64, 16, 4, 4, 0, 1, 16384, 1, 0, 0, 2, 1},
		} {
			c := mm(l.bm, l.bn, l.bk, l.tm, l.tn, wd, l.db, l.ks, l.shmax)
			c["NEST"], c["WX"], c["CL"], c["KW"], c["F16"] = UintLiteral(l.nest), UintLiteral(l.wx), UintLiteral(l.cl), UintLiteral(l.kw), UintLiteral(l.f16)
			out = append(out, v{MatmulUnrolled, c})
		}
	}
	out = append(out,
		v{MatmulReduce, map[string]string{"S": "4u"}},
		v{AttentionUnrolled, map[string]string{"D": "64u", "BR": "64u", "BC": "32u", "KS": "64u"}},
		v{AttentionUnrolled, map[string]string{"D": "4u", "BR": "64u", "BC": "32u", "KS": "32u"}},
		// the rope on the loads of q and k (the trunk's split attention)
		v{AttentionUnrolled, map[string]string{"D": "64u", "BR": "64u", "BC": "32u", "KS": "32u", "ROPE": "1u"}},
		v{AttentionUnrolled, map[string]string{"D": "8u", "BR": "64u", "BC": "32u", "ROPE": "1u"}},
		v{AttentionCombine, map[string]string{"D": "64u", "S": "8u"}},
		v{AttentionTiled, nil})
	return out
}

// wgslValidator is a WGSL validator CLI (naga or Tint) and the arguments
// before the file it checks.
type wgslValidator struct {
	name, bin string
	args      []string
}

// run validates the WGSL file at path, returning the CLI's output.
func (v wgslValidator) run(path string) ([]byte, error) {
	return exec.Command(v.bin, append(slices.Clone(v.args), path)...).CombinedOutput()
}

// wgslValidators are the naga and Tint CLIs on PATH for the generated
// kernels' tests: outside CI a missing one is logged and left out (its half
// skipped); in CI it fails t.
func wgslValidators(t *testing.T) []wgslValidator {
	t.Helper()
	var vs []wgslValidator
	for _, v := range []wgslValidator{{name: "naga"}, {name: "tint", args: []string{"--format", "wgsl", "-o", os.DevNull}}} {
		bin, err := exec.LookPath(v.name)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s CLI not on PATH, and CI must validate the generated kernels with it", v.name)
			}
			t.Logf("%s CLI not on PATH: skipped its half", v.name)
			continue
		}
		v.bin = bin
		vs = append(vs, v)
	}
	return vs
}

// TestGeneratedValidate validates every variant of genVariants with the
// naga and Tint CLIs where they are installed (outside CI a missing CLI
// skips its half; engine/gpu's kernel tests compile every variant through
// wgpu-native either way).
func TestGeneratedValidate(t *testing.T) {
	dir := t.TempDir()
	for _, v := range wgslValidators(t) {
		for i, g := range genVariants() {
			src, err := Source(g.file, g.consts)
			if err != nil {
				t.Fatalf("%s %v: %v", g.file, g.consts, err)
			}
			p := filepath.Join(dir, fmt.Sprintf("gen%d.wgsl", i))
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := v.run(p); err != nil {
				t.Errorf("%s %s %v: %v\n%s", v.name, g.file, g.consts, err, out)
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
	// Nested shared tiles: every read in the K loop indexes the tile with
	// constants and the thread's ty or tx only (NestedSharedReads checks
	// what naga makes of it); double-buffered, the half cur first.
	for _, db := range []string{"0u", "1u"} {
		src, err := Source(MatmulUnrolled, map[string]string{"BM": "128u", "BN": "128u", "BK": "8u", "TM": "8u", "TN": "8u", "WDTYPE": "0u", "DB": db, "NEST": "1u", "WX": "8u"})
		if err != nil {
			t.Fatal(err)
		}
		loop := src[strings.Index(src, "for (var k0"):]
		loop = loop[:strings.Index(loop, "let N4")]
		half := map[string]string{"0u": "", "1u": "[cur]"}[db]
		reads := regexp.MustCompile(`let [ab][0-9]+ = (As|Ws)([^;]*);`).FindAllStringSubmatch(loop, -1)
		if len(reads) != 8*4 {
			t.Errorf("DB=%s nested: %d shared reads in the K loop, want 32", db, len(reads))
		}
		for _, r := range reads {
			if !regexp.MustCompile(`^` + regexp.QuoteMeta(half) + `\[[0-9]+\]\[[0-3]\]\[[0-9]+\]\[t[xy]\]$`).MatchString(r[2]) {
				t.Errorf("DB=%s nested: read %s%s has an index that is neither a constant nor the thread's", db, r[1], r[2])
			}
		}
		want := map[string]int{"0u": 2, "1u": 1}[db]
		if n := strings.Count(loop, "workgroupBarrier()"); n != want {
			t.Errorf("DB=%s nested: %d barriers in the K loop, want %d", db, n, want)
		}
		if !strings.Contains(src, "let tx = (warp % 2u) * 8u + lane % 8u;") || !strings.Contains(src, "let ty = (warp / 2u) * 4u + lane / 8u;") {
			t.Errorf("DB=%s: WX = 8 did not arrange 16 x 16 threads as warps of 8 x 4", db)
		}
	}
	// CL: consecutive invocations share a row, the k quad varies fastest.
	for cl, want := range map[string][]string{
		"0u": {"let am0 = ae0 % 128u;", "let ak0 = ae0 / 128u;"},
		"2u": {"let am0 = (ae0 / 2u) % 128u;", "let ak0 = ae0 % 2u + 2u * (ae0 / 256u);", "let wm0 = (we0 / 2u) % 128u;"},
	} {
		src, err := Source(MatmulUnrolled, map[string]string{"BM": "128u", "BN": "128u", "BK": "8u", "TM": "8u", "TN": "8u", "WDTYPE": "0u", "CL": cl})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(src, w) {
				t.Errorf("CL=%s: no %q in the loader", cl, w)
			}
		}
	}
	// Sliced K: KW = 0 and 1 are the kernel without KW, byte for byte; with
	// KW the workgroup is KW groups of NT threads, a K tile's loop keeps its
	// barriers (two, one double-buffered) and gives each group BK/KW k
	// steps (nested, the reads index the tile with s and constants), and
	// the reduce adds one barrier after the loop.
	base := map[string]string{"BM": "32u", "BN": "32u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u"}
	with := func(extra map[string]string) map[string]string {
		c := maps.Clone(base)
		maps.Copy(c, extra)
		return c
	}
	plain, err := Source(MatmulUnrolled, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, kw := range []string{"0u", "1u"} {
		if src, err := Source(MatmulUnrolled, with(map[string]string{"KW": kw})); err != nil || src != plain {
			t.Errorf("KW = %s does not give the kernel without KW (error %v)", kw, err)
		}
	}
	for _, c := range []struct {
		kw, db, nest        string
		steps, loopBarriers int
	}{{"2u", "0u", "0u", 8, 2}, {"4u", "0u", "0u", 4, 2}, {"4u", "1u", "0u", 4, 1}, {"4u", "0u", "1u", 4, 2}, {"2u", "1u", "1u", 8, 1}} {
		src, err := Source(MatmulUnrolled, with(map[string]string{"KW": c.kw, "DB": c.db, "NEST": c.nest, "SHMAX": "32768u"}))
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("KW=%s DB=%s NEST=%s", c.kw, c.db, c.nest)
		if !strings.Contains(src, "@compute @workgroup_size(NT * KW)") || !strings.Contains(src, "const KW: u32 = "+c.kw+";") || !strings.Contains(src, "let tx = lt % WGX;") {
			t.Errorf("%s: the workgroup is not KW groups of NT threads", what)
		}
		loop := src[strings.Index(src, "for (var k0"):]
		loop = loop[:strings.Index(loop, "let N4")]
		if n := strings.Count(loop, "workgroupBarrier()"); n != c.loopBarriers {
			t.Errorf("%s: %d barriers in the K loop, want %d", what, n, c.loopBarriers)
		}
		if n := strings.Count(loop, "let a0 = "); n != c.steps {
			t.Errorf("%s: %d k steps per K tile, want BK/KW = %d", what, n, c.steps)
		}
		half := map[string]string{"0u": "", "1u": "[cur]"}[c.db]
		reads := regexp.MustCompile(`let [ab][0-9]+ = (As|Ws)([^;]*);`).FindAllStringSubmatch(loop, -1)
		if len(reads) != 2*c.steps {
			t.Errorf("%s: %d shared reads in the K loop, want %d", what, len(reads), 2*c.steps)
		}
		for _, r := range reads {
			want := `^` + regexp.QuoteMeta(half) + `\[s\]\[[0-9]+\]\[[0-3]\]\[[0-9]+\]\[t[xy]\]$`
			if c.nest == "0u" {
				want = `^\[` + map[string]string{"0u": "", "1u": `ab \+ `}[c.db] + `s[aw] \+ [0-9]+u \+ t[xy]\]$`
				if r[1] == "Ws" {
					want = strings.ReplaceAll(want, "ab", "wb")
				}
			}
			if !regexp.MustCompile(want).MatchString(r[2]) {
				t.Errorf("%s: read %s%s is not of this slice (want %s)", what, r[1], r[2], want)
			}
		}
		tail := src[strings.Index(src, "let N4"):]
		if n := strings.Count(tail, "workgroupBarrier()"); n != 1 || !strings.Contains(tail, "Red[") {
			t.Errorf("%s: the reduce has %d barriers (want 1), or does not use Red", what, n)
		}
	}
	for _, c := range []struct {
		extra map[string]string
		msg   string
	}{
		{map[string]string{"KW": "8u"}, "KW = 8 K slices of 64 threads are 512 threads > 256"},
		{map[string]string{"KW": "2u", "BM": "64u", "BN": "64u"}, "KW = 2 K slices of 256 threads are 512 threads > 256"},
		{map[string]string{"KW": "3u", "BK": "48u", "SHMAX": "32768u"}, "KW = 3 K slices must divide the TM·TN/4 = 4 accumulator vec4s"},
		{map[string]string{"KW": "4u", "BK": "8u"}, "KW = 4 K slices must divide the BK/4 = 2 k quads"},
		{map[string]string{"KW": "4u", "DB": "1u"}, "20480 bytes of workgroup memory (8192 of K tiles, 12288 of the KW = 4 slices' partial sums) > the limit 16384"},
		{map[string]string{"KW": "-1"}, "KW = -1 K slices must be at least 1"},
	} {
		_, err := Source(MatmulUnrolled, with(c.extra))
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: err = %v, want %q", c.extra, err, c.msg)
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
		{MatmulUnrolled, map[string]string{"BM": "64u", "BN": "64u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "NEST": "2u"}},
		{MatmulUnrolled, map[string]string{"BM": "64u", "BN": "64u", "BK": "8u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "CL": "4u"}}, // CL > BK/4
		{MatmulUnrolled, map[string]string{"BM": "64u", "BN": "64u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "CL": "3u"}},
		{MatmulUnrolled, map[string]string{"BM": "64u", "BN": "64u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "WX": "3u"}},                       // not a power of 2
		{MatmulUnrolled, map[string]string{"BM": "64u", "BN": "64u", "BK": "16u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "WX": "32u"}},                      // 32 x 1 > 16 threads wide
		{MatmulUnrolled, map[string]string{"BM": "16u", "BN": "16u", "BK": "8u", "TM": "4u", "TN": "4u", "WDTYPE": "0u", "WX": "4u"}},                        // 16 threads
		{MatmulUnrolled, map[string]string{"BM": "128u", "BN": "64u", "BK": "32u", "TM": "16u", "TN": "8u", "WDTYPE": "0u", "SHMAX": "49152u"}},              // ~248 registers
		{MatmulUnrolled, map[string]string{"BM": "128u", "BN": "64u", "BK": "16u", "TM": "16u", "TN": "8u", "WDTYPE": "0u", "SHMAX": "49152u", "F16": "2u"}}, // 200 + 128 registers
		{MatmulReduce, map[string]string{"S": "0u"}},
		{MatmulReduce, map[string]string{"S": "2u", "X": "1u"}},
		{AttentionUnrolled, map[string]string{"D": "64u", "BR": "64u", "BC": "32u", "KS": "48u"}},  // KS % BC
		{AttentionUnrolled, map[string]string{"D": "12u", "BR": "64u", "BC": "32u", "ROPE": "1u"}}, // D % 8
		{AttentionUnrolled, map[string]string{"D": "64u", "BR": "64u", "BC": "32u", "ROPE": "2u"}},
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

// TestNestedSharedReads checks the reason for MatmulTiling.Nest on what
// the Vulkan driver is given: the kernel goes through naga's SPIR-V writer
// with wgpu-hal's Vulkan bounds-check policies (index "Restrict" for every
// array that is not a buffer, so workgroup arrays are clamped; buffers
// "Unchecked", the driver's robust buffer access) and back to WGSL, where
// each clamp reads min(index, length - 1). The K loop's shared reads of the
// flat layout clamp BK·(TM+TN)/4 distinct indices per K tile (C + ty for
// every constant C), the nested layout's two (ty and tx); with sliced K
// (KW, nested only) BK/KW·(TM+TN)/4 reads clamp three (the slice s, ty
// and tx; the reduce's reads of its partial sums, one index each, are not
// counted).
func TestNestedSharedReads(t *testing.T) {
	naga := validator(t, "naga", "the clamps naga writes into SPIR-V are not checked here")
	dir := t.TempDir()
	read := regexp.MustCompile(`let _e[0-9]+ = global(_[0-9]+)?\[(.*)\];$`)
	clamp := regexp.MustCompile(`min\(([^()]*(\([^()]*\))?[^()]*), [0-9]+u\)`)
	for _, c := range []struct {
		bm, bn, bk, tm, tn, kw int
	}{{128, 128, 8, 8, 8, 1}, {64, 64, 16, 4, 4, 1}, {32, 32, 16, 4, 4, 4}} {
		for _, nest := range []string{"0u", "1u"} {
			if c.kw > 1 && nest == "0u" {
				continue
			}
			src, err := Source(MatmulUnrolled, map[string]string{"BM": UintLiteral(c.bm), "BN": UintLiteral(c.bn), "BK": UintLiteral(c.bk),
				"TM": UintLiteral(c.tm), "TN": UintLiteral(c.tn), "WDTYPE": "0u", "NEST": nest, "KW": UintLiteral(c.kw)})
			if err != nil {
				t.Fatal(err)
			}
			in, spv, back := filepath.Join(dir, "k.wgsl"), filepath.Join(dir, "k.spv"), filepath.Join(dir, "back.wgsl")
			if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(naga, "--index-bounds-check-policy", "Restrict", "--buffer-bounds-check-policy", "Unchecked", in, spv).CombinedOutput(); err != nil {
				t.Fatalf("naga to SPIR-V: %v\n%s", err, out)
			}
			if out, err := exec.Command(naga, spv, back).CombinedOutput(); err != nil {
				t.Fatalf("naga from SPIR-V: %v\n%s", err, out)
			}
			b, err := os.ReadFile(back)
			if err != nil {
				t.Fatal(err)
			}
			distinct := map[string]bool{}
			reads := 0
			for _, line := range strings.Split(string(b), "\n") {
				m := read.FindStringSubmatch(strings.TrimSpace(line))
				if m == nil || !strings.Contains(m[2], "min(") {
					continue // not a read of a workgroup array (buffer reads are not clamped)
				}
				if c.kw > 1 && !strings.Contains(m[2], "][") {
					continue // the sliced-K reduce's partial sums
				}
				reads++
				for _, cm := range clamp.FindAllStringSubmatch(m[2], -1) {
					distinct[cm[1]] = true
				}
			}
			nreads := c.bk / c.kw * (c.tm + c.tn) / 4
			want := nreads
			if nest == "1u" {
				want = 2
				if c.kw > 1 {
					want = 3
				}
			}
			keys := make([]string, 0, len(distinct))
			for k := range distinct {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			t.Logf("%dx%dx%d/%dx%d NEST=%s KW=%d: %d clamped shared reads, %d distinct clamped indices", c.bm, c.bn, c.bk, c.tm, c.tn, nest, c.kw, reads, len(distinct))
			if reads != nreads || len(distinct) != want {
				t.Errorf("%dx%dx%d/%dx%d NEST=%s KW=%d: %d clamped shared reads with %d distinct indices %v, want %d reads and %d indices",
					c.bm, c.bn, c.bk, c.tm, c.tn, nest, c.kw, reads, len(distinct), keys, nreads, want)
			}
		}
	}
}
