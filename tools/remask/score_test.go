package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScoreTextFileWindows(t *testing.T) {
	dir := t.TempDir()
	text := strings.Repeat("First Citizen:\nBefore we proceed any further, hear me speak.\n", 20)
	path := filepath.Join(dir, "val.txt")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"score", "--model", goldenPath("lm_rope_bidir_bias.safetensors"),
		"--judge", goldenPath("judge_cls.safetensors"), "--text-file", path, "--sequence-length", "20", "--num-samples", "4", "--json"},
		strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got scoreOutput
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Windows) != 4 || got.Metric != "judge" || got.Mean.JudgeScore == nil || got.Mean.CriticMean == nil {
		t.Fatalf("output %+v", got)
	}
	var sum float64
	for _, w := range got.Windows {
		if len([]rune(w.Text)) != 20 || (w.Start > 0 && text[w.Start-1] != '\n') {
			t.Errorf("window at %d (%q) does not start a line or has the wrong length", w.Start, w.Text)
		}
		if w.Text != string([]rune(text)[w.Start:w.Start+20]) {
			t.Errorf("window text %q is not the file's text at %d", w.Text, w.Start)
		}
		sum += *w.JudgeScore
	}
	if m := sum / 4; m != *got.Mean.JudgeScore {
		t.Errorf("mean judge score %v, want %v", *got.Mean.JudgeScore, m)
	}
}

func TestScoreErrors(t *testing.T) {
	m := goldenPath("lm_rope_bidir_bias.safetensors")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"score", "--model", m}, "--text-file"},
		{[]string{"score", "--model", m, "--text", "x", "--text-file", "y"}, "exactly one"},
		{[]string{"score", "--model", m, "--text", "Hé"}, "--unknown-chars"},
		{[]string{"score", "--model", m, "--text", "abc", "--quality-metric", "none"}, "--quality-metric"},
		{[]string{"score", "--model", m, "--text", "abc", "--quality-metric", "judge"}, "--judge"},
		{[]string{"score", "--model", m, "--text-file", "/nonexistent/val.txt"}, "--text-file"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if code := run(context.Background(), c.args, strings.NewReader(""), &out, &errb); code != exitUsage || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming %s", c.args, code, errb.String(), exitUsage, c.want)
		}
	}
}

// convert --card stores the given Markdown as the model card.
func TestConvertCard(t *testing.T) {
	dir := t.TempDir()
	card := filepath.Join(dir, "card.md")
	if err := os.WriteFile(card, []byte("# Tiny\nmeasured: nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.safetensors")
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"convert", forkFixture("sh_lm.pt"), "-o", out, "--card", card, "--sampler-neighbors", "embeddings"}, strings.NewReader(""), &so, &se); code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	m, err := loadModel("model", out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Card != "# Tiny\nmeasured: nothing\n" || m.Config.Sampler.Neighbors != "embeddings" {
		t.Errorf("card %q, neighbors %q", m.Card, m.Config.Sampler.Neighbors)
	}
	if code := run(context.Background(), []string{"convert", forkFixture("sh_lm.pt"), "-o", out, "--force", "--card", filepath.Join(dir, "none.md")}, strings.NewReader(""), &so, &se); code != exitUsage || !strings.Contains(se.String(), "--card") {
		t.Errorf("missing card file: exit %d, %q", code, se.String())
	}
	if code := run(context.Background(), []string{"convert", forkFixture("sh_lm.pt"), "-o", out, "--force", "--sampler-neighbors", "left"}, strings.NewReader(""), &so, &se); code != exitUsage || !strings.Contains(se.String(), "--sampler-neighbors") {
		t.Errorf("bad neighbours: exit %d, %q", code, se.String())
	}
}
