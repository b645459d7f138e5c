package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/remask/remask/engine/rng"
	"github.com/remask/remask/internal/step"
)

// Tests of the sampling kernels (sample.go): rng.wgsl bit for bit against
// engine/rng, and sample.wgsl against internal/step's Sampler (sampleRef),
// the draw of the host loop.

// u32Buf uploads read-only u32 data.
func u32Buf(t *testing.T, d *device, data []uint32) *buffer {
	t.Helper()
	f := make([]float32, len(data))
	for i, w := range data {
		f[i] = math.Float32frombits(w)
	}
	return inBuf(t, d, f)
}

func words(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}

func TestPhiloxBitExact(t *testing.T) {
	d := testBackend(t).d
	type block struct {
		ctr [4]uint32
		key [2]uint32
	}
	// The Random123 known-answer vectors (engine/rng's TestPhiloxKnownAnswers).
	kat := []struct {
		block
		want [4]uint32
	}{
		{block{[4]uint32{0, 0, 0, 0}, [2]uint32{0, 0}}, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{block{[4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff}}, [4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{block{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0}}, [4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	}
	var blocks []block
	for _, k := range kat {
		blocks = append(blocks, k.block)
	}
	// engine/rng's coordinates: counter (position, sample, iteration,
	// purpose), key (seed low, seed high); high seeds and large counters.
	type coord struct {
		seed                        uint64
		sample, iteration, position uint32
		purpose                     rng.Purpose
	}
	var coords []coord
	for _, seed := range []uint64{0, 1, 42, 1 << 32, 0xffffffff, 0x123456789abcdef0, math.MaxUint64} {
		for _, sample := range []uint32{0, 1, 7, 0xffffffff} {
			for _, it := range []uint32{0, 3, 1000, 0xfffffffe} {
				for _, pos := range []uint32{0, 1, 127, 65535, 0xffffffff} {
					for _, pur := range []rng.Purpose{rng.SeedPlacement, rng.Token, rng.RemaskNoise, rng.RemaskLuck, rng.RemaskRandom} {
						coords = append(coords, coord{seed, sample, it, pos, pur})
					}
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		coords = append(coords, coord{r.Uint64(), r.Uint32(), r.Uint32(), r.Uint32(), rng.Purpose(r.Uint32())})
	}
	for _, c := range coords {
		blocks = append(blocks, block{[4]uint32{c.position, c.sample, c.iteration, uint32(c.purpose)}, [2]uint32{uint32(c.seed), uint32(c.seed >> 32)}})
	}
	n := len(blocks)
	in := make([]uint32, 0, 6*n)
	for _, b := range blocks {
		in = append(in, b.ctr[0], b.ctr[1], b.ctr[2], b.ctr[3], b.key[0], b.key[1])
	}
	out := newCanaryBuf(t, d, 5*n, nil)
	o, err := d.philox(n, whole(u32Buf(t, d, in)), out.bind())
	if err != nil {
		t.Fatal(err)
	}
	got := words(run(t, d, []op{o}, out))
	res := func(i int) [4]uint32 { return [4]uint32{got[5*i], got[5*i+1], got[5*i+2], got[5*i+3]} }
	for i, k := range kat {
		if g := res(i); g != k.want {
			t.Errorf("known answer %d: GPU Philox4x32(%#x, %#x) = %#x, want %#x", i, k.ctr, k.key, g, k.want)
		}
	}
	bad := 0
	for i, b := range blocks {
		want := rng.Philox4x32(b.ctr, b.key)
		wantU := math.Float32bits(rng.ToUnit(want[0]))
		if i >= len(kat) {
			c := coords[i-len(kat)]
			want = rng.Bits(c.seed, c.sample, c.iteration, c.position, c.purpose)
			wantU = math.Float32bits(rng.Uniform(c.seed, c.sample, c.iteration, c.position, c.purpose))
		}
		if g := res(i); g != want || got[5*i+4] != wantU {
			if bad++; bad <= 5 {
				t.Errorf("block %d (counter %#x, key %#x): GPU %#x, uniform bits %#x; engine/rng %#x, %#x", i, b.ctr, b.key, g, got[5*i+4], want, wantU)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d blocks differ", bad, n)
	}
	t.Logf("%d Philox blocks bit-identical to engine/rng", n)
}

// sampleRef draws with internal/step's Sampler, the CPU reference (the
// host loop's draw): it returns the drawn id (-1 if no mass), the sampling
// distribution after the nucleus rule, its mass, and, for explain, the
// cumulative probabilities of ranks < r (r >= 1, ids with mass) that the
// nucleus rule compared with top_p.
func sampleRef(logits []float32, exclude []bool, temperature, topP float64, u float32) (id int, p []float64, total float64, cums []float64) {
	probs, total := step.NewSampler(exclude, temperature, topP).Distribution(logits)
	p = append([]float64(nil), probs...)
	id = int(step.Pick(p, total, u))
	if topP < 1 {
		full, all := step.NewSampler(exclude, temperature, 1).Distribution(logits)
		order := make([]int, len(full))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return full[order[a]] > full[order[b]] }) // ties: lower id
		var cum float64
		for r, i := range order {
			if r > 0 && full[i] > 0 {
				cums = append(cums, cum)
			}
			cum += full[i] / all
		}
	}
	return id, p, total, cums
}

// Tolerances of the disagreement check, relative to the total mass: f32
// sums of up to a few hundred terms and the GPU's exp.
const (
	drawTol    = 1e-4
	nucleusTol = 1e-4
)

// drawBoundary returns max |u·total - cdf(k)| / total over the ids k with
// mass in [min(a, b), max(a, b)): small when ids a and b differ only by
// rounding at the inverse-CDF boundary.
func drawBoundary(p []float64, total float64, u float32, a, b int) float64 {
	lo, hi := min(a, b), max(a, b)
	target := float64(u) * total
	var cum, worst float64
	for k, x := range p {
		cum += x
		if k >= lo && k < hi && x > 0 {
			worst = max(worst, math.Abs(target-cum)/total)
		}
	}
	return worst
}

// explain reports why the GPU's id g can differ from the float64 draw, or
// "" if nothing explains it.
func explain(logits []float32, exclude []bool, temperature, topP float64, u float32, g int) string {
	id, p, total, cums := sampleRef(logits, exclude, temperature, topP, u)
	if g < 0 || g >= len(p) || total == 0 {
		return ""
	}
	if p[g] > 0 {
		if e := drawBoundary(p, total, u, id, g); e <= drawTol {
			return fmt.Sprintf("draw boundary: |u·total - cdf| = %.2g·total", e)
		}
	}
	// A token whose preceding cumulative probability is within rounding of
	// top_p may be in or out of the nucleus.
	for _, c := range cums {
		if math.Abs(c-topP) <= nucleusTol {
			for _, th := range []float64{topP - 2*nucleusTol, topP + 2*nucleusTol} {
				id2, p2, total2, _ := sampleRef(logits, exclude, temperature, th, u)
				if id2 == g {
					return fmt.Sprintf("nucleus boundary: cumulative %.9g vs top_p %v", c, topP)
				}
				if p2[g] > 0 && drawBoundary(p2, total2, u, id2, g) <= drawTol {
					return fmt.Sprintf("nucleus and draw boundary: cumulative %.9g vs top_p %v", c, topP)
				}
			}
		}
	}
	return ""
}

type sampleCase struct {
	name        string
	V, n        int
	temperature float64
	topP        float64
	logits      []float32
	exclude     []bool
	pos         []uint32
	iteration   int
}

// runSample draws a case on the GPU (T = 128, seed fixed) and returns the ids.
func runSample(t *testing.T, d *device, c sampleCase, seed uint64) []uint32 {
	t.Helper()
	out := newCanaryBuf(t, d, c.n, nil)
	o, err := d.sampleTokens(c.n, tokenDraw{V: c.V, T: 128, Iteration: c.iteration, Temperature: c.temperature, TopP: c.topP, Seed: seed},
		whole(inBuf(t, d, c.logits)), whole(u32Buf(t, d, c.pos)), whole(u32Buf(t, d, excludeWords(c.exclude))), out.bind())
	if err != nil {
		t.Fatal(err)
	}
	return words(run(t, d, []op{o}, out))
}

func TestSampleTokensSweep(t *testing.T) { sampleTokensSweep(t, testBackend(t).d) }

func sampleTokensSweep(t *testing.T, d *device) {
	r := rand.New(rand.NewPCG(3, 11))
	const T = 128
	seed := uint64(0x9e3779b97f4a7c15)
	var cases []sampleCase
	newCase := func(name string, V, n int, temp, topP float64, gen func(row, i int) float32, excl func(i int) bool) {
		c := sampleCase{name: name, V: V, n: n, temperature: temp, topP: topP, iteration: r.IntN(1000),
			logits: make([]float32, n*V), exclude: make([]bool, V), pos: make([]uint32, n)}
		for row := range n {
			for i := range V {
				c.logits[row*V+i] = gen(row, i)
			}
			c.pos[row] = uint32(r.IntN(4 * T))
		}
		for i := range V {
			c.exclude[i] = excl(i)
		}
		cases = append(cases, c)
	}
	for _, V := range []int{1, 7, 67, 250} {
		// Some excluded ids (never all): id 0 and about one in eight.
		excl := make([]bool, V)
		for i := 1; i < V; i++ {
			excl[i] = r.IntN(8) == 0
		}
		if V > 1 {
			excl[0] = true
		}
		for _, n := range []int{1, 13, 100} {
			for _, temp := range []float64{0.5, 1, 2} {
				for _, topP := range []float64{1, 0.9, 0.5} {
					scale := 1 + 2*r.Float64()
					tied := n == 13 // logits on a coarse grid: many equal probabilities
					newCase(fmt.Sprintf("V%d/n%d/temp%v/topp%v", V, n, temp, topP), V, n, temp, topP, func(row, i int) float32 {
						x := scale * r.NormFloat64()
						if tied {
							x = math.Round(x)
						}
						return float32(x)
					}, func(i int) bool { return excl[i] })
				}
			}
		}
	}
	// Exactly equal cumulative probabilities: four equal logits and top_p
	// 0.5 keep ranks 0, 1 and 2 (0.5 <= 0.5), never the fourth.
	for _, temp := range []float64{0.5, 1, 2} {
		newCase(fmt.Sprintf("four-equal/V4/temp%v", temp), 4, 100, temp, 0.5, func(row, i int) float32 { return 1.5 }, func(int) bool { return false })
		eq := map[int]bool{1: true, 3: true, 4: true, 6: true}
		newCase(fmt.Sprintf("four-equal/V7-excluded/temp%v", temp), 7, 100, temp, 0.5, func(row, i int) float32 { return -0.25 }, func(i int) bool { return !eq[i] })
	}

	total, disagree := 0, 0
	for _, c := range cases {
		got := runSample(t, d, c, seed)
		for row := range c.n {
			total++
			logits := c.logits[row*c.V : (row+1)*c.V]
			p := c.pos[row]
			u := rng.Uniform(seed, p/T, uint32(c.iteration), p%T, rng.Token)
			want, _, _, _ := sampleRef(logits, c.exclude, c.temperature, c.topP, u)
			g := int(int32(got[row]))
			if g < 0 || g >= c.V || c.exclude[g] {
				t.Fatalf("%s row %d: drew id %d (V %d), excluded or out of range", c.name, row, g, c.V)
			}
			if g == want {
				continue
			}
			disagree++
			why := explain(logits, c.exclude, c.temperature, c.topP, u, g)
			if why == "" {
				t.Errorf("%s row %d: GPU drew %d, CPU %d, u = %v: not explained by rounding at a boundary", c.name, row, g, want, u)
				continue
			}
			t.Logf("%s row %d: GPU %d, CPU %d (%s)", c.name, row, g, want, why)
		}
		if strings.HasPrefix(c.name, "four-equal/") {
			seen := map[uint32]int{}
			for _, g := range got {
				seen[g]++
			}
			if len(seen) != 3 {
				t.Errorf("%s: drew %v, want three ids each about a third of the time", c.name, seen)
			}
		}
	}
	if float64(disagree) > 0.001*float64(total) {
		t.Errorf("GPU and CPU ids differ on %d of %d positions (more than 0.1%%)", disagree, total)
	}
	t.Logf("%d cases, %d positions, %d explained disagreements", len(cases), total, disagree)
}

// TestSampleTokensEdges: every id excluded gives 0xffffffff; the largest
// vocabulary runs; one larger is refused.
func TestSampleTokensEdges(t *testing.T) {
	d := testBackend(t).d
	r := rand.New(rand.NewPCG(5, 5))
	seed := uint64(1) << 40
	all := sampleCase{name: "all excluded", V: 5, n: 3, temperature: 1, topP: 0.9, logits: randVec(r, 15, 1),
		exclude: []bool{true, true, true, true, true}, pos: []uint32{0, 1, 2}}
	for row, g := range runSample(t, d, all, seed) {
		if g != 0xffffffff {
			t.Errorf("all excluded, row %d: drew %d, want 0xffffffff", row, g)
		}
	}
	big := sampleCase{name: "V max", V: sampleMaxV, n: 5, temperature: 1, topP: 0.9, logits: randVec(r, 5*sampleMaxV, 3),
		exclude: make([]bool, sampleMaxV), pos: []uint32{0, 9, 200, 300, 511}, iteration: 7}
	big.exclude[sampleMaxV-1] = true
	for row, gw := range runSample(t, d, big, seed) {
		g := int(gw)
		p := big.pos[row]
		u := rng.Uniform(seed, p/128, 7, p%128, rng.Token)
		logits := big.logits[row*big.V : (row+1)*big.V]
		want, _, _, _ := sampleRef(logits, big.exclude, 1, 0.9, u)
		if g != want && explain(logits, big.exclude, 1, 0.9, u, g) == "" {
			t.Errorf("V %d row %d: GPU drew %d, CPU %d", big.V, row, g, want)
		}
	}
	if _, err := d.sampleTokens(1, tokenDraw{V: sampleMaxV + 1, T: 1, Temperature: 1, TopP: 1}, whole(d.dummy), whole(d.dummy), whole(d.dummy), whole(d.dummy)); err == nil {
		t.Errorf("V = %d accepted", sampleMaxV+1)
	}
}

// TestExplainBoundary checks the disagreement check itself: a draw exactly
// on a CDF boundary is explained, a draw far from it is not.
func TestExplainBoundary(t *testing.T) {
	logits, excl := []float32{0, 0, -1}, []bool{false, false, false}
	// u·total = cdf(0) up to float32 rounding of u.
	_, p, total, _ := sampleRef(logits, excl, 1, 1, 0)
	u := float32(p[0] / total)
	id, _, _, _ := sampleRef(logits, excl, 1, 1, u)
	other := 1 - id
	if id > 1 {
		t.Fatalf("reference drew %d", id)
	}
	if explain(logits, excl, 1, 1, u, other) == "" {
		t.Errorf("a draw at the boundary (u = %v, CPU %d, other %d) was not explained", u, id, other)
	}
	if why := explain(logits, excl, 1, 1, 0.01, 2); why != "" {
		t.Errorf("a draw far from the boundary was explained: %s", why)
	}
	// Nucleus: four equal probabilities, top_p 0.5 = the cumulative of the
	// first two, so the third (id 2) is at the boundary; u = 0.9 draws it,
	// and id 1 if it were out. The fourth is out either way.
	four, none := []float32{1, 1, 1, 1}, []bool{false, false, false, false}
	if id, _, _, _ := sampleRef(four, none, 1, 0.5, 0.9); id != 2 {
		t.Fatalf("four equal, top_p 0.5, u 0.9: reference drew %d, want 2", id)
	}
	if why := explain(four, none, 1, 0.5, 0.9, 1); why == "" {
		t.Error("id 1, right if the third token left the nucleus by rounding, was not explained")
	}
	if why := explain(four, none, 1, 0.5, 0.9, 3); why != "" {
		t.Errorf("the fourth token, outside the nucleus, was explained: %s", why)
	}
	if why := explain(four, none, 1, 0.9, 0.1, 3); why != "" {
		t.Errorf("a token far from the boundaries was explained: %s", why)
	}
}
