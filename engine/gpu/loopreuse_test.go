package gpu

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/remask/remask/engine/sampler"
)

// TestLoopReuse runs generations of two shapes and both sampler paths one
// after another on one net, so that each takes the loop its predecessor
// parked where the shape allows (loopreuse.go), and checks every result
// against the same generation on a loop made new (the parked one dropped
// first): texts, iterations, waves and dispatches; and that no loop, new
// or reused, submits anything beyond its iterations and Finish. A reused loop that kept
// any state of its predecessor (the wave state's counters, the tokens, the
// error word) shows here as a different text or wave count.
func TestLoopReuse(t *testing.T) {
	be := testBackend(t)
	m := loadGolden(t, "lm_rope_bidir_bias.safetensors")
	loaded, err := be.Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	net := loaded.(*Net)
	defer net.Close()
	opts := func(seed uint64, sampler_ bool, T int, prompt string) sampler.Options {
		o := sampler.Defaults()
		o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 2, T, 5, seed
		o.QualityMetric = sampler.MetricNode
		o.DisableSampler = !sampler_
		o.SeedText = prompt
		return o
	}
	runs := []struct {
		name  string
		o     sampler.Options
		reuse bool // takes the loop the run before parked
	}{
		{"A", opts(11, true, 32, ""), false},
		{"B same shape, other seed and prompt", opts(5, true, 32, "ROMEO:"), true},
		{"A again", opts(11, true, 32, ""), true},
		{"C no sampler head", opts(11, false, 32, ""), false},
		{"D other length", opts(3, false, 24, "a"), false},
		{"D again", opts(3, false, 24, "a"), true},
		{"C again after D", opts(11, false, 32, ""), false},
	}
	gen := func(o sampler.Options) *sampler.Result {
		t.Helper()
		res, err := sampler.Generate(context.Background(), sampler.Models{LM: net}, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, r := range runs {
		before, s0 := net.spare, net.d.submits
		got := gen(r.o)
		after := net.spare
		// A new or reused loop submits nothing of its own: its start
		// (reuse's clears, init's inputs) rides in its first submission.
		if subs := net.d.submits - s0; subs != got.Device.Submits+1 {
			t.Errorf("%s: %d submissions for %d iterations' %d and Finish's one", r.name, subs, got.IterationsRun, got.Device.Submits)
		}
		if after == nil {
			t.Fatalf("%s: no loop parked after the generation", r.name)
		}
		if reused := before != nil && after == before; reused != r.reuse {
			t.Errorf("%s: reused the parked loop %v, want %v", r.name, reused, r.reuse)
		}
		net.dropSpare()
		want := gen(r.o) // on a new loop
		if net.spare == nil || net.spare == after {
			t.Fatalf("%s: the reference generation did not make a new loop", r.name)
		}
		for i := range want.Samples {
			if a, b := want.Samples[i].Text, got.Samples[i].Text; a != b {
				t.Errorf("%s: sample %d: new loop %q, reused %q", r.name, i, a, b)
			}
		}
		if w, g := want.Device, got.Device; w.Waves != g.Waves || w.Dispatches != g.Dispatches || want.IterationsRun != got.IterationsRun {
			t.Errorf("%s: new loop %d waves, %d dispatches, %d iterations; reused %d, %d, %d", r.name, w.Waves, w.Dispatches, want.IterationsRun, g.Waves, g.Dispatches, got.IterationsRun)
		}
		t.Logf("%s: %q..., %d waves, %d dispatches", r.name, got.Samples[0].Text[:8], got.Device.Waves, got.Device.Dispatches)
	}
	if net.act.capN != 0 || net.act.sout != nil {
		t.Errorf("the device loop sized the buffers of Net.SamplerLogits (%d rows), which only the host loop uses", net.act.capN)
	}
	net.Close()
	if net.spare != nil {
		t.Errorf("Net.Close left a loop parked")
	}
}

// TestWaveModeAuto pins how Options.WaveDispatch and WaveSlots resolve per
// loop: natively auto is indirect with WaveSlots; in the js/wasm build a
// loop of at most BrowserDirectPositions positions is direct, a larger one
// indirect with BrowserWaveSlots, and a direct loop there has
// BrowserDirectWaveSlots slots; an explicit dispatch or slot count wins.
func TestWaveModeAuto(t *testing.T) {
	for _, c := range []struct {
		opts            Options
		N               int
		native, browser bool // direct, per build
	}{
		{Options{}, 256, false, true},
		{Options{}, BrowserDirectPositions, false, true},
		{Options{}, BrowserDirectPositions + 1, false, false},
		{Options{WaveDispatch: "indirect"}, 256, false, false},
		{Options{WaveDispatch: "direct"}, 4096, true, true},
		{Options{WaveDispatch: "auto", WaveSlots: 7}, 256, false, true},
	} {
		d := &device{waveSlots: c.opts.WaveSlots, waveSlotsSet: c.opts.WaveSlots != 0, waveDispatch: c.opts.WaveDispatch}
		if d.waveSlots == 0 {
			d.waveSlots = platformWaveSlots
		}
		want := c.native
		if platformDirectWaves {
			want = c.browser
		}
		wantSlots := platformWaveSlots
		switch {
		case c.opts.WaveSlots != 0:
			wantSlots = c.opts.WaveSlots
		case want && platformDirectWaves:
			wantSlots = BrowserDirectWaveSlots
		}
		l := &Loop{n: &Net{d: d}, N: c.N}
		if slots, direct := l.waveMode(); slots != wantSlots || direct != want {
			t.Errorf("%+v, %d positions: %d slots, direct %v; want %d, %v", c.opts, c.N, slots, direct, wantSlots, want)
		}
	}
}

// TestWaveDispatchDocumented pins the wave dispatch defaults that
// docs/gpu.md and docs/cli.md state to the constants (fails on drift).
func TestWaveDispatchDocumented(t *testing.T) {
	for doc, want := range map[string][]string{
		"../../docs/gpu.md": {
			fmt.Sprintf("`BrowserDirectPositions` = %d positions", BrowserDirectPositions),
			fmt.Sprintf("`BrowserDirectWaveSlots` = %d slots", BrowserDirectWaveSlots),
		},
		"../../docs/cli.md": {
			fmt.Sprintf("`direct` for at most %d positions", BrowserDirectPositions),
			fmt.Sprintf("(= %d natively; in the js/wasm build %d for direct waves, else %d)", WaveSlots, BrowserDirectWaveSlots, BrowserWaveSlots),
		},
	} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s does not say %q", doc, w)
			}
		}
	}
}

// TestLoopReuseAfterCancel: a generation cancelled midway parks its loop in
// whatever state it stopped; the next generation of that shape takes it and
// must still give the text of a new loop.
func TestLoopReuseAfterCancel(t *testing.T) {
	be := testBackend(t)
	loaded, err := be.Load(context.Background(), loadGolden(t, "lm_rope_bidir_bias.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	net := loaded.(*Net)
	defer net.Close()
	o := sampler.Defaults()
	o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 2, 32, 5, 7
	o.QualityMetric = sampler.MetricNode
	ctx, cancel := context.WithCancel(context.Background())
	_, err = sampler.Generate(ctx, sampler.Models{LM: net}, o, func(ev *sampler.Event) {
		if ev.Iteration == 1 {
			cancel()
		}
	})
	if err == nil {
		t.Fatal("the cancelled generation returned no error")
	}
	parked := net.spare
	if parked == nil {
		t.Fatal("the cancelled generation parked no loop")
	}
	got, err := sampler.Generate(context.Background(), sampler.Models{LM: net}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if net.spare != parked {
		t.Fatal("the next generation did not reuse the cancelled one's loop")
	}
	net.dropSpare()
	want, err := sampler.Generate(context.Background(), sampler.Models{LM: net}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Samples {
		if a, b := want.Samples[i].Text, got.Samples[i].Text; a != b {
			t.Errorf("sample %d: new loop %q, reused after a cancel %q", i, a, b)
		}
	}
}

// TestLoopReuseEvents: a reused loop reports every iteration as a new one
// does, with an observer and in threshold mode (each iteration reads its
// counters back: the remask counts per row, the smallest wrongness, the
// early stop), so that the counters' state at the start of a reused loop's
// first iteration shows too (reuse spares select.wgsl's counters from its
// clears because Step writes them first).
func TestLoopReuseEvents(t *testing.T) {
	be := testBackend(t)
	loaded, err := be.Load(context.Background(), loadGolden(t, "lm_rope_bidir_bias.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	net := loaded.(*Net)
	defer net.Close()
	for _, threshold := range []bool{false, true} {
		o := sampler.Defaults()
		o.NumSamples, o.SequenceLength, o.Iterations = 2, 32, 5
		o.QualityMetric = sampler.MetricNode
		if threshold {
			o.ScheduleMode, o.StartRatio, o.EndRatio = sampler.ScheduleThreshold, 0.9, 0.2
		}
		gen := func(seed uint64) ([]string, *sampler.Result) {
			t.Helper()
			o.Seed = seed
			var evs []string
			res, err := sampler.Generate(context.Background(), sampler.Models{LM: net}, o, func(ev *sampler.Event) {
				var rows []int
				for _, r := range ev.Remasked {
					rows = append(rows, len(r))
				}
				evs = append(evs, fmt.Sprintf("iteration %d: masked %d, remasked per row %v, min wrongness %v, early stop %v, tokens %v",
					ev.Iteration, ev.Masked, rows, ev.MinWrongness, ev.EarlyStop, ev.Tokens))
			})
			if err != nil {
				t.Fatal(err)
			}
			return evs, res
		}
		gen(3) // parks a loop whose counters hold this generation's
		parked := net.spare
		got, gres := gen(7)
		if net.spare != parked {
			t.Fatalf("threshold %v: the generation did not reuse the parked loop", threshold)
		}
		net.dropSpare()
		want, wres := gen(7)
		if len(got) != len(want) {
			t.Fatalf("threshold %v: %d iterations reused, %d new", threshold, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("threshold %v: new loop %s\nreused %s", threshold, want[i], got[i])
			}
		}
		for i := range wres.Samples {
			if a, b := wres.Samples[i].Text, gres.Samples[i].Text; a != b {
				t.Errorf("threshold %v: sample %d: new loop %q, reused %q", threshold, i, a, b)
			}
		}
		t.Logf("threshold %v: %d iterations compared; %s", threshold, len(want), strings.SplitN(want[0], ", tokens", 2)[0])
	}
}
