package gpu

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/internal/step"
	"github.com/remask/remask/shaders"
)

// The unmask method on the device loop (docs/sampling.md "Method unmask"):
// each iteration is one submission of the trunk, the LM head, sample.wgsl's
// fill (a draw at every [MASK] position), certain.wgsl (the certainty and
// the ordering key of every [MASK] position) and unmask.wgsl (per row: the
// block, Prophet's test, the schedule's top k with the threshold union, the
// next input and the row's state), then one read of the counters (the rows
// still masked and each row's steps, as threshold mode's early-stop read)
// and, when asked, the prediction and the next input. The schedule is a
// table the host computed (engine.UnmaskSpec.Left), so the device does no
// float schedule arithmetic. engine/sampler's unmask loop is the CPU twin.

var (
	certainKinds = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW}
	unmaskKinds  = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW, bindRW, bindRW, bindRW}
)

// checkUnmask refuses an unmask plan this device cannot run.
func checkUnmask(s *engine.LoopSpec) error {
	u := s.Unmask
	switch {
	case s.Multinomial || s.UseSampler:
		return fmt.Errorf("gpu: loop: the unmask method draws from the LM head only (multinomial %v, sampler head %v)", s.Multinomial, s.UseSampler)
	case u.Ordering < 0 || int(u.Ordering) >= len(step.OrderingNames()):
		return fmt.Errorf("gpu: loop: unknown ordering %v", u.Ordering)
	case u.Blocks < 1 || u.Blocks > s.Iterations || u.BlockLength < 1 || u.Blocks != step.Blocks(s.T, u.BlockLength):
		return fmt.Errorf("gpu: loop: %d blocks of %d positions for %d iterations", u.Blocks, u.BlockLength, s.Iterations)
	case len(u.Left) != s.B*s.T:
		return fmt.Errorf("gpu: loop: an unmask schedule of %d entries for %d rows x %d positions", len(u.Left), s.B, s.T)
	case !(u.OrderTemperature >= 0) || math.IsInf(u.OrderTemperature, 1) || !(u.ConfidenceThreshold >= 0) || !(u.EarlyCommitGap >= 0):
		return fmt.Errorf("gpu: loop: order temperature %v, confidence threshold %v, early commit gap %v", u.OrderTemperature, u.ConfidenceThreshold, u.EarlyCommitGap)
	}
	for _, v := range u.Left {
		if v < 0 || v > s.T {
			return fmt.Errorf("gpu: loop: an unmask schedule entry of %d for rows of %d positions", v, s.T)
		}
	}
	return nil
}

// allocUnmask makes the unmask method's buffers and uploads its schedule
// and the rows' initial state (block 0, step 0, no steps).
func (l *Loop) allocUnmask(al *allocator) {
	N, B := uint64(l.N), uint64(l.B)
	l.ucert = al.words("loop unmask certainty (3·B·T)", shaders.CertainWords*N)
	l.uleft = al.words("loop unmask schedule (B·T)", N)
	l.ustate = al.words("loop unmask row state (4·B)", shaders.UnmaskStateWords*B)
}

// uploadUnmask writes the unmask schedule and the zero row state.
func (l *Loop) uploadUnmask() error {
	left := make([]uint32, len(l.s.Unmask.Left))
	for i, v := range l.s.Unmask.Left {
		left[i] = uint32(v)
	}
	if err := l.n.d.p.write(l.uleft, 0, u32Bytes(left)); err != nil {
		return err
	}
	return l.n.d.p.write(l.ustate, 0, make([]byte, 4*shaders.UnmaskStateWords*l.B))
}

// certainOp is certain.wgsl over the n = B·T positions of tok (the [MASK]
// ones) with the logits (n, V): cert (n, 3) gets key, P1 and P1 - P2.
func (d *device) certainOp(n, V, T, it int, temperature, topP float64, seed uint64, mask uint32, ordering step.Ordering, orderTemp float64,
	logits, tok, excl, cert binding) (op, error) {
	if V < 1 || V > sampleMaxV {
		return op{}, fmt.Errorf("gpu: certainty: vocabulary size %d is not supported (1 to %d)", V, sampleMaxV)
	}
	pl, err := d.pipeline("certain.wgsl", map[string]string{"WG": sampleWG(V)}, certainKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.CertainParams{V: uint32(V), N: uint32(n), T: uint32(T), Iteration: uint32(it),
		Temperature: float32(temperature), TopP: float32(topP), SeedLo: uint32(seed), SeedHi: uint32(seed >> 32),
		Mask: mask, Ordering: uint32(ordering), OrderTemp: float32(orderTemp)}
	return op{name: "unmask certainty", pl: pl, params: shaders.Bytes(p), binds: []binding{logits, tok, excl, cert}, wg: d.grid(uint64(n))}, nil
}

// unmaskParams is unmask.wgsl's uniform for B rows of T positions.
func unmaskParams(B, T int, mask uint32, u *engine.UnmaskSpec) shaders.UnmaskParams {
	L := u.BlockLength
	if u.Blocks == 1 {
		L = T
	}
	return shaders.UnmaskParams{T: uint32(T), B: uint32(B), Mask: mask, Blocks: uint32(u.Blocks), BlockLen: uint32(L),
		Tau: float32(u.ConfidenceThreshold), Gap: float32(u.EarlyCommitGap)}
}

// unmaskOp is unmask.wgsl: one step of every row.
func (d *device) unmaskOp(p shaders.UnmaskParams, pred, cert, left, keys, tok, state, cnt binding) (op, error) {
	pl, err := d.pipeline("unmask.wgsl", nil, unmaskKinds)
	return op{name: "unmask commit", pl: pl, params: shaders.Bytes(p),
		binds: []binding{pred, cert, left, keys, tok, state, cnt}, wg: d.grid(uint64(p.B))}, err
}

// unmaskStep is Step for the unmask method: one submission, one read.
func (l *Loop) unmaskStep(ctx context.Context, it int, want bool) (*engine.LoopStep, error) {
	s := &l.s
	n, d := l.n, l.n.d
	st := &engine.LoopStep{MinWrongness: math.NaN()}
	submits0 := d.submits
	init := make([]uint32, cntWords+l.B)
	if err := d.p.write(l.cnt, 0, u32Bytes(init)); err != nil {
		return nil, err
	}
	o := &ops{stage: "forward"}
	l.trunk(o, n, l.tok, true, false)
	o.stage = "sampling"
	a := &n.act
	o.add(l.draw(it, loopDraw{mode: shaders.SampleFill, keep: shaders.KeepUnmasked,
		logits: whole(a.out), pos: whole(l.tok), excl: whole(l.exclN), out: whole(l.pred)}))
	o.stage = "unmask select"
	o.add(d.certainOp(l.N, n.V, l.T, it, s.Temperature, s.TopP, s.Seed, uint32(s.Mask), s.Unmask.Ordering, s.Unmask.OrderTemperature,
		whole(a.out), whole(l.tok), whole(l.exclN), whole(l.ucert)))
	o.add(d.unmaskOp(unmaskParams(l.B, l.T, uint32(s.Mask), s.Unmask),
		whole(l.pred), whole(l.ucert), whole(l.uleft), whole(l.keys), whole(l.tok), whole(l.ustate), whole(l.cnt)))
	o.stage = ""
	at := stepRead(l.B, l.N, true, want, false, false)
	N4 := 4 * uint64(l.N)
	o.copyAt(l.cnt, 0, l.staging, at.counters, 4*uint64(cntWords+l.B))
	o.copyAt(l.errWord, 0, l.staging, at.errWord, errBytes)
	if want {
		o.copyAt(l.pred, 0, l.staging, at.pred, N4)
		o.copyAt(l.tok, 0, l.staging, at.tokens, N4)
	}
	st.Dispatches += dispatches(o)
	if err := l.submit(ctx, o); err != nil {
		return nil, err
	}
	st.Submits = d.submits - submits0
	buf, err := l.read(ctx, at.size)
	if err != nil {
		return nil, err
	}
	st.ReadBytes += int(at.size)
	if err := l.checkErr(buf[at.errWord:], it); err != nil {
		return nil, err
	}
	word := func(off uint64, i int) uint32 { return binary.LittleEndian.Uint32(buf[off+4*uint64(i):]) }
	st.Steps = make([]int, l.B)
	for b := range st.Steps {
		st.Steps[b] = int(word(at.counters, shaders.CountRows+b))
	}
	st.EarlyStop = word(at.counters, shaders.CountTotal) == 0
	if want {
		st.Pred = make([]int32, l.N)
		st.Selected = make([]bool, l.N)
		for i := range st.Pred {
			st.Pred[i] = int32(word(at.pred, i))
			st.Selected[i] = int32(word(at.tokens, i)) == s.Mask && st.Pred[i] != s.Mask
		}
	}
	return st, nil
}
