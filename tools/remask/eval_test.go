package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/sampler"
)

func TestParsePolicy(t *testing.T) {
	cases := []struct {
		spec string
		want func(o *sampler.Options) bool
		err  string
	}{
		{"fork", func(o *sampler.Options) bool { return o.Method == sampler.Diffusion && !o.DisableSampler }, ""},
		{"fork-naive", func(o *sampler.Options) bool { return o.Method == sampler.Diffusion && o.DisableSampler }, ""},
		{"margin", func(o *sampler.Options) bool { return o.Method == sampler.Unmask && o.Ordering == "margin" }, ""},
		{"threshold:threshold=0.7", func(o *sampler.Options) bool { return o.ConfidenceThreshold == 0.7 }, ""},
		{"unmask:ordering=entropy:schedule=cosine:block-length=16:gap=0.4:alg-temp=0.5", func(o *sampler.Options) bool {
			return o.Ordering == "entropy" && o.UnmaskSchedule == "cosine" && o.BlockLength == 16 && o.EarlyCommitGap == 0.4 && o.OrderTemperature == 0.5
		}, ""},
		{"diffusion:remasking=self", func(o *sampler.Options) bool { return o.Remasking == "self" }, ""},
		{"maskgit", nil, "unknown policy"},
		{"unmask:ordering", nil, "not key=value"},
		{"unmask:tau=0.9", nil, "unknown key"},
		{"unmask:threshold=high", nil, "not a number"},
		{"unmask:block-length=1.5", nil, "not a whole number"},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			p, err := parsePolicy(c.spec)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.HasPrefix(err.Error(), "--policies: ") {
					t.Fatalf("err %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := sampler.Defaults()
			p.apply(&o)
			if !c.want(&o) || p.Label != c.spec {
				t.Fatalf("options %+v, label %q", o, p.Label)
			}
		})
	}
	// Every preset is a valid policy.
	for _, name := range sortedPresets() {
		p, err := parsePolicy(name)
		if err != nil {
			t.Fatalf("preset %s: %v", name, err)
		}
		o := sampler.Defaults()
		p.apply(&o)
		o.Iterations = 4
		if err := o.Validate(); err != nil {
			t.Fatalf("preset %s: %v", name, err)
		}
	}
}

func TestEvalWordsAndSteps(t *testing.T) {
	if got := strings.Join(words("KING HENRY:\nO, the day's 3rd\thour--"), "|"); got != "king|henry|o|the|day|s|rd|hour" {
		t.Fatalf("words = %s", got)
	}
	if s, err := parseSteps("4, 8,,16"); err != nil || len(s) != 3 || s[2] != 16 {
		t.Fatalf("parseSteps = %v, %v", s, err)
	}
	for _, bad := range []string{"0", "4,x", "", "999999999999"} {
		if _, err := parseSteps(bad); err == nil {
			t.Fatalf("parseSteps(%q) accepted", bad)
		}
	}
	// The reference share counts every generated word once per occurrence.
	res := &sampler.Result{Samples: []sampler.Sample{{Text: "the king zzq", Steps: 3}, {Text: "the the", Steps: 5}}}
	var pt evalPoint
	pt.Passes = 6
	summarise(&pt, res, map[string]bool{"the": true, "king": true})
	if pt.Words != 5 || pt.ReferenceShare == nil || *pt.ReferenceShare != 0.8 || pt.SamplePasses != 4 {
		t.Fatalf("words %d share %v sample passes %v", pt.Words, pt.ReferenceShare, pt.SamplePasses)
	}
}

// TestEvalCommand runs remask eval on a golden test model: every point is
// reported, passes are counted (diffusion with a critic: predict + critic
// passes; unmask: at most the steps), JSON and SVG are written and the SVG
// is well-formed XML with both panels and a legend entry per policy.
func TestEvalCommand(t *testing.T) {
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref.txt")
	if err := os.WriteFile(ref, []byte("abc def"), 0o644); err != nil {
		t.Fatal(err)
	}
	js, svg := filepath.Join(dir, "eval.json"), filepath.Join(dir, "eval.svg")
	code, out, errOut := runCLI(t, "", "eval", "--model", goldenPath("lm_rope_bidir_bias.safetensors"), "--backend", "cpu", "--threads", "1",
		"--policies", "fork:remasking=critic,confidence,threshold", "--steps", "2,3", "--num-samples", "2", "--sequence-length", "8",
		"--reference", ref, "--json", js, "--svg", svg)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "passes/sample") || !strings.Contains(out, "eval took") {
		t.Fatalf("table:\n%s", out)
	}
	var rep evalReport
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Points) != 6 {
		t.Fatalf("%d points, want 6", len(rep.Points))
	}
	for _, p := range rep.Points {
		if p.Passes < 1 || p.Seconds <= 0 || p.SelfConfidence == nil || p.ReferenceShare == nil || len(p.Texts) != 2 {
			t.Fatalf("point %+v", p)
		}
		if strings.HasPrefix(p.Policy, "fork") {
			// critic remasking scores the prediction: one extra pass per remask
			// that selects something (k = floor(8 * ratio) > 0).
			if p.Passes < p.Steps || p.Passes > 2*p.Steps-1 {
				t.Fatalf("%s %d steps: %d passes", p.Policy, p.Steps, p.Passes)
			}
		} else if p.Passes > p.Steps || p.SamplePasses > float64(p.Passes) {
			t.Fatalf("%s %d steps: %d passes (%v per sample)", p.Policy, p.Steps, p.Passes, p.SamplePasses)
		}
	}
	sb, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(sb))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed: %v", err)
		}
	}
	for _, want := range []string{"quality vs forward passes", "quality vs wall time", ">fork:remasking=critic<", ">confidence<", ">threshold<", "self-confidence"} {
		if !bytes.Contains(sb, []byte(want)) {
			t.Fatalf("SVG lacks %q", want)
		}
	}
	// --from-json merges earlier runs (here the same one twice) without generating.
	merged := filepath.Join(dir, "merged.json")
	code, out, errOut = runCLI(t, "", "eval", "--from-json", js+","+js, "--json", merged, "--svg", filepath.Join(dir, "merged.svg"))
	if code != exitOK || !strings.Contains(out, "merged 12 points") {
		t.Fatalf("from-json: exit %d: %s%s", code, out, errOut)
	}
	var m evalReport
	if b, err := os.ReadFile(merged); err != nil || json.Unmarshal(b, &m) != nil || len(m.Points) != 12 || m.Points[0].Policy != m.Points[1].Policy {
		t.Fatalf("merged: %v, %d points", err, len(m.Points))
	}
	other := filepath.Join(dir, "other.json")
	rep.Seed++
	ob, _ := json.Marshal(rep)
	if err := os.WriteFile(other, ob, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "", "eval", "--from-json", js+","+other)
	if code != exitUsage || !strings.Contains(errOut, "other settings") {
		t.Fatalf("from-json mismatch: exit %d: %s", code, errOut)
	}
	// Existing outputs are not replaced without --force.
	code, _, errOut = runCLI(t, "", "eval", "--model", goldenPath("lm_rope_bidir_bias.safetensors"), "--backend", "cpu",
		"--policies", "confidence", "--steps", "1", "--num-samples", "1", "--sequence-length", "4", "--json", js)
	if code == exitOK || !strings.Contains(errOut, "--json") {
		t.Fatalf("overwrite: exit %d: %s", code, errOut)
	}
	// A bad policy is a usage error before anything loads.
	code, _, errOut = runCLI(t, "", "eval", "--policies", "unmask:ordering=best", "--steps", "4")
	if code != exitUsage || !strings.Contains(errOut, "ordering") {
		t.Fatalf("bad ordering: exit %d: %s", code, errOut)
	}
}
