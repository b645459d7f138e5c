package sampler

import (
	"context"
	"math"
	"strings"
	"testing"
)

// A model whose logits are all NaN must stop generation with an error that
// names the position, never write an invalid id into the sequence.
func TestNaNLogitsAreAnError(t *testing.T) {
	m := tinyLM(false, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 {
		l := make([]float32, V)
		for i := range l {
			l[i] = float32(math.NaN())
		}
		return l
	}}
	for _, method := range []string{Diffusion, Multinomial} {
		o := Defaults()
		o.Method, o.NumSamples, o.SequenceLength, o.Iterations = method, 1, 8, 2
		_, err := Generate(context.Background(), Models{LM: f}, o, nil)
		if err == nil || !strings.Contains(err.Error(), "no finite probability") || !strings.Contains(err.Error(), "position") {
			t.Errorf("%s: err = %v, want an error naming the position", method, err)
		}
	}
}
