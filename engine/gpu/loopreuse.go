package gpu

import (
	"fmt"

	"github.com/remask/remask/engine"
)

// Loop reuse: a generation's loop (its dozen buffers, the params and bind
// groups of its program, the nets' cached trunk op lists) costs about 2.5 ms
// to make on the H200 (`remask bench --json`'s device_host_ms "new loop"),
// 6% of the small job. A closed loop is therefore parked on its net, and
// the net's next loop of the same shape takes it: every buffer cleared to
// zero on the device (what a new buffer holds) and the generation's inputs
// written again (init), so a reused loop starts from exactly the state of a
// new one. A net keeps one parked loop (the latest); Net.Close releases it.
// Loops with stage timers (LoopSpec.Profile) or the unmask method are never
// parked: they are rare and their extra state is not worth the risk.

// reusable says whether a loop made for s could serve spec t: the buffers'
// sizes and roles depend only on these (the exclusion sets' sizes are the
// net's vocabulary's, checkLoop, so the same for every loop of a net).
func reusable(s, t *engine.LoopSpec) bool {
	return s.B == t.B && s.T == t.T && s.UseSampler == t.UseSampler &&
		s.Unmask == nil && t.Unmask == nil && !s.Profile && !t.Profile
}

// park keeps l's buffers for the net's next loop; false when l cannot be
// reused (then the caller releases it).
func (n *Net) park(l *Loop) bool {
	if l.prog == nil || l.timer != nil || l.s.Unmask != nil || l.s.Profile || n.weights == nil {
		return false
	}
	n.swapSpare(l).destroy()
	return true
}

// swapSpare parks l (nil: none) and returns the loop parked before.
func (n *Net) swapSpare(l *Loop) *Loop {
	n.spareMu.Lock()
	defer n.spareMu.Unlock()
	old := n.spare
	n.spare = l
	return old
}

// takeSpare returns the parked loop when it fits s (the caller resets it
// with reuse), else nil; a parked loop that does not fit stays parked.
func (n *Net) takeSpare(s *engine.LoopSpec) *Loop {
	n.spareMu.Lock()
	defer n.spareMu.Unlock()
	l := n.spare
	if l == nil || !reusable(&l.s, s) {
		return nil
	}
	n.spare = nil
	return l
}

// dropSpare releases the parked loop.
func (n *Net) dropSpare() { n.swapSpare(nil).destroy() }

// reuse resets a parked loop for its new spec (l.s, l.rm set): every buffer
// but the staging one cleared on the device, in queue order after the
// previous generation's work, then init as for new buffers.
func (l *Loop) reuse() error {
	l.closed, l.waves, l.reads, l.dispatched = false, 0, 0, 0
	rec, err := l.n.d.p.newRecorder()
	if err != nil {
		return err
	}
	for _, b := range l.bufs {
		if b != l.staging {
			rec.clear(b)
		}
	}
	if err := l.n.d.submit(rec); err != nil {
		return fmt.Errorf("gpu: loop: clearing a reused loop's buffers: %w", err)
	}
	return l.init()
}
