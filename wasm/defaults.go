// Command wasm is remask's in-browser engine: engine/api's handler compiled
// with GOOS=js GOARCH=wasm, run in a worker by wasm/js/engine-worker.js as one
// long-lived Go instance that keeps the WebGPU device and the loaded weights
// across requests. docs/browser.md describes the page, the worker protocol
// and the tests.
//
// This file holds what is not specific to the browser (so that it is tested
// natively): the browser's default sizes and the request rewriting that
// applies them.
package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"

	"github.com/remask/remask/engine/sampler"
)

// Sizes are the defaults a generate request gets in the browser for the
// fields it leaves out. engine/api's own defaults (16 samples x 1024
// characters) suit a native server; in a tab they would take minutes, on the
// single-threaded CPU fallback hours.
type Sizes struct {
	NumSamples     int `json:"num_samples"`
	SequenceLength int `json:"sequence_length"`
	Iterations     int `json:"iterations"`
}

// Browser defaults: a WebGPU adapter gets a batch of a useful size, the CPU
// fallback (Go's wasm runs on one thread, about 30x slower than a GPU) one
// short sample.
var (
	GPUSizes = Sizes{NumSamples: 4, SequenceLength: 256, Iterations: 15}
	CPUSizes = Sizes{NumSamples: 1, SequenceLength: 128, Iterations: 10}
)

// Preset is one of the page's size presets (the "Size" choice): the sizes,
// and a temperature when the preset changes it (0: the option's default).
type Preset struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	Sizes
	Temperature float64 `json:"temperature,omitempty"`
}

// Presets are the page's size presets per backend kind ("gpu": a WebGPU
// adapter, "cpu": the one-threaded CPU engine). The middle one of each is
// the browser default (GPUSizes, CPUSizes). The page reads them from the
// engine (browserInfo), never from a copy of its own.
var Presets = map[string][]Preset{
	"gpu": {
		{Name: "small", Label: "Small", Sizes: Sizes{NumSamples: 2, SequenceLength: 128, Iterations: 8}},
		{Name: "medium", Label: "Medium", Sizes: GPUSizes},
		{Name: "large", Label: "Large", Sizes: Sizes{NumSamples: 8, SequenceLength: 512, Iterations: 30}, Temperature: 0.7},
	},
	"cpu": {
		{Name: "small", Label: "Small", Sizes: Sizes{NumSamples: 1, SequenceLength: 64, Iterations: 6}},
		{Name: "medium", Label: "Medium", Sizes: CPUSizes},
		{Name: "large", Label: "Large", Sizes: Sizes{NumSamples: 2, SequenceLength: 256, Iterations: 15}, Temperature: 0.7},
	},
}

// softwareName matches the names of WebGPU adapters that emulate a GPU on
// the CPU: SwiftShader (Chrome), llvmpipe/lavapipe (Mesa), WARP (Windows).
var softwareName = regexp.MustCompile(`(?i)swiftshader|llvmpipe|lavapipe|\bwarp\b|basic render|software`)

// softwareAdapter says whether a WebGPU adapter named name runs on the CPU.
// auto does not use one (the in-page CPU engine is faster on the same
// cores), like the native CLI's --backend auto; "gpu" still does.
func softwareAdapter(name string) bool { return softwareName.MatchString(name) }

// browserInfo is what the page reads from the engine (remask.engine) besides
// the backend: the option defaults (sampler.Defaults, with the browser's
// sizes for the kind of backend), the presets, and the token cap.
func browserInfo(kind string, maxTokens int) map[string]any {
	sizes := CPUSizes
	if kind == "gpu" {
		sizes = GPUSizes
	}
	d := sampler.Defaults()
	d.NumSamples, d.SequenceLength, d.Iterations = sizes.NumSamples, sizes.SequenceLength, sizes.Iterations
	var opts map[string]any
	if err := json.Unmarshal(mustJSON(d), &opts); err != nil {
		panic(err)
	}
	// The page's text box continues the user's text: it goes first.
	opts["seed_placement"] = sampler.PlacePrefix
	opts["compat"] = ""
	opts["sampler_neighbors"] = ""
	opts["masking_ratios"] = []float64{}
	// The unmask method's fields are omitted from the JSON at their zero
	// values; the page gets them named, as the engine reads the zero value.
	opts["ordering"] = sampler.OrderConfidence
	opts["unmask_schedule"] = sampler.UnmaskLinear
	opts["order_temperature"] = d.OrderTemperature
	opts["confidence_threshold"] = d.ConfidenceThreshold
	opts["block_length"] = d.BlockLength
	opts["early_commit_gap"] = d.EarlyCommitGap
	return map[string]any{
		"defaults":        map[string]any{"num_samples": sizes.NumSamples, "sequence_length": sizes.SequenceLength, "iterations": sizes.Iterations},
		"option_defaults": opts,
		"presets":         Presets,
		"preset_kind":     kind,
		"max_tokens":      maxTokens,
	}
}

// withDefaults returns the POST /v1/generate body with the absent or null
// size fields set from d. A template sets the length itself, so
// sequence_length is left alone when one is given; so is iterations when
// masking_ratios is. A body that is not one JSON object is returned
// unchanged, for engine/api to refuse with its own message.
func withDefaults(body []byte, d Sizes) []byte {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil || dec.More() {
		return body
	}
	absent := func(k string) bool {
		v, ok := fields[k]
		return !ok || string(bytes.TrimSpace(v)) == "null"
	}
	changed := false
	set := func(k string, v int) {
		if absent(k) {
			fields[k] = json.RawMessage(mustJSON(v))
			changed = true
		}
	}
	set("num_samples", d.NumSamples)
	if absent("template") {
		set("sequence_length", d.SequenceLength)
	}
	if absent("masking_ratios") {
		set("iterations", d.Iterations)
	}
	if !changed {
		return body
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return body
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// withBrowserDefaults gives POST /v1/generate requests the sizes d for the
// fields they leave out (see withDefaults). A body over limit bytes goes on
// unchanged, for engine/api to refuse.
func withBrowserDefaults(h http.Handler, d Sizes, limit int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/generate" && r.Body != nil {
			body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			if err != nil {
				r.Body.Close()
				http.Error(w, `{"error":{"code":"invalid_json","message":"reading the request body: `+jsonEscape(err.Error())+`"}}`, http.StatusBadRequest)
				return
			}
			r = r.Clone(r.Context())
			if int64(len(body)) <= limit {
				body = withDefaults(body, d)
				r.Body.Close()
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.ContentLength = int64(len(body))
			} else {
				r.Body = struct {
					io.Reader
					io.Closer
				}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
			}
		}
		h.ServeHTTP(w, r)
	})
}

func jsonEscape(s string) string {
	b := mustJSON(s)
	return string(b[1 : len(b)-1])
}
