package main

import (
	"bytes"
	"context"
	"math"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
)

var stageRE = regexp.MustCompile(`([a-z][a-z ,()]*?) ([0-9.]+) s \(([0-9.]+)%\)`)

// TestSummaryStagesAddUp: the stages of the performance summary add up to
// its total wall time, metrics included, on the host loop and on the device
// loop (which reports one part, not "sampling 0.000 s").
func TestSummaryStagesAddUp(t *testing.T) {
	host := &sampler.Result{Loop: "host", Seconds: 10, Timings: sampler.Timings{Forward: 6, Sampling: 1.5, Remasking: 2, Metrics: 3},
		Samples: []sampler.Sample{{Tokens: make([]int32, 8)}, {Tokens: make([]int32, 8)}}}
	device := &sampler.Result{Loop: "device", Seconds: 4, Timings: sampler.Timings{Forward: 4, Metrics: 1},
		Samples: []sampler.Sample{{Tokens: make([]int32, 8)}}, Device: &sampler.DeviceWork{StagesMs: map[string]float64{"forward": 2500, "sample": 300}}}
	for _, tc := range []struct {
		name  string
		res   *sampler.Result
		total float64
		parts int
	}{{"host", host, 13, 5}, {"device", device, 5, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printTiming(&b, tc.res)
			out := b.String()
			if !strings.Contains(out, "Total wall time: "+strconv.FormatFloat(tc.total, 'f', 3, 64)+" s") {
				t.Errorf("total is not %g s:\n%s", tc.total, out)
			}
			var stages string
			for _, l := range strings.Split(out, "\n") {
				if s, ok := strings.CutPrefix(l, "Stages: "); ok {
					stages = s
				}
			}
			m := stageRE.FindAllStringSubmatch(stages, -1)
			if len(m) != tc.parts {
				t.Fatalf("%d stages in %q, want %d", len(m), stages, tc.parts)
			}
			sum, pct := 0.0, 0.0
			for _, p := range m {
				s, _ := strconv.ParseFloat(p[2], 64)
				q, _ := strconv.ParseFloat(p[3], 64)
				sum, pct = sum+s, pct+q
			}
			if math.Abs(sum-tc.total) > 0.002 || math.Abs(pct-100) > 0.3 {
				t.Errorf("stages add up to %g s (%g%%), want %g s (100%%): %s", sum, pct, tc.total, stages)
			}
			if tc.res.Loop == "device" && (strings.Contains(out, "sampling 0.000") || !strings.Contains(out, "GPU time per stage")) {
				t.Errorf("device summary:\n%s", out)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		code, out, errOut := runCLI(t, "", arg)
		if code != exitOK || !strings.HasPrefix(out, "remask ") || !strings.Contains(out, "go1.") || errOut != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/remask/remask", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-03T09:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := formatVersion(bi)
	if !strings.HasPrefix(got, "remask v1.2.3, revision 0123456789ab+dirty (2026-12-03T09:00:00Z), go1.26.8 ") {
		t.Errorf("formatVersion: %q", got)
	}
}

func TestRunLengthAndPasses(t *testing.T) {
	cfg := model.Standard()
	m, err := model.Random(cfg, 1, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	o := sampler.Defaults()
	if got := runLength(&o, &m.Vocab); got != o.SequenceLength {
		t.Errorf("runLength without a template: %d", got)
	}
	o.Template = "\u0100__\u0101_?" // two vocabulary characters, three placeholders, one unknown
	o.Placeholder = "_"
	if got := runLength(&o, &m.Vocab); got != 5 {
		t.Errorf("runLength of the template: %d, want 5", got)
	}
	o = sampler.Defaults()
	if got, want := jobPasses(&o, &cfg), 2*o.Iterations+1; got != want { // critic on the prediction
		t.Errorf("passes %d, want %d", got, want)
	}
	o.Compat.CriticOnInput = true
	if got, want := jobPasses(&o, &cfg), o.Iterations+2; got != want {
		t.Errorf("passes with critic-on-input %d, want %d", got, want)
	}
	var b bytes.Buffer
	warnLongJob(&b, jobEstimate{FLOP: 15.6e12, FLOPS: 20e9, Seconds: 780}, &o, 16, 1024, "cpu")
	if !strings.Contains(b.String(), "will take about 13 minutes on the cpu backend") {
		t.Errorf("warning: %q", b.String())
	}
	b.Reset()
	warnLongJob(&b, jobEstimate{FLOP: 1e9, FLOPS: 20e9, Seconds: 0.05}, &o, 1, 64, "cpu")
	if b.Len() != 0 {
		t.Errorf("a short job warned: %q", b.String())
	}
}

// TestHeaderBeforeFirstIteration: the settings block is on stderr before
// the first iteration runs: a run cancelled the moment the header is written
// (the models are loaded by then) stops before any iteration and has
// printed it.
func TestHeaderBeforeFirstIteration(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	errb := &cancelOnWrite{marker: "Starting diffusion generation:", cancel: cancel}
	code := run(ctx, []string{"sample", "--model", lmFull, "--num-samples", "1", "--sequence-length", "16", "--iterations", "2", "--seed", "1", "--live", "off"},
		strings.NewReader(""), &out, errb)
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d: %s", code, exitInterrupted, errb.String())
	}
	if !strings.Contains(errb.String(), "Starting diffusion generation:") || strings.Contains(errb.String(), "Iteration 1/") {
		t.Errorf("stderr:\n%s", errb.String())
	}
}

// cancelOnWrite is a buffer that calls cancel once marker has been written.
type cancelOnWrite struct {
	bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Contains(w.Buffer.String(), w.marker) {
		w.cancel()
	}
	return n, err
}
