// Command sitemanifest writes the demo site's manifest.json: the shipped
// models the page offers (id, kind, file, size, sha256, parameters, and the
// title and first sentence of the card stored in the file, for the model
// picker), the default, light and remasking model ids, and a build id. The
// page's worker checks every downloaded model against its sha256 before it
// caches it (the package's worker, wasm/js/engine-worker.js). ./build.sh build runs it; docs/browser.md.
//
//	sitemanifest -o site/dist/manifest.json -wasm site/dist/remask/remask.wasm site/dist/models/*.safetensors
//
// Model files are named relative to the manifest's folder.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/remask/remask/engine/api"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/safefile"
)

type modelEntry struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	File   string `json:"file"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Parameters counts the weights (the tied LM head once).
	Parameters int64 `json:"parameters"`
	// Title is the card's first heading; Summary the first sentence of its
	// first paragraph (what the model is for). Empty when the file has no card.
	Title   string `json:"title,omitempty"`
	Summary string `json:"summary,omitempty"`
}

type manifest struct {
	Build        string `json:"build"`
	DefaultModel string `json:"default_model"`
	DefaultJudge string `json:"default_judge,omitempty"`
	// LightModel is the small language model to start with on the CPU
	// engine, software adapters and small screens (when shipped).
	LightModel string `json:"light_model,omitempty"`
	// RemaskingModel is the token classifier for remasking "model" (when shipped).
	RemaskingModel string       `json:"remasking_model,omitempty"`
	Models         []modelEntry `json:"models"`
}

func main() {
	out := flag.String("o", "", "the manifest to write (its folder is the site root)")
	wasm := flag.String("wasm", "", "the engine's wasm file; its hash is the build id")
	flag.Parse()
	if err := run(*out, *wasm, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "sitemanifest:", err)
		os.Exit(1)
	}
}

func run(out, wasm string, files []string) error {
	if out == "" || wasm == "" || len(files) == 0 {
		return fmt.Errorf("usage: sitemanifest -o DIST/manifest.json -wasm DIST/remask.wasm MODEL.safetensors [MODEL.safetensors ...]")
	}
	root := filepath.Dir(out)
	build, _, err := hashFile(wasm)
	if err != nil {
		return err
	}
	m := manifest{Build: build[:16], DefaultModel: api.DefaultModelID}
	for _, f := range files {
		h, sum, n, err := readModel(f)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, f)
		if err != nil || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("%s is not inside the site folder %s", f, root)
		}
		id := strings.TrimSuffix(filepath.Base(f), ".safetensors")
		switch id {
		case api.DefaultJudgeID:
			m.DefaultJudge = id
		case api.LightModelID:
			m.LightModel = id
		case api.DefaultRemaskerID:
			m.RemaskingModel = id
		}
		title, summary := cardSummary(h.Card)
		info := api.InfoOf(&model.Model{Config: h.Config}) // the parameter count, as GET /v1/models gives it
		m.Models = append(m.Models, modelEntry{ID: id, Kind: string(h.Config.Kind), File: filepath.ToSlash(rel), Bytes: n, SHA256: sum,
			Parameters: info.Parameters, Title: title, Summary: summary})
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

// readModel checks the model file's header (model.ReadHeader, as strictly
// as remask loads it) and hashes the whole file, in one pass over a regular
// file.
func readModel(name string) (*model.Header, string, int64, error) {
	f, st, err := safefile.OpenRegular(name)
	if err != nil {
		return nil, "", 0, err
	}
	defer f.Close()
	hash := sha256.New()
	h, err := model.ReadHeader(name, io.TeeReader(f, hash), st.Size())
	if err != nil {
		return nil, "", 0, err
	}
	rest, err := io.Copy(hash, f)
	if err != nil {
		return nil, "", 0, fmt.Errorf("%s: %w", name, err)
	}
	return h, hex.EncodeToString(hash.Sum(nil)), h.Bytes + rest, nil
}

// cardSummary returns a model card's first "# " heading and the first
// sentence of the paragraph after it (lines joined by spaces).
func cardSummary(card string) (title, summary string) {
	var para []string
	for _, line := range strings.Split(card, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case title == "" && strings.HasPrefix(line, "# "):
			title = strings.TrimSpace(line[2:])
		case title == "":
		case line == "" && len(para) > 0:
			return title, firstSentence(strings.Join(para, " "))
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			para = append(para, line)
		}
	}
	return title, firstSentence(strings.Join(para, " "))
}

// firstSentence cuts s after the first ". " (or returns s).
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}

func hashFile(name string) (string, int64, error) {
	f, _, err := safefile.OpenRegular(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
