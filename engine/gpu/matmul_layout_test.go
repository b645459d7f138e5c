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
	for _, s := range slices.Concat(tileSweep16x1024, tileSweep1x256) {
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
	} {
		shmax := math.MaxInt32 // the refusals of the layout and the registers, not the memory
		if msg == "workgroup memory" {
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
