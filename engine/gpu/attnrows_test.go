package gpu

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/remask/remask/shaders"
)

// rowsTestTiles are the AttentionRows tiles TestAttentionRowsSweep runs:
// the defaults (RowsTiles) where they fit the test device, and tiles of
// every shape the sweep on a GPU uses (R = 1 and 2, N = 4 and 8, key tiles
// of 16 and 32, with and without the prefetch) plus odd ones (R = 3, a key
// tile of one block, WG = 8, a tile of fewer elements than threads).
var rowsTestTiles = []shaders.AttentionRowsTile{
	{R: 1, WG: 64, BC: 32, N: 8},
	{R: 1, WG: 64, BC: 32, N: 4, PF: true},
	{R: 2, WG: 32, BC: 16, N: 8},
	{R: 2, WG: 32, BC: 16, N: 8, PF: true},
	{R: 2, WG: 64, BC: 16, N: 8},
	{R: 2, WG: 16, BC: 32, N: 4},
	{R: 3, WG: 8, BC: 8, N: 8, PF: true},
	{R: 4, WG: 8, BC: 4, N: 1},
}

// TestAttentionRowsSweep checks shaders.AttentionRows against the float64
// twin: T of 1 and below, at and off the row blocks (R·WG) and key tiles,
// several batch rows and heads, causal and not, head sizes 64, 4 and 12,
// and scores spread wide enough (inputs of scale 2: scores of standard deviation 4) and rising along the keys (the
// ramp) that the lazy rescale fires inside a row. Tiles that need more
// workgroup memory than the device has must be refused with the limit named.
func TestAttentionRowsSweep(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(15, 16))
	shapes := []struct{ B, T, H int }{{1, 1, 1}, {1, 5, 1}, {2, 15, 2}, {1, 16, 1}, {1, 17, 3}, {2, 31, 1}, {1, 33, 2}, {1, 64, 1}, {2, 65, 1}, {1, 97, 2}, {1, 129, 1}, {1, 130, 2}}
	ran := 0
	for _, tile := range rowsTestTiles {
		for _, D := range []int{64, 4, 12} {
			if err := tile.CheckFor(D, d.shmax(), d.caps.invoc); err != nil {
				if _, err2 := d.attentionRowsWith("test", tile, 1, 8, D, 1, false, binding{}, binding{}); err2 == nil || !strings.Contains(err2.Error(), "maxComputeWorkgroupStorageSize") {
					t.Errorf("tile %s at D=%d does not fit (%v) but attentionRowsWith gave %v", tile, D, err, err2)
				}
				t.Logf("tile %s at D=%d: %v (checked refused)", tile, D, err)
				continue
			}
			for si, s := range shapes {
				if D != 64 && si%2 == 1 {
					continue
				}
				for _, causal := range []bool{false, true} {
					for _, kind := range []string{"normal", "wide", "ramp"} {
						if kind != "normal" && (si%3 != 0 || D != 64) {
							continue
						}
						C := D * s.H
						name := fmt.Sprintf("%s/D%d_B%d_T%d_H%d/causal%v/%s", tile, D, s.B, s.T, s.H, causal, kind)
						t.Run(name, func(t *testing.T) {
							var qkv []float32
							switch kind {
							case "normal":
								qkv = randVec(rng, s.B*s.T*3*C, 1)
							case "wide":
								qkv = randVec(rng, s.B*s.T*3*C, 2)
							case "ramp":
								// q = 1, k_j = j·0.25·(1 + noise): scores rise along
								// the keys by 2 per key, past the rescale bound in
								// every block.
								qkv = randVec(rng, s.B*s.T*3*C, 0.1)
								for r := 0; r < s.B*s.T; r++ {
									j := r % s.T
									for c := 0; c < C; c++ {
										qkv[r*3*C+c] = 1
										qkv[r*3*C+C+c] = float32(j) * 0.25 * (1 + qkv[r*3*C+C+c])
									}
								}
							}
							out := newCanaryBuf(t, d, s.B*s.T*C, nil)
							o, err := d.attentionRowsWith("test", tile, s.B, s.T, C, s.H, causal, whole(inBuf(t, d, qkv)), out.bind())
							if err != nil {
								t.Fatal(err)
							}
							got := run(t, d, []op{o}, out)
							checkClose(t, name, got, attentionTwin(qkv, s.B, s.T, C, s.H, causal), 2e-5, 1e-4)
						})
						ran++
					}
				}
			}
		}
	}
	if ran == 0 {
		t.Fatal("no AttentionRows tile fits this device")
	}
	t.Logf("%d runs", ran)
	if _, err := d.attentionRowsWith("test", shaders.AttentionRowsTile{R: 1, WG: 64, BC: 32, N: 8}, 1, 8, 18, 3, false, binding{}, binding{}); err == nil || !strings.Contains(err.Error(), "head size 6") {
		t.Errorf("head size 6: %v, want an error naming it", err)
	}
}

// TestAttentionRowsOption: Options.Attention "rows" with and without
// AttentionTile, checked by Check and New (errors naming the value), and
// the tile the device picks.
func TestAttentionRowsOption(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{AttentionTile: "2x64x16x8"}, `attention tile "2x64x16x8" applies to the attention kernel "rows" only`},
		{Options{Attention: "tiled", AttentionTile: "2x64x16x8"}, `applies to the attention kernel "rows" only (the attention kernel is "tiled")`},
		{Options{Attention: "rows", AttentionTile: "2x64x16"}, "is not RxWGxBCxN"},
		{Options{Attention: "rows", AttentionTile: "2x64x12x8"}, "BC = 12 must be a multiple of N = 8"},
	} {
		if err := c.o.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%+v) = %v, want an error containing %q", c.o, err, c.want)
		}
		if _, err := New(context.Background(), c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", c.o, err, c.want)
		}
	}
	for _, o := range []Options{{Attention: "rows"}, {Attention: "rows", AttentionTile: "1x64x32x4"}} {
		if err := o.Check(); err != nil {
			t.Errorf("Check(%+v) = %v", o, err)
		}
	}
	// The automatic tile: the first of RowsTiles that fits (1x128x32x8,
	// the H200 sweep's fastest, needs 128 invocations; 1x64x32x8 64).
	for _, c := range []struct {
		shmax, invoc, D int
		want            string
	}{{49152, 256, 64, "1x128x32x8"}, {16384, 256, 64, "1x128x32x8"}, {16384, 64, 64, "1x64x32x8"}, {8192, 256, 32, "1x128x32x8"}} {
		d := &device{caps: caps{shmax: c.shmax, invoc: c.invoc}}
		got, err := d.rowsTileFor(c.D)
		if err != nil || got.String() != c.want {
			t.Errorf("shmax %d, invocations %d, D %d: tile %s, %v; want %s", c.shmax, c.invoc, c.D, got, err, c.want)
		}
	}
	if _, err := (&device{caps: caps{shmax: 16384, invoc: 256}}).rowsTileFor(256); err == nil || !strings.Contains(err.Error(), "no tile runs head size 256") {
		t.Errorf("D 256 in 16 KiB: %v", err)
	}
	forced := shaders.AttentionRowsTile{R: 2, WG: 64, BC: 16, N: 8}
	if _, err := (&device{caps: caps{shmax: 16384, invoc: 256}, rowsTile: &forced}).rowsTileFor(64); err == nil || !strings.Contains(err.Error(), "needs 40960 bytes of workgroup memory") {
		t.Errorf("a forced tile beyond the device: %v", err)
	}
}

// TestAttentionRowsTileBeyondLimits: a forced tile that needs more
// workgroup memory than a default-limits device has is refused at Load,
// naming the tile, the bytes and the limit.
func TestAttentionRowsTileBeyondLimits(t *testing.T) {
	testBackend(t) // skips without an adapter (outside CI)
	m, err := standardTestModel(11)
	if err != nil {
		t.Fatal(err)
	}
	be, err := New(context.Background(), Options{Limits: "default", Attention: "rows", AttentionTile: "2x64x16x8"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	_, err = be.Load(context.Background(), m)
	if err == nil || !strings.Contains(err.Error(), "attention tile 2x64x16x8 needs 40960 bytes of workgroup memory at head size 64; the device has 16384 (maxComputeWorkgroupStorageSize)") {
		t.Errorf("Load: %v, want the tile's workgroup memory named", err)
	} else {
		t.Logf("refused: %v", err)
	}
}

// TestDefaultKernelsDocumented pins the docs' names of the default kernels'
// tiles (chooseTile's big and small tiles and the first of RowsTiles, which the H200
// sweep chose) to the code: a change of either default fails here until
// docs/gpu.md and docs/performance.md say it.
func TestDefaultKernelsDocumented(t *testing.T) {
	// The big tile in --matmul-tile's syntax, as the docs write it.
	const bigName = "128x128x8x8x8nc2"
	if parsed, err := parseTile(bigName, 16384); err != nil || parsed != chooseTile(16*1024, 1152, 384) {
		t.Fatalf("the docs' big tile %s (%v, %v) is not chooseTile's %v", bigName, parsed, err, chooseTile(16*1024, 1152, 384))
	}
	// The small tile (1 x 256's matmuls).
	const smallName = "32x32x16x4x4nw4c2"
	if parsed, err := parseTile(smallName, 16384); err != nil || parsed != chooseTile(256, 1152, 384) {
		t.Fatalf("the docs' small tile %s (%v, %v) is not chooseTile's %v", smallName, parsed, err, chooseTile(256, 1152, 384))
	}
	for _, doc := range []string{"../../docs/gpu.md", "../../docs/performance.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{bigName, smallName, RowsTiles[0]} {
			if !strings.Contains(string(b), "`"+name+"`") {
				t.Errorf("%s does not name the default tile `%s`", doc, name)
			}
		}
	}
}
