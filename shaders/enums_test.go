package shaders

import (
	"strings"
	"testing"

	"github.com/remask/remask/engine/rng"
	"github.com/remask/remask/internal/step"
)

// wgslEnums lists every constant shared between Go and WGSL: the WGSL
// file, its `const NAME: u32`, and the Go constant it must equal. A kernel
// that reads an enum from Params or writes a shared layout names it with
// one of these constants instead of a bare number.
var wgslEnums = []struct {
	file, name string
	want       uint64
}{
	// Remasking strategies: RemaskParams.Strategy = uint32(step.Strategy).
	{"remask.wgsl", "STRATEGY_CRITIC", uint64(step.Critic)},
	{"remask.wgsl", "STRATEGY_CALIBRATED", uint64(step.Calibrated)},
	{"remask.wgsl", "STRATEGY_SELF", uint64(step.Self)},
	{"remask.wgsl", "STRATEGY_RANDOM", uint64(step.Random)},
	{"remask.wgsl", "STRATEGY_MODEL", uint64(step.Model)},
	// Random streams: engine/rng's purposes (the Philox counter's 4th word).
	{"remask.wgsl", "PURPOSE_REMASK_NOISE", uint64(rng.RemaskNoise)},
	{"remask.wgsl", "PURPOSE_REMASK_LUCK", uint64(rng.RemaskLuck)},
	{"remask.wgsl", "PURPOSE_REMASK_RANDOM", uint64(rng.RemaskRandom)},
	{"sample.wgsl", "PURPOSE_TOKEN", uint64(rng.Token)},
	// sample.wgsl's modes and fill modes.
	{"sample.wgsl", "MODE_LIST", SampleList},
	{"sample.wgsl", "MODE_FILL", SampleFill},
	{"sample.wgsl", "KEEP_UNMASKED", KeepUnmasked},
	{"sample.wgsl", "KEEP_PROTECTED", KeepProtected},
	// select.wgsl's modes and counter layout.
	{"select.wgsl", "SELECT_RATIO", SelectRatio},
	{"select.wgsl", "SELECT_THRESHOLD", SelectThreshold},
	{"select.wgsl", "CNT_TOTAL", CountTotal},
	{"select.wgsl", "CNT_MIN_WRONG", CountMinWrong},
	{"select.wgsl", "CNT_ROWS", CountRows},
	{"select.wgsl", "ERR_SCORE", ErrScore},
	{"sample.wgsl", "ERR_DRAW", ErrDraw},
	// The unmask method: orderings (CertainParams.Ordering =
	// uint32(step.Ordering)), the order noise stream, certain.wgsl's output
	// as unmask.wgsl reads it, unmask.wgsl's state and counters.
	{"certain.wgsl", "ORDER_CONFIDENCE", uint64(step.OrderConfidence)},
	{"certain.wgsl", "ORDER_MARGIN", uint64(step.OrderMargin)},
	{"certain.wgsl", "ORDER_ENTROPY", uint64(step.OrderEntropy)},
	{"certain.wgsl", "ORDER_RANDOM", uint64(step.OrderRandom)},
	{"certain.wgsl", "PURPOSE_ORDER_NOISE", uint64(rng.OrderNoise)},
	{"certain.wgsl", "CERT_WORDS", CertainWords},
	{"certain.wgsl", "CERT_KEY", CertainKey},
	{"certain.wgsl", "CERT_P1", CertainP1},
	{"certain.wgsl", "CERT_GAP", CertainGap},
	{"unmask.wgsl", "CERT_WORDS", CertainWords},
	{"unmask.wgsl", "CERT_KEY", CertainKey},
	{"unmask.wgsl", "CERT_P1", CertainP1},
	{"unmask.wgsl", "CERT_GAP", CertainGap},
	{"unmask.wgsl", "STATE_WORDS", UnmaskStateWords},
	{"unmask.wgsl", "CNT_TOTAL", CountTotal},
	{"unmask.wgsl", "CNT_ROWS", CountRows},
	// stats.wgsl's output layout.
	{"stats.wgsl", "STATS_WORDS", StatsWords},
	{"stats.wgsl", "STATS_SELF", StatsSelf},
	{"stats.wgsl", "STATS_SELF_COUNT", StatsSelfCount},
	{"stats.wgsl", "STATS_CRITIC_MEAN", StatsCriticMean},
	{"stats.wgsl", "STATS_CRITIC_P10", StatsCriticP10},
	{"stats.wgsl", "STATS_CRITIC_P50", StatsCriticP50},
	{"stats.wgsl", "STATS_CRITIC_P90", StatsCriticP90},
	{"stats.wgsl", "STATS_CRITIC_COUNT", StatsCriticCount},
	{"stats.wgsl", "STATS_CRITIC_NONFINITE", StatsCriticNonFinite},
	// matmul.wgsl's activations and weight dtypes (the wload block, spliced
	// into embednorm.wgsl and gather.wgsl, carries the WEIGHT_* constants).
	{"matmul.wgsl", "ACT_NONE", ActNone},
	{"matmul.wgsl", "ACT_GELU", ActGELU},
	{"matmul.wgsl", "ACT_SILU", ActSiLU},
	{"matmul.wgsl", "WEIGHT_F32", WeightF32},
	{"matmul.wgsl", "WEIGHT_F16", WeightF16},
	{"matmul.wgsl", "WEIGHT_BF16", WeightBF16},
	// waveplan.wgsl's phases and wave state layout.
	{"waveplan.wgsl", "PHASE_PLAN", WavePlan},
	{"waveplan.wgsl", "PHASE_SCAN", WaveScan},
	{"waveplan.wgsl", "PHASE_LIST", WaveList},
	{"waveplan.wgsl", "W_MAX", WaveMax},
	{"waveplan.wgsl", "W_TOTAL", WaveTotal},
	{"waveplan.wgsl", "W_OVER", WaveOver},
	{"waveplan.wgsl", "W_LAST", WaveLast},
	{"waveplan.wgsl", "W_TICKET", WaveTicket},
	{"waveplan.wgsl", "WS_CNT", WaveCounts},
	{"waveplan.wgsl", "SLOT_WORDS", WaveSlotWords},
	{"waveplan.wgsl", "LIST_LEFT", WaveListLeft},
	{"waveplan.wgsl", "LIST_RIGHT", WaveListRight},
	{"samplerwave.wgsl", "W_TICKET", WaveTicket},
	{"samplerwave.wgsl", "SLOT_WORDS", WaveSlotWords},
	{"samplerwave.wgsl", "LIST_LEFT", WaveListLeft},
	{"samplerwave.wgsl", "LIST_RIGHT", WaveListRight},
	{"samplerwave.wgsl", "LIST_POS", WaveListPos},
	// samplerwave.wgsl's draw is sample.wgsl's (its block, spliced in).
	{"samplerwave.wgsl", "PURPOSE_TOKEN", uint64(rng.Token)},
	{"samplerwave.wgsl", "ERR_DRAW", ErrDraw},
	// "No id": sample.wgsl's failed draw, waveplan.wgsl's none and
	// samplerwave.wgsl's missing neighbour.
	{"sample.wgsl", "NONE", NoID},
	{"select.wgsl", "NONE", NoID},
	{"waveplan.wgsl", "NONE", NoID},
	{"samplerwave.wgsl", "NONE", NoID},
}

// TestEnumsMatchWGSL checks every shared constant (wgslEnums) against the
// WGSL declaration.
func TestEnumsMatchWGSL(t *testing.T) {
	for _, e := range wgslEnums {
		if err := CheckConst(e.file, e.name, e.want); err != nil {
			t.Error(err)
		}
	}
	// Every strategy internal/step knows has its WGSL constant.
	if n := len(step.Strategies); n != 5 {
		t.Errorf("internal/step has %d strategies; add the new ones to remask.wgsl and wgslEnums", n)
	}
	// Every ordering of the unmask method has its certain.wgsl constant.
	if n := len(step.OrderingNames()); n != 4 {
		t.Errorf("internal/step has %d orderings; add the new ones to certain.wgsl and wgslEnums", n)
	}
}

// TestCheckConstCatchesDrift makes sure CheckConst can fail: for every entry
// of wgslEnums, a Go value one off, and a missing, mistyped or non-literal
// WGSL constant.
func TestCheckConstCatchesDrift(t *testing.T) {
	for _, e := range wgslEnums {
		if err := CheckConst(e.file, e.name, e.want+1); err == nil {
			t.Errorf("%s %s: a Go value of %d passed (WGSL has %d)", e.file, e.name, e.want+1, e.want)
		}
	}
	if err := CheckConst("remask.wgsl", "STRATEGY_NOPE", 0); err == nil || !strings.Contains(err.Error(), "no module-scope const") {
		t.Errorf("a missing constant: %v", err)
	}
	if err := CheckConst("attention.wgsl", "NEG", 0); err == nil || !strings.Contains(err.Error(), "not a u32") {
		t.Errorf("an f32 constant: %v", err)
	}
	if err := CheckConst("matmul.wgsl", "WGX", 16); err == nil || !strings.Contains(err.Error(), "not a plain u32 literal") {
		t.Errorf("a constant expression: %v", err)
	}
}
