package sampler

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// TestSizeChecksOverflowSafe: num_samples x sequence_length that overflows
// int, that exceeds MaxTokens, or whose memory exceeds the budget is an
// OptionError naming num_samples and the limit, from Check and Generate,
// before anything is allocated (issue 11, defect 4: the B*T check itself
// overflowed, then makeslice panicked; 262144 x 1024 passed it and died of
// "out of memory").
func TestSizeChecksOverflowSafe(t *testing.T) {
	lm := newLM(lmSpec{critic: true, block: 1024})
	for _, tc := range []struct {
		B, T   int
		budget int64
		want   string
	}{
		{math.MaxInt, 32, 0, "more than the 268435456 tokens"},
		{math.MaxInt / 16, 32, 0, "more than the 268435456 tokens"}, // B*T wraps to a small number
		{1 << 40, 1024, 0, "more than the 268435456 tokens"},
		{1 << 18, 1024, 0, "more than the memory budget of 8.0 GiB"}, // exactly MaxTokens
		{1<<18 + 1, 1024, 0, "more than the 268435456 tokens"},
		{1 << 17, 1024, 1 << 20, "more than the memory budget of 1.0 MiB"},
		{4, 8, 100, "not one sample of this length fits"},
	} {
		o := baseOpts()
		o.NumSamples, o.SequenceLength, o.MaxMemory = tc.B, tc.T, tc.budget
		_, err := Check(lm, nil, nil, o)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != "num_samples" || !strings.Contains(oe.Msg, tc.want) {
			t.Errorf("%d x %d, budget %d: err %v, want an num_samples error containing %q", tc.B, tc.T, tc.budget, err, tc.want)
			continue
		}
		if _, err := Generate(t.Context(), Models{LM: &fakeNet{m: lm}}, o, nil); !errors.As(err, &oe) {
			t.Errorf("%d x %d: Generate: %v, want the OptionError", tc.B, tc.T, err)
		}
	}
	// Within the budget it runs.
	o := baseOpts()
	o.NumSamples, o.SequenceLength, o.MaxMemory = 2, 8, 1<<20
	if _, err := Check(lm, nil, nil, o); err != nil {
		t.Errorf("2 x 8 within 1 MiB: %v", err)
	}
	o.MaxMemory = -1
	if _, err := Check(lm, nil, nil, o); err == nil || !strings.Contains(err.Error(), "max_memory") {
		t.Errorf("max_memory -1: %v", err)
	}
}

// TestMemoryNeed: the estimate grows with every model and overflows to
// ok=false, never to a small number.
func TestMemoryNeed(t *testing.T) {
	lm, judge := &newLM(lmSpec{}).Config, &tinyJudge(64, true).Config
	a, ok1 := MemoryNeed(lm, nil, nil, 16, 64, 10, false)
	b, ok2 := MemoryNeed(lm, judge, nil, 16, 64, 10, false)
	c, ok3 := MemoryNeed(lm, judge, nil, 16, 64, 10, true)
	if !ok1 || !ok2 || !ok3 || !(a > 0 && b > a && c > b) {
		t.Errorf("need lm %d, +judge %d, +record %d (ok %v %v %v): want increasing", a, b, c, ok1, ok2, ok3)
	}
	// 16*64 positions x (32 host + 13*4*4 trunk + 2*4*10 logits) bytes.
	if want := int64(16 * 64 * (32 + 13*4*4 + 2*4*10)); a != want {
		t.Errorf("need %d, want %d", a, want)
	}
	if _, ok := MemoryNeed(lm, nil, nil, math.MaxInt, math.MaxInt, 1, false); ok {
		t.Error("MaxInt x MaxInt: ok, want overflow")
	}
	if _, ok := MemoryNeed(lm, nil, nil, 1<<30, 1<<30, math.MaxInt, true); ok {
		t.Error("records of MaxInt iterations: ok, want overflow")
	}
}
