package api

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// small is a quick valid request on the tiny models.
const small = `"num_samples":2,"sequence_length":16,"iterations":4`

func TestGenerateValidation(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) {
		c.MaxTokens = 1000
		c.MaxIterations = 50
		c.MaxBodyBytes = 4096
	})
	cases := []struct {
		name   string
		body   string
		status int
		code   string
		field  string
		msg    string // a part of the message
	}{
		{"unknown field", `{"num_samples":1,"temprature":0.5}`, 400, "unknown_field", "temprature", "allowed fields: method, num_samples"},
		{"internal field", `{"record":true}`, 400, "unknown_field", "record", `unknown field "record"`},
		{"string for number", `{"temperature":"hot"}`, 400, "invalid_type", "temperature", "must be a number, not a JSON string"},
		{"float for integer", `{"num_samples":1.5}`, 400, "invalid_type", "num_samples", "must be an integer, not 1.5"},
		{"negative seed", `{"seed":-1}`, 400, "invalid_type", "seed", "must be a non-negative integer, not -1"},
		{"ratio item", `{"masking_ratios":[0.5,"x"]}`, 400, "invalid_type", "masking_ratios", "an array of numbers"},
		{"bool as string", `{"stream":"yes"}`, 400, "invalid_type", "stream", "true or false"},
		{"model as number", `{"model":7}`, 400, "invalid_type", "model", "must be a string"},
		{"array body", `[1,2]`, 400, "invalid_json", "", "JSON array"},
		{"empty body", ``, 400, "invalid_json", "", "empty"},
		{"syntax", `{"num_samples":}`, 400, "invalid_json", "", "not valid JSON"},
		{"cut off", `{"num_samples":2`, 400, "invalid_json", "", "ends in the middle"},
		{"two values", `{} {}`, 400, "invalid_json", "", "more than one JSON value"},
		{"top_p out of range", `{` + small + `,"top_p":2}`, 400, "invalid_option", "top_p", "(0, 1]"},
		{"temperature zero", `{` + small + `,"temperature":0}`, 400, "invalid_option", "temperature", "> 0"},
		{"num_samples zero", `{"num_samples":0,"sequence_length":8}`, 400, "invalid_option", "num_samples", "at least 1"},
		{"bad method", `{` + small + `,"method":"magic"}`, 400, "invalid_option", "method", "diffusion, multinomial, unmask"},
		{"bad ordering", `{` + small + `,"method":"unmask","ordering":"best"}`, 400, "invalid_option", "ordering", "confidence, margin, entropy, random"},
		{"ordering without unmask", `{` + small + `,"ordering":"margin"}`, 400, "invalid_option", "ordering", "method unmask only"},
		{"threshold out of range", `{` + small + `,"method":"unmask","confidence_threshold":1.5}`, 400, "invalid_option", "confidence_threshold", "[0, 1]"},
		{"block_length as float", `{` + small + `,"method":"unmask","block_length":2.5}`, 400, "invalid_type", "block_length", "must be an integer"},
		{"too few steps for blocks", `{` + small + `,"method":"unmask","block_length":2}`, 400, "invalid_option", "iterations", "every block needs a step"},
		{"bad compat", `{` + small + `,"compat":"wave-cap,bogus"}`, 400, "invalid_option", "compat", `"bogus"`},
		{"ratio out of range", `{` + small + `,"masking_ratios":[0.5,1.5]}`, 400, "invalid_option", "masking_ratios", "item 1"},
		{"include_tokens without stream", `{` + small + `,"include_tokens":true}`, 400, "invalid_option", "include_tokens", `"stream": true`},
		{"include_text without stream", `{` + small + `,"include_text":true}`, 400, "invalid_option", "include_text", `"stream": true`},
		{"include_wrongness without stream", `{` + small + `,"include_wrongness":true}`, 400, "invalid_option", "include_wrongness", `"stream": true`},
		{"too many iterations", `{"num_samples":1,"sequence_length":8,"iterations":51}`, 400, "invalid_option", "iterations", "limit of 50"},
		{"too many ratios", `{"num_samples":1,"sequence_length":8,"masking_ratios":[` + strings.Repeat("0.5,", 60) + `0.5]}`, 400, "invalid_option", "masking_ratios", "limit of 50"},
		{"over the token limit", `{"num_samples":100,"sequence_length":20}`, 413, "too_many_tokens", "num_samples", "100 x 20 = 2000 tokens is over this server's limit of 1000"},
		{"huge product", `{"num_samples":9000000000000000000,"sequence_length":9000000000000000000}`, 413, "too_many_tokens", "num_samples", "limit of 1000"},
		{"template over the limit", `{"num_samples":100,"template":"` + strings.Repeat("_", 20) + `"}`, 413, "too_many_tokens", "num_samples", "the template's length"},
		{"body too large", `{"seed_text":"` + strings.Repeat("a", 5000) + `"}`, 413, "body_too_large", "", "4096 bytes"},
		{"unknown model", `{` + small + `,"model":"gpt"}`, 404, "unknown_model", "model", "known ids: lm, judge, cls, d7"},
		{"unknown judge", `{` + small + `,"judge":"gpt"}`, 404, "unknown_model", "judge", `"gpt"`},
		{"unknown remasker", `{` + small + `,"remasking_model":"gpt"}`, 404, "unknown_model", "remasking_model", `"gpt"`},
		// Checks that need the model: the sampler's own messages.
		{"longer than block_size", `{"num_samples":1,"sequence_length":33}`, 400, "invalid_option", "sequence_length", "block_size is 32"},
		{"seed text outside the vocabulary", `{` + small + `,"seed_text":"héllo"}`, 400, "invalid_option", "seed_text", `"é"`},
		{"seed text too long", `{"num_samples":1,"sequence_length":4,"seed_text":"hello"}`, 400, "invalid_option", "seed_text", "5 characters"},
		{"template without placeholder", `{"num_samples":1,"template":"abc"}`, 400, "invalid_option", "template", "no placeholder"},
		{"judge as model", `{` + small + `,"model":"judge"}`, 400, "invalid_option", "model", "not a language_model"},
		{"lm as judge", `{` + small + `,"judge":"d7"}`, 400, "invalid_option", "judge", "not a sequence_scorer"},
		{"remasking model missing", `{` + small + `,"remasking":"model"}`, 400, "invalid_option", "remasking_model", "token classifier"},
		{"remasker not a classifier", `{` + small + `,"remasking_model":"judge"}`, 400, "invalid_option", "remasking_model", "not a token_classifier"},
		{"metric judge without judge", `{` + small + `,"judge":"none","quality_metric":"judge"}`, 400, "invalid_option", "quality_metric", "judge model"},
		{"default judge cannot read d7", `{` + small + `,"model":"d7","quality_metric":"judge"}`, 400, "invalid_option", "judge", "different vocabulary"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := post(t, ts, "/v1/generate", tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, data)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			e := errorOf(t, data) // exactly one JSON object: nothing half-written
			if e.Code != tc.code || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("error = %+v\nwant code %q field %q message containing %q", e, tc.code, tc.field, tc.msg)
			}
			switch e.Code {
			case "unknown_model":
				if !reflect.DeepEqual(e.Known, []string{"lm", "judge", "cls", "d7"}) {
					t.Errorf("known = %v", e.Known)
				}
			case "too_many_tokens":
				if e.Limit != 1000 {
					t.Errorf("limit = %d", e.Limit)
				}
				if tc.name == "over the token limit" && e.Requested != 2000 {
					t.Errorf("requested = %d", e.Requested)
				}
			}
		})
	}
}

func TestGenerateDefaultModelMissing(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) { c.DefaultModel = "" }) // "shakespeare"
	resp, data := post(t, ts, "/v1/generate", `{`+small+`}`)
	e := errorOf(t, data)
	if resp.StatusCode != 404 || e.Field != "model" || !strings.Contains(e.Message, `default model "shakespeare"`) || !strings.Contains(e.Message, "known ids: lm") {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
}

func TestGenerateNonStreaming(t *testing.T) {
	_, ts := newTestServer(t, nil)
	body := `{` + small + `,"seed":42,"temperature":0.9}`
	resp, data := post(t, ts, "/v1/generate", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	d := decodeDone(t, data)
	if d.Event != "done" || len(d.Samples) != 2 || d.Seed != 42 || d.Model != "lm" || d.Judge != "judge" ||
		d.Backend != "cpu" || d.IterationsRun != 4 || d.Metric != "judge" || d.Strategy != "critic" || d.Warnings == nil {
		t.Errorf("done = %+v", d)
	}
	for i, s := range d.Samples {
		if len(s.Tokens) != 16 || utf8.RuneCountInString(s.Text) != 16 || s.JudgeScore == nil || s.SelfConfidence == nil || s.Critic == nil || math.IsNaN(s.Critic.Mean) {
			t.Errorf("sample %d = %+v", i, s)
		}
	}
	if d.Seconds <= 0 || d.TokensPerSecond <= 0 {
		t.Errorf("seconds %v tokens/s %v", d.Seconds, d.TokensPerSecond)
	}
	// The same seed gives the same samples; another seed others.
	_, data2 := post(t, ts, "/v1/generate", body)
	if !reflect.DeepEqual(tokensOf(d), tokensOf(decodeDone(t, data2))) {
		t.Error("the same seed gave different samples")
	}
	_, data3 := post(t, ts, "/v1/generate", `{`+small+`,"seed":43,"temperature":0.9}`)
	if reflect.DeepEqual(tokensOf(d), tokensOf(decodeDone(t, data3))) {
		t.Error("seeds 42 and 43 gave the same samples")
	}
}

func TestGenerateRandomSeedIsReportedAndRepeats(t *testing.T) {
	seeds := []uint64{777, 888}
	_, ts := newTestServer(t, func(c *Config) {
		c.NewSeed = func() (uint64, error) { s := seeds[0]; seeds = seeds[1:]; return s, nil }
	})
	_, data := post(t, ts, "/v1/generate", `{`+small+`}`)
	d := decodeDone(t, data)
	if d.Seed != 777 {
		t.Fatalf("seed %d, want the drawn 777", d.Seed)
	}
	_, data2 := post(t, ts, "/v1/generate", `{`+small+`,"seed":777}`)
	if !reflect.DeepEqual(tokensOf(d), tokensOf(decodeDone(t, data2))) {
		t.Error("passing the reported seed did not repeat the samples")
	}
	// The default seed source stays within JavaScript's exact integers.
	for range 100 {
		s, err := randomSeed()
		if err != nil || s >= 1<<53 {
			t.Fatalf("randomSeed = %d, %v", s, err)
		}
	}
}

func TestGenerateStreaming(t *testing.T) {
	_, ts := newTestServer(t, nil)
	body := `{` + small + `,"seed":5,"stream":true,"include_tokens":true,"include_text":true,"seed_text":"the","seed_placement":"prefix"}`
	resp, data := post(t, ts, "/v1/generate", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}
	evs := parseNDJSON(t, data)
	if len(evs) != 1+4+1 {
		t.Fatalf("%d events, want start + 4 iterations + done:\n%s", len(evs), data)
	}
	start := evs[0]
	if start.name() != "start" || start["seed"] != 5.0 || start["backend"] != "cpu" || start["model"] != "lm" {
		t.Errorf("start = %v", start)
	}
	opts := start["options"].(map[string]any)
	for k, v := range map[string]any{"num_samples": 2.0, "sequence_length": 16.0, "iterations": 4.0, "temperature": 0.8, "seed": 5.0,
		"seed_text": "the", "judge": "judge", "model": "lm", "compat": "", "schedule_mode": "ratio", "stream": true} {
		if opts[k] != v {
			t.Errorf("start.options[%s] = %v, want %v", k, opts[k], v)
		}
	}
	prevMasked := 2*16 + 1.0
	for i, ev := range evs[1:5] {
		if ev.name() != "iteration" || ev["iteration"] != float64(i+1) || ev["iterations"] != 4.0 {
			t.Fatalf("event %d = %v", i+1, ev)
		}
		masked := ev["masked"].(float64)
		if masked >= prevMasked {
			t.Errorf("iteration %d: masked %v, not below %v", i+1, masked, prevMasked)
		}
		prevMasked = masked
		rem := ev["remasked"].([]any)
		toks := ev["tokens"].([]any)
		text := ev["text"].([]any)
		if len(rem) != 2 || len(toks) != 2 || len(text) != 2 {
			t.Fatalf("iteration %d: %d remasked rows, %d token rows, %d texts", i+1, len(rem), len(toks), len(text))
		}
		for b := 0; b < 2; b++ {
			if len(toks[b].([]any)) != 16 || !strings.HasPrefix(text[b].(string), "the") {
				t.Errorf("iteration %d row %d: tokens %v text %q", i+1, b, toks[b], text[b])
			}
		}
		if i == 3 && (len(rem[0].([]any)) != 0 || len(rem[1].([]any)) != 0) {
			t.Errorf("the last iteration remasked %v", rem)
		}
		if i == 0 && len(rem[0].([]any)) == 0 {
			t.Errorf("iteration %d remasked nothing in row 0", i+1)
		}
	}
	if evs[1]["masked"] != float64(2*(16-3)) {
		t.Errorf("first iteration masked %v, want everything but the seed text", evs[1]["masked"])
	}
	done := evs[5]
	if done.name() != "done" {
		t.Fatalf("last event %v", done)
	}
	// The stream's done is the non-streaming answer (timings aside).
	_, plain := post(t, ts, "/v1/generate", `{`+small+`,"seed":5,"seed_text":"the","seed_placement":"prefix"}`)
	var dStream doneEvent
	line := strings.Split(strings.TrimSpace(string(data)), "\n")[5]
	if err := json.Unmarshal([]byte(line), &dStream); err != nil {
		t.Fatal(err)
	}
	dPlain := decodeDone(t, plain)
	if !reflect.DeepEqual(dStream.Samples, dPlain.Samples) {
		t.Errorf("streamed samples differ from the non-streamed ones")
	}
	for _, s := range dStream.Samples {
		if !strings.HasPrefix(s.Text, "the") {
			t.Errorf("sample %q lacks the prefix seed text", s.Text)
		}
	}
	// The last iteration's tokens are the final samples.
	last := evs[4]["tokens"].([]any)
	for b, s := range dStream.Samples {
		for p, tok := range last[b].([]any) {
			if int32(tok.(float64)) != s.Tokens[p] {
				t.Fatalf("row %d: last iteration tokens differ from the sample at %d", b, p)
			}
		}
	}

	// start.options posted again repeat the generation exactly.
	again, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	resp2, data2 := post(t, ts, "/v1/generate", string(again))
	if resp2.StatusCode != http.StatusOK {
		t.Fatalf("re-posting start.options: %d %s", resp2.StatusCode, data2)
	}
	evs2 := parseNDJSON(t, data2)
	var d2 doneEvent
	b2, _ := json.Marshal(evs2[len(evs2)-1])
	json.Unmarshal(b2, &d2)
	if !reflect.DeepEqual(d2.Samples, dStream.Samples) {
		t.Error("re-posting start.options gave other samples")
	}
}

func TestGenerateStreamWithoutPayloads(t *testing.T) {
	_, ts := newTestServer(t, nil)
	_, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":1,"stream":true,"judge":"none"}`)
	evs := parseNDJSON(t, data)
	for _, ev := range evs {
		if ev.name() == "iteration" {
			if _, ok := ev["tokens"]; ok {
				t.Errorf("tokens sent without include_tokens: %v", ev)
			}
			if _, ok := ev["text"]; ok {
				t.Errorf("text sent without include_text: %v", ev)
			}
		}
	}
	done := evs[len(evs)-1]
	if done.name() != "done" || done["judge"] != "none" || done["metric"] != "node" {
		t.Errorf("done = %v", done)
	}
}

func TestGenerateOptions(t *testing.T) {
	_, ts := newTestServer(t, nil)
	cases := []struct {
		name  string
		extra string
		check func(t *testing.T, d doneEvent)
	}{
		{"template", `"num_samples":2,"template":"to be __ not __ be","iterations":3`, func(t *testing.T, d doneEvent) {
			for _, s := range d.Samples {
				if len(s.Text) != 18 || s.Text[:6] != "to be " || s.Text[8:13] != " not " || s.Text[15:] != " be" {
					t.Errorf("template sample %q", s.Text)
				}
			}
		}},
		{"multinomial", small + `,"method":"multinomial"`, func(t *testing.T, d doneEvent) {
			if d.Strategy != "" || d.IterationsRun != 4 {
				t.Errorf("multinomial done %+v", d)
			}
		}},
		{"masking ratios and self remasking", `"num_samples":1,"sequence_length":12,"masking_ratios":[0.9,0.5,0.2],"remasking":"self","quality_metric":"self"`, func(t *testing.T, d doneEvent) {
			if d.IterationsRun != 3 || d.Strategy != "self" || d.Metric != "self" || d.Samples[0].JudgeScore != nil {
				t.Errorf("done %+v", d)
			}
		}},
		{"remasking model", small + `,"remasking":"model","remasking_model":"cls","disable_sampler":true`, func(t *testing.T, d doneEvent) {
			if d.Strategy != "model" {
				t.Errorf("strategy %q", d.Strategy)
			}
		}},
		{"threshold and compat", small + `,"schedule_mode":"threshold","compat":"wave-cap,critic-on-input","sampler_neighbors":"zeros","randomness_strength":0.3`, func(t *testing.T, d doneEvent) {
			if len(d.Samples) != 2 {
				t.Errorf("done %+v", d)
			}
		}},
		{"unknown chars dropped", small + `,"seed_text":"hé","unknown_chars":"drop"`, func(t *testing.T, d doneEvent) {
			if len(d.Warnings) == 0 || !strings.Contains(strings.Join(d.Warnings, "\n"), "dropped") {
				t.Errorf("warnings %q", d.Warnings)
			}
		}},
		{"default judge skipped for another vocabulary", small + `,"model":"d7"`, func(t *testing.T, d doneEvent) {
			if d.Judge != "none" || d.Metric == "judge" || !strings.Contains(strings.Join(d.Warnings, "\n"), `default judge "judge" was not used`) {
				t.Errorf("judge %q metric %q warnings %q", d.Judge, d.Metric, d.Warnings)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := post(t, ts, "/v1/generate", `{"seed":9,`+tc.extra+`}`)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			tc.check(t, decodeDone(t, data))
		})
	}
}

// The JSON option names are exactly sampler.Options' tags plus the API's own.
func TestGenerateAcceptsEveryOptionName(t *testing.T) {
	got := strings.Join(jsonFields(reflect.TypeOf(generateRequest{})), ",")
	want := "method,num_samples,sequence_length,iterations,temperature,top_p,schedule_mode,start_ratio,end_ratio,masking_ratios," +
		"randomness_strength,seed_text,seed_placement,template,placeholder,unknown_chars,seed,remasking,disable_sampler," +
		"sampler_neighbors,quality_metric,ordering,order_temperature,unmask_schedule,confidence_threshold,block_length,early_commit_gap,model,judge,remasking_model,compat,stream,include_tokens,include_text,include_wrongness"
	if got != want {
		t.Errorf("fields:\n got %s\nwant %s", got, want)
	}
}

// include_wrongness adds each iteration's per-position wrongness: one row of
// sequence_length values in [0, 1] per sample, on every iteration that
// remasks (the first always does here; the last never does).
func TestGenerateStreamWrongness(t *testing.T) {
	_, ts := newTestServer(t, nil)
	_, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":3,"stream":true,"include_wrongness":true,"remasking":"critic"}`)
	evs := parseNDJSON(t, data)
	var iters []event
	for _, ev := range evs {
		if ev.name() == "iteration" {
			iters = append(iters, ev)
		}
	}
	if len(iters) != 4 {
		t.Fatalf("%d iteration events, want 4:\n%s", len(iters), data)
	}
	for i, ev := range iters {
		rows, ok := ev["wrongness"].([]any)
		if i == len(iters)-1 {
			if ok {
				t.Errorf("last iteration carries wrongness: %v", ev["wrongness"])
			}
			continue
		}
		if !ok && i > 0 {
			continue // the schedule remasked nothing: no wrongness computed
		}
		if !ok || len(rows) != 2 {
			t.Fatalf("iteration %d: wrongness = %v, want 2 rows", i+1, ev["wrongness"])
		}
		for b, r := range rows {
			row := r.([]any)
			if len(row) != 16 {
				t.Fatalf("iteration %d row %d: %d values, want 16", i+1, b, len(row))
			}
			for p, v := range row {
				w, isNum := v.(float64)
				if !isNum || w < 0 || w > 1 {
					t.Errorf("iteration %d row %d position %d: wrongness %v, want a number in [0, 1]", i+1, b, p, v)
				}
			}
		}
	}
	// Without the flag no wrongness is sent.
	_, data = post(t, ts, "/v1/generate", `{`+small+`,"seed":3,"stream":true}`)
	for _, ev := range parseNDJSON(t, data) {
		if _, ok := ev["wrongness"]; ok {
			t.Fatalf("wrongness sent without include_wrongness: %v", ev)
		}
	}
}

func TestWrongnessRowJSON(t *testing.T) {
	b, err := json.Marshal(wrongnessRow{0, 0.12345, 1, math.NaN(), math.Inf(1), 0.9996})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `[0,0.123,1,null,null,1]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestGenerateUnmask: the unmask method's fields are request fields; each
// sample reports its own (adaptive) step count, echoed options repeat it.
func TestGenerateUnmask(t *testing.T) {
	_, ts := newTestServer(t, nil)
	body := `{` + small + `,"seed":5,"method":"unmask","ordering":"margin","order_temperature":0.5,"unmask_schedule":"cosine",` +
		`"confidence_threshold":0.3,"block_length":8,"early_commit_gap":0.9}`
	resp, data := post(t, ts, "/v1/generate", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	d := decodeDone(t, data)
	if d.IterationsRun < 2 || d.IterationsRun > 4 {
		t.Fatalf("iterations_run %d, want 2..4 (2 blocks, 4 steps at most)", d.IterationsRun)
	}
	for i, s := range d.Samples {
		if s.Steps < 2 || s.Steps > d.IterationsRun || strings.Contains(s.Text, "[MASK]") {
			t.Fatalf("sample %d: %d steps, %q", i, s.Steps, s.Text)
		}
	}
	_, again := post(t, ts, "/v1/generate", body)
	if !reflect.DeepEqual(tokensOf(d), tokensOf(decodeDone(t, again))) {
		t.Fatal("the same seed gave different samples")
	}
}
