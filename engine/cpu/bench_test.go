package cpu

import (
	"context"
	"fmt"
	"testing"

	"github.com/remask/remask/engine/model"
)

// standardConfig is the shape of the shipped char-level models.
func standardConfig() model.Config { return model.Standard() }

// BenchmarkForward measures one trunk pass plus the LM head (Encode +
// Logits) of the standard model with random weights.
func BenchmarkForward(b *testing.B) {
	cfg := standardConfig()
	m := randomModel(b, cfg, 1)
	for _, s := range []struct{ B, T int }{{1, 256}, {1, 1024}} {
		b.Run(fmt.Sprintf("B%dxT%d", s.B, s.T), func(b *testing.B) {
			net := mustLoad(b, m, 0)
			tokens := randomTokens(s.B, s.T, cfg.VocabSize, 1)
			logits := make([]float32, s.B*s.T*cfg.VocabSize)
			ctx := context.Background()
			cpu0 := processCPUTime()
			for b.Loop() {
				h, err := net.Encode(ctx, tokens, s.B, s.T)
				if err != nil {
					b.Fatal(err)
				}
				if err := net.Logits(ctx, h, logits); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(s.B*s.T)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			// CPU time of all threads per forward: with no competing load and
			// perfect scaling, ns/op = cpu-ms/op / threads.
			if cpu := processCPUTime() - cpu0; cpu > 0 {
				b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/op")
			}
		})
	}
}
