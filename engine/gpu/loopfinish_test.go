package gpu

import (
	"context"
	"math"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/step"
	"github.com/remask/remask/shaders"
)

// TestLoopFinishOneRead pins the end of a device-loop generation
// (Loop.Finish): after the last iteration, one submission and one read
// bring back the final tokens and, when the metric asks for them, the
// metrics pass's statistics; with the metric none, nothing is dispatched
// there. The metrics are those of the host loop (within f32 tolerance,
// as TestDeviceLoopMatchesHost), and, bit for bit, those of the metrics
// pass run on its own after a read of the tokens (separateMetrics: the
// path before the fold).
func TestLoopFinishOneRead(t *testing.T) {
	ctx := context.Background()
	m := loadGolden(t, "lm_rope_bidir_bias.safetensors") // critic head, sampler head
	loaded, err := testBackend(t).Load(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	net := loaded.(*Net)
	defer net.Close()
	judge, err := testBackend(t).Load(ctx, loadGolden(t, "judge_cls.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer judge.(*Net).Close()

	t.Run("sampler", func(t *testing.T) {
		for _, c := range []struct {
			metric  string
			sampler bool
		}{
			{sampler.MetricNode, false}, {sampler.MetricNode, true}, {sampler.MetricSelf, false}, {sampler.MetricNone, false},
			{sampler.MetricJudge, false},
		} {
			o := sampler.Defaults()
			o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 2, 32, 5, 3
			o.QualityMetric, o.DisableSampler = c.metric, !c.sampler
			net.dropSpare() // a new loop, whose counters start at 0
			s0 := net.d.submits
			models := sampler.Models{LM: net}
			if c.metric == sampler.MetricJudge {
				models.Judge = judge // on its own net, after the read
			}
			res, err := sampler.Generate(ctx, models, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			l, w := net.spare, res.Device // the generation's loop, parked by Close
			if l == nil || res.Loop != "device" {
				t.Fatalf("%s: loop %q, parked %v", c.metric, res.Loop, l)
			}
			subs, disp := net.d.submits-s0-w.Submits, l.dispatched-w.Dispatches
			t.Logf("metric %s, sampler head %v: %d iterations in %d submits reading %d bytes; then %d submit(s), %d dispatches and %d read(s) in all; host ms %v",
				c.metric, c.sampler, res.IterationsRun, w.Submits, w.ReadBytes, subs, disp, l.reads, w.HostMs)
			if c.metric == sampler.MetricJudge {
				subs = 1 // the judge's net submits its own work on the same device, after the read: l.reads counts the loop's
			}
			if w.Submits != res.IterationsRun || w.ReadBytes != 0 || l.reads != 1 || subs != 1 {
				t.Errorf("metric %s: %d submits and %d bytes read in %d iterations, then %d submits, and %d reads in all; want one submit per iteration reading nothing, then one submit and one read",
					c.metric, w.Submits, w.ReadBytes, res.IterationsRun, subs, l.reads)
			}
			pass, phase := c.metric != sampler.MetricNone, "tokens"
			if pass {
				phase = "tokens+metrics"
			}
			if (disp > 0) != pass {
				t.Errorf("metric %s: %d dispatches after the last iteration, want them only for a metric", c.metric, disp)
			}
			phases := 3
			if c.metric == sampler.MetricJudge {
				phases++
				if _, ok := w.HostMs["judge"]; !ok {
					t.Errorf("metric judge: host phases %v, no judge", w.HostMs)
				}
			}
			if _, ok := w.HostMs[phase]; !ok || len(w.HostMs) != phases {
				t.Errorf("metric %s: host phases %v, want new loop, steps and %q", c.metric, w.HostMs, phase)
			}
			for i, s := range res.Samples {
				if (s.SelfConfidence != nil) != pass || (s.Critic != nil) != pass || (s.JudgeScore != nil) != (c.metric == sampler.MetricJudge) {
					t.Errorf("metric %s: sample %d: self-confidence %v, critic %v, judge %v", c.metric, i, s.SelfConfidence, s.Critic, s.JudgeScore)
				}
			}
			if !pass {
				continue
			}
			ho := o
			ho.HostLoop = true
			host, err := sampler.Generate(ctx, models, ho, nil)
			if err != nil {
				t.Fatal(err)
			}
			compareRuns(t, loopRun{res: host}, loopRun{res: res}, false, 1)
			for i, s := range res.Samples {
				if h := host.Samples[i].JudgeScore; h != nil && math.Abs(*h-*s.JudgeScore) > 1e-4 {
					t.Errorf("sample %d: judge score host loop %v, device loop %v", i, *h, *s.JudgeScore)
				}
			}
		}
	})

	t.Run("fold vs separate", func(t *testing.T) {
		const B, T, N = 2, 32, 4
		V := m.Config.VocabSize
		mask, pad := int32(*m.Vocab.MaskTokenID), int32(*m.Vocab.PadTokenID)
		for _, useSampler := range []bool{false, true} {
			toks := make([]int32, B*T)
			for i := range toks {
				toks[i] = mask
			}
			toks[T+5] = pad // a pad the critic statistics skip
			spec := &engine.LoopSpec{B: B, T: T, Tokens: toks, Protected: make([]bool, B*T), Mask: mask, Seed: 9, Iterations: N,
				Ratios: []float64{0.7, 0.4, 0.1}, Temperature: 1, TopP: 1, SamplerTopP: 1,
				ExcludeNaive: make([]bool, V), ExcludeSampler: make([]bool, V), Strategy: step.Critic,
				UseSampler: useSampler, Embeddings: true, MinNeighborsRatio: 0.1}
			spec.Protected[T+5] = true
			for _, id := range []int32{mask, pad} { // drawn nowhere: the one pad is the input's
				spec.ExcludeNaive[id], spec.ExcludeSampler[id] = true, true
			}
			f := engine.LoopFinish{Metrics: true, Critic: true, Pad: pad}
			run := func(fold bool) (*engine.LoopFinal, int, int) {
				t.Helper()
				loop, err := net.NewLoop(ctx, spec)
				if err != nil {
					t.Fatal(err)
				}
				defer loop.Close()
				l := loop.(*Loop)
				for it := 0; it < N; it++ {
					if _, err := l.Step(ctx, it, false); err != nil {
						t.Fatal(err)
					}
				}
				s0, r0 := net.d.submits, l.reads
				if fold {
					fin, err := l.Finish(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					return fin, net.d.submits - s0, l.reads - r0
				}
				fin, err := l.Finish(ctx, engine.LoopFinish{})
				if err != nil {
					t.Fatal(err)
				}
				if fin.Metrics != nil {
					t.Errorf("Finish without metrics returned metrics")
				}
				if fin.Metrics, err = separateMetrics(ctx, l, f); err != nil {
					t.Fatal(err)
				}
				return fin, net.d.submits - s0, l.reads - r0
			}
			got, gs, gr := run(true)
			want, ws, wr := run(false)
			t.Logf("sampler head %v: folded %d submit, %d read; separate %d, %d; self-confidence %v, critic mean %v, n %v",
				useSampler, gs, gr, ws, wr, got.Metrics.SelfConfidence, got.Metrics.CriticMean, got.Metrics.CriticN)
			if gs != 1 || gr != 1 || ws != 2 || wr != 2 {
				t.Errorf("after the last iteration: folded %d submits and %d reads, want 1 and 1; separate %d and %d, want 2 and 2", gs, gr, ws, wr)
			}
			for i := range want.Tokens {
				if got.Tokens[i] != want.Tokens[i] {
					t.Fatalf("position %d: folded token %d, separate %d", i, got.Tokens[i], want.Tokens[i])
				}
			}
			g, w := got.Metrics, want.Metrics
			for b := 0; b < B; b++ {
				for _, q := range []struct {
					name      string
					got, want float64
				}{
					{"self-confidence", g.SelfConfidence[b], w.SelfConfidence[b]}, {"critic mean", g.CriticMean[b], w.CriticMean[b]},
					{"p10", g.CriticP10[b], w.CriticP10[b]}, {"p50", g.CriticP50[b], w.CriticP50[b]}, {"p90", g.CriticP90[b], w.CriticP90[b]},
					{"count", float64(g.CriticN[b]), float64(w.CriticN[b])},
				} {
					if math.Float64bits(q.got) != math.Float64bits(q.want) {
						t.Errorf("sampler head %v, row %d: %s folded %v, separate %v", useSampler, b, q.name, q.got, q.want)
					}
				}
			}
			if g.CriticN[0] != T || g.CriticN[1] != T-1 {
				t.Errorf("row 1: critic statistics over %d positions, want %d (its pad skipped), and %d in row 0, want %d", g.CriticN[1], T-1, g.CriticN[0], T)
			}
		}
	})
}

// separateMetrics is the metrics pass as it ran before Finish carried it:
// its own submission after the tokens' read, and its own read.
func separateMetrics(ctx context.Context, l *Loop, f engine.LoopFinish) (*engine.LoopMetrics, error) {
	critic := f.Critic && l.n.critic != nil
	o := &ops{}
	l.metricsOps(o, critic, f.Pad)
	size := 4 * shaders.StatsWords * uint64(l.B)
	o.copyAt(l.stats, 0, l.staging, 0, size)
	if err := l.submit(ctx, o); err != nil {
		return nil, err
	}
	buf, err := l.read(ctx, size)
	if err != nil {
		return nil, err
	}
	return l.loopMetrics(buf, critic), nil
}
