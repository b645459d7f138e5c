package gpu

// GPU time per stage through WebGPU timestamp queries, where the device was
// created with the timestamp-query feature (platform.hasTimestamps).
//
// A stage is timed by the timestampWrites of one compute pass: rec.stage
// ends the current pass, and the next pass that a dispatch begins writes a
// timestamp at its beginning and at its end. The time of a stage is
// therefore the time of the first compute pass after it begins: a copy
// ends that pass (program.record records copy ops with rec.copy), and the
// dispatches after the copy are not counted. Begin the stage again after a
// copy, under the same name: the times of one name add up.
//
// Units: WebGPU timestamps are nanoseconds (the browser; Chrome quantizes
// them to 100 µs unless its WebGPU developer features are on). wgpu-native
// resolves raw device ticks, converted with platform.timestampPeriod (see
// its comment in platform_native.go for what the binding lacks there).

import (
	"context"
	"encoding/binary"
	"fmt"
)

// maxQueries is WebGPU's limit on the count of a query set.
const maxQueries = 4096

// passTimestamps are the timestamp writes that a recorder gives the next
// compute pass it begins (recorder.stage).
type passTimestamps struct {
	q          *querySet
	begin, end int // query indices; < 0: no write
}

// checkIndices refuses query indices outside q and a begin equal to end.
func (q *querySet) checkIndices(begin, end int) error {
	for _, i := range []int{begin, end} {
		if i >= q.count {
			return fmt.Errorf("gpu: query %d of %s, which has %d", i, q.label, q.count)
		}
	}
	if begin >= 0 && begin == end {
		return fmt.Errorf("gpu: query %d of %s written at both ends of a pass", begin, q.label)
	}
	return nil
}

// stage ends the current compute pass; the next pass that a dispatch begins
// writes timestamp begin of q at its beginning and end at its end (a
// negative index: no write). Later passes have no timestamp writes until
// the next stage. Both negative cancels a pending stage.
func (r *recorder) stage(q *querySet, begin, end int) {
	r.endPass()
	r.tw = nil
	if begin < 0 && end < 0 {
		return
	}
	if err := q.checkIndices(begin, end); err != nil {
		if r.err == nil {
			r.err = err
		}
		return
	}
	r.tw = &passTimestamps{q: q, begin: begin, end: end}
}

// stagePending says that the latest stage has not begun its pass yet (no
// dispatch since): its queries are not written.
func (r *recorder) stagePending() bool { return r.tw != nil }

// stageTimer times named stages of recorded work:
//
//	t := newStageTimer(d, maxStages) // nil without timestamp-query
//	t.begin(rec, "trunk")            // before the stage's dispatches
//	... record ...
//	t.begin(rec, "heads")
//	... record ...
//	t.finish(rec)                    // before rec is submitted
//	submit rec
//	ms, ok, err := t.read(ctx)       // milliseconds by name
//	t.reset()                        // before the next begin
//
// A nil timer (no timestamp-query feature) does nothing and reads ok=false.
// A stage with no dispatch before the next begin or finish counts 0 ms. At
// most maxStages stages are timed between resets; later ones are dropped
// (dropped counts them).
type stageTimer struct {
	d        *device
	q        *querySet
	resolved *buffer // usageQueryResolve: 16 bytes per stage
	staging  *buffer // usageStaging: the same, mapped by read
	max      int

	names    []string        // stage i wrote queries 2i and 2i+1
	empty    map[string]bool // names of stages that had no dispatch
	order    []string        // names in the order first begun
	last     *recorder       // the recorder of the latest stage
	finished bool
	dropped  int
	err      error // creating the query set or the buffers
}

// newStageTimer makes a timer of up to maxStages stages, or returns nil
// when the device has no timestamp-query feature. Creation errors are kept
// and returned by read.
func newStageTimer(d *device, maxStages int) *stageTimer {
	if d == nil || !d.p.hasTimestamps() {
		return nil
	}
	t := &stageTimer{d: d, max: maxStages, empty: map[string]bool{}}
	if maxStages < 1 || 2*maxStages > maxQueries {
		t.err = fmt.Errorf("gpu: stage timer of %d stages: want 1 to %d", maxStages, maxQueries/2)
		return t
	}
	size := uint64(16 * maxStages)
	if t.q, t.err = d.p.newQuerySet("stage timer", 2*maxStages); t.err != nil {
		return t
	}
	if t.resolved, t.err = d.p.newBuffer("stage timer resolve", size, usageQueryResolve); t.err != nil {
		t.release()
		return t
	}
	if t.staging, t.err = d.p.newBuffer("stage timer staging", size, usageStaging); t.err != nil {
		t.release()
	}
	return t
}

// release destroys the query set and the buffers.
func (t *stageTimer) release() {
	if t == nil {
		return
	}
	t.q.destroy()
	t.resolved.destroy()
	t.staging.destroy()
	t.q, t.resolved, t.staging = nil, nil, nil
}

func (t *stageTimer) usable() bool { return t != nil && t.err == nil && t.q != nil }

// closeLast drops the latest stage if it never began its pass: its queries
// were not written, and resolving unwritten queries is not reliable in
// wgpu-native (WebGPU says 0; Vulkan leaves it undefined).
func (t *stageTimer) closeLast() {
	if t.last == nil || !t.last.stagePending() {
		return
	}
	t.last.stage(t.q, -1, -1) // cancel the pending writes
	n := len(t.names) - 1
	t.empty[t.names[n]] = true
	t.names = t.names[:n]
}

// begin ends the previous stage and starts stage name: the next compute
// pass recorded into rec is timed under it.
func (t *stageTimer) begin(rec *recorder, name string) {
	if !t.usable() || t.finished {
		return
	}
	t.closeLast()
	t.last = nil
	if !t.seen(name) {
		t.order = append(t.order, name)
	}
	if len(t.names) == t.max {
		t.dropped++
		return
	}
	i := len(t.names)
	rec.stage(t.q, 2*i, 2*i+1)
	t.names = append(t.names, name)
	t.last = rec
}

func (t *stageTimer) seen(name string) bool {
	for _, n := range t.order {
		if n == name {
			return true
		}
	}
	return false
}

// finish ends the latest stage and records the resolve of the queries and
// their copy to the staging buffer into rec (which must be submitted before
// read). Stages begun after finish are ignored until reset.
func (t *stageTimer) finish(rec *recorder) {
	if !t.usable() || t.finished {
		return
	}
	t.closeLast()
	t.last = nil
	t.finished = true
	n := len(t.names)
	if n == 0 {
		return
	}
	rec.resolve(t.q, 0, 2*n, t.resolved, 0)
	rec.copy(t.resolved, 0, t.staging, 0, uint64(16*n))
}

// read waits for the submitted resolve and returns the GPU milliseconds of
// each stage name (summed over its stages), ok=false for a nil timer.
func (t *stageTimer) read(ctx context.Context) (map[string]float64, bool, error) {
	if t == nil {
		return nil, false, nil
	}
	if t.err != nil {
		return nil, false, t.err
	}
	if t.q == nil {
		return nil, false, fmt.Errorf("gpu: stage timer read after release")
	}
	if !t.finished {
		return nil, false, fmt.Errorf("gpu: stage timer read before finish")
	}
	ms := make(map[string]float64, len(t.order))
	for name := range t.empty {
		ms[name] += 0
	}
	n := len(t.names)
	if n > 0 {
		raw := make([]byte, 16*n)
		if err := t.d.p.read(ctx, t.staging, raw); err != nil {
			return nil, false, fmt.Errorf("gpu: stage timer: %w", err)
		}
		period := t.d.p.timestampPeriod()
		for i, name := range t.names {
			b := binary.LittleEndian.Uint64(raw[16*i:])
			e := binary.LittleEndian.Uint64(raw[16*i+8:])
			d := 0.0
			if e > b {
				d = float64(e-b) * period / 1e6
			}
			ms[name] += d
		}
	}
	return ms, true, nil
}

// stages returns the stage names in the order they were first begun since
// the last reset (nil for a nil timer).
func (t *stageTimer) stages() []string {
	if t == nil {
		return nil
	}
	return append([]string(nil), t.order...)
}

// reset forgets the stages, for the next begin.
func (t *stageTimer) reset() {
	if t == nil {
		return
	}
	if t.last != nil && t.last.stagePending() {
		t.last.stage(t.q, -1, -1)
	}
	t.names = t.names[:0]
	clear(t.empty)
	t.order = t.order[:0]
	t.last = nil
	t.finished = false
	t.dropped = 0
}
