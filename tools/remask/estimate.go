package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
)

// Before a long job on the CPU backend, `remask sample` says how long it
// will take. The estimate is the job's trunk FLOPs (forwardFLOP, per pass)
// divided by the rate of this machine, measured on one small forward pass.
// The measurement (a fraction of a second) is made only when even a fast
// CPU would need more than estimateMeasureSeconds, so small jobs start at
// once.

const (
	estimateWarnSeconds    = 60    // warn above this
	estimateMeasureSeconds = 5     // measure the rate above this at fastCPUFLOPS
	fastCPUFLOPS           = 300e9 // more than the CPU backend reaches on a big desktop
)

// runLength is the sequence length a generation will run at: the
// template's length (placeholders plus the characters kept; unknown
// characters dropped or, by default, refused by the sampler) or
// --sequence-length.
func runLength(o *sampler.Options, v *model.Vocab) int {
	if o.Template == "" {
		return o.SequenceLength
	}
	ph := []rune(o.Placeholder)
	n := 0
	var rest strings.Builder
	for _, r := range o.Template {
		if len(ph) > 0 && r == ph[0] {
			n++
		} else {
			rest.WriteRune(r)
		}
	}
	ids, _, _ := sampler.EncodeText(v, rest.String(), sampler.UnknownDrop, "template")
	return n + len(ids)
}

// jobPasses counts the trunk passes of a generation, roughly: one per
// iteration, a second one per remask when the critic scores the prediction,
// and two for the quality metrics.
func jobPasses(o *sampler.Options, cfg *model.Config) int {
	n := o.EffectiveIterations()
	passes := n + 2
	if o.Method == sampler.Diffusion && cfg.HasCritic() && !o.Compat.CriticOnInput {
		switch o.Remasking {
		case sampler.RemaskAuto, sampler.RemaskCritic, sampler.RemaskCalibrated:
			passes += n - 1
		}
	}
	return passes
}

// jobEstimate is a rough running time of a generation on the CPU backend.
type jobEstimate struct {
	FLOP    float64 // the job's trunk FLOPs
	FLOPS   float64 // measured on this machine; 0 when not measured
	Seconds float64 // FLOP / FLOPS; 0 when not measured
}

// estimateJob measures the rate only when the job is big enough to matter.
func estimateJob(ctx context.Context, net engine.Net, o *sampler.Options, B, T int) (jobEstimate, error) {
	cfg := &net.Model().Config
	e := jobEstimate{FLOP: float64(jobPasses(o, cfg)) * forwardFLOP(cfg, B, T)}
	if e.FLOP/fastCPUFLOPS < estimateMeasureSeconds {
		return e, nil
	}
	mb, mt := min(B, 4), min(T, 128)
	tokens := make([]int32, mb*mt) // id 0 everywhere: the speed does not depend on the ids
	el := 0.0
	for i := 0; i < 2; i++ { // the faster of two: the first one also allocates
		start := time.Now()
		if _, err := net.Encode(ctx, tokens, mb, mt); err != nil {
			return e, err
		}
		if d := time.Since(start).Seconds(); i == 0 || d < el {
			el = d
		}
	}
	if el <= 0 {
		return e, nil
	}
	e.FLOPS = forwardFLOP(cfg, mb, mt) / el
	e.Seconds = e.FLOP / e.FLOPS
	return e, nil
}

// warnLongJob prints the estimate when the job will take over a minute.
func warnLongJob(w io.Writer, e jobEstimate, o *sampler.Options, B, T int, backend string) {
	if e.Seconds < estimateWarnSeconds {
		return
	}
	fmt.Fprintf(w, "warning: this job (%d samples x %d characters, %d iterations) will take about %s on the %s backend\n"+
		"  (%.1f TFLOP at the %.1f GFLOP/s measured here). Ctrl-C stops it; smaller --num-samples,\n"+
		"  --sequence-length or --iterations finish sooner (./build.sh run uses 2 x 384, 15 iterations).\n",
		B, T, o.EffectiveIterations(), roughDuration(e.Seconds), backend, e.FLOP/1e12, e.FLOPS/1e9)
}

// roughDuration says a duration the way an estimate should: "40 seconds",
// "3 minutes", "1.5 hours".
func roughDuration(sec float64) string {
	switch {
	case sec < 90:
		return fmt.Sprintf("%.0f seconds", sec)
	case sec < 90*60:
		return fmt.Sprintf("%.0f minutes", sec/60)
	}
	return fmt.Sprintf("%.1f hours", sec/3600)
}
