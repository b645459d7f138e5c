package gpu

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
)

// TestDeviceLoopNaNCritic: a critic head with NaN weights is an error on
// the device loop too (issue 11, defect 13), found through the critic
// statistics of the final rows, as the host loop finds it per value.
func TestDeviceLoopNaNCritic(t *testing.T) {
	be := testBackend(t)
	m, err := model.Load(filepath.Join("..", "..", "testdata", "golden", "lm_rope_bidir_bias.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	w := m.Tensors["critic_head.weight"].Data
	for i := range w {
		w[i] = float32(math.NaN())
	}
	net, err := be.Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []bool{false, true} {
		o := sampler.Defaults()
		o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 2, 16, 3, 1
		o.Remasking, o.QualityMetric, o.DisableSampler, o.HostLoop = sampler.RemaskSelf, sampler.MetricNode, true, host
		res, err := sampler.Generate(context.Background(), sampler.Models{LM: net}, o, nil)
		if err == nil || !strings.Contains(err.Error(), "critic head gave") || !strings.Contains(err.Error(), "probably damaged") {
			loop := ""
			if res != nil {
				loop = res.Loop
			}
			t.Errorf("host loop %v (%s): err = %v, want the critic error", host, loop, err)
		}
	}
}
