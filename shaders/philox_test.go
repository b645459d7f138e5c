package shaders

import (
	"strings"
	"testing"
)

// philoxBlock returns the text between a file's "// philox begin" and
// "// philox end" markers.
func philoxBlock(t *testing.T, file string) string {
	t.Helper()
	src, err := Raw(file)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "// philox begin\n", "// philox end\n"
	i, j := strings.Index(src, begin), strings.Index(src, end)
	if i < 0 || j < i || strings.Count(src, begin) != 1 || strings.Count(src, end) != 1 {
		t.Fatalf("%s: no single %q ... %q block", file, strings.TrimSpace(begin), strings.TrimSpace(end))
	}
	return src[i:j]
}

// TestPhiloxCopies checks that every kernel drawing random numbers gets
// rng.wgsl's Philox block unchanged (Raw splices it in) (engine/gpu's TestPhiloxBitExact checks
// rng.wgsl against engine/rng bit for bit).
func TestPhiloxCopies(t *testing.T) {
	want := philoxBlock(t, "rng.wgsl")
	for _, file := range []string{"sample.wgsl"} {
		if got := philoxBlock(t, file); got != want {
			t.Errorf("%s: its philox block differs from rng.wgsl's; copy it over", file)
		}
	}
}
