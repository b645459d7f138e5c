package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
)

// long is a generation that takes many seconds unless cancelled.
const long = `{"num_samples":2,"sequence_length":24,"iterations":20000,"seed":1,"judge":"none","stream":true}`

// longIterations is long's iteration count: run to its end, it encodes at
// least this many times.
const longIterations = 20000

// countingBackend counts the Encode calls of every Net it loads.
type countingBackend struct {
	engine.Backend
	encodes *atomic.Int64
}

func (b countingBackend) Load(ctx context.Context, m *model.Model) (engine.Net, error) {
	n, err := b.Backend.Load(ctx, m)
	if err != nil {
		return nil, err
	}
	return countingNet{Net: n, encodes: b.encodes}, nil
}

type countingNet struct {
	engine.Net
	encodes *atomic.Int64
}

func (n countingNet) Encode(ctx context.Context, tokens []int32, B, T int) (engine.Hidden, error) {
	n.encodes.Add(1)
	return n.Net.Encode(ctx, tokens, B, T)
}

// openStream posts body and returns its events as they arrive. It returns
// its error instead of failing the test, so goroutines can use it (t.Fatal
// must run on the test's goroutine); streamEvents is the failing form.
func openStream(ctx context.Context, ts *httptest.Server, path, body string) (<-chan event, *http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+path, strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan event, 1024)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = event{"event": "bad_line", "line": sc.Text()}
			}
			ch <- ev
		}
	}()
	return ch, resp, nil
}

// next waits for the next event of a stream, failing after a while.
func next(t *testing.T, ch <-chan event, what string) event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the stream ended", what)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no event within 10 s", what)
	}
	return nil
}

// waitFor reads events until one named name arrives.
func waitFor(t *testing.T, ch <-chan event, name string) event {
	t.Helper()
	for {
		ev := next(t, ch, "waiting for "+name)
		if ev.name() == name {
			return ev
		}
		if ev.name() == "error" || ev.name() == "bad_line" {
			t.Fatalf("waiting for %s: got %v", name, ev)
		}
	}
}

func noLimits(c *Config) { c.MaxIterations = 1 << 20 }

func TestCancelledRequestFreesTheDevice(t *testing.T) {
	var encodes atomic.Int64
	s, ts := newTestServer(t, func(c *Config) {
		noLimits(c)
		c.Backend = countingBackend{Backend: c.Backend, encodes: &encodes}
	})
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	ch1, _ := streamEvents(t, ctx1, ts, "/v1/generate", long)
	waitFor(t, ch1, "start")
	waitFor(t, ch1, "iteration")
	waitFor(t, ch1, "iteration")

	cancel1()
	ch2, _ := streamEvents(t, context.Background(), ts, "/v1/generate", `{`+small+`,"seed":2,"stream":true}`)
	waitFor(t, ch2, "start")
	// The device was handed over at the cancel, not at the end of the first
	// generation: counted, not timed (a busy machine cannot fail it).
	if n := encodes.Load(); n >= longIterations {
		t.Errorf("the second request started after %d encodes; the first, cancelled after 2 of its %d iterations, ran to its end", n, longIterations)
	}
	done := waitFor(t, ch2, "done")
	if len(done["samples"].([]any)) != 2 {
		t.Errorf("done = %v", done)
	}
	// The first stream ended without done.
	for ev := range ch1 {
		if ev.name() == "done" {
			t.Error("the cancelled request finished")
		}
	}
	if running, waiting := s.queue.status(); running || waiting != 0 {
		t.Errorf("queue after both: running %v, waiting %d", running, waiting)
	}
}

func TestConcurrentClientsGetTheirOwnResults(t *testing.T) {
	_, ts := newTestServer(t, noLimits)
	seeds := []int{11, 12, 13, 14, 15}
	body := func(seed int, stream bool) string {
		return fmt.Sprintf(`{"num_samples":2,"sequence_length":20,"iterations":5,"seed":%d,"stream":%v}`, seed, stream)
	}
	// Alone, one after the other.
	solo := map[int][][]int32{}
	for _, seed := range seeds {
		resp, data := post(t, ts, "/v1/generate", body(seed, false))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("seed %d: %d %s", seed, resp.StatusCode, data)
		}
		solo[seed] = tokensOf(decodeDone(t, data))
	}

	// A long request holds the device while the others arrive together.
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	chB, _ := streamEvents(t, ctxB, ts, "/v1/generate", long)
	waitFor(t, chB, "start")

	type outcome struct {
		seed      int
		positions []int
		iters     int
		done      event
		order     []string
		err       string
	}
	firstQueued := make(chan int, len(seeds))
	results := make(chan outcome, len(seeds))
	var wg sync.WaitGroup
	for _, seed := range seeds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := outcome{seed: seed}
			ch, _, err := openStream(context.Background(), ts, "/v1/generate", body(seed, true))
			if err != nil {
				out.err = err.Error()
				firstQueued <- 0 // the main goroutine counts one arrival per client
				results <- out
				return
			}
			for ev := range ch {
				out.order = append(out.order, ev.name())
				switch ev.name() {
				case "queued":
					p := int(ev["position"].(float64))
					if len(out.positions) == 0 {
						firstQueued <- p
					}
					out.positions = append(out.positions, p)
				case "iteration":
					out.iters++
				case "done":
					out.done = ev
				case "error", "bad_line":
					out.err = fmt.Sprint(ev)
				}
			}
			results <- out
		}()
	}
	var first []int
	for range seeds {
		select {
		case p := <-firstQueued:
			first = append(first, p)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d clients were queued", len(first), len(seeds))
		}
	}
	sort.Ints(first)
	if !reflect.DeepEqual(first, []int{1, 2, 3, 4, 5}) {
		t.Errorf("first queued positions %v, want 1..5", first)
	}
	cancelB() // the waiting clients now run one by one
	wg.Wait()
	close(results)
	n := 0
	for out := range results {
		n++
		if out.err != "" || out.done == nil {
			t.Errorf("seed %d: err %s, events %v", out.seed, out.err, out.order)
			continue
		}
		for i := 1; i < len(out.positions); i++ {
			if out.positions[i] >= out.positions[i-1] {
				t.Errorf("seed %d: positions %v do not decrease", out.seed, out.positions)
			}
		}
		if last := out.positions[len(out.positions)-1]; last < 1 {
			t.Errorf("seed %d: positions %v", out.seed, out.positions)
		}
		want := append(make([]string, len(out.positions)), "start", "iteration", "iteration", "iteration", "iteration", "iteration", "done")
		for i := range out.positions {
			want[i] = "queued"
		}
		if !reflect.DeepEqual(out.order, want) {
			t.Errorf("seed %d: events %v", out.seed, out.order)
		}
		if out.done["seed"] != float64(out.seed) {
			t.Errorf("seed %d: done reports seed %v", out.seed, out.done["seed"])
		}
		var got [][]int32
		for _, smp := range out.done["samples"].([]any) {
			var row []int32
			for _, tok := range smp.(map[string]any)["tokens"].([]any) {
				row = append(row, int32(tok.(float64)))
			}
			got = append(got, row)
		}
		if !reflect.DeepEqual(got, solo[out.seed]) {
			t.Errorf("seed %d: samples differ from the same seed alone", out.seed)
		}
	}
	if n != len(seeds) {
		t.Errorf("%d results, want %d", n, len(seeds))
	}
}

func TestQueueFullIs503(t *testing.T) {
	s, ts := newTestServer(t, func(c *Config) { noLimits(c); c.MaxQueue = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	chB, _ := streamEvents(t, ctx, ts, "/v1/generate", long)
	waitFor(t, chB, "start")
	chW, _ := streamEvents(t, ctx, ts, "/v1/generate", `{`+small+`,"seed":1,"stream":true}`)
	if ev := waitFor(t, chW, "queued"); ev["position"] != 1.0 {
		t.Errorf("queued = %v", ev)
	}
	resp, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":2}`)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), data)
	}
	if e := errorOf(t, data); e.Code != "queue_full" {
		t.Errorf("error %+v", e)
	}
	// Health shows the queue.
	var h health
	_, hd := do(t, ts, http.MethodGet, "/v1/health", "")
	if err := jsonUnmarshal(hd, &h); err != nil || !h.Queue.Running || h.Queue.Waiting != 1 {
		t.Errorf("health queue %+v (%v)", h.Queue, err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		running, waiting := s.queue.status()
		if !running && waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue still busy after both clients left: running %v waiting %d", running, waiting)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestQueueOrder(t *testing.T) {
	q := newQueue(3)
	a, err := q.join()
	if err != nil || q.position(a) != 0 {
		t.Fatalf("first ticket: %v position %d", err, q.position(a))
	}
	b, _ := q.join()
	c, _ := q.join()
	d, _ := q.join()
	if _, err := q.join(); err == nil {
		t.Fatal("a fifth ticket joined a queue of 3 waiting")
	}
	if q.position(b) != 1 || q.position(c) != 2 || q.position(d) != 3 {
		t.Fatalf("positions %d %d %d", q.position(b), q.position(c), q.position(d))
	}
	// c leaves the line: d moves up and is told so.
	q.leave(c)
	if q.position(d) != 2 || q.position(c) != -1 {
		t.Errorf("after c left: d at %d, c at %d", q.position(d), q.position(c))
	}
	select {
	case <-d.moved:
	default:
		t.Error("d was not told it moved")
	}
	// A context that ends stops the wait; leave then removes the ticket.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.wait(ctx, d, func(int) {}); err == nil {
		t.Error("wait with a cancelled context returned nil")
	}
	// The turn passes in order: a -> b -> (d left) -> nobody.
	go func() { q.leave(a) }()
	if err := q.wait(context.Background(), b, func(int) {}); err != nil {
		t.Fatal(err)
	}
	if q.position(b) != 0 {
		t.Errorf("b holds the turn but is at %d", q.position(b))
	}
	q.leave(d)
	q.leave(b)
	q.leave(b) // twice is harmless
	if running, waiting := q.status(); running || waiting != 0 {
		t.Errorf("status running %v waiting %d", running, waiting)
	}
	e, _ := q.join()
	if q.position(e) != 0 {
		t.Error("a free queue did not grant the turn at once")
	}
}

// Putting a model on the backend waits for the device like a generation.
func TestLoadWaitsForTheDevice(t *testing.T) {
	_, ts := newTestServer(t, noLimits)
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	chB, _ := streamEvents(t, ctxB, ts, "/v1/generate", long)
	waitFor(t, chB, "start")
	ch, resp := streamEvents(t, context.Background(), ts, "/v1/models", `{"id":"cls"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if p := waitFor(t, ch, "progress"); p["bytes"] != 0.0 {
		t.Errorf("first progress %v", p)
	}
	if q := waitFor(t, ch, "queued"); q["position"] != 1.0 {
		t.Errorf("queued %v", q)
	}
	cancelB()
	if l := waitFor(t, ch, "loaded"); l["model"].(map[string]any)["id"] != "cls" {
		t.Errorf("loaded %v", l)
	}
}
