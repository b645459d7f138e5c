package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// The shipped models load, are found without --model (REMASK_MODELS), carry
// their cards, and generate: a short run with the default judge.
func TestShippedModelsGenerate(t *testing.T) {
	dir := filepath.Join("..", "..", "models")
	lm, err := loadModel("model", filepath.Join(dir, defaultModelName))
	if err != nil {
		t.Fatal(err)
	}
	if !lm.Config.HasCritic() || !lm.Config.HasSampler() || lm.Config.Sampler.Neighbors != "embeddings" || lm.DType != "F16" {
		t.Errorf("shipped model: critic %v sampler %v dtype %s", lm.Config.HasCritic(), lm.Config.HasSampler(), lm.DType)
	}
	if !strings.Contains(lm.Card, "Measured quality") || !strings.Contains(lm.Card, "tools/train/card.py") {
		t.Errorf("the shipped model's card lacks its measured quality and the command that measured it")
	}
	c := &cli{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{},
		getenv: func(k string) string {
			if k == "REMASK_MODELS" {
				return dir
			}
			return ""
		},
		executable: func() (string, error) { return "/nonexistent/bin/remask", nil }}
	code := c.main(context.Background(), []string{"sample", "--backend", "cpu", "--num-samples", "2", "--sequence-length", "96",
		"--iterations", "6", "--seed", "3", "--json"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, c.stderr.(*bytes.Buffer).String())
	}
	var res struct {
		Samples []struct {
			Text       string   `json:"text"`
			JudgeScore *float64 `json:"judge_score"`
		} `json:"samples"`
	}
	if err := json.Unmarshal(c.stdout.(*bytes.Buffer).Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Samples {
		letters := 0
		for _, r := range s.Text {
			if unicode.IsLetter(r) {
				letters++
			}
		}
		// Shakespeare-like text is mostly letters; noise from a broken
		// model would be dominated by punctuation and [MASK].
		if s.JudgeScore == nil || strings.Contains(s.Text, "[MASK]") || letters < len(s.Text)/2 {
			t.Errorf("sample %q (judge %v): not Shakespeare-like", s.Text, s.JudgeScore)
		}
	}
}
