package main

import (
	"encoding/json"
	"github.com/remask/remask/engine/sampler"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestWithDefaults(t *testing.T) {
	d := Sizes{NumSamples: 2, SequenceLength: 64, Iterations: 5}
	cases := []struct {
		name, in string
		want     map[string]any // nil: the body comes back unchanged
	}{
		{"empty object", `{}`, map[string]any{"num_samples": 2.0, "sequence_length": 64.0, "iterations": 5.0}},
		{"given values kept", `{"num_samples":1,"sequence_length":32,"iterations":3,"seed":7}`, nil},
		{"nulls filled", `{"num_samples":null,"seed":7}`,
			map[string]any{"num_samples": 2.0, "sequence_length": 64.0, "iterations": 5.0, "seed": 7.0}},
		{"template sets the length", `{"template":"to __ or not"}`,
			map[string]any{"num_samples": 2.0, "iterations": 5.0, "template": "to __ or not"}},
		{"masking_ratios set the iterations", `{"masking_ratios":[0.5,0.1]}`,
			map[string]any{"num_samples": 2.0, "sequence_length": 64.0, "masking_ratios": []any{0.5, 0.1}}},
		{"unknown fields pass through", `{"bogus":1}`,
			map[string]any{"num_samples": 2.0, "sequence_length": 64.0, "iterations": 5.0, "bogus": 1.0}},
		{"not JSON", `{"num_samples":`, nil},
		{"an array", `[1,2]`, nil},
		{"two values", `{} {}`, nil},
		{"null", `null`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := withDefaults([]byte(tc.in), d)
			if tc.want == nil {
				if string(out) != tc.in {
					t.Fatalf("got %s, want the body unchanged", out)
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// The wrapper hands engine/api a body with the browser's sizes; the API
// then runs with them (seen in the start event's options).
func TestWithBrowserDefaultsServesTheAPI(t *testing.T) {
	var got []byte
	h := withBrowserDefaults(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		if r.ContentLength != int64(len(got)) {
			t.Errorf("ContentLength %d for a %d-byte body", r.ContentLength, len(got))
		}
	}), Sizes{NumSamples: 1, SequenceLength: 32, Iterations: 2}, 1<<10)
	post := func(path, body string) string {
		got = nil
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		return string(got)
	}
	if b := post("/v1/generate", `{"seed":1}`); b != `{"iterations":2,"num_samples":1,"seed":1,"sequence_length":32}` {
		t.Errorf("generate body = %s", b)
	}
	if b := post("/v1/models", `{"id":"x"}`); b != `{"id":"x"}` {
		t.Errorf("models body changed: %s", b)
	}
	big := `{"seed_text":"` + strings.Repeat("a", 2<<10) + `"}`
	if b := post("/v1/generate", big); b != big {
		t.Errorf("a body over the limit was changed (%d bytes)", len(b))
	}
}

func TestSoftwareAdapter(t *testing.T) {
	for name, want := range map[string]bool{
		"google, swiftshader":                   true,
		"llvmpipe (LLVM 15.0.6, 256 bits)":      true,
		"Microsoft Basic Render Driver":         true,
		"microsoft, warp":                       true,
		"nvidia, ampere, NVIDIA GeForce RTX":    false,
		"apple, metal-3, Apple M2":              false,
		"intel, gen-12lp, Intel(R) Xe Graphics": false,
	} {
		if got := softwareAdapter(name); got != want {
			t.Errorf("softwareAdapter(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestBrowserInfo pins what the page reads from the engine: every preset is
// a valid request, the middle preset is the browser default, and the option
// defaults are sampler.Defaults() with the browser's sizes.
func TestBrowserInfo(t *testing.T) {
	for kind, def := range map[string]Sizes{"gpu": GPUSizes, "cpu": CPUSizes} {
		ps := Presets[kind]
		if len(ps) != 3 || ps[1].Sizes != def {
			t.Errorf("%s presets %+v: want 3 with the default %+v in the middle", kind, ps, def)
		}
		for _, p := range ps {
			o := sampler.Defaults()
			o.NumSamples, o.SequenceLength, o.Iterations = p.NumSamples, p.SequenceLength, p.Iterations
			if p.Temperature != 0 {
				o.Temperature = p.Temperature
			}
			if err := o.Validate(); err != nil {
				t.Errorf("%s preset %s: %v", kind, p.Name, err)
			}
		}
		info := browserInfo(kind, 4096)
		var got map[string]any
		if err := json.Unmarshal(mustJSON(info), &got); err != nil {
			t.Fatal(err)
		}
		od := got["option_defaults"].(map[string]any)
		d := sampler.Defaults()
		if od["temperature"] != d.Temperature || od["method"] != d.Method || od["remasking"] != d.Remasking || od["placeholder"] != d.Placeholder ||
			od["sequence_length"] != float64(def.SequenceLength) || od["start_ratio"] != d.StartRatio {
			t.Errorf("%s option_defaults = %v", kind, od)
		}
		// The unmask fields the page shows: named, and valid with method unmask.
		u := d
		u.Method = sampler.Unmask
		u.Ordering, _ = od["ordering"].(string)
		u.UnmaskSchedule, _ = od["unmask_schedule"].(string)
		if err := u.Validate(); err != nil || u.Ordering == "" || u.UnmaskSchedule == "" ||
			od["order_temperature"] != 0.0 || od["confidence_threshold"] != 0.0 || od["block_length"] != 0.0 || od["early_commit_gap"] != 0.0 {
			t.Errorf("%s unmask option_defaults = %v (%v)", kind, od, err)
		}
	}
}
