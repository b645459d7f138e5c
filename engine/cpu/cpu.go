// Package cpu is remask's reference backend: the whole forward pass of every
// model kind of sampler-spec.md §1.9 (language model with its LM, critic and
// sampler heads; judge; token classifier) in plain Go, float32 storage and
// float64 where it matters (LayerNorm statistics, softmax sums).
//
// It is written to be read first: one function per layer (layers.go), shape
// comments on every buffer, activations preallocated per (B, T) and reused.
// It is also the numerical spec the WebGPU backend is tested against, and the
// fallback where no GPU exists, so the matrix products (matmul.go) are
// cache- and register-blocked and spread over the machine's cores.
//
// It is not safe for concurrent use per Net (engine.Net's contract): one
// Net owns one set of activation buffers.
package cpu

import (
	"context"
	"fmt"
	"runtime"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
)

// Backend is the CPU backend. The zero value is not usable; call New.
type Backend struct {
	threads int
}

// New returns a CPU backend that uses up to threads goroutines per
// operation; threads <= 0 means runtime.NumCPU().
func New(threads int) *Backend {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	return &Backend{threads: threads}
}

// Name implements engine.Backend.
func (be *Backend) Name() string { return "cpu" }

// Threads is the number of goroutines one operation may use.
func (be *Backend) Threads() int { return be.threads }

// Load validates m (configuration, vocabulary, tensor names and shapes) and
// returns a Net that computes with m's tensors in place (no copy).
func (be *Backend) Load(ctx context.Context, m *model.Model) (engine.Net, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cpu: load: %w", err)
	}
	return be.load(m)
}

func (be *Backend) load(m *model.Model) (*Net, error) {
	if m == nil {
		return nil, fmt.Errorf("cpu: load: model is nil")
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("cpu: load %s: %w", m.Name(), err)
	}
	cfg := &m.Config
	n := &Net{
		m:       m,
		threads: be.threads,
		C:       cfg.NEmbd,
		H:       cfg.NHead,
		V:       cfg.VocabSize,
		eps:     cfg.LayerNormEps,
		causal:  cfg.Attention == model.Causal,
		clsID:   -1,
	}
	n.wte = m.T("transformer.wte.weight").Data
	switch cfg.PositionEncoding {
	case model.Absolute:
		n.wpe = m.T("transformer.wpe.weight").Data
	case model.Rotary:
		n.rope = newRopeTables(cfg.HeadSize(), cfg.RopeBase)
	}
	if cfg.CLSTokenID != nil {
		n.cls = m.T("cls_embedding").Data
		n.clsID = int32(*cfg.CLSTokenID)
	}
	// bias returns the named bias, or nil for models without biases.
	bias := func(name string) []float32 {
		if !cfg.Bias {
			return nil
		}
		return m.T(name).Data
	}
	for i := 0; i < cfg.NLayer; i++ {
		p := fmt.Sprintf("transformer.h.%d.", i)
		n.layers = append(n.layers, block{
			ln1W:      m.T(p + "ln_1.weight").Data,
			ln1B:      bias(p + "ln_1.bias"),
			attnW:     m.T(p + "attn.c_attn.weight").Data,
			attnB:     bias(p + "attn.c_attn.bias"),
			attnProjW: m.T(p + "attn.c_proj.weight").Data,
			attnProjB: bias(p + "attn.c_proj.bias"),
			ln2W:      m.T(p + "ln_2.weight").Data,
			ln2B:      bias(p + "ln_2.bias"),
			fcW:       m.T(p + "mlp.c_fc.weight").Data,
			fcB:       bias(p + "mlp.c_fc.bias"),
			fcProjW:   m.T(p + "mlp.c_proj.weight").Data,
			fcProjB:   bias(p + "mlp.c_proj.bias"),
		})
	}
	n.lnfW = m.T("transformer.ln_f.weight").Data
	n.lnfB = bias("transformer.ln_f.bias")
	switch cfg.Kind {
	case model.LanguageModel:
		n.head = n.wte // lm_head is tied to wte
		n.headN = cfg.VocabSize
		if cfg.HasCritic() {
			n.critic = m.T("critic_head.weight").Data
		}
		if cfg.HasSampler() {
			n.sampler = &samplerHead{
				w0:  m.T("sampler_head.mlp.0.weight").Data,
				b0:  bias("sampler_head.mlp.0.bias"),
				ln1: m.T("sampler_head.mlp.2.weight").Data,
				lb1: bias("sampler_head.mlp.2.bias"),
				w3:  m.T("sampler_head.mlp.3.weight").Data,
				b3:  bias("sampler_head.mlp.3.bias"),
				ln2: m.T("sampler_head.mlp.5.weight").Data,
				lb2: bias("sampler_head.mlp.5.bias"),
				out: m.T("sampler_head.output_head.weight").Data,
			}
		}
	case model.TokenClassifier:
		n.head = m.T("lm_head.weight").Data
		n.headN = cfg.NumTokenClasses
	case model.SequenceScorer:
		n.judge = &judgeHead{
			w: m.T("sequence_head.base_predictor.weight").Data,
			A: float64(m.T("sequence_head.A").Data[0]),
			B: float64(m.T("sequence_head.B").Data[0]),
		}
	}
	return n, nil
}

// block holds one transformer block's weights (views of the model's
// tensors). Biases are nil for models without bias.
type block struct {
	ln1W, ln1B           []float32 // (C)
	attnW, attnB         []float32 // (3C, C), (3C)
	attnProjW, attnProjB []float32 // (C, C), (C)
	ln2W, ln2B           []float32 // (C)
	fcW, fcB             []float32 // (4C, C), (4C)
	fcProjW, fcProjB     []float32 // (C, 4C), (C)
}

// samplerHead holds the sampler head's weights: mlp.0 Linear(3C, C), SiLU,
// mlp.2 LayerNorm(C), mlp.3 Linear(C, C), SiLU, mlp.5 LayerNorm(C),
// output_head Linear(C, V) without bias.
type samplerHead struct {
	w0, b0   []float32 // (C, 3C), (C)
	ln1, lb1 []float32 // (C)
	w3, b3   []float32 // (C, C), (C)
	ln2, lb2 []float32 // (C)
	out      []float32 // (V, C)
}

// judgeHead is the judge's ScaledSigmoidHead: sigmoid(A·(w·h[b,0]) + B).
type judgeHead struct {
	w    []float32 // (C)
	A, B float64
}

// Net is one model loaded on the CPU backend. It implements engine.Net.
type Net struct {
	m       *model.Model
	threads int
	C, H, V int
	eps     float64
	causal  bool

	wte   []float32   // (V, C)
	wpe   []float32   // (block_size, C), nil unless absolute positions
	rope  *ropeTables // nil unless rotary positions
	cls   []float32   // (C), nil unless the model has cls_embedding
	clsID int32       // -1 when cls is nil

	layers     []block
	lnfW, lnfB []float32 // (C)

	head    []float32    // lm_head (headN, C): wte for a language model, nil for a judge
	headN   int          // V or K
	critic  []float32    // (C), nil without a critic head
	sampler *samplerHead // nil without a sampler head
	judge   *judgeHead   // nil unless a judge

	act activations
	// gen counts Encode calls; a Hidden is valid while its gen is current.
	gen uint64
	// samplerBuf is reused scratch of SamplerLogits.
	samplerBuf []float32
}

// activations are the trunk's buffers for one (B, T), reused across
// Encode calls and reallocated only when B·T grows.
type activations struct {
	capBT, capT int
	x           []float32     // (B, T, C) residual stream
	ln          []float32     // (B, T, C) LayerNorm output
	qkv         []float32     // (B, T, 3C) c_attn output: q, k, v
	vt          []float32     // (B, H, d, T) v transposed per head
	atty        []float32     // (B, T, C) attention output, heads concatenated
	proj        []float32     // (B, T, C) c_proj output of the attention or the MLP
	fch         []float32     // (B, T, 4C) c_fc output, GELU in place
	h           []float32     // (B, T, C) ln_f output: the Hidden
	scratch     []attnScratch // one per worker: (attnRows, T)
}

// ensure sizes the buffers for B·T positions of at most T columns.
func (a *activations) ensure(B, T, C, workers int) {
	if B*T > a.capBT {
		BT := B * T
		a.capBT = BT
		a.x = make([]float32, BT*C)
		a.ln = make([]float32, BT*C)
		a.qkv = make([]float32, BT*3*C)
		a.vt = make([]float32, BT*C)
		a.atty = make([]float32, BT*C)
		a.proj = make([]float32, BT*C)
		a.fch = make([]float32, BT*4*C)
		a.h = make([]float32, BT*C)
	}
	if T > a.capT || len(a.scratch) != workers {
		a.capT = max(a.capT, T)
		a.scratch = make([]attnScratch, workers)
		for i := range a.scratch {
			a.scratch[i].att = make([]float32, attnRows*a.capT)
		}
	}
}

// hidden is the CPU backend's engine.Hidden: a view of Net.act.h.
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

// Model implements engine.Net.
func (n *Net) Model() *model.Model { return n.m }

// Encode implements engine.Net: the trunk h = ln_f(blocks(embed(tokens)))
// (sampler-spec §1.2-1.4). tokens is row-major (B, T), every id in
// [0, vocab_size), T <= block_size. It checks ctx between layers.
func (n *Net) Encode(ctx context.Context, tokens []int32, B, T int) (engine.Hidden, error) {
	if err := engine.CheckTokens("cpu", n.m, tokens, B, T); err != nil {
		return nil, err
	}
	if err := engine.CheckCtx(ctx, "cpu", "encode"); err != nil {
		return nil, err
	}
	n.gen++ // from here on the buffers change: older Hidden handles are stale
	C, BT := n.C, B*T
	workers := n.workers()
	a := &n.act
	a.ensure(B, T, C, workers)
	x := a.x[:BT*C]

	embed(x, tokens, T, C, n.wte, n.wpe, n.cls, n.clsID)
	for l := range n.layers {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cpu: encode: stopped before layer %d of %d: %w", l, len(n.layers), err)
		}
		n.forwardBlock(&n.layers[l], B, T)
	}
	layerNorm(a.h[:BT*C], x, n.lnfW, n.lnfB, BT, C, n.eps)
	return &hidden{net: n, gen: n.gen, B: B, T: T}, nil
}

// forwardBlock runs one pre-LN transformer block on the residual stream:
// x += attn(ln_1(x)); x += mlp(ln_2(x)) (sampler-spec §1.3).
func (n *Net) forwardBlock(w *block, B, T int) {
	C, H, BT := n.C, n.H, B*T
	workers := n.workers()
	a := &n.act
	x := a.x[:BT*C]       // (B, T, C)
	ln := a.ln[:BT*C]     // (B, T, C)
	qkv := a.qkv[:BT*3*C] // (B, T, 3C)
	atty := a.atty[:BT*C] // (B, T, C)
	proj := a.proj[:BT*C] // (B, T, C)
	fch := a.fch[:BT*4*C] // (B, T, 4C)

	// attention: x += c_proj(attention(c_attn(ln_1(x))))
	layerNorm(ln, x, w.ln1W, w.ln1B, BT, C, n.eps)
	linear(qkv, ln, w.attnW, w.attnB, BT, 3*C, C).run(workers)
	if n.rope != nil {
		n.rope.ropeQK(qkv, B, T, C, H)
	}
	attention(atty, qkv, a.vt, B, T, C, H, n.causal, a.scratch[:workers])
	linear(proj, atty, w.attnProjW, w.attnProjB, BT, C, C).run(workers)
	residual(x, proj)

	// MLP: x += c_proj(gelu(c_fc(ln_2(x))))
	layerNorm(ln, x, w.ln2W, w.ln2B, BT, C, n.eps)
	linear(fch, ln, w.fcW, w.fcB, BT, 4*C, C).run(workers)
	gelu(fch, workers)
	linear(proj, fch, w.fcProjW, w.fcProjB, BT, C, 4*C).run(workers)
	residual(x, proj)
}

func (n *Net) workers() int { return max(1, n.threads) }

// checkHidden returns the CPU hidden state behind h, or an error if h does
// not come from the latest Encode of this Net.
func (n *Net) checkHidden(op string, h engine.Hidden) (*hidden, error) {
	return engine.CheckHidden[*hidden]("cpu", op, h, n, n.gen)
}
