package api

import (
	"context"
	"sync"
)

// queue hands the compute device to one request at a time, in arrival
// order. It is a turnstile, not a worker: the request that holds the turn
// runs its own work on its own goroutine, so nothing runs in the background
// and a request that goes away simply leaves the line.
type queue struct {
	mu      sync.Mutex
	busy    bool      // a ticket holds the turn
	waiting []*ticket // FIFO, head = next
	max     int       // most waiting tickets
}

// ticket is one request's place in the queue.
type ticket struct {
	granted chan struct{} // closed when the ticket gets the turn
	moved   chan struct{} // signalled (buffer 1) when the position changes
	held    bool          // guarded by queue.mu: has the turn
	done    bool          // guarded by queue.mu: left
}

func newQueue(max int) *queue { return &queue{max: max} }

// errQueueFull is returned by join when max tickets wait already.
type errQueueFull struct{ waiting int }

func (e errQueueFull) Error() string { return "queue full" }

// join enters the queue: the ticket holds the turn at once when the device
// is free and nobody waits.
func (q *queue) join() (*ticket, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := &ticket{granted: make(chan struct{}), moved: make(chan struct{}, 1)}
	if !q.busy && len(q.waiting) == 0 {
		q.busy = true
		t.held = true
		close(t.granted)
		return t, nil
	}
	if len(q.waiting) >= q.max {
		return nil, errQueueFull{len(q.waiting)}
	}
	q.waiting = append(q.waiting, t)
	return t, nil
}

// position is 0 for the ticket holding the turn, else its 1-based place
// among the waiting tickets (1 = next); -1 once it left.
func (q *queue) position(t *ticket) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.held {
		return 0
	}
	for i, w := range q.waiting {
		if w == t {
			return i + 1
		}
	}
	return -1
}

// wait blocks until t holds the turn, calling onMove with each new position
// (the first call reports the position at entry). It returns ctx's error
// if the context ends first; the caller must still call leave.
func (q *queue) wait(ctx context.Context, t *ticket, onMove func(position int)) error {
	last := 0
	report := func() {
		if p := q.position(t); p > 0 && p != last {
			last = p
			onMove(p)
		}
	}
	select {
	case <-t.granted:
		return nil
	default:
	}
	report()
	for {
		select {
		case <-t.granted:
			return nil
		case <-t.moved:
			report()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// leave ends t: the turn passes to the next ticket, or t leaves the line.
// Calling it twice is harmless.
func (q *queue) leave(t *ticket) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.done {
		return
	}
	t.done = true
	if t.held {
		t.held = false
		if len(q.waiting) == 0 {
			q.busy = false
			return
		}
		next := q.waiting[0]
		q.waiting = q.waiting[1:]
		next.held = true
		close(next.granted)
		q.notify(0)
		return
	}
	for i, w := range q.waiting {
		if w == t {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			q.notify(i)
			return
		}
	}
}

// notify tells the waiting tickets from index i on that they moved.
func (q *queue) notify(i int) {
	for _, w := range q.waiting[i:] {
		select {
		case w.moved <- struct{}{}:
		default: // a signal is pending already
		}
	}
}

// status says whether the device is busy and how many requests wait.
func (q *queue) status() (running bool, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy, len(q.waiting)
}
