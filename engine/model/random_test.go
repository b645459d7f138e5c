package model

import "testing"

// Standard is the shipped models' shape: the random model of it has their
// parameter count (docs/models.md: 11,264,256), and a seed fixes the weights.
func TestRandomStandard(t *testing.T) {
	a, err := Random(Standard(), 1, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, tn := range a.Tensors {
		if name != "lm_head.weight" { // tied to wte
			n += tn.Numel()
		}
	}
	if n != 11264256 {
		t.Errorf("standard model has %d parameters, want 11,264,256", n)
	}
	b, _ := Random(Standard(), 1, 0.02)
	c, _ := Random(Standard(), 2, 0.02)
	w := "transformer.h.3.mlp.c_fc.weight"
	if a.T(w).Data[7] != b.T(w).Data[7] || a.T(w).Data[7] == c.T(w).Data[7] {
		t.Error("the seed does not fix the weights")
	}
	if _, err := Random(Config{Kind: SequenceScorer, VocabSize: 67}, 1, 0.02); err == nil {
		t.Error("a judge config was accepted")
	}
}
