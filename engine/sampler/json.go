package sampler

import (
	"bytes"
	"encoding/json"
	"math"
)

// The JSON schema of a result's samples, written once: the CLI's --json
// object, `remask score --json` and the API's done event all encode
// Sample and CriticStats through these methods.
//
// JSON has no NaN or infinity: a metric that is not a finite number (a
// critic over a row with no valid position is NaN; a self-confidence with
// no position to score is -Inf) is written as null, as is a metric that
// was not computed (a nil pointer). A sample's tokens are [] when empty,
// never null.

// JSONNumber is x for JSON: x, or nil (null) when x is NaN or infinite.
func JSONNumber(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// JSONNumberPtr is JSONNumber(*p), or nil when p is nil (not computed).
func JSONNumberPtr(p *float64) *float64 {
	if p == nil {
		return nil
	}
	return JSONNumber(*p)
}

// FiniteOrZero is x, or 0 when x is NaN or infinite (a rate over no time).
func FiniteOrZero(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// MarshalJSON writes {"mean", "p10", "p50", "p90"}, non-finite values as null.
func (c CriticStats) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		Mean *float64 `json:"mean"`
		P10  *float64 `json:"p10"`
		P50  *float64 `json:"p50"`
		P90  *float64 `json:"p90"`
	}{JSONNumber(c.Mean), JSONNumber(c.P10), JSONNumber(c.P50), JSONNumber(c.P90)})
}

// MarshalJSON writes {"text", "tokens", "judge_score", "self_confidence",
// "critic"} and, for method unmask (whose steps are adaptive), "steps":
// metrics not computed or not finite as null, tokens as [] when there are
// none.
func (s Sample) MarshalJSON() ([]byte, error) {
	tokens := s.Tokens
	if tokens == nil {
		tokens = []int32{}
	}
	return marshal(struct {
		Text           string       `json:"text"`
		Tokens         []int32      `json:"tokens"`
		JudgeScore     *float64     `json:"judge_score"`
		SelfConfidence *float64     `json:"self_confidence"`
		Critic         *CriticStats `json:"critic"`
		Steps          int          `json:"steps,omitempty"`
	}{s.Text, tokens, JSONNumberPtr(s.JudgeScore), JSONNumberPtr(s.SelfConfidence), s.Critic, s.Steps})
}

// marshal encodes v without escaping <, > and & (the caller's encoder
// escapes them when it is set to: it compacts what MarshalJSON returns
// with its own escaping).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads what MarshalJSON writes: null becomes NaN.
func (c *CriticStats) UnmarshalJSON(b []byte) error {
	var v struct {
		Mean *float64 `json:"mean"`
		P10  *float64 `json:"p10"`
		P50  *float64 `json:"p50"`
		P90  *float64 `json:"p90"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	val := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	*c = CriticStats{Mean: val(v.Mean), P10: val(v.P10), P50: val(v.P50), P90: val(v.P90)}
	return nil
}

// ResultJSON is the head that the JSON objects of a finished generation
// share: the CLI's --json object embeds it first, the API's done event
// right after its "event" field, and each adds its own fields after it.
type ResultJSON struct {
	Samples         []Sample `json:"samples"`
	Timings         Timings  `json:"timings"`
	Seconds         float64  `json:"seconds"`
	TokensPerSecond float64  `json:"tokens_per_second"`
}

// JSON returns r's ResultJSON: samples [] when there are none, Seconds and
// TokensPerSecond 0 when not finite.
func (r *Result) JSON() ResultJSON {
	samples := r.Samples
	if samples == nil {
		samples = []Sample{}
	}
	return ResultJSON{Samples: samples, Timings: r.Timings, Seconds: FiniteOrZero(r.Seconds), TokensPerSecond: FiniteOrZero(r.TokensPerSecond)}
}
