package gpu

import (
	"testing"

	"github.com/remask/remask/shaders"
)

// TestPipelines creates every pipeline variant the backend can use (every
// matmul tiling x fast path x weight dtype, attention for every supported
// head-size class, the rest) inside error scopes: wgpu-native validates each
// WGSL module with naga, so this is the shader validation that CI runs.
func TestPipelines(t *testing.T) { pipelinesOn(t, testBackend(t)) }

func pipelinesOn(t *testing.T, be *Backend) {
	d := be.d
	count := 0
	try := func(file string, consts map[string]string, kinds []bindKind) {
		t.Helper()
		if _, err := d.pipeline(file, consts, kinds); err != nil {
			t.Errorf("%s %v: %v", file, consts, err)
		}
		count++
	}
	for _, tl := range matmulTiles {
		for _, dt := range []int{shaders.WeightF32, shaders.WeightF16, shaders.WeightBF16} {
			if tl.CheckUnrolledLimit(tl.DB, d.shmax()) == nil {
				try(shaders.MatmulUnrolled, tl.unrolledConsts(dt, d.shmax()), matmulKinds)
				if dt == shaders.WeightF16 {
					// Options.Precision "f16"'s form (its weights are
					// always f16), with its arithmetic emulated in f32
					// (F16 = 2), which every adapter compiles: through
					// pipeline's footprint checks like the rest.
					c := tl.unrolledConsts(dt, d.shmax())
					c["F16"] = "2u"
					try(shaders.MatmulUnrolled, c, matmulKinds)
				}
			}
			for _, fast := range []bool{false, true} {
				try("matmul.wgsl", tl.loop().consts(fast, dt), matmulKinds)
			}
		}
	}
	for _, D := range []int{1, 8, 16, 32, 64, 96, 128, 256} {
		BR, BC, err := attnTiles(D)
		if err != nil {
			t.Fatal(err)
		}
		try("attention.wgsl", map[string]string{"D": itou(D), "BR": itou(BR), "BC": itou(BC)}, attnKinds)
		if D%4 == 0 {
			try(shaders.AttentionUnrolled, map[string]string{"D": itou(D), "BR": itou(BR), "BC": itou(BC)}, attnKinds)
		}
		if D%8 == 0 { // the split attention with the rope on its loads
			try(shaders.AttentionUnrolled, map[string]string{"D": itou(D), "BR": itou(BR), "BC": itou(BC), "KS": itou(BC), "ROPE": "1u"}, attnRopeKinds)
		}
	}
	// Attention "rows": the automatic tiles wherever they fit the device
	// (the choice rowsTileFor makes).
	for _, s := range RowsTiles {
		tl, err := shaders.ParseAttentionRowsTile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, D := range []int{4, 32, 64, 128} {
			if tl.CheckFor(D, d.shmax(), d.caps.invoc) == nil {
				try(shaders.AttentionRows, rowsConsts(D, tl), attnKinds)
			}
		}
	}
	for _, dt := range []int{shaders.WeightF32, shaders.WeightF16, shaders.WeightBF16} {
		try("gather.wgsl", map[string]string{"WDTYPE": itou(dt)}, gatherKinds)
		try("embednorm.wgsl", map[string]string{"WDTYPE": itou(dt)}, embedNormKinds)
	}
	try("layernorm.wgsl", nil, layerNormKinds)
	try("addnorm.wgsl", nil, addNormKinds)
	// The draw (sample.wgsl's block) in both its kernels and workgroup sizes.
	try("sample.wgsl", map[string]string{"WG": sampleWG(1)}, sampleKinds)
	try("sample.wgsl", map[string]string{"WG": sampleWG(sampleMaxV)}, sampleKinds)
	try("samplerwave.wgsl", nil, samplerWaveKinds)
	try("rope.wgsl", nil, ropeKinds)
	try("rowdot.wgsl", nil, rowDotKinds)
	t.Logf("created %d pipelines on %s: wgpu-native's naga validated every WGSL variant", count, d.p.info().Name)

	// And a broken shader must be an error value, not a crash.
	if _, err := d.p.newPipeline("broken", "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }", "main", nil); err == nil {
		t.Error("an invalid shader compiled without error")
	} else {
		t.Logf("invalid shader refused as expected: %.120s...", err)
	}
}

func itou(v int) string { return shaders.UintLiteral(v) }
