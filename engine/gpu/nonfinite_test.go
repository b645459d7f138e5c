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
// the device loop too (issue 11, defect 13), as the host loop finds it per
// value. With quality metric node the device loop finds it in the final
// rows' critic statistics; with metric none or judge (no statistics),
// select.wgsl finds the non-finite remasking scores (ERR[ErrScore]) and
// the loop names the first sample and position.
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
	for _, c := range []struct {
		remask, metric, schedule string
		device                   string // what the device loop's error must also say
	}{
		{sampler.RemaskSelf, sampler.MetricNode, sampler.ScheduleRatio, "critic head gave non-finite values in sample 0"},
		{sampler.RemaskCritic, sampler.MetricNone, sampler.ScheduleRatio, "critic head gave a non-finite remasking score at sample 0, position "},
		{sampler.RemaskCritic, sampler.MetricNone, sampler.ScheduleThreshold, "critic head gave a non-finite remasking score at sample 0, position "},
		{sampler.RemaskCalibrated, sampler.MetricNone, sampler.ScheduleRatio, "critic head gave a non-finite remasking score at sample 0, position "},
	} {
		for _, host := range []bool{false, true} {
			o := sampler.Defaults()
			o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 2, 16, 3, 1
			o.Remasking, o.QualityMetric, o.ScheduleMode, o.DisableSampler, o.HostLoop = c.remask, c.metric, c.schedule, true, host
			res, err := sampler.Generate(context.Background(), sampler.Models{LM: net}, o, nil)
			t.Logf("remasking %s, metric %s, schedule %s, host loop %v: %v", c.remask, c.metric, c.schedule, host, err)
			want := c.device
			if host {
				want = "critic head gave NaN at sample 0, position "
			}
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "probably damaged") {
				loop := ""
				if res != nil {
					loop = res.Loop
				}
				t.Errorf("remasking %s, metric %s, schedule %s, host loop %v (%s): err = %v, want the critic error (%q)", c.remask, c.metric, c.schedule, host, loop, err, want)
			}
		}
	}
}
