package shaders

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sweepTiles are the tiles of the GPU sweep in docs/performance.md
// ("Sweeping the rows attention": the words after "for T in" up to "; do"),
// each checked to run head size 64 within 48 KiB of workgroup memory, so
// that the sweep's one call cannot stop on a tile the generator refuses.
func sweepTiles(t *testing.T) []AttentionRowsTile {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "performance.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "#### Sweeping the rows attention")
	if i < 0 {
		t.Fatal("docs/performance.md has no section \"Sweeping the rows attention\"")
	}
	s = s[i:]
	i = strings.Index(s, "for T in ")
	j := strings.Index(s, "; do")
	if i < 0 || j < i {
		t.Fatal("docs/performance.md, \"Sweeping the rows attention\": no \"for T in ...; do\" loop")
	}
	var out []AttentionRowsTile
	for _, w := range strings.Fields(s[i+len("for T in ") : j]) {
		if w == "\\" {
			continue
		}
		tile, err := ParseAttentionRowsTile(w)
		if err != nil {
			t.Fatalf("docs/performance.md sweep: %v", err)
		}
		if err := tile.CheckFor(64, 49152, 256); err != nil {
			t.Errorf("docs/performance.md sweep: %v", err)
		}
		out = append(out, tile)
	}
	if len(out) < 2 {
		t.Fatalf("docs/performance.md sweep: %d tiles", len(out))
	}
	return out
}

// rowsVariants are the AttentionRows tilings the shader tests compile: the
// tiles of the GPU sweep (sweepTiles) at head size 64 and odd ones (D = 4,
// 12, 128; R = 3 and 4; N = 1; a key tile of one block).
func rowsVariants(t *testing.T) []struct {
	D int
	T AttentionRowsTile
} {
	type v = struct {
		D int
		T AttentionRowsTile
	}
	var out []v
	for _, tile := range sweepTiles(t) {
		out = append(out, v{64, tile})
	}
	return append(out, []v{
		{64, AttentionRowsTile{2, 64, 32, 4, true}},
		{64, AttentionRowsTile{2, 128, 16, 4, false}},
		{4, AttentionRowsTile{3, 16, 8, 8, true}},
		{12, AttentionRowsTile{4, 8, 4, 1, false}},
		{12, AttentionRowsTile{4, 8, 4, 1, true}},
		{128, AttentionRowsTile{2, 16, 8, 8, false}},
	}...)
}

func rowsConsts(D int, t AttentionRowsTile) map[string]string {
	pf := 0
	if t.PF {
		pf = 1
	}
	return map[string]string{"D": UintLiteral(D), "R": UintLiteral(t.R), "WG": UintLiteral(t.WG), "BC": UintLiteral(t.BC), "N": UintLiteral(t.N), "PF": UintLiteral(pf)}
}

// TestAttentionRowsValidate validates every variant with the naga and Tint
// CLIs (outside CI a missing CLI skips its half; engine/gpu's tests compile
// the kernels through wgpu-native either way), and checks their footprint
// against AttentionRowsTile.Shared.
func TestAttentionRowsValidate(t *testing.T) {
	dir := t.TempDir()
	variants := rowsVariants(t)
	for i, v := range variants {
		src, err := Source(AttentionRows, rowsConsts(v.D, v.T))
		if err != nil {
			t.Fatalf("%d %s: %v", v.D, v.T, err)
		}
		fp, err := KernelFootprint(src)
		if err != nil {
			t.Fatalf("%d %s: %v", v.D, v.T, err)
		}
		if want := (Footprint{[3]int{v.T.WG, 1, 1}, v.T.Shared(v.D)}); fp != want {
			t.Errorf("D=%d %s: footprint %+v, want %+v", v.D, v.T, fp, want)
		}
		if strings.Contains(src, "array<f32, ") || strings.Contains(src, "var acc") {
			t.Errorf("D=%d %s declares a local array", v.D, v.T)
		}
		// One barrier after staging a key tile and one before the next
		// overwrites it.
		loop := src[strings.Index(src, "for (var j0"):]
		if n := strings.Count(loop, "workgroupBarrier()"); n != 2 {
			t.Errorf("D=%d %s: %d barriers in the key loop, want 2", v.D, v.T, n)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("rows%d.wgsl", i)), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, val := range wgslValidators(t) {
		for i, v := range variants {
			p := filepath.Join(dir, fmt.Sprintf("rows%d.wgsl", i))
			if out, err := val.run(p); err != nil {
				t.Errorf("%s D=%d %s: %v\n%s", val.name, v.D, v.T, err, out)
			}
		}
		t.Logf("%s validated %d variants of %s", val.name, len(variants), AttentionRows)
	}
}

// TestAttentionRowsTile: parsing, the generator's refusals and the limits
// check, each error naming the problem.
func TestAttentionRowsTile(t *testing.T) {
	tile, err := ParseAttentionRowsTile("2x64x16x8")
	if err != nil || tile != (AttentionRowsTile{2, 64, 16, 8, false}) || tile.String() != "2x64x16x8" {
		t.Fatalf("2x64x16x8: %+v %v", tile, err)
	}
	if pf, err := ParseAttentionRowsTile("2x64x16x8pf"); err != nil || pf != (AttentionRowsTile{2, 64, 16, 8, true}) || pf.String() != "2x64x16x8pf" || pf.Shared(64) != tile.Shared(64) {
		t.Errorf("2x64x16x8pf: %+v %v", pf, err)
	}
	if s := tile.Shared(64); s != (2*64*64+2*16*64)*4 {
		t.Errorf("shared of 2x64x16x8 at D=64: %d", s)
	}
	if s := (AttentionRowsTile{1, 64, 32, 4, false}).Shared(64); s != DefaultWorkgroupStorage {
		t.Errorf("shared of 1x64x32x4 at D=64: %d, want %d (K and V tiles only)", s, DefaultWorkgroupStorage)
	}
	for _, c := range []struct{ in, want string }{
		{"2x64x16", "is not RxWGxBCxN"},
		{"2x64x16x8p", `"8p" is not a positive integer`},
		{"2x64x16x8db", `"8db" is not a positive integer`},
		{"2x64x16xa", `"a" is not a positive integer`},
		{"0x64x16x8", `"0" is not a positive integer`},
		{"5x64x16x8", "R = 5 rows per thread"},
		{"2x512x16x8", "WG = 512 threads"},
		{"2x64x12x8", "BC = 12 must be a multiple of N = 8"},
		{"2x64x16x32", "N = 32 keys per block"},
	} {
		if _, err := ParseAttentionRowsTile(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.in, err, c.want)
		}
	}
	if err := tile.CheckFor(64, DefaultWorkgroupStorage, 256); err == nil || !strings.Contains(err.Error(), "needs 40960 bytes of workgroup memory") {
		t.Errorf("2x64x16x8 within 16 KiB: %v", err)
	}
	if err := tile.CheckFor(64, 49152, 32); err == nil || !strings.Contains(err.Error(), "maxComputeInvocationsPerWorkgroup") {
		t.Errorf("2x64x16x8 within 32 invocations: %v", err)
	}
	if err := tile.CheckFor(6, 49152, 256); err == nil || !strings.Contains(err.Error(), "head size 6") {
		t.Errorf("head size 6: %v", err)
	}
	for _, c := range []map[string]string{
		{"D": "64u", "R": "2u", "WG": "64u", "BC": "16u"},            // no N
		{"D": "64u", "R": "2u", "WG": "64u", "BC": "16u", "N": "3u"}, // BC % N
		{"D": "6u", "R": "2u", "WG": "64u", "BC": "16u", "N": "8u"},  // D % 4
		{"D": "64u", "R": "2u", "WG": "64u", "BC": "16u", "N": "8u", "X": "1u"},
		{"D": "64u", "R": "2u", "WG": "64u", "BC": "16u", "N": "8u", "PF": "2u"},
	} {
		if _, err := Source(AttentionRows, c); err == nil {
			t.Errorf("%v was accepted", c)
		}
	}
}
