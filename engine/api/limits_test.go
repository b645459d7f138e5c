package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Defect 11: encoding/json lets through a null body (a default 16 x 1024
// generation), keys of another case, duplicate keys (the last wins) and
// null array items (0); each is a 400 naming the field now.
func TestStrictJSON(t *testing.T) {
	_, ts := newTestServer(t, nil)
	cases := []struct {
		name, path, body string
		code, field, msg string
	}{
		{"null body", "/v1/generate", `null`, "invalid_json", "", "the body is null"},
		{"null body with spaces", "/v1/generate", " \n null \n", "invalid_json", "", "the body is null"},
		{"null load body", "/v1/models", `null`, "invalid_json", "", "the body is null"},
		{"case variant", "/v1/generate", `{"Num_Samples":1,"sequence_length":8}`, "unknown_field", "Num_Samples", `did you mean "num_samples"`},
		{"upper case", "/v1/generate", `{"num_samples":1,"SEQUENCE_LENGTH":8}`, "unknown_field", "SEQUENCE_LENGTH", `did you mean "sequence_length"`},
		{"case variant of a shadowing field", "/v1/generate", `{"Seed":1}`, "unknown_field", "Seed", `"seed"`},
		{"case variant in a load", "/v1/models", `{"ID":"lm"}`, "unknown_field", "ID", `"id"`},
		{"duplicate key", "/v1/generate", `{"iterations":2,"iterations":3}`, "duplicate_field", "iterations", "appears twice"},
		{"duplicate load key", "/v1/models", `{"id":"lm","id":"judge"}`, "duplicate_field", "id", "appears twice"},
		{"null ratio", "/v1/generate", `{"num_samples":1,"sequence_length":8,"masking_ratios":[null]}`, "invalid_type", "masking_ratios", "item 0 is null"},
		{"null ratio later", "/v1/generate", `{"masking_ratios":[0.5,null]}`, "invalid_type", "masking_ratios", "item 1 is null"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := post(t, ts, tc.path, tc.body)
			e := errorOf(t, data)
			if resp.StatusCode != 400 || e.Code != tc.code || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("%d %+v; want 400 %s %s %q", resp.StatusCode, e, tc.code, tc.field, tc.msg)
			}
		})
	}
	// A field's own null keeps its default, as documented.
	if resp, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":null,"temperature":null}`); resp.StatusCode != 200 {
		t.Errorf("null field values: %d %s", resp.StatusCode, data)
	}
}

// Defect 12 (no time bound per request: 16,384 tokens x 1,000 iterations
// held the device for hours) and defect 4's server part (serve
// --max-tokens 1000000000 let a request OOM the server; the B*T check
// could overflow).
func TestWorkAndMemoryBudgets(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) {
		c.MaxTokens = 1_000_000_000
		c.MaxWork = 2 * 16 * 40
		c.MaxRequestMemory = 64 << 20
	})
	cases := []struct {
		name, body  string
		status      int
		code, field string
		msg         string
	}{
		{"within the work budget", `{"num_samples":2,"sequence_length":16,"iterations":40,"seed":1}`, 200, "", "", ""},
		{"over the work budget", `{"num_samples":2,"sequence_length":16,"iterations":41}`, 413, "too_much_work", "iterations", "2 x 16 x 41 = 1312 token-iterations is over this server's limit of 1280 per request (--max-work)"},
		{"over the work budget by ratios", `{"num_samples":40,"sequence_length":32,"masking_ratios":[0.5,0.4]}`, 413, "too_much_work", "masking_ratios", "(--max-work)"},
		{"tokens overflow", `{"num_samples":9223372036854775807,"sequence_length":32}`, 413, "too_many_tokens", "num_samples", "more than 2^63 tokens"},
		{"work overflow", `{"num_samples":1000000,"sequence_length":1000,"iterations":1000}`, 413, "too_much_work", "iterations", ""},
		{"over the memory budget", `{"num_samples":262144,"sequence_length":32,"iterations":1}`, 413, "too_much_work", "iterations", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := post(t, ts, "/v1/generate", tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d: %s", resp.StatusCode, data)
			}
			if tc.status == 200 {
				return
			}
			e := errorOf(t, data)
			if e.Code != tc.code || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) || e.Limit == 0 {
				t.Errorf("%+v; want %s %s %q", e, tc.code, tc.field, tc.msg)
			}
		})
	}

	// The memory estimate, checked before anything is allocated: 262,144 x
	// 32 positions (what killed the server) need gigabytes.
	_, big := newTestServer(t, func(c *Config) {
		c.MaxTokens = 1_000_000_000
		c.MaxWork = 1 << 62
		c.MaxRequestMemory = 64 << 20
	})
	resp, data := post(t, big, "/v1/generate", `{"num_samples":262144,"sequence_length":32,"iterations":1}`)
	e := errorOf(t, data)
	if resp.StatusCode != 413 || e.Code != "too_much_memory" || e.Field != "num_samples" || e.Limit != 64<<20 ||
		!strings.Contains(e.Message, "over this server's limit of 64.0 MiB per request (--max-request-memory)") || e.Requested < 1<<30 {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
	t.Logf("262144 x 32: %s", e.Message)
	// A request within the budget runs.
	if resp, data := post(t, big, "/v1/generate", `{"num_samples":64,"sequence_length":32,"iterations":2,"seed":1}`); resp.StatusCode != 200 {
		t.Errorf("64 x 32: %d %s", resp.StatusCode, data)
	}
}

// Defect 5: every POST /v1/models with a new id kept another parsed model.
// The cache holds MaxLoadedModels models (or MaxModelMemory bytes), the
// least recently used idle one goes first, and one added by a load request
// leaves the library when dropped.
func TestModelCacheIsBounded(t *testing.T) {
	s, ts := newTestServer(t, func(c *Config) { c.MaxLoadedModels = 2 })
	loaded := func() []string {
		_, data := do(t, ts, "GET", "/v1/models", "")
		var l modelList
		if err := jsonUnmarshal(data, &l); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range l.Models {
			if m.Loaded {
				ids = append(ids, m.ID)
			}
		}
		return ids
	}
	for _, id := range []string{"lm", "judge", "cls", "d7"} {
		loadEvents(t, ts, `{"id":"`+id+`"}`)
	}
	if got := strings.Join(loaded(), ","); got != "cls,d7" {
		t.Errorf("after loading 4 models with a limit of 2: loaded %s, want cls,d7", got)
	}
	for i, name := range []string{"lm_nopos_f16", "lm_abs_causal_nobias", "lm_nopos_f16"} {
		evs := loadEvents(t, ts, `{"path":"`+name+`.safetensors","id":"extra`+string(rune('a'+i))+`"}`)
		if evs[len(evs)-1].name() != "loaded" {
			t.Fatalf("%v", evs)
		}
	}
	if got := strings.Join(loaded(), ","); got != "extrab,extrac" {
		t.Errorf("loaded %s, want extrab,extrac", got)
	}
	if s.lookup("extraa") != nil {
		t.Error("a dropped model added by a load request is still in the library")
	}
	if s.lookup("cls") == nil {
		t.Error("a dropped library model left the library")
	}
	// A dropped model loads again when used; the generation that needs two
	// models keeps both.
	if resp, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":1}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, data)
	}
	if got := strings.Join(loaded(), ","); got != "lm,judge" {
		t.Errorf("loaded %s, want lm,judge", got)
	}

	// By bytes: a budget smaller than two models keeps one.
	_, ts2 := newTestServer(t, func(c *Config) { c.MaxModelMemory = 150 << 10 })
	loadEvents(t, ts2, `{"id":"lm"}`)
	loadEvents(t, ts2, `{"id":"cls"}`)
	_, data := do(t, ts2, "GET", "/v1/health", "")
	var h health
	if err := jsonUnmarshal(data, &h); err != nil || h.Loaded != 1 {
		t.Errorf("health with a 150 KiB cache: %s", data)
	}
}

// Defect 6 (server part): a request has a deadline (MaxRequestDuration,
// --max-request-seconds): a stream that runs past it ends with an error
// event, and the server's ReadTimeout does not cut a long stream.
func TestRequestDeadline(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) { c.MaxRequestDuration = 300 * time.Millisecond })
	start := time.Now()
	resp, data := post(t, ts, "/v1/generate", `{"num_samples":4,"sequence_length":32,"iterations":1000,"seed":1,"stream":true,"judge":"none"}`)
	evs := parseNDJSON(t, data)
	last := evs[len(evs)-1]
	if resp.StatusCode != 200 || last.name() != "error" || last["error"].(map[string]any)["code"] != "request_timeout" ||
		!strings.Contains(last["error"].(map[string]any)["message"].(string), "--max-request-seconds") {
		t.Errorf("%d, last event %v", resp.StatusCode, last)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the request ran %v (limit 300 ms)", d)
	}
	// Without streaming: a 503 with the same code.
	resp, data = post(t, ts, "/v1/generate", `{"num_samples":4,"sequence_length":32,"iterations":1000,"seed":1,"judge":"none"}`)
	if e := errorOf(t, data); resp.StatusCode != 503 || e.Code != "request_timeout" {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}

	// ReadTimeout 200 ms and a stream of about a second: the stream ends
	// with done (the body was read; its deadline no longer applies).
	s := New(testConfig())
	slow := httptest.NewUnstartedServer(s)
	slow.Config.ReadTimeout = 200 * time.Millisecond
	slow.Start()
	defer slow.Close()
	start = time.Now()
	resp, data = post(t, slow, "/v1/generate", `{"num_samples":4,"sequence_length":32,"iterations":100,"seed":1,"stream":true,"judge":"none"}`)
	evs = parseNDJSON(t, data)
	if last := evs[len(evs)-1]; resp.StatusCode != 200 || last.name() != "done" {
		t.Errorf("a stream past ReadTimeout ended with %v", last)
	}
	t.Logf("stream of %d events in %v with ReadTimeout 200ms", len(evs), time.Since(start))
}

// Defect 15: a shutdown cut streams without a word. Stop ends each stream
// with an error event and refuses new requests with 503.
func TestStopEndsStreamsWithAnErrorEvent(t *testing.T) {
	s, ts := newTestServer(t, nil)
	req, _ := http.NewRequest("POST", ts.URL+"/v1/generate", strings.NewReader(`{"num_samples":4,"sequence_length":32,"iterations":1000,"seed":1,"stream":true,"judge":"none"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() { // start
		t.Fatal("no first event")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	var last map[string]any
	for sc.Scan() {
		last = nil
		json.Unmarshal(sc.Bytes(), &last)
	}
	if last["event"] != "error" || last["error"].(map[string]any)["code"] != "shutting_down" {
		t.Errorf("the stream ended with %v", last)
	}
	r2, data := post(t, ts, "/v1/generate", `{`+small+`}`)
	if e := errorOf(t, data); r2.StatusCode != 503 || e.Code != "shutting_down" {
		t.Errorf("after Stop: %d %+v", r2.StatusCode, e)
	}
}
