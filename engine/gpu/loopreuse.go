package gpu

import "github.com/remask/remask/engine"

// Loop reuse: a generation's loop (its dozen buffers, the params and bind
// groups of its program, the nets' cached trunk op lists) costs about 2.5 ms
// to make on the H200 (`remask bench --json`'s device_host_ms "new loop"),
// 6% of the small job. A closed loop is therefore parked on its net, and
// the net's next loop of the same shape takes it: its buffers cleared to
// zero on the device (what a new buffer holds) but for those the inputs
// overwrite whole, and the generation's inputs written again (init), so a
// reused loop starts from exactly the state of a new one; both at the head
// of the generation's first submission, so reuse itself submits nothing.
// A net keeps one parked loop (the latest); Net.Close releases it.
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

// reuse resets a parked loop for its new spec (l.s, l.rm set): every
// buffer that init does not write whole cleared on the device, then init
// as for new buffers. The clears are recorded at the head of the
// generation's first submission (Loop.submit), before init's copies, so a
// reused loop costs no submission of its own; they run in queue order after
// the previous generation's work. Spared: the staging buffer, the upload
// and the buffers init's copies overwrite whole, and select.wgsl's counters
// (CNT), which Step writes before every iteration that reads them (a queue
// write, so it lands before the submission's clears would).
func (l *Loop) reuse() error {
	l.closed, l.waves, l.reads, l.dispatched = false, 0, 0, 0
	if err := l.init(); err != nil {
		return err
	}
	spare := map[*buffer]bool{l.staging: true, l.upload: true, l.cnt: true}
	for _, c := range l.copies {
		spare[c.dst] = true
	}
	l.clears = l.clears[:0]
	for _, b := range l.bufs {
		if !spare[b] {
			l.clears = append(l.clears, b)
		}
	}
	return nil
}
