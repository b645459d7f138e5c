// Package gpu is remask's WebGPU backend: the transformer forward pass of
// every model kind (sampler-spec.md §1.9) as WGSL compute kernels
// (shaders/), run natively through wgpu-native (github.com/cogentcore/webgpu,
// cgo) or in the browser (GOOS=js, syscall/js). engine/cpu is its numerical
// spec: every kernel has a CPU twin and is tested against it.
//
// Weights are uploaded once at Load (matrices of F16/BF16 model files stay
// half precision, two values per u32 word). Activations are allocated once
// per (B·T) capacity and reused. Encode records the whole trunk into one
// command buffer and submits it once, reading nothing back; the head methods
// record their kernels plus one copy, submit, and read only their output.
//
// platform.go describes the one thin layer that differs between native and
// browser builds. A Net is not safe for concurrent use (engine.Net), nor
// are two Nets of one Backend (see Backend).
package gpu

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/shaders"
)

// Backend is the WebGPU backend: one device. Close it when done.
//
// The Nets (and Loops) loaded on one Backend share its device: the pipeline
// cache, the submission count, the queue. Use them from one goroutine at a
// time, not only each Net on its own (engine.Net's rule): engine/api runs
// one job at a time on the device (its queue), the CLI and the browser one
// generation. Nothing here locks; two goroutines on two Nets of one Backend
// are a data race.
type Backend struct {
	d *device
}

// New opens the best WebGPU adapter (native: Vulkan first) and a device
// with the limits remask needs. It returns an error wrapping ErrNoAdapter
// when there is none.
func New(ctx context.Context, opts Options) (*Backend, error) {
	d, err := openDevice(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &Backend{d: d}, nil
}

// Name implements engine.Backend. With Options.Precision "f16" it says so
// ("webgpu: NAME (vulkan, f16)"), so every header and API answer that
// names the backend names the precision; f32, the default, adds nothing.
func (be *Backend) Name() string {
	ai := be.d.p.info()
	how := ai.Backend
	if be.d.caps.defaults {
		how += ", default limits" // Options.Limits "default"
	}
	if be.d.caps.subgroups {
		how += ", subgroups"
	}
	if be.d.f16 {
		how += ", f16" // Options.Precision "f16"
	}
	return fmt.Sprintf("webgpu: %s (%s)", ai.Name, how)
}

// F16LogitBound bounds |logit - the CPU backend's logit| of a forward in
// precision f16, where engine/gpu's TestPrecisionF16 and remask bench's
// validation hold it: the f16 roundings (2^-11 relative) of the inputs of
// 4·n_layer matmuls, O(1) LayerNorm outputs, carried through an O(1)
// residual stream to the LM head; a NaN or a wrong kernel is orders of
// magnitude off. Measured with the f16 arithmetic emulated in f32 on
// lavapipe (TestF16Emulated, golden lm_rope_bidir_bias at 2 x 32): 0.010
// to 0.016; with real f16 on an H200 through Dawn (TestPrecisionF16) 0.0146
// (docs/gpu.md, "Precision").
const F16LogitBound = 0.05

// Precision is the arithmetic of the trunk's matmuls: "f16" with
// Options.Precision "f16", else "f32" ("auto" is f32: see Options).
func (be *Backend) Precision() string {
	if be.d.f16 {
		return "f16"
	}
	return "f32"
}

// Info describes the adapter.
func (be *Backend) Info() AdapterInfo { return be.d.p.info() }

// Limits are the device's limits.
func (be *Backend) Limits() Limits { return be.d.p.limits() }

// Close releases the device. Nets loaded on it must not be used after.
func (be *Backend) Close() { be.d.close() }

// Load implements engine.Backend: it validates m and uploads its weights,
// checking ctx between tensors.
func (be *Backend) Load(ctx context.Context, m *model.Model) (engine.Net, error) {
	return be.load(ctx, m)
}

type gpuBlock struct {
	ln1W, ln1B, ln2W, ln2B *buffer
	attnW, attnProjW       wbuf
	fcW, fcProjW           wbuf
	attnB, attnProjB       *buffer
	fcB, fcProjB           *buffer
}

type gpuSampler struct {
	w0, w3, out wbuf
	b0, b3      *buffer
	ln1, lb1    *buffer
	ln2, lb2    *buffer
}

// Net is one model loaded on the WebGPU backend. It implements engine.Net.
type Net struct {
	be *Backend
	// spare is the last closed loop, its buffers kept for the next loop of
	// the same shape (loopreuse.go); spareMu guards it.
	spare   *Loop
	spareMu sync.Mutex
	d       *device
	m       *model.Model
	C, H    int
	V       int
	headN   int
	eps     float64
	causal  bool
	clsID   int32

	wte      wbuf
	wpe, cls *buffer
	cos, sin *buffer
	layers   []gpuBlock
	lnfW     *buffer
	lnfB     *buffer
	head     *wbuf
	critic   *buffer
	sampler  *gpuSampler
	judgeW   *buffer
	judgeA   float64
	judgeB   float64
	weights  []*buffer

	act     acts
	trunk   *program
	heads   *program
	staging *buffer

	gen        uint64
	dispatches int            // of the latest Encode
	submits    int            // of the latest Encode
	stabs      *samplerTables // the sampler head split for the device loop (loop.go)
}

// acts are the activation buffers for up to capBT positions.
type acts struct {
	capBT                     int
	tokens                    *buffer // (B, T) u32
	x, ln, qkv, atty, fch, h  *buffer // (B, T, C|3C|4C)
	out                       *buffer // head output (B, T, headN)
	split                     *buffer // scratch of the split kernels (kernels.go attentionOps, matmulOps); nil: no split
	capN                      int     // sampler rows
	sidx, sin, sza, szb, sout *buffer
}

func (n *Net) upload(what string, data []float32) (*buffer, error) {
	b, err := n.d.storage(what, uint64(4*len(data)))
	if err != nil {
		return nil, err
	}
	n.weights = append(n.weights, b)
	return b, n.d.p.write(b, 0, f32Bytes(data))
}

// uploadMatrix uploads a weight matrix in the model's dtype: F16 and BF16
// files are packed two halves per u32 (exact: the values came from halves).
func (n *Net) uploadMatrix(what string, data []float32, dtype int) (wbuf, error) {
	if dtype == shaders.WeightF32 {
		b, err := n.upload(what, data)
		return wbuf{b: b, dtype: dtype}, err
	}
	words := (len(data) + 1) / 2
	buf := make([]byte, 4*words)
	for i, v := range data {
		var h uint16
		if dtype == shaders.WeightF16 {
			var ok bool
			h, ok = model.Float32ToFloat16(v)
			if !ok || model.Float16ToFloat32(h) != v && !math.IsNaN(float64(v)) {
				return wbuf{}, fmt.Errorf("gpu: %s: value %g at %d is not a float16 value; the model says F16", what, v, i)
			}
		} else {
			bits := math.Float32bits(v)
			if bits&0xffff != 0 {
				return wbuf{}, fmt.Errorf("gpu: %s: value %g at %d is not a bfloat16 value; the model says BF16", what, v, i)
			}
			h = uint16(bits >> 16)
		}
		binary.LittleEndian.PutUint16(buf[2*i:], h)
	}
	b, err := n.d.storage(what, uint64(len(buf)))
	if err != nil {
		return wbuf{}, err
	}
	n.weights = append(n.weights, b)
	return wbuf{b: b, dtype: dtype}, n.d.p.write(b, 0, buf)
}

// uploadHalf uploads a trunk matrix for the f16 matmuls (Options.Precision
// "f16") as halves: an F16 file's as they are; F32 and BF16 values rounded
// to the nearest half. A value beyond the half range (65504) is refused,
// naming the tensor: such a model cannot run in f16.
func (n *Net) uploadHalf(what string, data []float32, dtype int) (wbuf, error) {
	if dtype == shaders.WeightF16 {
		w, err := n.uploadMatrix(what, data, dtype)
		w.half = true
		return w, err
	}
	r := make([]float32, len(data))
	for i, v := range data {
		h, ok := model.Float32ToFloat16(v)
		if !ok {
			return wbuf{}, fmt.Errorf("gpu: %s: value %g at %d is beyond the float16 range (65504), so the model cannot run in precision f16; use precision f32", what, v, i)
		}
		r[i] = model.Float16ToFloat32(h)
	}
	w, err := n.uploadMatrix(what, r, shaders.WeightF16)
	w.half = true
	return w, err
}

func (be *Backend) load(ctx context.Context, m *model.Model) (*Net, error) {
	if m == nil {
		return nil, fmt.Errorf("gpu: load: model is nil")
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("gpu: load %s: %w", m.Name(), err)
	}
	cfg := &m.Config
	n := &Net{be: be, d: be.d, m: m, C: cfg.NEmbd, H: cfg.NHead, V: cfg.VocabSize, eps: cfg.LayerNormEps,
		causal: cfg.Attention == model.Causal, clsID: -1, headN: cfg.OutputSize()}
	if _, _, err := attnTiles(cfg.HeadSize()); err != nil {
		return nil, fmt.Errorf("gpu: load %s: %w", m.Name(), err)
	}
	if be.d.attnTiled && cfg.HeadSize() != 64 {
		return nil, fmt.Errorf("gpu: load %s: attention \"tiled\" (Options.Attention) needs head size 64, the model's is %d; leave the option empty for this model", m.Name(), cfg.HeadSize())
	}
	if be.d.attnRows && !be.d.noUnrolled {
		if _, err := be.d.rowsTileFor(cfg.HeadSize()); err != nil {
			return nil, fmt.Errorf("gpu: load %s: %w", m.Name(), err)
		}
	}
	dtype := shaders.WeightF32
	switch m.DType {
	case "F16":
		dtype = shaders.WeightF16
	case "BF16":
		dtype = shaders.WeightBF16
	}
	err := n.uploadAll(ctx, dtype)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("gpu: load %s: %w", m.Name(), err)
	}
	n.trunk = newProgram(n.d, "trunk")
	n.heads = newProgram(n.d, "heads")
	return n, nil
}

// uploadAll uploads every tensor. It checks ctx before each one: the
// uploads themselves do not wait on the device (popErrorScope in the
// browser resolves at once, and abandoning it would lose its error).
func (n *Net) uploadAll(ctx context.Context, dtype int) error {
	m, cfg := n.m, &n.m.Config
	err := ctx.Err()
	vec := func(name string) *buffer {
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return nil
		}
		var b *buffer
		b, err = n.upload(name, m.T(name).Data)
		return b
	}
	bias := func(name string) *buffer {
		if !cfg.Bias {
			return nil
		}
		return vec(name)
	}
	mat := func(name string) wbuf {
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return wbuf{}
		}
		var w wbuf
		w, err = n.uploadMatrix(name, m.T(name).Data, dtype)
		return w
	}
	// tmat is mat for the trunk's block matrices: with Options.Precision
	// "f16" they are multiplied in f16 and stored as f16 (uploadHalf).
	tmat := mat
	if n.d.f16 {
		tmat = func(name string) wbuf {
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				return wbuf{}
			}
			var w wbuf
			w, err = n.uploadHalf(name, m.T(name).Data, dtype)
			return w
		}
	}
	n.wte = mat("transformer.wte.weight")
	switch cfg.PositionEncoding {
	case model.Absolute:
		n.wpe = vec("transformer.wpe.weight")
	case model.Rotary:
		cos, sin := ropeTables(cfg.BlockSize, cfg.HeadSize(), cfg.RopeBase)
		if err == nil {
			n.cos, err = n.upload("rope cos", cos)
		}
		if err == nil {
			n.sin, err = n.upload("rope sin", sin)
		}
	}
	if cfg.CLSTokenID != nil {
		n.cls = vec("cls_embedding")
		n.clsID = int32(*cfg.CLSTokenID)
	}
	for i := 0; i < cfg.NLayer; i++ {
		p := fmt.Sprintf("transformer.h.%d.", i)
		n.layers = append(n.layers, gpuBlock{
			ln1W: vec(p + "ln_1.weight"), ln1B: bias(p + "ln_1.bias"),
			attnW: tmat(p + "attn.c_attn.weight"), attnB: bias(p + "attn.c_attn.bias"),
			attnProjW: tmat(p + "attn.c_proj.weight"), attnProjB: bias(p + "attn.c_proj.bias"),
			ln2W: vec(p + "ln_2.weight"), ln2B: bias(p + "ln_2.bias"),
			fcW: tmat(p + "mlp.c_fc.weight"), fcB: bias(p + "mlp.c_fc.bias"),
			fcProjW: tmat(p + "mlp.c_proj.weight"), fcProjB: bias(p + "mlp.c_proj.bias"),
		})
	}
	n.lnfW = vec("transformer.ln_f.weight")
	n.lnfB = bias("transformer.ln_f.bias")
	switch cfg.Kind {
	case model.LanguageModel:
		n.head = &n.wte // tied
		if cfg.HasCritic() {
			n.critic = vec("critic_head.weight")
		}
		if cfg.HasSampler() {
			n.sampler = &gpuSampler{
				w0: mat("sampler_head.mlp.0.weight"), b0: bias("sampler_head.mlp.0.bias"),
				ln1: vec("sampler_head.mlp.2.weight"), lb1: bias("sampler_head.mlp.2.bias"),
				w3: mat("sampler_head.mlp.3.weight"), b3: bias("sampler_head.mlp.3.bias"),
				ln2: vec("sampler_head.mlp.5.weight"), lb2: bias("sampler_head.mlp.5.bias"),
				out: mat("sampler_head.output_head.weight"),
			}
		}
	case model.TokenClassifier:
		w := mat("lm_head.weight")
		n.head = &w
	case model.SequenceScorer:
		n.judgeW = vec("sequence_head.base_predictor.weight")
		n.judgeA = float64(m.T("sequence_head.A").Data[0])
		n.judgeB = float64(m.T("sequence_head.B").Data[0])
	}
	return err
}

// ropeTables computes cos and sin of p / base^(2i/d) for p < T, i < d/2 in
// float64, rounded once to float32: the same numbers as engine/cpu.
func ropeTables(T, d int, base float64) (cos, sin []float32) {
	half := d / 2
	cos = make([]float32, T*half)
	sin = make([]float32, T*half)
	for p := 0; p < T; p++ {
		for i := 0; i < half; i++ {
			angle := float64(p) / math.Pow(base, float64(2*i)/float64(d))
			cos[p*half+i] = float32(math.Cos(angle))
			sin[p*half+i] = float32(math.Sin(angle))
		}
	}
	return cos, sin
}

// Close releases the Net's buffers (a parked loop's included).
func (n *Net) Close() {
	n.dropSpare()
	for _, b := range n.weights {
		b.destroy()
	}
	n.weights = nil
	n.freeActs()
	if n.trunk != nil {
		n.trunk.release()
		n.heads.release()
	}
	n.staging.destroy()
	n.staging = nil
}

func (n *Net) freeActs() {
	a := &n.act
	for _, b := range []*buffer{a.tokens, a.x, a.ln, a.qkv, a.atty, a.fch, a.h, a.out, a.split} {
		b.destroy()
	}
	n.act = acts{capN: a.capN, sidx: a.sidx, sin: a.sin, sza: a.sza, szb: a.szb, sout: a.sout}
}

// Model implements engine.Net.
func (n *Net) Model() *model.Model { return n.m }

// Dispatches is the number of kernel dispatches of the latest Encode.
func (n *Net) Dispatches() int { return n.dispatches }

// Submits is the number of command buffers the latest Encode submitted.
func (n *Net) Submits() int { return n.submits }

// ensure sizes the activations for BT positions.
func (n *Net) ensure(BT int) error {
	if BT <= n.act.capBT {
		return nil
	}
	n.freeActs()
	n.trunk.reset()
	n.heads.reset()
	C := uint64(n.C)
	cap := uint64(BT)
	al := allocator{d: n.d}
	mk := al.words
	a := &n.act
	a.tokens = mk("activation tokens (B·T ids)", cap)
	a.x = mk("activation x (B·T·C floats)", cap*C)
	a.ln = mk("activation ln (B·T·C floats)", cap*C)
	a.qkv = mk("activation qkv (B·T·3C floats)", cap*3*C)
	a.atty = mk("activation atty (B·T·C floats)", cap*C)
	a.fch = mk("activation fch (B·T·4C floats)", cap*4*C)
	a.h = mk("activation h (B·T·C floats)", cap*C)
	if n.headN > 0 {
		a.out = mk("head output (B·T·V floats)", cap*uint64(n.headN))
	} else {
		a.out = mk("judge output (B floats)", cap)
	}
	// The split kernels' scratch (Options.Split), sized for the worst
	// (B, T) of this capacity: a few MiB at most.
	if n.d.splitMM || n.d.splitAttn {
		splitFloats := min(uint64(mmSplitFloats), mmMaxSplits*cap*4*C) // the widest trunk matmul: N = 4C
		if D := n.C / n.H; D%4 == 0 {
			if BR, _, aerr := attnTiles(D); aerr == nil {
				splitFloats = max(splitFloats, uint64(attnSplitRows(BT, n.H, BR))*uint64(n.C+4*n.H))
			}
		}
		a.split = mk("split-kernel scratch", splitFloats)
	}
	if al.err != nil {
		n.freeActs()
		return al.err
	}
	a.capBT = BT
	return nil
}

// hidden is the GPU backend's engine.Hidden: a view of Net.act.h.
type hidden struct {
	net  *Net
	gen  uint64
	B, T int
}

// Dims implements engine.Hidden.
func (h *hidden) Dims() (B, T int) { return h.B, h.T }

// Origin implements engine.Stamped.
func (h *hidden) Origin() (engine.Net, uint64) {
	if h == nil {
		return nil, 0
	}
	return h.net, h.gen
}

// Encode implements engine.Net: the trunk h = ln_f(blocks(embed(tokens))),
// recorded into one command buffer and submitted once; nothing is read back.
func (n *Net) Encode(ctx context.Context, tokens []int32, B, T int) (engine.Hidden, error) {
	if err := engine.CheckTokens("gpu", n.m, tokens, B, T); err != nil {
		return nil, err
	}
	if err := engine.CheckCtx(ctx, "gpu", "encode"); err != nil {
		return nil, err
	}
	n.gen++
	submits := n.d.submits
	BT := B * T
	if err := n.ensure(BT); err != nil {
		return nil, fmt.Errorf("gpu: encode %d x %d: %w", B, T, err)
	}
	ids := make([]byte, 4*BT)
	for i, id := range tokens {
		binary.LittleEndian.PutUint32(ids[4*i:], uint32(id))
	}
	if err := n.d.p.write(n.act.tokens, 0, ids); err != nil {
		return nil, err
	}
	ops, err := n.trunkOps(B, T)
	if err != nil {
		return nil, err
	}
	rec, err := n.d.p.newRecorder()
	if err != nil {
		return nil, err
	}
	if err := n.trunk.record(rec, ops); err != nil {
		n.d.submit(rec)
		return nil, fmt.Errorf("gpu: encode: %w", err)
	}
	if err := n.d.submit(rec); err != nil {
		return nil, fmt.Errorf("gpu: encode: %w", err)
	}
	n.dispatches = len(ops)
	n.submits = n.d.submits - submits
	return &hidden{net: n, gen: n.gen, B: B, T: T}, nil
}

// trunkOps lists the trunk's kernels for (B, T).
func (n *Net) trunkOps(B, T int) ([]op, error) {
	C, H, BT := n.C, n.H, B*T
	a := &n.act
	x, ln, qkv, atty, fch := whole(a.x), whole(a.ln), whole(a.qkv), whole(a.atty), whole(a.fch)
	var o ops // loop.go: collects ops until the first error
	add := o.add
	// addList adds the ops of a kernel that may take two dispatches (a
	// split one and its reduce or combine: kernels.go).
	addList := func(list []op, err error) {
		if err != nil {
			o.add(op{}, err)
			return
		}
		for _, x := range list {
			o.add(x, nil)
		}
	}
	// mm adds a matmul, split over K where Options.Split allows and that
	// pays (kernels.go matmulOps).
	mm := func(name string, M, N, K int, in binding, w wbuf, bias *buffer, out binding, act int, accumulate bool) {
		if o.err == nil {
			addList(n.d.matmulOps(name, M, N, K, in, w, bias, out, act, accumulate, a.split))
		}
	}
	// norm(l) is the LayerNorm that reads x after block l - 1 (l = 0: after
	// the embedding): block l's ln_1, or ln_f after the last block. It runs
	// fused with the kernel before it: embednorm.wgsl after the embedding,
	// addnorm.wgsl after a K-split c_proj (residualNormOps).
	norm := func(l int) lnSpec {
		if l < len(n.layers) {
			return lnSpec{name: fmt.Sprintf("h.%d.ln_1", l), fused: "next ln_1", w: n.layers[l].ln1W, b: n.layers[l].ln1B, y: ln}
		}
		return lnSpec{name: "ln_f", fused: "ln_f", w: n.lnfW, b: n.lnfB, y: whole(a.h)}
	}
	first := norm(0)
	add(n.d.embedNorm("embed + "+first.name, BT, T, C, whole(a.tokens), n.wte, n.wpe, n.cls, n.clsID, first.w, first.b, x, first.y, n.eps))
	for l := range n.layers {
		w := &n.layers[l]
		name := func(s string) string { return fmt.Sprintf("h.%d.%s", l, s) }
		mm(name("attn.c_attn"), BT, 3*C, C, ln, w.attnW, w.attnB, qkv, shaders.ActNone, false)
		var rope *ropeSpec
		if n.cos != nil {
			rope = &ropeSpec{name: name("rope"), cos: n.cos, sin: n.sin}
		}
		if o.err == nil {
			addList(n.d.attentionOps(name("attention"), B, T, C, H, n.causal, qkv, rope, a.split, atty))
		}
		if o.err == nil {
			addList(n.d.residualNormOps(name("attn.c_proj"), BT, C, C, atty, w.attnProjW, w.attnProjB, x,
				lnSpec{name: name("ln_2"), fused: "ln_2", w: w.ln2W, b: w.ln2B, y: ln}, n.eps, a.split))
		}
		mm(name("mlp.c_fc"), BT, 4*C, C, ln, w.fcW, w.fcB, fch, shaders.ActGELU, false)
		if o.err == nil {
			addList(n.d.residualNormOps(name("mlp.c_proj"), BT, C, 4*C, fch, w.fcProjW, w.fcProjB, x, norm(l+1), n.eps, a.split))
		}
	}
	return o.list, o.err
}

// Sync waits until all submitted GPU work has finished (for timing).
func (n *Net) Sync(ctx context.Context) error { return n.d.p.wait(ctx) }

// runHead records ops plus a copy of outBytes bytes of out, submits, and
// reads the result into dst.
func (n *Net) runHead(ctx context.Context, what string, ops []op, out *buffer, dst []float32) error {
	size := uint64(4 * len(dst))
	if size == 0 {
		return nil
	}
	if n.staging == nil || n.staging.size < size {
		n.staging.destroy()
		n.staging = nil
		if err := n.d.checkBuffer("readback of "+what, size); err != nil {
			return err
		}
		s, err := n.d.p.newBuffer("staging", max(size, 1<<16), usageStaging)
		if err != nil {
			return err
		}
		n.staging = s
	}
	rec, err := n.d.p.newRecorder()
	if err != nil {
		return err
	}
	if err := n.heads.record(rec, ops); err != nil {
		n.d.submit(rec)
		return fmt.Errorf("gpu: %s: %w", what, err)
	}
	rec.copy(out, 0, n.staging, 0, size)
	if err := n.d.submit(rec); err != nil {
		return fmt.Errorf("gpu: %s: %w", what, err)
	}
	buf := make([]byte, size)
	if err := n.d.p.read(ctx, n.staging, buf); err != nil {
		// The mapping may still be pending: never reuse the buffer, but
		// destroy it (WebGPU aborts a pending map on destroy, and the device
		// frees the memory once the submitted copy is done).
		n.staging.destroy()
		n.staging = nil
		return fmt.Errorf("gpu: %s: %w", what, err)
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return nil
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
