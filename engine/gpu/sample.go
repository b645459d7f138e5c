package gpu

import (
	"fmt"
	"math"

	"github.com/remask/remask/shaders"
)

// The sampling kernels: Philox (rng.wgsl) and the token draw (sample.wgsl),
// used by the device loop (loop.go).

var (
	rngKinds    = []bindKind{bindUniform, bindRead, bindRW}
	sampleKinds = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW, bindRead, bindRW}
)

// sampleMaxV is the largest vocabulary sample.wgsl draws from (its MAXV: one
// row of probabilities in workgroup memory).
const sampleMaxV = 1024

// philox: out (n, 5) = Philox4x32-10 of in (n, 6) = (counter[4], key[2]):
// the four words and the bits of the uniform of word 0 (rng.ToUnit).
func (d *device) philox(n int, in, out binding) (op, error) {
	if n < 1 {
		return op{}, fmt.Errorf("gpu: philox: %d blocks", n)
	}
	pl, err := d.pipeline("rng.wgsl", nil, rngKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.RngParams{N: uint32(n)}
	return op{name: "philox", pl: pl, params: shaders.Bytes(p), binds: []binding{in, out}, wg: d.grid(uint64(ceilDiv(n, 64)))}, nil
}

// tokenDraw is what sample.wgsl needs besides its buffers: the sampler's
// options and where in the run the draw happens.
type tokenDraw struct {
	V           int // vocabulary size, 1..sampleMaxV
	T           int // positions per sample: flat position p is sample p/T, position p%T
	Iteration   int
	Temperature float64 // > 0
	TopP        float64 // (0, 1]
	Seed        uint64
	// Mode is shaders.SampleList (the default) or SampleFill (sample.wgsl
	// says what each reads and writes); Mask, Keep, Aux and Err are theirs.
	Mode, Keep int
	Mask       uint32
	Aux, Err   binding
}

// sampleTokens draws one id per row of logits (n, V) as internal/step's
// Sampler does (the host loop's draw), with u = rng.Uniform(seed, p/T,
// iteration, p%T, rng.Token) for the flat position p = positions[row] (u32). exclude holds
// excludeWords of the excluded ids. out (n, u32) gets the ids, 0xffffffff
// where every id is excluded.
func (d *device) sampleTokens(n int, s tokenDraw, logits, positions, exclude, out binding) (op, error) {
	switch {
	case n < 1:
		return op{}, fmt.Errorf("gpu: sample: %d rows", n)
	case s.V < 1 || s.V > sampleMaxV:
		return op{}, fmt.Errorf("gpu: sample: vocabulary size %d is not supported by the sampling kernel (1 to %d)", s.V, sampleMaxV)
	case s.T < 1:
		return op{}, fmt.Errorf("gpu: sample: T = %d", s.T)
	case s.Iteration < 0 || s.Iteration > math.MaxUint32:
		return op{}, fmt.Errorf("gpu: sample: iteration %d", s.Iteration)
	case !(s.Temperature > 0) || math.IsInf(s.Temperature, 1):
		return op{}, fmt.Errorf("gpu: sample: temperature %v must be > 0", s.Temperature)
	case !(s.TopP > 0 && s.TopP <= 1):
		return op{}, fmt.Errorf("gpu: sample: top_p %v must be in (0, 1]", s.TopP)
	}
	pl, err := d.pipeline("sample.wgsl", map[string]string{"WG": sampleWG(s.V)}, sampleKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.SampleParams{V: uint32(s.V), N: uint32(n), T: uint32(s.T), Iteration: uint32(s.Iteration),
		Temperature: float32(s.Temperature), TopP: float32(s.TopP),
		SeedLo: uint32(s.Seed), SeedHi: uint32(s.Seed >> 32),
		Mode: uint32(s.Mode), Mask: s.Mask, Keep: uint32(s.Keep)}
	aux, errb := s.Aux, s.Err
	if aux.buf == nil {
		aux = whole(d.dummy)
	}
	if errb.buf == nil {
		errb = whole(d.dummyRW)
	}
	return op{name: "sample", pl: pl, params: shaders.Bytes(p), binds: []binding{logits, positions, exclude, out, aux, errb}, wg: d.grid(uint64(n))}, nil
}

// sampleWG is sample.wgsl's workgroup size for a vocabulary of V ids: 64
// threads up to 256 ids (a character vocabulary leaves no thread idle),
// else 256 (at most 32 ids per thread: its keep mask is one u32).
func sampleWG(V int) string {
	if V <= 256 {
		return "64u"
	}
	return "256u"
}

// excludeWords packs the excluded ids as sample.wgsl reads them: bit i%32
// of word i/32.
func excludeWords(exclude []bool) []uint32 {
	w := make([]uint32, max(1, (len(exclude)+31)/32))
	for i, x := range exclude {
		if x {
			w[i/32] |= 1 << (i % 32)
		}
	}
	return w
}
