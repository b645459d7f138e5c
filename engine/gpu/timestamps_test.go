package gpu

import (
	"context"
	"strings"
	"testing"
	"time"
)

// timestampOps returns n layer norms of an (N, C) buffer.
func timestampOps(t *testing.T, d *device, N, C, n int) []op {
	t.Helper()
	x, err := d.p.newBuffer("timestamp x", uint64(4*N*C), usageStorage)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.destroy)
	w, err := d.p.newBuffer("timestamp w", uint64(4*C), usageStorage)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.destroy)
	y, err := d.p.newBuffer("timestamp y", uint64(4*N*C), usageStorage)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(y.destroy)
	o, err := d.layerNorm("timestamp", N, C, whole(x), w, nil, whole(y), 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	ops := make([]op, n)
	for i := range ops {
		ops[i] = o
	}
	return ops
}

// TestTimestampStages times two stages of layer norms, "small" (a few
// dispatches, begun twice: the times add up) and "big" (many more), with an
// empty stage between them, then reuses the timer after reset.
func TestTimestampStages(t *testing.T) {
	d := testBackend(t).d
	ai := d.p.info()
	t.Logf("adapter %s: timestamp-query offered %v, device has it %v, period %g ns/tick", ai.Name, ai.Timestamps, d.p.hasTimestamps(), d.p.timestampPeriod())
	if !d.p.hasTimestamps() {
		t.Logf("the adapter offers no timestamp-query through wgpu: only the no-op path is checked (TestTimestampNoFeature)")
		if tm := newStageTimer(d, 4); tm != nil {
			t.Fatalf("newStageTimer without the feature = %p, want nil", tm)
		}
		return
	}
	start := time.Now()
	ctx := context.Background()
	const N, C = 256, 256
	small := timestampOps(t, d, N, C, 2)
	big := timestampOps(t, d, N, C, 48)
	prs := []*program{newProgram(d, "ts small"), newProgram(d, "ts big"), newProgram(d, "ts small 2")}
	for _, pr := range prs {
		defer pr.release()
	}
	tm := newStageTimer(d, 8)
	if tm == nil {
		t.Fatal("newStageTimer = nil on a device with timestamp-query")
	}
	defer tm.release()

	for round := 0; round < 2; round++ {
		rec, err := d.p.newRecorder()
		if err != nil {
			t.Fatal(err)
		}
		tm.begin(rec, "small")
		if err := prs[0].record(rec, small); err != nil {
			t.Fatal(err)
		}
		tm.begin(rec, "empty") // no dispatch: 0 ms, and no unwritten query resolved
		tm.begin(rec, "big")
		if err := prs[1].record(rec, big); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			tm.begin(rec, "small")
			if err := prs[2].record(rec, small); err != nil {
				t.Fatal(err)
			}
		}
		tm.finish(rec)
		t0 := time.Now()
		if err := d.submit(rec); err != nil {
			t.Fatal(err)
		}
		if err := d.p.wait(ctx); err != nil {
			t.Fatal(err)
		}
		wall := time.Since(t0).Seconds() * 1000
		ms, ok, err := tm.read(ctx)
		if err != nil || !ok {
			t.Fatalf("round %d: read: ok %v, %v", round, ok, err)
		}
		t.Logf("round %d: stages %v, ms %v; submit to done %.3f ms of wall time", round, tm.stages(), ms, wall)
		// The stages ran between the submit and the end of the wait: more
		// GPU time than that means the ticks are not nanoseconds.
		if sum := ms["small"] + ms["big"]; sum > wall*1.01+0.05 {
			t.Errorf("round %d: stages sum to %g ms, more than the %g ms of wall time from submit to done (timestamp period %g ns/tick wrong?)", round, sum, wall, d.p.timestampPeriod())
		}
		if got, want := strings.Join(tm.stages(), ","), "small,empty,big"; got != want {
			t.Errorf("round %d: stages %s, want %s", round, got, want)
		}
		if len(ms) != 3 {
			t.Errorf("round %d: %d names, want 3: %v", round, len(ms), ms)
		}
		if v, in := ms["empty"]; !in || v != 0 {
			t.Errorf("round %d: empty stage %v (reported %v), want 0", round, v, in)
		}
		if !(ms["small"] > 0 && ms["big"] > 0) {
			t.Errorf("round %d: small %g ms, big %g ms, want both > 0", round, ms["small"], ms["big"])
		}
		if !(ms["big"] > ms["small"]) {
			t.Errorf("round %d: big %g ms <= small %g ms (%d vs %d dispatches)", round, ms["big"], ms["small"], len(big), len(small))
		}
		tm.reset()
	}

	// A stage's indices outside the query set are a recording error.
	rec, err := d.p.newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	rec.stage(tm.q, 0, tm.q.count)
	if err := d.submit(rec); err == nil || !strings.Contains(err.Error(), "query") {
		t.Errorf("stage with query %d of %d: submit error %v, want one naming the query", tm.q.count, tm.q.count, err)
	} else {
		t.Logf("out-of-range stage: %v", err)
	}
	t.Logf("%v", time.Since(start))
}

// TestTimestampNoFeature checks the no-op path: a nil timer, what
// newStageTimer returns without the feature, does nothing and reads
// ok=false.
func TestTimestampNoFeature(t *testing.T) {
	if tm := newStageTimer(nil, 4); tm != nil {
		t.Fatalf("newStageTimer(nil) = %p, want nil", tm)
	}
	var tm *stageTimer
	tm.begin(nil, "x")
	tm.finish(nil)
	ms, ok, err := tm.read(context.Background())
	if ms != nil || ok || err != nil {
		t.Fatalf("nil timer read = %v, %v, %v; want nil, false, nil", ms, ok, err)
	}
	if s := tm.stages(); s != nil {
		t.Fatalf("nil timer stages = %v", s)
	}
	tm.reset()
	tm.release()

	// A timer whose creation failed reads its error, and does nothing else.
	d := testBackend(t).d
	if !d.p.hasTimestamps() {
		t.Logf("no timestamp-query on %s: newStageTimer returns nil", d.p.info().Name)
		return
	}
	bad := newStageTimer(d, maxQueries) // 2·maxQueries queries: too many
	rec, err := d.p.newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	bad.begin(rec, "x")
	bad.finish(rec)
	if err := d.submit(rec); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := bad.read(context.Background()); ok || err == nil {
		t.Fatalf("oversized timer read ok %v, err %v; want an error", ok, err)
	} else {
		t.Logf("oversized timer: %v", err)
	}
}
