package sampler

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// TestSampleJSON pins the schema of a sample (the CLI's --json, remask
// score --json and the API's done event share it): non-finite and missing
// metrics are null, empty tokens [], and <, > and & are escaped only by an
// encoder that asks for it.
func TestSampleJSON(t *testing.T) {
	judge, conf := 0.5, math.Inf(-1)
	samples := []Sample{
		{Text: "a<b>&c", Tokens: []int32{1, 2}, JudgeScore: &judge, SelfConfidence: &conf,
			Critic: &CriticStats{Mean: math.NaN(), P10: 0.25, P50: math.Inf(1), P90: 1}},
		{},
	}
	const want = `[{"text":"a<b>&c","tokens":[1,2],"judge_score":0.5,"self_confidence":null,"critic":{"mean":null,"p10":0.25,"p50":null,"p90":1}},` +
		`{"text":"","tokens":[],"judge_score":null,"self_confidence":null,"critic":null}]` + "\n"
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(samples); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
	escaped, err := json.Marshal(samples[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(escaped, []byte(`"a\u003cb\u003e\u0026c"`)) {
		t.Errorf("json.Marshal (escaping HTML) gave %s", escaped)
	}
	// Decoding reads null critic statistics back as NaN.
	var back []Sample
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if c := back[0].Critic; c == nil || !math.IsNaN(c.Mean) || c.P10 != 0.25 || !math.IsNaN(c.P50) || c.P90 != 1 {
		t.Errorf("decoded critic %+v", back[0].Critic)
	}
	if back[0].SelfConfidence != nil || *back[0].JudgeScore != 0.5 {
		t.Errorf("decoded %+v", back[0])
	}
}
