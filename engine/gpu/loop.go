package gpu

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/step"
	"github.com/remask/remask/shaders"
)

// The device loop (engine.LoopNet): one generation's state lives on the
// device and each iteration is recorded as one op list: the trunk, the LM
// head, the token draws (naive: one fill dispatch; sampler head: every wave
// planned on the device at once, then one indirect dispatch per wave, as
// many as the schedule bounds), the remasking scores, the per-row
// selection and the next input. The host reads back only counters (and,
// when asked, the iteration's tokens). engine/sampler's host loop,
// written with internal/step, is the CPU twin of every step (loop_test.go
// compares the whole loop; loop_kernels_test.go each kernel with its step).

var (
	remaskKinds      = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRead, bindRW}
	selectKinds      = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW, bindRW, bindRW, bindRW}
	wavePlanKinds    = []bindKind{bindUniform, bindRead, bindRead, bindRW, bindRW, bindRead, bindRW, bindRW}
	samplerWaveKinds = []bindKind{bindUniform, bindRead, bindRW, bindRead, bindRead, bindRW, bindRead, bindRW}
	statsKinds       = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW, bindRW}
)

// samplerMaxC is the largest n_embd samplerwave.wgsl runs (its MAXC: two
// vectors of the head in workgroup memory).
const samplerMaxC = 1024

// WaveSlots is the native default of Options.WaveSlots: the largest number
// of wave slots an iteration encodes without reading the wave count back
// (docs/gpu.md, "The sampler-head waves"). The js/wasm build's default is
// BrowserWaveSlots (platformWaveSlots picks per build).
const WaveSlots = 1024

// BrowserDirectPositions and BrowserDirectWaveSlots: in the js/wasm build,
// with Options.WaveDispatch auto, a loop of at most BrowserDirectPositions
// positions (B·T) dispatches its waves directly (each slot a grid of B·T
// workgroups, those past the wave's returning at once) with
// BrowserDirectWaveSlots slots by default, since Dawn's indirect dispatches
// are dear: on an H200 through Dawn the small job (1 x 256 x 15, sampler
// head) took 0.184 s indirect with 16 slots, 0.079 s direct with 16, 0.075
// with 64 and 0.054 with 256, in one command (natively direct was slower,
// 0.040 against 0.036 s: natively waves stay indirect). Larger loops keep
// indirect dispatches and BrowserWaveSlots: a direct slot's grid grows with
// B·T.
const (
	BrowserDirectPositions = 1024
	BrowserDirectWaveSlots = 256
)

// waveMode is how this loop dispatches its waves: the slots an iteration
// records without a read, and whether as direct dispatches.
func (l *Loop) waveMode() (slots int, direct bool) {
	d := l.n.d
	switch d.waveDispatch {
	case "direct":
		direct = true
	case "", "auto":
		direct = platformDirectWaves && l.N <= BrowserDirectPositions
	}
	slots = d.waveSlots
	if !d.waveSlotsSet && direct && platformDirectWaves {
		slots = BrowserDirectWaveSlots
	}
	return slots, direct
}

// BrowserWaveSlots is the js/wasm build's default of Options.WaveSlots.
// There every recorded dispatch costs several calls from wasm into
// JavaScript, so empty slots are dear: on an H200 through Dawn the small
// job (1 x 256 x 15, sampler head) took 3.0 s with 1024 slots, 0.53 s with
// 16 and 0.73 s with 64, where natively 1024 and 16 slots took 0.071 and
// 0.078 s (docs/performance.md, "The browser engine on a real GPU"), when a
// slot was five dispatches. With one dispatch per slot (samplerwave.wgsl)
// 16 still wins on Dawn: 0.122 s against 0.133 (32), 0.138 (64) and 0.309
// (256) (docs/performance.md, "the H200 measurement of session 6").
const BrowserWaveSlots = 16

const (
	cntWords     = shaders.CountRows      // CNT header: total, min wrongness key, unused, unused
	waveHdrBytes = 4 * shaders.WaveCounts // WS's header words
	noID         = shaders.NoID
	errBytes     = 4 * (shaders.ErrScore + 1) // ERR's words read back: ErrDraw, ErrScore
)

// samplerTables are the per-model tables of the sampler-head waves: W0's
// middle third (applied to h once per iteration), and samplerwave.wgsl's
// TAB (samplerLayout), all f32 (values of an F16 or BF16 file are exact in
// f32).
type samplerTables struct {
	w0h wbuf
	tab *buffer
}

// samplerLayout is where samplerwave.wgsl's TAB keeps its tables, in
// floats: the outer thirds of W0 applied to every token's embedding (LR,
// (2V, C)) at 0, W3ᵀ (C rows of cq floats) at w3, WOᵀ (C rows of vq
// floats) at wo, and the vectors (6, C) at vec: b0, LN1 weight and bias,
// b3, LN2 weight and bias (zeros without bias). The kernel reads W3ᵀ and
// WOᵀ as vec4, 4 outputs a load, so their rows are padded with zeros to a
// multiple of 4 floats and start at a multiple of 4, and size (TAB's
// length) is a multiple of 4 (a vec4 array's binding).
type samplerLayout struct {
	C, V              int
	cq, vq            int // row lengths of W3ᵀ and WOᵀ: C and V rounded up to a multiple of 4
	w3, wo, vec, size int
}

func newSamplerLayout(C, V int) samplerLayout {
	l := samplerLayout{C: C, V: V, cq: 4 * ceilDiv(C, 4), vq: 4 * ceilDiv(V, 4)}
	l.w3 = 4 * ceilDiv(2*V*C, 4)
	l.wo = l.w3 + C*l.cq
	l.vec = l.wo + C*l.vq
	l.size = 4 * ceilDiv(l.vec+6*C, 4)
	return l
}

// params sets p's table offsets.
func (l samplerLayout) params(p *shaders.SamplerWaveParams) {
	p.W3At, p.WOAt, p.VecAt = uint32(l.w3), uint32(l.wo), uint32(l.vec)
}

// samplerTab lays out samplerwave.wgsl's TAB from the model's weights.
func samplerTab(m *model.Model) []float32 {
	C, V := m.Config.NEmbd, m.Config.VocabSize
	w0 := m.T("sampler_head.mlp.0.weight").Data // (C, 3C)
	wte := m.T("transformer.wte.weight").Data   // (V, C)
	w3 := m.T("sampler_head.mlp.3.weight").Data // (C, C)
	wo := m.T("sampler_head.output_head.weight").Data
	l := newSamplerLayout(C, V)
	tab := make([]float32, l.size)
	lr, w3t, wot, vec := tab[:2*V*C], tab[l.w3:l.wo], tab[l.wo:l.vec], tab[l.vec:l.vec+6*C]
	for o := 0; o < C; o++ {
		row := w0[o*3*C : (o+1)*3*C]
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
		for c := 0; c < C; c++ {
			w3t[c*l.cq+o] = w3[o*C+c]
		}
	}
	for v := 0; v < V; v++ {
		for c := 0; c < C; c++ {
			wot[c*l.vq+v] = wo[v*C+c]
		}
	}
	copy(vec[C:], m.T("sampler_head.mlp.2.weight").Data)
	copy(vec[4*C:], m.T("sampler_head.mlp.5.weight").Data)
	if m.Config.Bias {
		copy(vec, m.T("sampler_head.mlp.0.bias").Data)
		copy(vec[2*C:], m.T("sampler_head.mlp.2.bias").Data)
		copy(vec[3*C:], m.T("sampler_head.mlp.3.bias").Data)
		copy(vec[5*C:], m.T("sampler_head.mlp.5.bias").Data)
	}
	return tab
}

func (n *Net) samplerTables() (*samplerTables, error) {
	if n.stabs != nil {
		return n.stabs, nil
	}
	C := n.C
	w0 := n.m.T("sampler_head.mlp.0.weight").Data // (C, 3C)
	mid := make([]float32, C*C)
	for o := 0; o < C; o++ {
		copy(mid[o*C:(o+1)*C], w0[o*3*C+C:o*3*C+2*C])
	}
	t := &samplerTables{}
	var err error
	if t.w0h, err = n.uploadMatrix("sampler mlp.0 (h third)", mid, n.sampler.w0.dtype); err != nil {
		return nil, err
	}
	if t.tab, err = n.upload("sampler head tables (samplerwave.wgsl)", samplerTab(n.m)); err != nil {
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

	tok, pred, prot *buffer // (B·T) next input, prediction, protected flags
	exclN, exclS    *buffer // excluded ids: naive path, sampler-head path
	crit            *buffer // (B·T) critic logits
	scores          *buffer // (2·B·T) remask scores, then the wrongness
	keys            *buffer // (B·T) selection scratch of select.wgsl, stats.wgsl
	cnt             *buffer // select.wgsl's counters (CNT)
	errWord         *buffer // ERR: sample.wgsl's smallest failed position, select.wgsl's smallest non-finite score
	table           *buffer // (100) calibration table
	stats           *buffer // (B·8) stats.wgsl's output
	// the unmask method (unmask.go)
	ucert, uleft, ustate *buffer // certain.wgsl's output, the schedule, the rows' state
	// sampler-head waves
	tabs       *samplerTables
	hW0        *buffer // (B·T, C) h times the middle third of W0
	list       *buffer // (B·T) positions by wave (waveplan.wgsl)
	waveScr    *buffer // (2, B·T) waveplan.wgsl's keys and ranks, then each position's wave
	waveState  *buffer // waveplan.wgsl's WS: header, counts per wave, (count, first) per slot
	args, fill *buffer // indirect dispatch arguments (B·T slots); bootstrap fill table
	waves      int     // sampler-head waves run, as of the latest read of WS's header
	// reads and dispatched count the staging buffer's reads (read) and the
	// dispatches submitted (submit) in this generation, for the tests.
	reads, dispatched int
	staging           *buffer
	upload            *buffer // the generation's inputs, written at once by init
	// clears (reuse) and copies (init's, out of upload) are recorded at the
	// head of the generation's first submission (submit), in that order.
	clears  []*buffer
	copies  []copyOp
	prog    *program
	bufs    []*buffer
	timer   *stageTimer
	stageMs map[string]float64
	trunks  map[*Net]trunkCache // each net's trunk ops at (B, T), made once
	closed  bool                // Close ran (the buffers are parked or released)
}

// trunkCache is a net's trunk op list at the loop's (B, T), valid while the
// net keeps the activation buffers it was made for (x: ensure replaces them
// all together).
type trunkCache struct {
	x   *buffer
	ops []op
}

// readLayout is where one read back from the device lands in the staging
// buffer: the parts it has, placed back to back from offset 0 (byte
// offsets; an absent part is 0). Every read is laid out here, by stepRead,
// waveRead and finishRead, and the staging buffer holds the largest
// (stagingBytes).
type readLayout struct {
	counters uint64 // select.wgsl's CNT (cntWords + B words)
	errWord  uint64 // ERR's words ErrDraw and ErrScore (errBytes)
	pred     uint64 // the prediction (B·T ids)
	tokens   uint64 // the next input (B·T ids)
	wrong    uint64 // the wrongness (B·T floats)
	waveHdr  uint64 // waveplan.wgsl's WS header (waveHdrBytes; sampler head only)
	stats    uint64 // stats.wgsl's output (B rows of shaders.StatsWords)
	size     uint64
}

func (r *readLayout) place(n uint64) uint64 {
	off := r.size
	r.size += n
	return off
}

// stepRead is Step's read: the counters, the error word and the wave
// header (counters; the header with the sampler head: waves), then the
// prediction, the next input and the wrongness (want, wrong).
func stepRead(B, N int, counters, want, wrong, waves bool) readLayout {
	var r readLayout
	if counters {
		r.counters = r.place(4 * uint64(cntWords+B))
		r.errWord = r.place(16)
		if waves {
			r.waveHdr = r.place(waveHdrBytes)
		}
	}
	if want {
		r.pred = r.place(4 * uint64(N))
		r.tokens = r.place(4 * uint64(N))
		if wrong {
			r.wrong = r.place(4 * uint64(N))
		}
	}
	return r
}

// waveRead is the read of an iteration whose schedule bounds more waves
// than Options.WaveSlots: the wave header (this iteration's wave count),
// then the error word.
func waveRead() readLayout {
	var r readLayout
	r.waveHdr = r.place(waveHdrBytes)
	r.errWord = r.place(errBytes)
	return r
}

// finishRead is Finish's read: the tokens, the error word, the wave header
// (waves) and the statistics of every row (metrics).
func finishRead(B, N int, waves, metrics bool) readLayout {
	var r readLayout
	r.tokens = r.place(4 * uint64(N))
	r.errWord = r.place(errBytes)
	if waves {
		r.waveHdr = r.place(waveHdrBytes)
	}
	if metrics {
		r.stats = r.place(4 * shaders.StatsWords * uint64(B))
	}
	return r
}

// stagingBytes is the size of the staging buffer: the largest read.
func stagingBytes(B, N int) uint64 {
	return max(stepRead(B, N, true, true, true, true).size, waveRead().size, finishRead(B, N, true, true).size)
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
	var rm *Net
	if s.Remasker != nil {
		rm = s.Remasker.(*Net)
		if err := rm.ensure(N); err != nil {
			return nil, fmt.Errorf("gpu: loop: remasking model: %w", err)
		}
	}
	if l := n.takeSpare(s); l != nil { // loopreuse.go
		l.s, l.rm = *s, rm
		if err := l.reuse(); err != nil {
			l.destroy()
			return nil, err
		}
		return l, nil
	}
	l := &Loop{n: n, rm: rm, s: *s, B: s.B, T: s.T, N: N}
	if err := l.alloc(); err != nil {
		l.destroy()
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
	case s.Iterations < 1 || (!s.Multinomial && s.Unmask == nil && len(s.Ratios) != s.Iterations-1):
		return fmt.Errorf("gpu: loop: %d iterations with %d schedule ratios", s.Iterations, len(s.Ratios))
	case s.UseSampler && n.sampler == nil:
		return fmt.Errorf("gpu: loop: %s has no sampler head", n.m.Name())
	case s.UseSampler && n.C > samplerMaxC:
		return fmt.Errorf("gpu: loop: n_embd %d exceeds the sampler kernel's %d; use the host loop (--backend cpu)", n.C, samplerMaxC)
	case s.UseSampler && s.B*s.T > shaders.WaveListPos+1:
		return fmt.Errorf("gpu: loop: %d x %d positions exceed the sampler-head waves' %d; use fewer samples", s.B, s.T, shaders.WaveListPos+1)
	}
	if s.Unmask != nil {
		if err := checkUnmask(s); err != nil {
			return err
		}
	}
	remask := !s.Multinomial && s.Unmask == nil // the multinomial and unmask methods never remask: Strategy is unused
	switch {
	case remask && !s.Strategy.Valid():
		return fmt.Errorf("gpu: loop: unknown remasking strategy %v", s.Strategy)
	case remask && s.Strategy == step.Model && s.Remasker == nil:
		return fmt.Errorf("gpu: loop: remasking model missing")
	case remask && (s.Strategy == step.Critic || s.Strategy == step.Calibrated) && n.critic == nil:
		return fmt.Errorf("gpu: loop: %s has no critic head", n.m.Name())
	case remask && s.Strategy == step.Calibrated && len(s.Calibration) != 100:
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
	al := allocator{d: d}
	mk := al.buffer
	l.tok = mk("loop tokens (B·T ids)", 4*N, usageStorage)
	l.pred = mk("loop prediction (B·T ids)", 4*N, usageStorage)
	l.prot = mk("loop protected flags (B·T)", 4*N, usageStorage)
	l.exclN = mk("loop excluded ids (naive)", 4*uint64(len(excludeWords(l.s.ExcludeNaive))), usageStorage)
	l.exclS = mk("loop excluded ids (sampler)", 4*uint64(len(excludeWords(l.s.ExcludeSampler))), usageStorage)
	l.crit = mk("loop critic logits (B·T)", 4*N, usageStorage)
	l.scores = mk("loop scores and wrongness (2·B·T)", 8*N, usageStorage)
	l.keys = mk("loop selection keys (B·T)", 4*N, usageStorage)
	l.cnt = mk("loop counters", 4*uint64(cntWords+l.B), usageStorage)
	l.errWord = mk("loop error word", 16, usageStorage)
	l.table = mk("loop calibration table", 400, usageStorage)
	l.stats = mk("loop statistics (B·8)", 4*shaders.StatsWords*uint64(l.B), usageStorage)
	if l.s.UseSampler {
		C := uint64(n.C)
		l.hW0 = mk("loop h·W0 (B·T·C floats)", 4*N*C, usageStorage)
		l.list = mk("loop wave list (B·T)", 4*N, usageStorage)
		l.waveScr = mk("loop wave plan scratch (2·B·T)", 8*N, usageStorage)
		l.waveState = mk("loop wave state", 4*uint64(shaders.WaveStateWords(l.N)), usageStorage)
		l.args = mk("loop wave dispatch arguments (3·B·T)", 4*shaders.WaveArgsWords*N, usageIndirect)
		l.fill = mk("loop bootstrap fill table", 4*(N+1), usageStorage)
	}
	if l.s.Unmask != nil {
		l.allocUnmask(&al)
	}
	l.staging = mk("loop staging", stagingBytes(l.B, l.N), usageStaging)
	l.upload = mk("loop inputs (init's upload)", l.inputBytes(), usageStorage)
	l.bufs = append(l.bufs, al.made...) // released by Close, also after an error
	if al.err != nil {
		return fmt.Errorf("gpu: loop: %w", al.err)
	}
	l.prog = newProgram(d, "loop")
	return l.init()
}

// init sets what a generation starts from: the input, the protected flags,
// the exclusion sets, the calibration table, the error word and the
// bootstrap fill table, laid out back to back in one upload buffer, written
// with one queue write and copied into their buffers at the head of the
// generation's first submission (l.copies, after reuse's clears, which
// spare these buffers: the copies overwrite them whole). One write instead
// of one per buffer: each costs a staging allocation in the WebGPU
// implementation (and a call into JavaScript in the browser build).
// Nothing runs on the device before that first submission, so nothing
// reads the inputs earlier. init also starts the stage timer
// (LoopSpec.Profile).
func (l *Loop) init() error {
	d := l.n.d
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
	// The data of each of inputBufs, in its order.
	data := [][]byte{u32Bytes(ids), u32Bytes(ids), u32Bytes(prot),
		u32Bytes(excludeWords(l.s.ExcludeNaive)), u32Bytes(excludeWords(l.s.ExcludeSampler)),
		f32Bytes(table), u32Bytes([]uint32{noID, noID, 0, 0})}
	if l.s.UseSampler {
		var err error
		if l.tabs, err = l.n.samplerTables(); err != nil {
			return fmt.Errorf("gpu: loop: %w", err)
		}
		fill := make([]uint32, l.N+1)
		for i := range fill {
			fill[i] = uint32(step.FillCount(i, l.s.MinNeighborsRatio))
		}
		data = append(data, u32Bytes(fill))
	}
	up := make([]byte, 0, l.upload.size)
	l.copies = l.copies[:0]
	bufs := l.inputBufs()
	if len(bufs) != len(data) {
		return fmt.Errorf("gpu: loop: %d inputs for %d input buffers (a bug)", len(data), len(bufs))
	}
	for i, b := range bufs {
		if uint64(len(data[i])) != b.size {
			return fmt.Errorf("gpu: loop: %d bytes of input for %s of %d (a bug)", len(data[i]), b.label, b.size)
		}
		l.copies = append(l.copies, copyOp{src: l.upload, srcOff: uint64(len(up)), dst: b, size: b.size})
		up = append(up, data[i]...)
	}
	if uint64(len(up)) != l.upload.size {
		return fmt.Errorf("gpu: loop: %d bytes of inputs for an upload buffer of %d (a bug)", len(up), l.upload.size)
	}
	if err := d.p.write(l.upload, 0, up); err != nil {
		return err
	}
	if l.s.Unmask != nil {
		if err := l.uploadUnmask(); err != nil {
			return err
		}
	}
	if l.s.Profile {
		if l.timer = newStageTimer(d, 64); l.timer != nil {
			l.prog.timer = l.timer
			l.stageMs = map[string]float64{}
		}
	}
	return nil
}

// inputBufs are the buffers init fills from its upload, in the upload's
// order: the ids twice (the input and the prediction), the protected
// flags, both exclusion sets, the calibration table, the error word and,
// with the sampler head, the fill table.
func (l *Loop) inputBufs() []*buffer {
	b := []*buffer{l.tok, l.pred, l.prot, l.exclN, l.exclS, l.table, l.errWord}
	if l.s.UseSampler {
		b = append(b, l.fill)
	}
	return b
}

// inputBytes is the size of init's upload: inputBufs' sizes (0 for a
// buffer alloc failed to make; alloc then fails).
func (l *Loop) inputBytes() uint64 {
	var n uint64
	for _, b := range l.inputBufs() {
		if b != nil {
			n += b.size
		}
	}
	return n
}

// Close implements engine.Loop: the loop's buffers are kept for the net's
// next loop of the same shape (loopreuse.go), or released.
func (l *Loop) Close() {
	if l.closed {
		return
	}
	l.closed = true
	if l.n.park(l) {
		return
	}
	l.destroy()
}

// destroy releases the loop's buffers, its params and its timer (nil: none).
func (l *Loop) destroy() {
	if l == nil {
		return
	}
	l.closed = true
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
	c, ok := l.trunks[net]
	if !ok || c.x != net.act.x {
		tr, err := net.trunkOps(l.B, l.T)
		if err != nil {
			if o.err == nil {
				o.err = err
			}
			return
		}
		c = trunkCache{x: net.act.x, ops: tr}
		if l.trunks == nil {
			l.trunks = map[*Net]trunkCache{}
		}
		l.trunks[net] = c
	}
	for _, x := range c.ops {
		o.add(x, nil)
	}
	if lm {
		o.add(net.d.matmul("lm_head", N, net.headN, net.C, whole(net.act.h), *net.head, nil, whole(net.act.out), shaders.ActNone, false))
	}
	if critic {
		o.add(net.d.rowDot("critic_head", N, net.C, net.C, whole(net.act.h), net.critic, whole(l.crit), false, 0, 0))
	}
}

// loopDraw is one token draw of the loop: sample.wgsl's fill mode (the
// naive and multinomial paths; the waves draw in samplerwave.wgsl) and the
// buffers it reads and writes; draw adds the options and the iteration.
type loopDraw struct {
	mode, keep int // shaders.Sample*, shaders.Keep* (fill)
	logits     binding
	pos        binding // fill: the tokens
	excl       binding
	out        binding
	aux        binding // fill with KeepProtected: the flags
}

func (l *Loop) draw(it int, w loopDraw) (op, error) {
	s := &l.s
	t := tokenDraw{V: l.n.V, T: l.T, Iteration: it, Temperature: s.Temperature, TopP: s.TopP, Seed: s.Seed,
		Mode: w.mode, Keep: w.keep, Mask: uint32(s.Mask), Aux: w.aux, Err: whole(l.errWord)}
	return l.n.d.sampleTokens(l.N, t, w.logits, w.pos, w.excl, w.out)
}

// critic reports whether the strategy reads the critic head.
func (l *Loop) critic() bool {
	return !l.s.Multinomial && l.s.Unmask == nil && (l.s.Strategy == step.Critic || l.s.Strategy == step.Calibrated)
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
		o.add(l.draw(it, loopDraw{mode: shaders.SampleFill, keep: shaders.KeepProtected,
			logits: whole(a.out), pos: whole(l.tok), excl: whole(l.exclN), out: whole(l.pred), aux: whole(l.prot)}))
	case !s.UseSampler:
		o.add(l.draw(it, loopDraw{mode: shaders.SampleFill, keep: shaders.KeepUnmasked,
			logits: whole(a.out), pos: whole(l.tok), excl: whole(l.exclN), out: whole(l.pred)}))
	default:
		o.add(n.d.matmul("sampler mlp.0 (h)", l.N, n.C, n.C, whole(a.h), l.tabs.w0h, nil, whole(l.hW0), shaders.ActNone, false))
		o.copy(l.tok, l.pred, 4*uint64(l.N))
	}
}

// waveBound is how many waves iteration it's fill can take at most, from
// the schedule alone (docs/gpu.md, "The sampler-head waves"): every wave
// fills at least one masked position of each row it touches, so a row takes
// at most as many waves as it has masks: at iteration 0 the input's, later
// at most the k the previous iteration's ratio selected (the prediction has
// no mask left, so the next input's masks are the selected ones), the
// whole row in threshold mode. Per row the bootstrap seeds a fully masked
// row on the first wave, so the iteration takes at most the largest row's
// masks (and at most T); with the global bootstrap rows wait for each
// other, and the bound is the batch's masks (at most T with the wave cap,
// where masks left by the cap join the next input: the whole cap then).
// Zeros mode without the wave cap fills every mask in one wave.
func (l *Loop) waveBound(it int) int {
	s := &l.s
	if !s.Embeddings && !s.WaveCap {
		return 1
	}
	m := l.T // masks per row
	switch {
	case it == 0:
		m = 0
		for b := 0; b < l.B; b++ {
			c := 0
			for _, t := range s.Tokens[b*l.T : (b+1)*l.T] {
				if t == s.Mask {
					c++
				}
			}
			m = max(m, c)
		}
	case s.GlobalBootstrap && s.WaveCap:
		// leftover masks: the cap bounds it
	default:
		how, run := step.SelectionFor(l.T, s.Ratios[it-1], s.Threshold, s.Strategy)
		switch {
		case how.Threshold:
		case run:
			m = min(how.K, l.T)
		default:
			m = 0
		}
	}
	if !s.GlobalBootstrap {
		return m
	}
	w := min(l.B*m, l.N)
	if s.WaveCap {
		w = min(w, l.T)
	}
	return w
}

// planOps records waveplan.wgsl's three phases for iteration it: every
// wave planned, the wave lists and the indirect arguments of slots waves.
func (l *Loop) planOps(o *ops, it, slots int) {
	s := &l.s
	n, d := l.n, l.n.d
	wp := shaders.WavePlanParams{B: uint32(l.B), T: uint32(l.T), V: uint32(n.V), Mask: uint32(s.Mask),
		Slots: uint32(slots), Iteration: uint32(it),
		Maxd: uint32(d.caps.groupsDim)} // the grid split's limit (caps, as d.grid)
	if s.GlobalBootstrap {
		wp.Global = 1
	}
	if !s.Embeddings && !s.WaveCap {
		wp.All = 1 // zeros: one wave takes every mask
	}
	if s.WaveCap {
		wp.Cap = 1
	}
	pl, err := d.pipeline("waveplan.wgsl", nil, wavePlanKinds)
	binds := []binding{whole(l.pred), whole(n.act.out), whole(l.waveScr), whole(l.waveState), whole(l.fill), whole(l.args), whole(l.list)}
	for _, ph := range []struct {
		name  string
		phase uint32
		wg    [3]uint32
	}{
		{"wave plan", shaders.WavePlan, d.grid(uint64(l.B))},
		{"wave scan", shaders.WaveScan, [3]uint32{1, 1, 1}},
		{"wave list", shaders.WaveList, d.grid(uint64(ceilDiv(l.N, 256)))},
	} {
		p := wp
		p.Phase = ph.phase
		wg := ph.wg
		if ph.phase == shaders.WavePlan && s.GlobalBootstrap {
			wg = [3]uint32{1, 1, 1}
		}
		o.add(op{name: ph.name, pl: pl, params: shaders.Bytes(p), binds: binds, wg: wg}, err)
	}
}

// slotOps records slots waves of iteration it: per wave one indirect
// dispatch of samplerwave.wgsl (the whole sampler head and the draw, one
// workgroup per position) whose workgroup count the plan wrote; the waves
// past the plan's are empty dispatches. Every wave's op is the same
// (samplerwave.wgsl finds its wave by ticket), so they share their params
// and bind group (program.record).
func (l *Loop) slotOps(o *ops, it, slots int) {
	if slots == 0 {
		return
	}
	w, p, err := l.waveOp(it, slots)
	if _, direct := l.waveMode(); direct {
		// Options.WaveDispatch "direct": the slot in the params (so each
		// slot has its own params and bind group), a grid of every position.
		grid := l.n.d.grid(uint64(l.N))
		p.Direct = 1
		for i := 0; i < slots; i++ {
			y := w
			p.Slot = uint32(i)
			y.params, y.wg = shaders.Bytes(p), grid
			o.add(y, err)
		}
		return
	}
	for i := 0; i < slots; i++ {
		y := w
		y.ind, y.indOff = l.args, 4*uint64(i*shaders.WaveArgsWords)
		o.add(y, err)
	}
}

// waveOp is samplerwave.wgsl's op for the slots of iteration it (without
// its indirect arguments or its grid) and its params, for the direct
// dispatches' per-slot copies (Options.WaveDispatch "direct").
func (l *Loop) waveOp(it, slots int) (op, shaders.SamplerWaveParams, error) {
	s := &l.s
	n, d := l.n, l.n.d
	var p shaders.SamplerWaveParams
	switch {
	case !(s.Temperature > 0) || math.IsInf(s.Temperature, 1):
		return op{}, p, fmt.Errorf("gpu: sampler wave: temperature %v must be > 0", s.Temperature)
	case !(s.SamplerTopP > 0 && s.SamplerTopP <= 1):
		return op{}, p, fmt.Errorf("gpu: sampler wave: top_p %v must be in (0, 1]", s.SamplerTopP)
	}
	pl, err := d.pipeline("samplerwave.wgsl", nil, samplerWaveKinds)
	if err != nil {
		return op{}, p, err
	}
	p = shaders.SamplerWaveParams{C: uint32(n.C), V: uint32(n.V), T: uint32(l.T), SlotAt: uint32(shaders.WaveSlotAt(l.N)),
		Slots: uint32(slots), Eps: float32(n.eps), Mask: uint32(s.Mask), Iteration: uint32(it),
		Temperature: float32(s.Temperature), TopP: float32(s.SamplerTopP), SeedLo: uint32(s.Seed), SeedHi: uint32(s.Seed >> 32)}
	newSamplerLayout(n.C, n.V).params(&p)
	if s.Embeddings {
		p.Embeddings = 1
	}
	return op{name: "sampler wave", pl: pl, params: shaders.Bytes(p),
		binds: []binding{whole(l.list), whole(l.waveState), whole(l.hW0), whole(l.tabs.tab), whole(l.pred), whole(l.exclS), whole(l.errWord)}}, p, nil
}

// remaskOps records the scores, the selection and the next input of
// iteration it (k positions per row in ratio mode).
func (l *Loop) remaskOps(o *ops, it int, ratio float64) (scored bool) {
	s := &l.s
	n, d := l.n, l.n.d
	N := l.N
	how, run := step.SelectionFor(l.T, ratio, s.Threshold, s.Strategy)
	if !run {
		o.copy(l.pred, l.tok, 4*uint64(N))
		return false
	}
	defer func() { o.stage = "" }()
	// remask.wgsl numbers the strategies as internal/step (shaders' TestEnumsMatchWGSL).
	rp := shaders.RemaskParams{N: uint32(N), T: uint32(l.T), V: uint32(n.V), Strategy: uint32(s.Strategy), Iteration: uint32(it),
		SeedLo: uint32(s.Seed), SeedHi: uint32(s.Seed >> 32), Stride: 1}
	r := s.RandomnessStrength
	if math.IsNaN(r) {
		r = 0
	}
	rp.R = float32(math.Min(math.Max(r, 0), 1))
	aux := whole(l.crit)
	if s.Strategy == step.Model {
		K := l.rm.headN
		rp.Stride, rp.Col = uint32(K), uint32(step.ModelColumn(K))
		aux = whole(l.rm.act.out)
	}
	o.stage = "remask forward"
	if l.critic() && !s.CriticOnInput {
		l.trunk(o, n, l.pred, false, true)
	}
	if s.Strategy == step.Model {
		l.trunk(o, l.rm, l.pred, true, false)
	}
	o.stage = "remask select"

	pl, err := d.pipeline("remask.wgsl", nil, remaskKinds)
	o.add(op{name: "remask scores", pl: pl, params: shaders.Bytes(rp),
		binds: []binding{whole(l.pred), whole(n.act.out), aux, whole(l.table), whole(l.scores)}, wg: d.grid(uint64(ceilDiv(N, 64)))}, err)
	sp := shaders.SelectParams{T: uint32(l.T), B: uint32(l.B), K: uint32(max(how.K, 0)), Mask: uint32(s.Mask), Threshold: shaders.SelectRatio}
	if how.Threshold {
		sp.Threshold = shaders.SelectThreshold
		sp.Thr = float32(how.Thr)
	}
	pl, err = d.pipeline("select.wgsl", nil, selectKinds)
	o.add(op{name: "remask select", pl: pl, params: shaders.Bytes(sp),
		binds: []binding{whole(l.pred), whole(l.prot), whole(l.scores), whole(l.keys), whole(l.tok), whole(l.cnt), whole(l.errWord)}, wg: d.grid(uint64(l.B))}, err)
	return true
}

// submit records and submits o, then copies nothing: reads go through read.
func (l *Loop) submit(ctx context.Context, o *ops) error {
	if o.err != nil {
		return o.err
	}
	l.dispatched += dispatches(o)
	rec, err := l.n.d.p.newRecorder()
	if err != nil {
		return err
	}
	// The generation's first submission starts it: reuse's clears, then
	// init's inputs.
	for _, b := range l.clears {
		rec.clear(b)
	}
	for _, c := range l.copies {
		rec.copy(c.src, c.srcOff, c.dst, c.dstOff, c.size)
	}
	l.clears, l.copies = l.clears[:0], l.copies[:0]
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
	l.reads++
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
	if l.s.Unmask != nil {
		return l.unmaskStep(ctx, it, want)
	}
	s := &l.s
	st := &engine.LoopStep{MinWrongness: math.NaN()}
	d := l.n.d
	submits0 := d.submits
	o := &ops{}
	l.predictOps(o, it)
	waves := s.UseSampler && !s.Multinomial
	if waves {
		var err error
		if o, err = l.waveOps(ctx, it, o, st); err != nil {
			return nil, err
		}
	}
	remask := !s.Multinomial && it < s.Iterations-1
	scored := false
	if remask {
		init := make([]uint32, cntWords+l.B)
		init[shaders.CountMinWrong] = noID
		if err := d.p.write(l.cnt, 0, u32Bytes(init)); err != nil {
			return nil, err
		}
		scored = l.remaskOps(o, it, s.Ratios[it])
		st.Scored = scored
	} else {
		o.copy(l.pred, l.tok, 4*uint64(l.N))
	}
	threshold := remask && s.Threshold && s.Strategy != step.Random
	readCnt := remask && (want || threshold)
	at := stepRead(l.B, l.N, readCnt, want, scored, waves)
	N4 := 4 * uint64(l.N)
	if readCnt {
		o.copyAt(l.cnt, 0, l.staging, at.counters, 4*uint64(cntWords+l.B))
		o.copyAt(l.errWord, 0, l.staging, at.errWord, errBytes)
		if waves {
			o.copyAt(l.waveState, 0, l.staging, at.waveHdr, waveHdrBytes)
		}
	}
	if want {
		o.copyAt(l.pred, 0, l.staging, at.pred, N4)
		o.copyAt(l.tok, 0, l.staging, at.tokens, N4)
		if scored {
			o.copyAt(l.scores, N4, l.staging, at.wrong, N4) // the wrongness half
		}
	}
	st.Dispatches += dispatches(o)
	if err := l.submit(ctx, o); err != nil {
		return nil, err
	}
	st.Submits = d.submits - submits0
	if at.size == 0 {
		return st, nil
	}
	buf, err := l.read(ctx, at.size)
	if err != nil {
		return nil, err
	}
	st.ReadBytes += int(at.size)
	word := func(off uint64, i int) uint32 { return binary.LittleEndian.Uint32(buf[off+4*uint64(i):]) }
	if readCnt {
		if err := l.checkErr(buf[at.errWord:], it); err != nil {
			return nil, err
		}
		if waves {
			if err := l.checkWaves(buf[at.waveHdr:]); err != nil {
				return nil, err
			}
		}
		st.Remasked = make([]int, l.B)
		for b := range st.Remasked {
			st.Remasked[b] = int(word(at.counters, shaders.CountRows+b))
		}
		total := word(at.counters, shaders.CountTotal)
		if k := word(at.counters, shaders.CountMinWrong); total > 0 && k != noID {
			st.MinWrongness = float64(keyF32(k))
		}
		st.EarlyStop = threshold && total == 0
	}
	if want {
		st.Pred = make([]int32, l.N)
		st.Selected = make([]bool, l.N)
		for i := range st.Pred {
			st.Pred[i] = int32(word(at.pred, i))
			next := int32(word(at.tokens, i))
			st.Selected[i] = remask && next == s.Mask && st.Pred[i] != s.Mask
		}
		if scored && s.Strategy != step.Random {
			st.Wrongness = make([]float64, l.N)
			for i := range st.Wrongness {
				st.Wrongness[i] = float64(math.Float32frombits(word(at.wrong, i)))
			}
		}
	}
	// An early stop needs nothing more: select.wgsl selected nothing, so it
	// already wrote the prediction as the tokens.
	return st, nil
}

// waveOps adds iteration it's waves to o, the trunk and what the waves
// need: the plan and as many wave slots as the schedule allows
// (waveBound), so that the iteration stays one submission that reads
// nothing back. When that bound exceeds Options.WaveSlots it submits o with
// the plan instead, reads the planned wave count (and the error word) and
// returns a new op list with exactly those waves.
func (l *Loop) waveOps(ctx context.Context, it int, o *ops, st *engine.LoopStep) (*ops, error) {
	slots, _ := l.waveMode()
	if bound := l.waveBound(it); bound <= slots {
		l.planOps(o, it, bound)
		l.slotOps(o, it, bound)
		return o, nil
	}
	l.planOps(o, it, l.N)
	at := waveRead()
	o.copyAt(l.waveState, 0, l.staging, at.waveHdr, waveHdrBytes)
	o.copyAt(l.errWord, 0, l.staging, at.errWord, errBytes)
	st.Dispatches += dispatches(o)
	if err := l.submit(ctx, o); err != nil {
		return nil, err
	}
	buf, err := l.read(ctx, at.size)
	if err != nil {
		return nil, err
	}
	st.ReadBytes += len(buf)
	if err := l.checkErr(buf[at.errWord:], it); err != nil {
		return nil, err
	}
	if err := l.checkWaves(buf[at.waveHdr:]); err != nil {
		return nil, err
	}
	o = &ops{stage: "sampling"}
	l.slotOps(o, it, int(binary.LittleEndian.Uint32(buf[at.waveHdr+4*shaders.WaveLast:])))
	return o, nil
}

// checkWaves reads waveplan.wgsl's header (b holds its waveHdrBytes): the
// waves run so far, and fails if an iteration planned more waves than the
// slots it had (waveBound was wrong: a bug, not bad input).
func (l *Loop) checkWaves(b []byte) error {
	l.waves = int(binary.LittleEndian.Uint32(b[4*shaders.WaveTotal:]))
	if it := binary.LittleEndian.Uint32(b[4*shaders.WaveOver:]); it != 0 {
		return fmt.Errorf("gpu: loop: iteration %d planned more sampler-head waves than its schedule allows (%s); this is a bug: please report it, and use --backend cpu meanwhile", it-1, l.n.m.Name())
	}
	return nil
}

// Waves implements engine.Loop: the sampler-head waves run so far, as of
// the latest read (Finish reads it).
func (l *Loop) Waves() int { return l.waves }

// checkErr turns the error words into the CPU backend's errors: b holds
// ERR's first errBytes bytes. A failed draw (ErrDraw) is reported before a
// non-finite remasking score (ErrScore). it < 0: the iteration is unknown.
func (l *Loop) checkErr(b []byte, it int) error {
	in := ""
	if it >= 0 {
		in = fmt.Sprintf(" in iteration %d", it)
	}
	if p := binary.LittleEndian.Uint32(b[4*shaders.ErrDraw:]); p != noID {
		return fmt.Errorf("%s gave no finite probability to any allowed token at sample %d, position %d%s (NaN or -inf logits, or every id excluded): the model file is probably damaged", l.n.m.Name(), int(p)/l.T, int(p)%l.T, in)
	}
	if p := binary.LittleEndian.Uint32(b[4*shaders.ErrScore:]); p != noID {
		name, head := l.n.m.Name(), "critic head"
		switch l.s.Strategy {
		case step.Model:
			name, head = l.rm.m.Name(), "remasking model"
		case step.Self:
			head = "LM head (self-confidence remasking)"
		}
		return fmt.Errorf("%s: the %s gave a non-finite remasking score at sample %d, position %d%s: the model file is probably damaged (NaN or infinite weights); convert the checkpoint again", name, head, int(p)/l.T, int(p)%l.T, in)
	}
	return nil
}

// keyF32 inverts select.wgsl's f32_key, the order-preserving map of an f32
// x to a u32 (larger x, larger key): a non-negative x has its sign bit set
// (bits | 0x80000000), a negative x is bit-inverted (^bits), so that
// unsigned comparison of keys orders the floats. CNT's smallest-wrongness
// word holds such a key (an atomicMin over keys is a min over floats).
func keyF32(k uint32) float32 {
	if k&0x80000000 != 0 {
		return math.Float32frombits(k &^ 0x80000000)
	}
	return math.Float32frombits(^k)
}

// Finish implements engine.Loop: one submission copies the final tokens,
// the error words and the wave header (the generation's wave count) into
// the staging buffer and, when f asks for metrics, runs the metrics pass on
// the tokens after them (metricsOps) and copies its statistics too; one
// read brings it all back. The pass reads only the tokens, so it is
// recorded while the device may still run the last iterations and starts
// right after them, without the host's round trip between a read of the
// tokens and a second submission.
func (l *Loop) Finish(ctx context.Context, f engine.LoopFinish) (*engine.LoopFinal, error) {
	o := &ops{}
	waves := l.s.UseSampler && !l.s.Multinomial
	critic := f.Metrics && f.Critic && l.n.critic != nil
	at := finishRead(l.B, l.N, waves, f.Metrics)
	o.copyAt(l.tok, 0, l.staging, at.tokens, 4*uint64(l.N))
	o.copyAt(l.errWord, 0, l.staging, at.errWord, errBytes)
	if waves {
		o.copyAt(l.waveState, 0, l.staging, at.waveHdr, waveHdrBytes)
	}
	if f.Metrics {
		l.metricsOps(o, critic, f.Pad)
		o.copyAt(l.stats, 0, l.staging, at.stats, at.size-at.stats)
	}
	if err := l.submit(ctx, o); err != nil {
		return nil, err
	}
	buf, err := l.read(ctx, at.size)
	if err != nil {
		return nil, err
	}
	if err := l.checkErr(buf[at.errWord:], -1); err != nil {
		return nil, err
	}
	if waves {
		if err := l.checkWaves(buf[at.waveHdr:]); err != nil {
			return nil, err
		}
	}
	out := &engine.LoopFinal{Tokens: make([]int32, l.N)}
	for i := range out.Tokens {
		out.Tokens[i] = int32(binary.LittleEndian.Uint32(buf[at.tokens+4*uint64(i):]))
	}
	if f.Metrics {
		out.Metrics = l.loopMetrics(buf[at.stats:], critic)
	}
	return out, nil
}

// metricsOps records the metrics pass on the tokens: the trunk and the LM
// head (and the critic head when critic is set), then stats.wgsl (the
// self-confidence and critic statistics of every row, pad skipped; -1:
// none) into l.stats.
func (l *Loop) metricsOps(o *ops, critic bool, pad int32) {
	n, d := l.n, l.n.d
	o.stage = "metrics"
	defer func() { o.stage = "" }()
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
}

// loopMetrics decodes stats.wgsl's output (b holds B rows of
// shaders.StatsWords floats).
func (l *Loop) loopMetrics(b []byte, critic bool) *engine.LoopMetrics {
	f := func(row, i int) float64 {
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*(shaders.StatsWords*row+i):])))
	}
	m := &engine.LoopMetrics{SelfConfidence: make([]float64, l.B)}
	if critic {
		m.CriticMean, m.CriticP10 = make([]float64, l.B), make([]float64, l.B)
		m.CriticP50, m.CriticP90 = make([]float64, l.B), make([]float64, l.B)
		m.CriticN, m.CriticNonFinite = make([]int, l.B), make([]int, l.B)
	}
	for r := 0; r < l.B; r++ {
		m.SelfConfidence[r] = f(r, shaders.StatsSelf)
		if f(r, shaders.StatsSelfCount) == 0 {
			m.SelfConfidence[r] = math.NaN()
		}
		if critic {
			m.CriticMean[r], m.CriticP10[r] = f(r, shaders.StatsCriticMean), f(r, shaders.StatsCriticP10)
			m.CriticP50[r], m.CriticP90[r] = f(r, shaders.StatsCriticP50), f(r, shaders.StatsCriticP90)
			m.CriticN[r] = int(f(r, shaders.StatsCriticCount))
			m.CriticNonFinite[r] = int(f(r, shaders.StatsCriticNonFinite))
		}
	}
	return m
}
