package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/remask/remask/shaders"
)

// The Options.MatmulTile values docs/performance.md asks a GPU run to time
// ("Matmul layouts for the H200 sweep"): the generated kernel's layouts
// (nested shared tiles "n", warp tiles "wX", rows loaded by L invocations
// "cL", double buffering "db"), K tiles of 8
// to 32 and per-thread tiles of 8x8 to 16x8 at 16 x 1024, and the small
// tiles with and without nesting at 1 x 256. TestMatmulLayoutSweep runs
// every one against the CPU twin; TestMatmulTileSweepDocumented pins the docs'
// loops to these lists.
var (
	tileSweep16x1024 = []string{
		"128x128x8x8x8", "128x128x8x8x8n", "128x128x8x8x8w8", "128x128x8x8x8nw8", "128x128x8x8x8nw4",
		"128x128x8x8x8c2", "128x128x8x8x8nc2", "128x128x8x8x8nw8c2",
		"128x128x16x8x8n", "128x128x16x8x8nw8", "128x128x16x8x8nc4", "128x128x32x8x8n", "128x128x32x8x8nc4",
		"128x128x8x8x8dbn", "128x128x16x8x8dbn",
		"256x128x8x16x8n", "256x128x8x16x8nw8", "128x128x8x16x8n", "128x128x8x8x16n", "128x64x8x16x8n",
		"64x128x8x8x16n", "128x256x8x8x16n", "128x192x16x8x12n", "128x192x16x8x12nw8", "192x128x16x12x8n",
	}
	tileSweep1x256 = []string{"32x32x16x4x4", "32x32x16x4x4n", "32x32x16x4x4nw4", "64x64x16x4x4n"}
	// The other layouts tools/dawn-bench/sweep-small.txt times at 1 x 256
	// (TestSweepSmallTilesTested).
	tileSweepSmallLayouts = []string{"32x32x8x4x4nw4", "32x32x32x4x4nw4", "32x32x16x4x4nw4c2", "64x32x16x4x4nw4", "32x64x16x4x4nw4"}
)

// TestMatmulLayoutSweep runs every tiling of the sweep lists through the
// generated kernel (each shape is one the tile runs unrolled: N % BN == 0,
// K % BK == 0) against the float64 twin: one row and one K tile, M off the
// tile with an odd number of K tiles (the double-buffered halves
// alternate), M one short of two row tiles with eight K tiles; every
// epilogue; canaries around the output; and bit for bit against the tile
// of the same size without the layout suffixes (the same FMAs in the same
// order).
func TestMatmulLayoutSweep(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(21, 22))
	ran := 0
	for _, s := range slices.Concat(tileSweep16x1024, tileSweep1x256, tileSweepSmallLayouts) {
		tl, err := parseTile(s, d.shmax())
		if err != nil {
			if tl, err2 := parseTile(s, math.MaxInt32); err2 == nil && tl.SharedBytes(tl.DB) > d.shmax() {
				t.Logf("%s: needs %d bytes of workgroup memory, this device has %d: not run here", s, tl.SharedBytes(tl.DB), d.shmax())
				continue
			}
			t.Fatalf("sweep tile %s: %v", s, err)
		}
		for _, sh := range [][3]int{{1, tl.BN, tl.BK}, {tl.BM + 3, 3 * tl.BN, 3 * tl.BK}, {2*tl.BM - 1, tl.BN, 8 * tl.BK}} {
			M, N, K := sh[0], sh[1], sh[2]
			if !tl.unrollsWithin(N, K, d.shmax()) {
				t.Fatalf("%s: shape %dx%dx%d does not run the generated kernel", s, M, N, K)
			}
			for _, v := range []struct {
				act        int
				bias, accu bool
			}{{shaders.ActNone, false, false}, {shaders.ActGELU, true, false}, {shaders.ActSiLU, true, false}, {shaders.ActNone, true, true}} {
				name := fmt.Sprintf("%s/%dx%dx%d/act%d/bias%v/acc%v", s, M, N, K, v.act, v.bias, v.accu)
				t.Run(name, func(t *testing.T) {
					a := randVec(rng, M*K, 1)
					w := randVec(rng, N*K, 0.3)
					bias := randVec(rng, N, 0.1)
					init := randVec(rng, M*N, 1)
					out := newCanaryBuf(t, d, M*N, init)
					var bb *buffer
					if v.bias {
						bb = inBuf(t, d, bias)
					}
					o, err := d.matmulTiled("test", tl, M, N, K, whole(inBuf(t, d, a)), wbuf{b: inBuf(t, d, w)}, bb, out.bind(), v.act, v.accu)
					if err != nil {
						t.Fatal(err)
					}
					got := run(t, d, []op{o}, out)
					want := matmulRef(M, N, K, a, w, bias, init, v.bias, v.accu, v.act)
					checkClose(t, name, got, want, 2e-5*math.Sqrt(float64(K)), 1e-5)
					// Every layout makes the same FMAs in the same order
					// as the plain tile of the same size: the same bits.
					plain := tiling(tl.BM, tl.BN, tl.BK, tl.TM, tl.TN)
					if plain == tl {
						return
					}
					out2 := newCanaryBuf(t, d, M*N, init)
					o2, err := d.matmulTiled("test", plain, M, N, K, whole(inBuf(t, d, a)), wbuf{b: inBuf(t, d, w)}, bb, out2.bind(), v.act, v.accu)
					if err != nil {
						t.Fatal(err)
					}
					for i, x := range run(t, d, []op{o2}, out2) {
						if math.Float32bits(x) != math.Float32bits(got[i]) {
							t.Fatalf("element %d: %v with %s, %v with the plain %v", i, got[i], s, x, plain)
						}
					}
				})
				ran++
			}
		}
	}
	if ran == 0 {
		t.Fatal("no sweep tile ran")
	}
}

// TestMatmulTileSuffixes: the suffixes of Options.MatmulTile set the
// layout fields, in their one order, and the generator's refusals (warp
// tiles that do not tile the threads, a tiling that would spill) name the
// tile.
func TestMatmulTileSuffixes(t *testing.T) {
	for s, want := range map[string]matmulTile{
		"128x128x8x8x8n":      {MatmulTiling: shaders.MatmulTiling{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, Nest: true}},
		"128x128x8x8x8w8":     {MatmulTiling: shaders.MatmulTiling{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, WX: 8}},
		"128x128x8x8x8dbnw4":  {MatmulTiling: shaders.MatmulTiling{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, Nest: true, WX: 4}, DB: true},
		"32x32x16x4x4dbnw4":   {MatmulTiling: shaders.MatmulTiling{BM: 32, BN: 32, BK: 16, TM: 4, TN: 4, Nest: true, WX: 4}, DB: true},
		"128x128x16x8x8nw8c4": {MatmulTiling: shaders.MatmulTiling{BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, Nest: true, WX: 8, CL: 4}},
		"64x64x16x4x4c2":      {MatmulTiling: shaders.MatmulTiling{BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, CL: 2}},
		"32x32x16x4x4k4":      tile32k4,
		"32x32x16x4x4dbnw4k2": tile32dbnw4k2,
		"32x32x16x4x4nw4c2k4": {MatmulTiling: shaders.MatmulTiling{BM: 32, BN: 32, BK: 16, TM: 4, TN: 4, Nest: true, WX: 4, CL: 2, KW: 4}},
	} {
		got, err := parseTile(s, shaders.DefaultWorkgroupStorage)
		if err != nil || got != want {
			t.Errorf("parseTile(%q) = %v, %v, want %v", s, got, err, want)
		}
	}
	for s, msg := range map[string]string{
		"128x128x8x8x8nn":     "is not BMxBNxBKxTMxTN[db][n][wX][cL]",
		"128x128x8x8x8c2n":    "is not BMxBNxBKxTMxTN[db][n][wX][cL]",
		"128x128x8x8x8c1":     "c1: want c2, c4 or c8",
		"128x128x8x8x8c4":     "CL = 4 invocations per loaded row must be 1, 2, 4 or 8 and divide BK/4 = 2",
		"128x128x16x8x8c3":    "CL = 3",
		"128x128x32x8x8c16":   "CL = 16",
		"128x128x8x8x8ndb":    "is not BMxBNxBKxTMxTN[db][n][wX]",
		"128x128x8x8x8w":      "is not BMxBNxBKxTMxTN[db][n][wX]",
		"128x128x8x8x8w0":     "warp width w0",
		"128x128x8x8x8w3":     "warp width WX = 3 must be 1, 2, 4, 8, 16 or 32",
		"128x128x8x8x8w64":    "warp width WX = 64",
		"32x32x16x4x4w16":     "a warp of 16 x 2 threads does not tile the 8 x 8 threads",
		"16x16x8x4x4w8":       "warp tiles need a multiple of 32 threads, not 16",
		"128x64x32x16x8n":     "about 248 registers per thread (128 accumulators",
		"256x256x8x16x16nw8":  "registers per thread",
		"128x128x32x8x8n":     "workgroup memory", // 32 KiB > 16 KiB
		"128x128x16x8x8dbnw8": "workgroup memory",
		"32x32x16x4x4k1":      "k1: want k2 or more K slices",
		"32x32x16x4x4k0":      "k0: want k2 or more K slices",
		"32x32x16x4x4k4n":     "is not BMxBNxBKxTMxTN[db][n][wX][cL][kN]",
		"32x32x16x4x4kk4":     "is not BMxBNxBKxTMxTN[db][n][wX][cL][kN]",
		"32x32x16x4x4k8":      "KW = 8 K slices of 64 threads are 512 threads > 256",
		"64x64x16x4x4k2":      "KW = 2 K slices of 256 threads are 512 threads > 256",
		"32x32x8x4x4k4":       "KW = 4 K slices must divide the BK/4 = 2 k quads",
		"32x32x48x4x4k3":      "KW = 3 K slices must divide the TM·TN/4 = 4 accumulator vec4s",
		"32x32x16x4x4dbk4":    "20480 bytes of workgroup memory (8192 of K tiles, 12288 of the KW = 4 slices' partial sums) > the limit 16384",
	} {
		shmax := math.MaxInt32 // the refusals of the layout and the registers, not the memory
		if msg == "workgroup memory" || strings.Contains(msg, "the limit 16384") {
			shmax = shaders.DefaultWorkgroupStorage
		}
		_, err := parseTile(s, shmax)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("matmul tile %q", s)) || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseTile(%q): err = %v, want the tile and %q named", s, err, msg)
		}
	}
	// The layout reaches the generator's constants (and so the pipeline
	// cache key); the default layout adds none.
	tl, err := parseTile("64x64x16x4x4dbnw8", shaders.DefaultWorkgroupStorage)
	if err != nil {
		t.Fatal(err)
	}
	if c := tl.unrolledConsts(shaders.WeightF32, 16384); c["NEST"] != "1u" || c["WX"] != "8u" || c["DB"] != "1u" || c["CL"] != "" {
		t.Errorf("unrolledConsts of %v = %v", tl, c)
	}
	if c := tile128.unrolledConsts(shaders.WeightF32, 16384); c["NEST"] != "" || c["WX"] != "" || c["CL"] != "" {
		t.Errorf("unrolledConsts of the default %v has layout constants: %v", tile128, c)
	}
	if got := tl.String(); got != "64x64x16/4x4dbnw8" {
		t.Errorf("String() = %q", got)
	}
	if tl, err := parseTile("64x64x16x4x4c4", shaders.DefaultWorkgroupStorage); err != nil || tl.unrolledConsts(shaders.WeightF32, 16384)["CL"] != "4u" || tl.String() != "64x64x16/4x4c4" {
		t.Errorf("parseTile(64x64x16x4x4c4) = %v, %v", tl, err)
	}
	// KW reaches the constants; the tile of 4 slices fits 16 KiB exactly.
	if tl, err := parseTile("32x32x16x4x4k4", shaders.DefaultWorkgroupStorage); err != nil || tl.unrolledConsts(shaders.WeightF32, 16384)["KW"] != "4u" || tl.String() != "32x32x16/4x4k4" || tl.SharedBytes(false) != 16384 {
		t.Errorf("parseTile(32x32x16x4x4k4) = %v, %v", tl, err)
	}
	if c := tile32.unrolledConsts(shaders.WeightF32, 16384); c["KW"] != "" {
		t.Errorf("unrolledConsts of %v has KW: %v", tile32, c)
	}
}

// TestMatmulTileSweepDocumented: docs/performance.md's sweep loops list exactly
// tileSweep16x1024 and tileSweep1x256 (one source for the values a GPU
// run is asked to time).
func TestMatmulTileSweepDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "performance.md"))
	if err != nil {
		t.Fatal(err)
	}
	loops := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "for X in "); ok {
			vals, _, _ := strings.Cut(rest, ";")
			loops[strings.Join(strings.Fields(vals), " ")] = strings.Fields(vals)
		}
	}
	for _, want := range [][]string{tileSweep16x1024, tileSweep1x256} {
		if _, ok := loops[strings.Join(want, " ")]; !ok {
			t.Errorf("docs/performance.md has no loop `for X in %s; do`", strings.Join(want, " "))
		}
	}
}

// tileSlicedK are the sliced-K tilings (Options.MatmulTile's suffix kN,
// shaders.MatmulTiling.KW) the tests run against the float64 twin: K
// sliced 2, 3 and 4 ways; BK 16, 32, 48 and 64; 4x4, 4x8, 8x8 and 4x12 per
// thread; loads that split over the workgroup evenly, with a guarded round
// of A or of W, and with both guarded rounds overlapping (24x24: 144
// threads for 96 + 96 vec4s, groups of 36 threads that are not whole
// warps); with the layouts and double buffering. tools/dawn-bench's
// sweep-small.txt times a subset on a GPU (TestSweepSmallTilesTested).
var tileSlicedK = []string{
	"32x32x16x4x4k2", "32x32x16x4x4k4", "32x32x32x4x4k2", "32x32x32x4x4k4", "32x64x16x4x4k2", "64x32x16x4x4k2",
	"32x32x16x4x4nk4", "32x32x16x4x4nw4k2", "32x32x16x4x4nw4k4", "32x32x16x4x4nw4c2k4", "32x32x32x4x4nw4k4", "32x64x16x4x4nw4k2", "64x32x16x4x4nw4k2",
	"32x32x16x4x4dbk2", "32x32x16x4x4dbk4", "32x32x16x4x4dbnw4k4", "32x32x32x4x4dbk4", "32x32x64x4x4k4",
	"32x64x16x4x8k4", "64x64x16x8x8k2", "32x48x48x4x12k3", "24x24x16x4x4k4",
}

// TestMatmulSlicedK runs every tiling of tileSlicedK through the generated
// kernel against the float64 twin within TestMatmulSweep's bound (sliced K
// changes only the order of the sums): one row and one K tile, M off the
// tile with an odd number of K tiles, M one short of two row tiles with
// eight K tiles; every epilogue (bias, GELU, SiLU, the residual add);
// canaries around the output; K split over workgroups on top (KSPLIT, then
// MatmulReduce: the split's partials come from the slices) with S = 2 and
// 3; and, for a tiling with layout suffixes or double buffering, bit for
// bit against the same tile and KW without them (the same sums in the
// same order).
func TestMatmulSlicedK(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(41, 42))
	ran := 0
	for _, s := range tileSlicedK {
		tl, err := parseTile(s, d.shmax())
		if err != nil {
			if tl, err2 := parseTile(s, math.MaxInt32); err2 == nil && tl.SharedBytes(tl.DB) > d.shmax() {
				t.Logf("%s: needs %d bytes of workgroup memory, this device has %d: not run here", s, tl.SharedBytes(tl.DB), d.shmax())
				continue
			}
			t.Fatalf("sliced-K tile %s: %v", s, err)
		}
		if tl.KW < 2 {
			t.Fatalf("%s: KW = %d", s, tl.KW)
		}
		plain := tiling(tl.BM, tl.BN, tl.BK, tl.TM, tl.TN)
		plain.KW = tl.KW
		for _, sh := range [][4]int{{1, tl.BN, tl.BK, 1}, {tl.BM + 3, 3 * tl.BN, 3 * tl.BK, 1}, {2*tl.BM - 1, tl.BN, 8 * tl.BK, 1},
			{tl.BM + 5, 2 * tl.BN, 4 * tl.BK, 2}, {7, tl.BN, 6 * tl.BK, 3}} {
			M, N, K, S := sh[0], sh[1], sh[2], sh[3]
			if !tl.unrollsWithin(N, K, d.shmax()) {
				t.Fatalf("%s: shape %dx%dx%d does not run the generated kernel", s, M, N, K)
			}
			for _, v := range []struct {
				act        int
				bias, accu bool
			}{{shaders.ActNone, false, false}, {shaders.ActGELU, true, false}, {shaders.ActSiLU, true, false}, {shaders.ActNone, true, true}} {
				name := fmt.Sprintf("%s/%dx%dx%d/S%d/act%d/bias%v/acc%v", s, M, N, K, S, v.act, v.bias, v.accu)
				t.Run(name, func(t *testing.T) {
					a := randVec(rng, M*K, 1)
					w := randVec(rng, N*K, 0.3)
					bias := randVec(rng, N, 0.1)
					init := randVec(rng, M*N, 1)
					var bb *buffer
					if v.bias {
						bb = inBuf(t, d, bias)
					}
					mm := func(tl matmulTile) []float32 {
						out := newCanaryBuf(t, d, M*N, init)
						if S == 1 {
							o, err := d.matmulTiled("test", tl, M, N, K, whole(inBuf(t, d, a)), wbuf{b: inBuf(t, d, w)}, bb, out.bind(), v.act, v.accu)
							if err != nil {
								t.Fatal(err)
							}
							return run(t, d, []op{o}, out)
						}
						rec := newCanaryBuf(t, d, S*M*N, nil)
						ops, err := d.matmulSplit("test", tl, S, M, N, K, whole(inBuf(t, d, a)), wbuf{b: inBuf(t, d, w)}, bb, out.bind(), v.act, v.accu, rec.bind())
						if err != nil {
							t.Fatal(err)
						}
						run(t, d, ops[:1], rec) // the partials stay inside their range
						return run(t, d, ops, out)
					}
					got := mm(tl)
					want := matmulRef(M, N, K, a, w, bias, init, v.bias, v.accu, v.act)
					checkClose(t, name, got, want, 2e-5*math.Sqrt(float64(K)), 1e-5)
					if plain == tl {
						return
					}
					for i, x := range mm(plain) {
						if math.Float32bits(x) != math.Float32bits(got[i]) {
							t.Fatalf("element %d: %v with %s, %v with %v", i, got[i], s, x, plain)
						}
					}
				})
				ran++
			}
		}
	}
	if ran == 0 {
		t.Fatal("no sliced-K tile ran")
	}
}

// TestSweepSmallTilesTested: every --matmul-tile value of
// tools/dawn-bench/sweep-small.txt (the 1 x 256 sweep a GPU run times) is
// one the tests run against the float64 twin (tileSweep1x256,
// tileSweepSmallLayouts, tileSlicedK) and parses within NVIDIA's 48 KiB of
// workgroup memory.
func TestSweepSmallTilesTested(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "tools", "dawn-bench", "sweep-small.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			if f[i] != "--matmul-tile" {
				continue
			}
			s := f[i+1]
			n++
			if !slices.Contains(slices.Concat(tileSweep1x256, tileSweepSmallLayouts, tileSlicedK), s) {
				t.Errorf("sweep-small.txt times --matmul-tile %s, which no test runs against the twin (add it to tileSweepSmallLayouts or tileSlicedK)", s)
			}
			if _, err := parseTile(s, 49152); err != nil {
				t.Errorf("sweep-small.txt: %v", err)
			}
		}
	}
	if n == 0 {
		t.Fatal("sweep-small.txt names no --matmul-tile")
	}
}
