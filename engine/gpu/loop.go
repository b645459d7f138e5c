package gpu

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/shaders"
)

// The device loop (engine.LoopNet): one generation's state lives on the
// device and each iteration is recorded as one op list: the trunk, the LM
// head, the token draws (naive: one fill dispatch; sampler head: waves of
// indirect dispatches sized by the device), the remasking scores, the
// per-row selection and the next input. The host reads back only counters
// (and, when asked, the iteration's tokens). engine/sampler's host loop is
// the CPU twin of every step (loop_test.go compares them).

var (
	remaskKinds    = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRead, bindRW}
	selectKinds    = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW, bindRW, bindRW}
	waveKinds      = []bindKind{bindUniform, bindRead, bindRead, bindRW, bindRW, bindRW, bindRead}
	waveArgsKinds  = []bindKind{bindUniform, bindRead, bindRW}
	samplerInKinds = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRead, bindRead, bindRW}
	statsKinds     = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW, bindRW}
)

// waveTile is the matmul tile of the waves' sampler head: a wave has few
// rows (about two per filled neighbour), and a 128-row tile made every wave
// wait for one long workgroup (0.12 ms per wave on the H100 with 128x128,
// docs/performance.md).
var waveTile = tile32

const (
	waveArgsWords = 15 // five (x, y, z) triples per wave
	maxChunkWaves = 256
	cntWords      = 4 // CNT header: total, min wrongness key, unused, unused
	noID          = 0xffffffff
)

// samplerTables are the per-model parts of the sampler head's first layer
// split for the waves: W0's middle third (applied to h once per iteration)
// and the outer thirds applied to every token's embedding (LR, (2V, C)).
type samplerTables struct {
	w0h wbuf
	lr  *buffer
	vec *buffer // (3, C): b0, LayerNorm weight, LayerNorm bias
}

func (n *Net) samplerTables() (*samplerTables, error) {
	if n.stabs != nil {
		return n.stabs, nil
	}
	m, C, V := n.m, n.C, n.V
	w0 := m.T("sampler_head.mlp.0.weight").Data // (C, 3C)
	wte := m.T("transformer.wte.weight").Data   // (V, C)
	mid := make([]float32, C*C)
	lr := make([]float32, 2*V*C)
	for o := 0; o < C; o++ {
		row := w0[o*3*C : (o+1)*3*C]
		copy(mid[o*C:(o+1)*C], row[C:2*C])
		for v := 0; v < V; v++ {
			e := wte[v*C : (v+1)*C]
			var l, r float64
			for c := 0; c < C; c++ {
				l += float64(row[c]) * float64(e[c])
				r += float64(row[2*C+c]) * float64(e[c])
			}
			lr[v*C+o] = float32(l)
			lr[(V+v)*C+o] = float32(r)
		}
	}
	vec := make([]float32, 3*C)
	if m.Config.Bias {
		copy(vec, m.T("sampler_head.mlp.0.bias").Data)
		copy(vec[2*C:], m.T("sampler_head.mlp.2.bias").Data)
	}
	copy(vec[C:], m.T("sampler_head.mlp.2.weight").Data)
	t := &samplerTables{}
	var err error
	if t.w0h, err = n.uploadMatrix("sampler mlp.0 (h third)", mid, n.sampler.w0.dtype); err != nil {
		return nil, err
	}
	if t.lr, err = n.upload("sampler mlp.0 (neighbour tables)", lr); err != nil {
		return nil, err
	}
	if t.vec, err = n.upload("sampler mlp.0 bias and mlp.2", vec); err != nil {
		return nil, err
	}
	n.stabs = t
	return t, nil
}

// Loop is one generation on the device (engine.Loop).
type Loop struct {
	n    *Net
	rm   *Net // remasking model
	s    engine.LoopSpec
	B, T int
	N    int // B·T

	tok, pred, prot *buffer
	exclN, exclS    *buffer
	crit, sw, keys  *buffer
	cnt, errw       *buffer
	table           *buffer
	stats           *buffer
	// sampler-head waves
	tabs         *samplerTables
	hw, list, wc *buffer
	args, fill   *buffer
	bm1, bm2     int
	staging      *buffer
	prog         *program
	bufs         []*buffer
	waveHint     int // waves of the previous iteration
	timer        *stageTimer
	stageMs      map[string]float64
}

// NewLoop implements engine.LoopNet.
func (n *Net) NewLoop(ctx context.Context, s *engine.LoopSpec) (engine.Loop, error) {
	if err := n.checkLoop(s); err != nil {
		return nil, err
	}
	if err := ctxErr(ctx, "loop"); err != nil {
		return nil, err
	}
	N := s.B * s.T
	if err := n.ensure(N); err != nil {
		return nil, fmt.Errorf("gpu: loop %d x %d: %w", s.B, s.T, err)
	}
	l := &Loop{n: n, s: *s, B: s.B, T: s.T, N: N}
	if s.Remasker != nil {
		l.rm = s.Remasker.(*Net)
		if err := l.rm.ensure(N); err != nil {
			return nil, fmt.Errorf("gpu: loop: remasking model: %w", err)
		}
	}
	if err := l.alloc(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// checkLoop refuses a spec this device cannot run, naming the option.
func (n *Net) checkLoop(s *engine.LoopSpec) error {
	cfg := &n.m.Config
	switch {
	case cfg.Kind != model.LanguageModel:
		return fmt.Errorf("gpu: loop: %s is a %s, not a language model", n.m.Name(), cfg.Kind)
	case s.B < 1 || s.T < 1 || s.T > cfg.BlockSize:
		return fmt.Errorf("gpu: loop: %d samples x %d positions (block_size %d)", s.B, s.T, cfg.BlockSize)
	case len(s.Tokens) != s.B*s.T || len(s.Protected) != s.B*s.T:
		return fmt.Errorf("gpu: loop: %d tokens and %d protected flags for %d x %d", len(s.Tokens), len(s.Protected), s.B, s.T)
	case n.V > sampleMaxV:
		return fmt.Errorf("gpu: loop: vocabulary size %d exceeds the sampling kernel's %d; use the host loop (--backend cpu)", n.V, sampleMaxV)
	case len(s.ExcludeNaive) != n.V || len(s.ExcludeSampler) != n.V:
		return fmt.Errorf("gpu: loop: exclusion sets of %d and %d ids for a vocabulary of %d", len(s.ExcludeNaive), len(s.ExcludeSampler), n.V)
	case s.Iterations < 1 || (!s.Multinomial && len(s.Ratios) != s.Iterations-1):
		return fmt.Errorf("gpu: loop: %d iterations with %d schedule ratios", s.Iterations, len(s.Ratios))
	case s.UseSampler && n.sampler == nil:
		return fmt.Errorf("gpu: loop: %s has no sampler head", n.m.Name())
	case s.UseSampler && n.C > 1024:
		return fmt.Errorf("gpu: loop: n_embd %d exceeds the sampler kernel's 1024", n.C)
	case s.Strategy == engine.LoopModel && s.Remasker == nil:
		return fmt.Errorf("gpu: loop: remasking model missing")
	}
	if (s.Strategy == engine.LoopCritic || s.Strategy == engine.LoopCalibrated) && n.critic == nil {
		return fmt.Errorf("gpu: loop: %s has no critic head", n.m.Name())
	}
	if s.Strategy == engine.LoopCalibrated && len(s.Calibration) != 100 {
		return fmt.Errorf("gpu: loop: calibration table of %d entries, want 100", len(s.Calibration))
	}
	if s.Remasker != nil {
		rm, ok := s.Remasker.(*Net)
		if !ok || rm.d != n.d {
			return fmt.Errorf("gpu: loop: the remasking model must be loaded on the same WebGPU device as the language model")
		}
		if rm.m.Config.Kind != model.TokenClassifier {
			return fmt.Errorf("gpu: loop: remasking model %s is a %s", rm.m.Name(), rm.m.Config.Kind)
		}
	}
	return nil
}

func (l *Loop) alloc() error {
	d, n := l.n.d, l.n
	N := uint64(l.N)
	var err error
	mk := func(what string, bytes uint64, u bufUsage) *buffer {
		if err != nil {
			return nil
		}
		if err = d.checkBuffer(what, bytes); err != nil {
			return nil
		}
		var b *buffer
		b, err = d.p.newBuffer(what, bytes, u)
		if err == nil {
			l.bufs = append(l.bufs, b)
		}
		return b
	}
	l.tok = mk("loop tokens (B·T ids)", 4*N, usageStorage)
	l.pred = mk("loop prediction (B·T ids)", 4*N, usageStorage)
	l.prot = mk("loop protected flags (B·T)", 4*N, usageStorage)
	l.exclN = mk("loop excluded ids (naive)", 4*uint64(len(excludeWords(l.s.ExcludeNaive))), usageStorage)
	l.exclS = mk("loop excluded ids (sampler)", 4*uint64(len(excludeWords(l.s.ExcludeSampler))), usageStorage)
	l.crit = mk("loop critic logits (B·T)", 4*N, usageStorage)
	l.sw = mk("loop scores and wrongness (2·B·T)", 8*N, usageStorage)
	l.keys = mk("loop selection keys (B·T)", 4*N, usageStorage)
	l.cnt = mk("loop counters", 4*uint64(cntWords+l.B), usageStorage)
	l.errw = mk("loop error word", 16, usageStorage)
	l.table = mk("loop calibration table", 400, usageStorage)
	l.stats = mk("loop statistics (B·8)", 32*uint64(l.B), usageStorage)
	if l.s.UseSampler {
		C := uint64(n.C)
		l.hw = mk("loop h·W0 (B·T·C floats)", 4*N*C, usageStorage)
		l.list = mk("loop wave list (3·B·T)", 12*N, usageStorage)
		l.wc = mk("loop wave counters", 8*maxChunkWaves, usageStorage)
		l.args = mk("loop wave dispatch arguments", 4*waveArgsWords*maxChunkWaves, usageIndirect)
		l.fill = mk("loop bootstrap fill table", 4*(N+1), usageStorage)
	}
	stage := 4*uint64(cntWords+l.B) + 16 + 12*N + 32*uint64(l.B) + 8*maxChunkWaves
	l.staging = mk("loop staging", stage, usageStaging)
	if err != nil {
		return fmt.Errorf("gpu: loop: %w", err)
	}
	if l.s.UseSampler {
		if err := n.ensureSampler(l.N); err != nil {
			return fmt.Errorf("gpu: loop: %w", err)
		}
		if l.tabs, err = n.samplerTables(); err != nil {
			return fmt.Errorf("gpu: loop: %w", err)
		}
		fill := make([]uint32, l.N+1)
		for i := range fill {
			fill[i] = uint32(max(1, int(math.Floor(float64(i)*l.s.MinNeighborsRatio))))
		}
		if err := d.p.write(l.fill, 0, u32Bytes(fill)); err != nil {
			return err
		}
		l.bm1, l.bm2 = waveTile.BM, waveTile.BM
	}
	ids := make([]uint32, l.N)
	prot := make([]uint32, l.N)
	for i, t := range l.s.Tokens {
		ids[i] = uint32(t)
		if l.s.Protected[i] {
			prot[i] = 1
		}
	}
	table := make([]float32, 100)
	for i := range table {
		if i < len(l.s.Calibration) {
			table[i] = float32(l.s.Calibration[i])
		}
	}
	for _, w := range []struct {
		b    *buffer
		data []byte
	}{
		{l.tok, u32Bytes(ids)}, {l.pred, u32Bytes(ids)}, {l.prot, u32Bytes(prot)},
		{l.exclN, u32Bytes(excludeWords(l.s.ExcludeNaive))}, {l.exclS, u32Bytes(excludeWords(l.s.ExcludeSampler))},
		{l.table, f32Bytes(table)}, {l.errw, u32Bytes([]uint32{noID, 0, 0, 0})},
	} {
		if err := d.p.write(w.b, 0, w.data); err != nil {
			return err
		}
	}
	l.prog = newProgram(d, "loop")
	if l.s.Profile {
		if l.timer = newStageTimer(d, 64); l.timer != nil {
			l.prog.timer = l.timer
			l.stageMs = map[string]float64{}
		}
	}
	l.waveHint = min(l.T, 32)
	return nil
}

// Close implements engine.Loop.
func (l *Loop) Close() {
	for _, b := range l.bufs {
		b.destroy()
	}
	l.bufs = nil
	l.timer.release()
	l.timer = nil
	if l.prog != nil {
		l.prog.release()
		l.prog = nil
	}
}

func u32Bytes(v []uint32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return b
}

// ops collects a list of ops and the first error.
type ops struct {
	list  []op
	err   error
	stage string // stamped on every op added
}

func (o *ops) add(x op, err error) {
	if o.err == nil {
		o.err = err
		x.stage = o.stage
		o.list = append(o.list, x)
	}
}

func (o *ops) copy(src, dst *buffer, size uint64) { o.add(copyBuf(src, dst, size), nil) }

func (o *ops) copyAt(src *buffer, srcOff uint64, dst *buffer, dstOff, size uint64) {
	o.add(op{name: "copy " + src.label, cp: &copyOp{src: src, dst: dst, srcOff: srcOff, dstOff: dstOff, size: size}}, nil)
}

// trunk adds the trunk of net on src (B·T ids) and its heads: the LM (or
// classifier) logits into act.out when lm is set, the critic logits into
// l.crit when critic is set.
func (l *Loop) trunk(o *ops, net *Net, src *buffer, lm, critic bool) {
	N := l.N
	o.copy(src, net.act.tokens, 4*uint64(N))
	tr, err := net.trunkOps(l.B, l.T)
	for _, x := range tr {
		o.add(x, nil)
	}
	if o.err == nil {
		o.err = err
	}
	if lm {
		o.add(net.d.matmul("lm_head", N, net.headN, net.C, whole(net.act.h), *net.head, nil, whole(net.act.out), shaders.ActNone, false))
	}
	if critic {
		o.add(net.d.rowDot("critic_head", N, net.C, net.C, whole(net.act.h), net.critic, whole(l.crit), false, 0, 0))
	}
}

func (l *Loop) draw(it int, mode, keep int, logits, pos, excl, out, aux binding, rows int, countAt int) (op, error) {
	s := &l.s
	t := tokenDraw{V: l.n.V, T: l.T, Iteration: it, Temperature: s.Temperature, TopP: s.TopP, Seed: s.Seed,
		Mode: mode, Keep: keep, Mask: uint32(s.Mask), CountAt: countAt, Aux: aux, Err: whole(l.errw)}
	if mode == shaders.SampleScatter {
		t.TopP = s.SamplerTopP
	}
	return l.n.d.sampleTokens(rows, t, logits, pos, excl, out)
}

// critic reports whether the strategy reads the critic head.
func (l *Loop) critic() bool {
	return !l.s.Multinomial && (l.s.Strategy == engine.LoopCritic || l.s.Strategy == engine.LoopCalibrated)
}

// predictOps records the trunk on tok and the naive draw (all of the
// prediction), or the trunk and what the waves need before them.
func (l *Loop) predictOps(o *ops, it int) {
	s := &l.s
	n := l.n
	o.stage = "forward"
	l.trunk(o, n, l.tok, true, l.critic() && s.CriticOnInput)
	o.stage = "sampling"
	a := &n.act
	switch {
	case s.Multinomial:
		o.add(l.draw(it, shaders.SampleFill, 1, whole(a.out), whole(l.tok), whole(l.exclN), whole(l.pred), whole(l.prot), l.N, 0))
	case !s.UseSampler:
		o.add(l.draw(it, shaders.SampleFill, 0, whole(a.out), whole(l.tok), whole(l.exclN), whole(l.pred), binding{}, l.N, 0))
	default:
		o.add(n.d.matmul("sampler mlp.0 (h)", l.N, n.C, n.C, whole(a.h), l.tabs.w0h, nil, whole(l.hw), shaders.ActNone, false))
		o.copy(l.tok, l.pred, 4*uint64(l.N))
	}
}

// waveOps records waves [w0, w0+count) of iteration it; slot i of the
// chunk's counters belongs to wave w0+i.
func (l *Loop) waveOps(o *ops, it, w0, count int) {
	s := &l.s
	n, d := l.n, l.n.d
	a := &n.act
	sp := n.sampler
	global := s.GlobalBootstrap
	all := !s.Embeddings && !s.WaveCap // zeros: one wave takes every mask
	for i := 0; i < count; i++ {
		slot := 2 * i
		wp := shaders.WaveParams{B: uint32(l.B), T: uint32(l.T), V: uint32(n.V), Mask: uint32(s.Mask),
			Slot: uint32(slot), Cap: uint32(l.N)}
		if s.Embeddings {
			wp.Embeddings = 1
		}
		if global {
			wp.Global = 1
		}
		if all {
			wp.All = 1
		}
		if s.WaveCap && w0+i >= l.T {
			wp.Off = 1
		}
		pl, err := d.pipeline("wave.wgsl", nil, waveKinds)
		wg := d.grid(uint64(l.B))
		if global {
			wg = [3]uint32{1, 1, 1}
		}
		o.add(op{name: "wave plan", pl: pl, params: shaders.Bytes(wp),
			binds: []binding{whole(l.pred), whole(a.out), whole(l.keys), whole(l.list), whole(l.wc), whole(l.fill)}, wg: wg}, err)
		at := uint64(i * waveArgsWords)
		ap := shaders.WaveArgsParams{Slot: uint32(slot), At: uint32(at),
			Nx1: uint32(ceilDiv(n.C, waveTile.BN)), Bm1: uint32(l.bm1),
			Nx2: uint32(ceilDiv(n.V, waveTile.BN)), Bm2: uint32(l.bm2),
			Maxd: d.p.limits().MaxComputeWorkgroupsPerDimension}
		if ap.Maxd == 0 {
			ap.Maxd = 65535
		}
		pl, err = d.pipeline("waveargs.wgsl", nil, waveArgsKinds)
		o.add(op{name: "wave args", pl: pl, params: shaders.Bytes(ap), binds: []binding{whole(l.wc), whole(l.args)}, wg: [3]uint32{1, 1, 1}}, err)
		indirect := func(k int, x op, err error) {
			x.ind, x.indOff = l.args, 4*(at+uint64(3*k))
			o.add(x, err)
		}
		sip := shaders.SamplerInParams{C: uint32(n.C), V: uint32(n.V), Cap: uint32(l.N), Slot: uint32(slot), Eps: float32(n.eps)}
		if n.m.Config.Bias {
			sip.HasBias = 1
		}
		pl, err = d.pipeline("sampler_in.wgsl", nil, samplerInKinds)
		indirect(0, op{name: "sampler mlp.0-2", pl: pl, params: shaders.Bytes(sip),
			binds: []binding{whole(l.list), whole(l.wc), whole(l.hw), whole(l.tabs.lr), whole(l.tabs.vec), whole(a.sza)}}, err)
		x, err := d.matmulTiled("sampler mlp.3", waveTile, l.N, n.C, n.C, whole(a.sza), sp.w3, sp.b3, whole(a.szb), shaders.ActSiLU, false)
		indirect(1, x, err)
		x, err = d.layerNorm("sampler mlp.5", l.N, n.C, whole(a.szb), sp.ln2, sp.lb2, whole(a.sza), n.eps)
		indirect(2, x, err)
		x, err = d.matmulTiled("sampler output_head", waveTile, l.N, n.V, n.C, whole(a.sza), sp.out, nil, whole(a.sout), shaders.ActNone, false)
		indirect(3, x, err)
		x, err = l.draw(it, shaders.SampleScatter, 0, whole(a.sout), binding{buf: l.list, size: 4 * uint64(l.N)}, whole(l.exclS), whole(l.pred), whole(l.wc), l.N, slot)
		indirect(4, x, err)
	}
}

// remaskOps records the scores, the selection and the next input of
// iteration it (k positions per row in ratio mode).
func (l *Loop) remaskOps(o *ops, it int, ratio float64) (scored bool) {
	s := &l.s
	n, d := l.n, l.n.d
	N := l.N
	threshold := s.Threshold && s.Strategy != engine.LoopRandom
	k := int(math.Floor(float64(l.T) * ratio))
	if !threshold && k <= 0 {
		o.copy(l.pred, l.tok, 4*uint64(N))
		return false
	}
	defer func() { o.stage = "" }()
	rp := shaders.RemaskParams{N: uint32(N), T: uint32(l.T), V: uint32(n.V), Iteration: uint32(it),
		SeedLo: uint32(s.Seed), SeedHi: uint32(s.Seed >> 32), Stride: 1}
	r := s.RandomnessStrength
	if math.IsNaN(r) {
		r = 0
	}
	rp.R = float32(math.Min(math.Max(r, 0), 1))
	aux := whole(l.crit)
	switch s.Strategy {
	case engine.LoopCritic:
		rp.Strategy = 0
	case engine.LoopCalibrated:
		rp.Strategy = 1
	case engine.LoopSelf:
		rp.Strategy = 2
	case engine.LoopRandom:
		rp.Strategy = 3
	case engine.LoopModel:
		rp.Strategy = 4
		K := l.rm.headN
		rp.Stride = uint32(K)
		if K > 1 {
			rp.Col = 1
		}
		aux = whole(l.rm.act.out)
	}
	o.stage = "remask forward"
	if l.critic() && !s.CriticOnInput {
		l.trunk(o, n, l.pred, false, true)
	}
	if s.Strategy == engine.LoopModel {
		l.trunk(o, l.rm, l.pred, true, false)
	}
	o.stage = "remask select"

	pl, err := d.pipeline("remask.wgsl", nil, remaskKinds)
	o.add(op{name: "remask scores", pl: pl, params: shaders.Bytes(rp),
		binds: []binding{whole(l.pred), whole(n.act.out), aux, whole(l.table), whole(l.sw)}, wg: d.grid(uint64(ceilDiv(N, 64)))}, err)
	sp := shaders.SelectParams{T: uint32(l.T), B: uint32(l.B), K: uint32(max(k, 0)), Mask: uint32(s.Mask)}
	if threshold {
		sp.Threshold = 1
		sp.Thr = float32(1 - ratio)
	}
	pl, err = d.pipeline("select.wgsl", nil, selectKinds)
	o.add(op{name: "remask select", pl: pl, params: shaders.Bytes(sp),
		binds: []binding{whole(l.pred), whole(l.prot), whole(l.sw), whole(l.keys), whole(l.tok), whole(l.cnt)}, wg: d.grid(uint64(l.B))}, err)
	return true
}

// submit records and submits o, then copies nothing: reads go through read.
func (l *Loop) submit(ctx context.Context, o *ops) error {
	if o.err != nil {
		return o.err
	}
	rec, err := l.n.d.p.newRecorder()
	if err != nil {
		return err
	}
	if err := l.prog.record(rec, o.list); err != nil {
		l.n.d.submit(rec)
		return err
	}
	if err := l.n.d.submit(rec); err != nil {
		return err
	}
	if l.timer == nil {
		return nil
	}
	ms, ok, err := l.timer.read(ctx)
	if err != nil {
		return fmt.Errorf("gpu: loop: reading the stage timestamps: %w", err)
	}
	if ok {
		for k, v := range ms {
			l.stageMs[k] += v
		}
	}
	l.timer.reset()
	return nil
}

// StagesMs implements engine.Loop: GPU milliseconds per stage so far, nil
// without LoopSpec.Profile or without timestamp queries on the adapter.
func (l *Loop) StagesMs() map[string]float64 {
	if l.timer == nil {
		return nil
	}
	return l.stageMs
}

// read reads size bytes of the staging buffer (after a submitted copy).
func (l *Loop) read(ctx context.Context, size uint64) ([]byte, error) {
	buf := make([]byte, size)
	if err := l.n.d.p.read(ctx, l.staging, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

func dispatches(o *ops) int {
	c := 0
	for _, x := range o.list {
		if x.cp == nil {
			c++
		}
	}
	return c
}

// Step implements engine.Loop.
func (l *Loop) Step(ctx context.Context, it int, want bool) (*engine.LoopStep, error) {
	if err := ctxErr(ctx, "loop step"); err != nil {
		return nil, err
	}
	s := &l.s
	st := &engine.LoopStep{MinWrongness: math.NaN()}
	d := l.n.d
	submits0 := d.submits
	o := &ops{}
	l.predictOps(o, it)
	if s.UseSampler && !s.Multinomial {
		if err := l.runWaves(ctx, it, o, st); err != nil {
			return nil, err
		}
		o = &ops{}
	}
	remask := !s.Multinomial && it < s.Iterations-1
	scored := false
	cntBytes := uint64(4 * (cntWords + l.B))
	if remask {
		init := make([]uint32, cntWords+l.B)
		init[1] = noID
		if err := d.p.write(l.cnt, 0, u32Bytes(init)); err != nil {
			return nil, err
		}
		scored = l.remaskOps(o, it, s.Ratios[it])
		st.Scored = scored
	} else {
		o.copy(l.pred, l.tok, 4*uint64(l.N))
	}
	threshold := remask && s.Threshold && s.Strategy != engine.LoopRandom
	readCnt := remask && (want || threshold)
	var off uint64
	if readCnt {
		o.copy(l.cnt, l.staging, cntBytes)
		o.copyAt(l.errw, 0, l.staging, cntBytes, 4)
		off = cntBytes + 16
	}
	N4 := 4 * uint64(l.N)
	if want {
		o.copyAt(l.pred, 0, l.staging, off, N4)
		o.copyAt(l.tok, 0, l.staging, off+N4, N4)
		if scored {
			o.copyAt(l.sw, N4, l.staging, off+2*N4, N4)
		}
	}
	st.Dispatches += dispatches(o)
	if err := l.submit(ctx, o); err != nil {
		return nil, err
	}
	st.Submits = d.submits - submits0
	size := off
	if want {
		size += 2 * N4
		if scored {
			size += N4
		}
	}
	if size == 0 {
		return st, nil
	}
	buf, err := l.read(ctx, size)
	if err != nil {
		return nil, err
	}
	st.ReadBytes += int(size)
	if readCnt {
		if err := l.checkErr(buf[cntBytes:], it); err != nil {
			return nil, err
		}
		st.Remasked = make([]int, l.B)
		for b := range st.Remasked {
			st.Remasked[b] = int(binary.LittleEndian.Uint32(buf[4*(cntWords+b):]))
		}
		total := binary.LittleEndian.Uint32(buf)
		if k := binary.LittleEndian.Uint32(buf[4:]); total > 0 && k != noID {
			st.MinWrongness = float64(keyF32(k))
		}
		st.EarlyStop = threshold && total == 0
	}
	if want {
		b := buf[off:]
		st.Pred = make([]int32, l.N)
		st.Selected = make([]bool, l.N)
		for i := range st.Pred {
			st.Pred[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
			next := int32(binary.LittleEndian.Uint32(b[N4+4*uint64(i):]))
			st.Selected[i] = remask && next == s.Mask && st.Pred[i] != s.Mask
		}
		if scored && s.Strategy != engine.LoopRandom {
			st.Wrongness = make([]float64, l.N)
			for i := range st.Wrongness {
				st.Wrongness[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[2*N4+4*uint64(i):])))
			}
		}
	}
	// An early stop needs nothing more: select.wgsl selected nothing, so it
	// already wrote the prediction as the tokens.
	return st, nil
}

// runWaves records o (the trunk and what the waves need) with a chunk of
// waves, submits, reads the chunk's counters and repeats with more waves
// until the prediction has no mask left (or the wave cap stops it). Wave
// slot i reports how many positions it listed and how many were masked
// before it; every listed position is filled.
func (l *Loop) runWaves(ctx context.Context, it int, o *ops, st *engine.LoopStep) error {
	d := l.n.d
	chunk := min(max(l.waveHint+l.waveHint/4+2, 4), maxChunkWaves)
	for w0 := 0; ; w0 += chunk {
		if err := ctxErr(ctx, "loop waves"); err != nil {
			return err
		}
		if w0 > 0 {
			o = &ops{stage: "sampling"}
			chunk = min(2*chunk, maxChunkWaves)
		}
		if err := d.p.write(l.wc, 0, make([]byte, 8*chunk)); err != nil {
			return err
		}
		l.waveOps(o, it, w0, chunk)
		o.copy(l.wc, l.staging, 8*uint64(chunk))
		o.copyAt(l.errw, 0, l.staging, 8*uint64(chunk), 4)
		st.Dispatches += dispatches(o)
		if err := l.submit(ctx, o); err != nil {
			return err
		}
		buf, err := l.read(ctx, 8*uint64(chunk)+4)
		if err != nil {
			return err
		}
		st.ReadBytes += len(buf)
		if err := l.checkErr(buf[8*chunk:], it); err != nil {
			return err
		}
		for i := 0; i < chunk; i++ {
			listed := binary.LittleEndian.Uint32(buf[8*i:])
			masked := binary.LittleEndian.Uint32(buf[8*i+4:])
			if listed > 0 {
				st.Waves++
			}
			capped := l.s.WaveCap && w0+i >= l.T
			if masked == listed || capped {
				l.waveHint = st.Waves
				return nil
			}
		}
	}
}

// checkErr turns the error word into the CPU backend's error.
func (l *Loop) checkErr(b []byte, it int) error {
	p := binary.LittleEndian.Uint32(b)
	if p == noID {
		return nil
	}
	return fmt.Errorf("%s gave no finite probability to any allowed token at sample %d, position %d in iteration %d (NaN or -inf logits, or every id excluded): the model file is probably damaged", l.n.m.Name(), int(p)/l.T, int(p)%l.T, it)
}

func keyF32(k uint32) float32 {
	if k&0x80000000 != 0 {
		return math.Float32frombits(k &^ 0x80000000)
	}
	return math.Float32frombits(^k)
}

// Tokens implements engine.Loop.
func (l *Loop) Tokens(ctx context.Context) ([]int32, error) {
	o := &ops{}
	o.copy(l.tok, l.staging, 4*uint64(l.N))
	o.copyAt(l.errw, 0, l.staging, 4*uint64(l.N), 4)
	if err := l.submit(ctx, o); err != nil {
		return nil, err
	}
	buf, err := l.read(ctx, 4*uint64(l.N)+4)
	if err != nil {
		return nil, err
	}
	if err := l.checkErr(buf[4*l.N:], -1); err != nil {
		return nil, err
	}
	out := make([]int32, l.N)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return out, nil
}

// Metrics implements engine.Loop.
func (l *Loop) Metrics(ctx context.Context, critic bool, pad int32) (*engine.LoopMetrics, error) {
	n, d := l.n, l.n.d
	critic = critic && n.critic != nil
	o := &ops{stage: "metrics"}
	l.trunk(o, n, l.tok, true, critic)
	sp := shaders.StatsParams{B: uint32(l.B), T: uint32(l.T), V: uint32(n.V), Mask: uint32(l.s.Mask), Pad: uint32(pad)}
	if pad < 0 {
		sp.Pad = noID
	}
	if critic {
		sp.HasCritic = 1
	}
	pl, err := d.pipeline("stats.wgsl", nil, statsKinds)
	o.add(op{name: "stats", pl: pl, params: shaders.Bytes(sp),
		binds: []binding{whole(l.tok), whole(n.act.out), whole(l.crit), whole(l.keys), whole(l.stats)}, wg: d.grid(uint64(l.B))}, err)
	o.copy(l.stats, l.staging, 32*uint64(l.B))
	if err := l.submit(ctx, o); err != nil {
		return nil, err
	}
	buf, err := l.read(ctx, 32*uint64(l.B))
	if err != nil {
		return nil, err
	}
	f := func(b, i int) float64 {
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(buf[4*(8*b+i):])))
	}
	m := &engine.LoopMetrics{SelfConfidence: make([]float64, l.B)}
	if critic {
		m.CriticMean, m.CriticP10 = make([]float64, l.B), make([]float64, l.B)
		m.CriticP50, m.CriticP90 = make([]float64, l.B), make([]float64, l.B)
		m.CriticN = make([]int, l.B)
	}
	for b := 0; b < l.B; b++ {
		m.SelfConfidence[b] = f(b, 0)
		if f(b, 1) == 0 {
			m.SelfConfidence[b] = math.NaN()
		}
		if critic {
			m.CriticMean[b], m.CriticP10[b], m.CriticP50[b], m.CriticP90[b] = f(b, 2), f(b, 3), f(b, 4), f(b, 5)
			m.CriticN[b] = int(f(b, 6))
		}
	}
	return m, nil
}
