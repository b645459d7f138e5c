package sampler

import (
	"context"
	"fmt"
	"math"

	"github.com/remask/remask/engine"
)

// Every head's output is checked on the host before the sampler uses it: a
// NaN (or an infinity where none is meaningful) means damaged weights, and
// ranking, sorting or drawing on it would give silent nonsense (an all-Inf
// critic head ran critic remasking on NaN scores). The error names the
// model, the head, the sample and the position, like the error for LM
// logits that leave no finite probability.

// finiteNet wraps a Net and checks what its heads return.
type finiteNet struct {
	engine.Net
}

// guardFinite wraps the generation's nets. On the device loop (device)
// the language model and the remasking model stay as they are: the loop
// runs them itself and needs the backend's own Nets; the judge still runs
// on the host.
func (g *generation) guardFinite(device bool) {
	if g.judge != nil {
		g.judge = finiteNet{g.judge}
	}
	if device {
		return
	}
	if g.lm != nil {
		g.lm = finiteNet{g.lm}
	}
	if g.remaskr != nil {
		g.remaskr = finiteNet{g.remaskr}
	}
}

// badValue returns the index of the first NaN or infinity in x (-Inf
// allowed when negInf), or -1.
func badValue(x []float32, negInf bool) int {
	for i, v := range x {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 1) || !negInf && math.IsInf(f, -1) {
			return i
		}
	}
	return -1
}

func (n finiteNet) fail(head string, v float32, b, t int) error {
	return fmt.Errorf("%s: the %s gave %v at sample %d, position %d: the model file is probably damaged (NaN or infinite weights); convert the checkpoint again", n.Model().Name(), head, v, b, t)
}

// Logits allows -Inf (a token ruled out); NaN and +Inf are errors.
func (n finiteNet) Logits(ctx context.Context, h engine.Hidden, dst []float32) error {
	if err := n.Net.Logits(ctx, h, dst); err != nil {
		return err
	}
	_, T := h.Dims()
	W := n.Model().Config.OutputSize()
	if W == 0 || T == 0 {
		return nil
	}
	if i := badValue(dst, true); i >= 0 {
		head := "LM head"
		if n.Model().Config.NumTokenClasses > 0 {
			head = "classifier head"
		}
		p := i / W
		return n.fail(head, dst[i], p/T, p%T)
	}
	return nil
}

// CriticLogits: every critic logit must be finite.
func (n finiteNet) CriticLogits(ctx context.Context, h engine.Hidden, dst []float32) error {
	if err := n.Net.CriticLogits(ctx, h, dst); err != nil {
		return err
	}
	_, T := h.Dims()
	if i := badValue(dst, false); i >= 0 && T > 0 {
		return n.fail("critic head", dst[i], i/T, i%T)
	}
	return nil
}

// SamplerLogits allows -Inf like the LM head.
func (n finiteNet) SamplerLogits(ctx context.Context, h engine.Hidden, pos, left, right []int32, dst []float32) error {
	if err := n.Net.SamplerLogits(ctx, h, pos, left, right, dst); err != nil {
		return err
	}
	_, T := h.Dims()
	V := n.Model().Config.VocabSize
	if i := badValue(dst, true); i >= 0 && T > 0 && i/V < len(pos) {
		p := int(pos[i/V])
		return n.fail("sampler head", dst[i], p/T, p%T)
	}
	return nil
}

// JudgeEval: every evaluation must be finite.
func (n finiteNet) JudgeEval(ctx context.Context, h engine.Hidden, dst []float32) error {
	if err := n.Net.JudgeEval(ctx, h, dst); err != nil {
		return err
	}
	if i := badValue(dst, false); i >= 0 {
		return n.fail("judge head", dst[i], i, 0)
	}
	return nil
}
