package gpu

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"
)

// The kernel test harness, in the manner of ggml's test-backend-ops: a
// kernel test is one kernelCase, a table entry with the kernel's name, the
// shapes it runs at (1, primes, sizes that are not multiples of the
// workgroup size, and the standard shape's), a tolerance for its float
// outputs, and a check that builds inputs for one shape, runs the kernel
// and compares every output with the CPU reference, internal/step (the
// functions engine/sampler's host loop is written with). runKernelCases
// runs every entry at every shape as a subtest "name/BxT" with a random
// source seeded by both, so a failure reruns alone with -run.
//
// Every buffer a kernel writes is a canary buffer (kernels_test.go): a
// write before or past its end fails the test.

// shape is one size of a kernel case: B rows of T positions (what a row
// and a position are is the case's: a kernel's grid is usually one
// workgroup per row).
type shape struct{ B, T int }

func (s shape) String() string { return fmt.Sprintf("%dx%d", s.B, s.T) }

// kernelCase is one kernel test.
type kernelCase struct {
	name   string
	shapes []shape
	// tol bounds the float outputs: |got - want| <= tol·(1 + |want|) (f32
	// kernels against float64 references); NaN matches NaN only.
	tol   float64
	check func(k *kernelRun, s shape)
}

// kernelRun is what a check gets: the device, the case's random source and
// tolerance, and helpers for buffers, runs and comparisons.
type kernelRun struct {
	*testing.T
	d   *device
	r   *rand.Rand
	tol float64
}

func runKernelCases(t *testing.T, cases []kernelCase) {
	d := testBackend(t).d
	for _, c := range cases {
		for _, s := range c.shapes {
			t.Run(c.name+"/"+s.String(), func(t *testing.T) {
				h := fnv.New64a()
				h.Write([]byte(c.name))
				r := rand.New(rand.NewPCG(h.Sum64(), uint64(s.B)<<32|uint64(s.T)))
				c.check(&kernelRun{T: t, d: d, r: r, tol: c.tol}, s)
			})
		}
	}
}

// in uploads read-only u32 words.
func (k *kernelRun) in(words []uint32) binding {
	k.Helper()
	return whole(u32Buf(k.T, k.d, words))
}

// inF uploads read-only floats.
func (k *kernelRun) inF(v []float32) binding {
	k.Helper()
	return whole(inBuf(k.T, k.d, v))
}

// out makes a canary output of n words holding init (canary words where
// init is nil).
func (k *kernelRun) out(n int, init []uint32) canaryBuf {
	k.Helper()
	var f []float32
	if init != nil {
		f = make([]float32, len(init))
		for i, w := range init {
			f[i] = math.Float32frombits(w)
		}
	}
	return newCanaryBuf(k.T, k.d, n, f)
}

// pipeline compiles file with the bind kinds loop.go uses for it.
func (k *kernelRun) pipeline(file string, kinds []bindKind) *pipeline {
	k.Helper()
	pl, err := k.d.pipeline(file, nil, kinds)
	if err != nil {
		k.Fatal(err)
	}
	return pl
}

// exec records ops, submits them and returns the interior words of each
// output after checking its canaries.
func (k *kernelRun) exec(ops []op, outs ...canaryBuf) [][]uint32 {
	k.Helper()
	d := k.d
	pr := newProgram(d, "test")
	defer pr.release()
	rec, err := d.p.newRecorder()
	if err != nil {
		k.Fatal(err)
	}
	if err := pr.record(rec, ops); err != nil {
		rec.submit()
		k.Fatal(err)
	}
	var total uint64
	for _, o := range outs {
		total += o.buf.size
	}
	st, err := d.p.newBuffer("test staging", total, usageStaging)
	if err != nil {
		k.Fatal(err)
	}
	defer st.destroy()
	var off uint64
	for _, o := range outs {
		rec.copy(o.buf, 0, st, off, o.buf.size)
		off += o.buf.size
	}
	if err := d.submit(rec); err != nil {
		k.Fatal(err)
	}
	raw := make([]byte, total)
	if err := d.p.read(context.Background(), st, raw); err != nil {
		k.Fatal(err)
	}
	res := make([][]uint32, len(outs))
	off = 0
	for j, o := range outs {
		res[j] = make([]uint32, o.n)
		for i := 0; i < int(o.buf.size/4); i++ {
			w := binary.LittleEndian.Uint32(raw[off+4*uint64(i):])
			if i >= canaryWords && i < canaryWords+o.n {
				res[j][i-canaryWords] = w
				continue
			}
			if w != canary {
				where := "before"
				if i >= canaryWords {
					where = "after"
				}
				k.Fatalf("output %d: canary word %d %s the output overwritten with %#x", j, i, where, w)
			}
		}
		off += o.buf.size
	}
	return res
}

// near reports whether got matches want within the case's tolerance: NaN
// matches NaN, equal values (infinities) match, else |got - want| <=
// tol·(1 + |want|).
func (k *kernelRun) near(got float32, want float64) bool {
	g := float64(got)
	if math.IsNaN(want) || math.IsNaN(g) {
		return math.IsNaN(want) && math.IsNaN(g)
	}
	return g == want || math.Abs(g-want) <= k.tol*(1+math.Abs(want))
}

// fill returns n copies of w.
func fill(n int, w uint32) []uint32 {
	v := make([]uint32, n)
	for i := range v {
		v[i] = w
	}
	return v
}

// asF32 reinterprets words as floats; asF64 widens floats.
func asF32(w []uint32) []float32 {
	f := make([]float32, len(w))
	for i, x := range w {
		f[i] = math.Float32frombits(x)
	}
	return f
}

// int32s and bools convert the kernels' u32 ids and flags to the host
// loop's types.
func int32s(w []uint32) []int32 {
	v := make([]int32, len(w))
	for i, x := range w {
		v[i] = int32(x)
	}
	return v
}

func bools(w []uint32) []bool {
	v := make([]bool, len(w))
	for i, x := range w {
		v[i] = x != 0
	}
	return v
}

func b2u(x bool) uint32 {
	if x {
		return 1
	}
	return 0
}
