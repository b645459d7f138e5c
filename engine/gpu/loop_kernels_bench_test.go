package gpu

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/remask/remask/internal/step"
	"github.com/remask/remask/shaders"
)

// lkBench times rep (one or more ops, copies allowed) recorded b.N times
// into one command buffer, submitted and waited for, as Profile times the
// trunk; the bind groups are made once. positions is what one rep
// processes, reported as positions/s.
func lkBench(b *testing.B, d *device, rep []op, positions int) {
	b.Helper()
	ctx := context.Background()
	slot := uint64(max(256, d.p.limits().MinUniformBufferOffsetAlignment))
	uni, err := d.p.newBuffer("bench params", slot*uint64(len(rep)), usageUniform)
	if err != nil {
		b.Fatal(err)
	}
	defer uni.destroy()
	host := make([]byte, slot*uint64(len(rep)))
	bgs := make([]*bindGroup, len(rep))
	for j, o := range rep {
		if o.cp != nil {
			continue
		}
		copy(host[uint64(j)*slot:], o.params)
		all := append([]binding{{buf: uni, off: uint64(j) * slot, size: uint64(len(o.params))}}, o.binds...)
		if bgs[j], err = d.p.newBindGroup(o.pl, all); err != nil {
			b.Fatalf("%s: %v", o.name, err)
		}
		defer bgs[j].release()
	}
	if err := d.p.write(uni, 0, host); err != nil {
		b.Fatal(err)
	}
	record := func(n int) *recorder {
		rec, err := d.p.newRecorder()
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i++ {
			for j, o := range rep {
				if o.cp != nil {
					rec.copy(o.cp.src, o.cp.srcOff, o.cp.dst, o.cp.dstOff, o.cp.size)
					continue
				}
				rec.dispatch(o.pl, bgs[j], o.wg[0], o.wg[1], o.wg[2])
			}
		}
		return rec
	}
	submit := func(rec *recorder) {
		if err := d.submit(rec); err != nil {
			b.Fatal(err)
		}
		if err := d.p.wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	submit(record(1)) // warm-up
	rec := record(b.N)
	b.ResetTimer()
	b.StartTimer()
	submit(rec)
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(positions)*float64(b.N)/s, "positions/s")
	}
}

// BenchmarkSamplingKernels times the device loop's kernels at the standard
// shape (B = 16, T = 1024, V = 67, C = 384) on random inputs.
func BenchmarkSamplingKernels(b *testing.B) {
	d := testBackend(b).d
	const B, T, V, C = 16, 1024, 67, 384
	const N = B * T
	mask := uint32(V - 2)
	r := rand.New(rand.NewPCG(99, 1))
	var bufs []*buffer
	defer func() {
		for _, x := range bufs {
			x.destroy()
		}
	}()
	mk := func(words int, data []uint32) *buffer {
		x, err := d.p.newBuffer("bench", uint64(4*max(words, 4)), usageStorage)
		if err != nil {
			b.Fatal(err)
		}
		bufs = append(bufs, x)
		if data != nil {
			if err := d.p.write(x, 0, u32Bytes(data)); err != nil {
				b.Fatal(err)
			}
		}
		return x
	}
	f32 := func(v []float32) []uint32 { return words(v) }
	tok := make([]uint32, N)  // half masked
	pred := make([]uint32, N) // a prediction: no masks
	prot := make([]uint32, N)
	wavePred := make([]uint32, N) // 30% masked, the last two rows fully (bootstrap)
	for p := range tok {
		pred[p] = uint32(r.IntN(V - 2))
		tok[p] = pred[p]
		if r.IntN(2) == 0 {
			tok[p] = mask
		}
		if r.IntN(20) == 0 {
			prot[p] = 1
		}
		wavePred[p] = pred[p]
		if r.IntN(10) < 3 || p >= (B-2)*T {
			wavePred[p] = mask
		}
	}
	excl := make([]bool, V)
	excl[mask], excl[V-1] = true, true
	logits := mk(N*V, f32(randVec(r, N*V, 2)))
	crit := mk(N, f32(randVec(r, N, 2)))
	tokB, predB, protB := mk(N, tok), mk(N, pred), mk(N, prot)
	exclB := mk(1, excludeWords(excl))
	out, keys, sw := mk(N, nil), mk(N, nil), mk(2*N, nil)
	sws := randVec(r, 2*N, 1)
	for i := N; i < 2*N; i++ {
		sws[i] = float32(r.Float64())
	}
	swIn := mk(2*N, f32(sws))
	cnt, errw := mk(cntWords+B, nil), mk(4, fill(4, noID))
	table := mk(100, f32(randVec(r, 100, 0.3)))
	pipe := func(file string, kinds []bindKind) *pipeline {
		pl, err := d.pipeline(file, nil, kinds)
		if err != nil {
			b.Fatal(err)
		}
		return pl
	}

	b.Run("sample-fill", func(b *testing.B) {
		o, err := d.sampleTokens(N, tokenDraw{V: V, T: T, Iteration: 1, Temperature: 0.8, TopP: 1, Seed: 42, Mode: shaders.SampleFill, Mask: mask, Err: whole(errw)},
			whole(logits), whole(tokB), whole(exclB), whole(out))
		if err != nil {
			b.Fatal(err)
		}
		lkBench(b, d, []op{o}, N)
	})
	remask := func(strategy uint32) func(b *testing.B) {
		return func(b *testing.B) {
			rp := shaders.RemaskParams{N: N, T: T, V: V, Strategy: strategy, Iteration: 1, SeedLo: 42, Stride: 1}
			o := op{name: "remask scores", pl: pipe("remask.wgsl", remaskKinds), params: shaders.Bytes(rp),
				binds: []binding{whole(predB), whole(logits), whole(crit), whole(table), whole(sw)}, wg: d.grid(uint64(ceilDiv(N, 64)))}
			lkBench(b, d, []op{o}, N)
		}
	}
	b.Run("remask-critic", remask(uint32(step.Critic)))
	b.Run("remask-self", remask(uint32(step.Self)))
	sel := func(threshold bool) func(b *testing.B) {
		return func(b *testing.B) {
			sp := shaders.SelectParams{T: T, B: B, K: T / 2, Mask: mask}
			if threshold {
				sp.Threshold, sp.Thr = 1, 0.5
			}
			o := op{name: "remask select", pl: pipe("select.wgsl", selectKinds), params: shaders.Bytes(sp),
				binds: []binding{whole(predB), whole(protB), whole(swIn), whole(keys), whole(tokB), whole(cnt), whole(errw)}, wg: d.grid(B)}
			lkBench(b, d, []op{o}, N)
		}
	}
	b.Run("select-ratio", sel(false))
	b.Run("select-threshold", sel(true))
	b.Run("wave-plan", func(b *testing.B) {
		fill := make([]uint32, N+1)
		for i := range fill {
			fill[i] = uint32(max(1, int(math.Floor(float64(i)*0.01))))
		}
		ws := mk(shaders.WaveStateWords(N), nil)
		binds := []binding{whole(mk(N, wavePred)), whole(logits), whole(mk(2*N, nil)), whole(ws), whole(mk(N+1, fill)),
			whole(mk(shaders.WaveArgsWords*N, nil)), whole(mk(N, nil))}
		var ops []op
		// The three phases as planOps records them, T slots (the scan resets
		// the counters for the next run).
		for _, ph := range []struct {
			phase uint32
			wg    [3]uint32
		}{{shaders.WavePlan, d.grid(B)}, {shaders.WaveScan, [3]uint32{1, 1, 1}}, {shaders.WaveList, d.grid(uint64(ceilDiv(N, 256)))}} {
			wp := shaders.WavePlanParams{B: B, T: T, V: V, Mask: mask, Phase: ph.phase, Slots: T, Maxd: 65535}
			ops = append(ops, op{name: "wave plan", pl: pipe("waveplan.wgsl", wavePlanKinds), params: shaders.Bytes(wp), binds: binds, wg: ph.wg})
		}
		lkBench(b, d, ops, N)
	})
	// One wave of n positions among slots slot records (its workgroups find
	// it by ticket; the ticket is reset before each dispatch): 256 positions
	// in one slot (a wave is about two positions per masked run; the
	// bootstrap of a row seeds FillCount of its masks at once), and 9 in
	// the first of 128 slots, the small job's average wave (418 waves of
	// 3840 positions) and a slot count of its early iterations: few
	// workgroups, so on a large GPU the time of one wave, not a throughput.
	wave := func(n, slots int) func(b *testing.B) {
		return func(b *testing.B) {
			list := make([]uint32, n)
			for i := range list {
				list[i] = uint32(i * (N / n))
			}
			p := shaders.SamplerWaveParams{C: C, V: V, T: T, SlotAt: shaders.WaveCounts, Slots: uint32(slots), Eps: 1e-5, Mask: mask, Embeddings: 1,
				Iteration: 1, Temperature: 0.8, TopP: 0.9, SeedLo: 42}
			l := newSamplerLayout(C, V)
			l.params(&p)
			g := d.grid(uint64(n))
			ws := make([]uint32, shaders.WaveCounts+shaders.WaveSlotWords*slots)
			for s := 0; s < slots; s++ { // slot 0 holds the n positions, the others none
				rec := ws[shaders.WaveCounts+shaders.WaveSlotWords*s:]
				if s == 0 {
					rec[0] = uint32(n)
				} else {
					rec[1], rec[2] = uint32(n), g[0]*g[1]
				}
			}
			wsB := mk(len(ws), ws)
			tab := randVec(r, l.size, 0.05)
			reset := op{name: "ticket reset", cp: &copyOp{src: mk(1, []uint32{0}), dst: wsB, dstOff: 4 * shaders.WaveTicket, size: 4}}
			o := op{name: "sampler wave", pl: pipe("samplerwave.wgsl", samplerWaveKinds), params: shaders.Bytes(p),
				binds: []binding{whole(mk(n, list)), whole(wsB), whole(mk(N*C, f32(randVec(r, N*C, 1)))),
					whole(mk(len(tab), f32(tab))), whole(mk(N, wavePred)), whole(exclB), whole(errw)}, wg: g}
			lkBench(b, d, []op{reset, o}, n)
		}
	}
	b.Run("sampler-wave", wave(256, 1))
	b.Run("sampler-wave-9", wave(9, 128))
	b.Run("stats", func(b *testing.B) {
		sp := shaders.StatsParams{B: B, T: T, V: V, Mask: mask, Pad: uint32(V - 1), HasCritic: 1}
		o := op{name: "stats", pl: pipe("stats.wgsl", statsKinds), params: shaders.Bytes(sp),
			binds: []binding{whole(predB), whole(logits), whole(crit), whole(keys), whole(mk(8*B, nil))}, wg: d.grid(B)}
		lkBench(b, d, []op{o}, N)
	})
}
