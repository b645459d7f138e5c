package main

// This file is `remask models` and the model library that `remask serve`
// builds: every *.safetensors file in the model folders, known by its file
// name without the extension.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/remask/remask/engine/api"
	"github.com/remask/remask/internal/safefile"
	"github.com/remask/remask/internal/termsafe"
	"github.com/remask/remask/internal/units"
)

// libraryDir is one folder searched for models.
type libraryDir struct {
	Path   string `json:"path"`
	Origin string `json:"origin"` // --models, REMASK_MODELS, ./models, user models (...), <executable>/../models
	Exists bool   `json:"exists"`
	Models int    `json:"models"`
}

// libraryModel is one model file found.
type libraryModel struct {
	ID   string
	Path string
	// ShadowedBy is the path of an earlier file with the same id, which the
	// library uses instead of this one.
	ShadowedBy string
}

// libraryDirs are the folders searched, first match wins: --models DIR,
// each folder of $REMASK_MODELS (a path list, like $PATH), ./models, the
// per-user folder (userModelsDir: where `remask pull` downloads to) and
// <executable dir>/../models. A folder reached twice is searched once.
func libraryDirs(flagDir string, getenv func(string) string, executable func() (string, error)) []libraryDir {
	var dirs []libraryDir
	seen := map[string]bool{}
	add := func(path, origin string) {
		if path == "" {
			return
		}
		key := filepath.Clean(path)
		if abs, err := filepath.Abs(key); err == nil {
			key = abs
		}
		if seen[key] {
			return
		}
		seen[key] = true
		st, err := os.Stat(path)
		dirs = append(dirs, libraryDir{Path: path, Origin: origin, Exists: err == nil && st.IsDir()})
	}
	add(flagDir, "--models")
	for _, d := range filepath.SplitList(getenv("REMASK_MODELS")) {
		add(d, "REMASK_MODELS")
	}
	add("models", "./models")
	add(userModelsDir(getenv), userModelsOrigin)
	if exe, err := executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		add(filepath.Join(filepath.Dir(exe), "..", "models"), "<executable>/../models")
	}
	return dirs
}

// userModelsOrigin names the per-user folder in listings.
const userModelsOrigin = "user models ($XDG_DATA_HOME/remask/models)"

// userModelsDir is the per-user model folder, after the XDG base directory
// spec: $XDG_DATA_HOME/remask/models when XDG_DATA_HOME is an absolute path,
// else $HOME/.local/share/remask/models; "" when neither is set.
func userModelsDir(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "remask", "models")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "remask", "models")
	}
	return ""
}

// scanLibrary lists the *.safetensors files of dirs (sorted by name in each
// folder) and counts them per folder. An id found again later is returned
// with ShadowedBy set.
func scanLibrary(dirs []libraryDir) ([]libraryModel, error) {
	var out []libraryModel
	first := map[string]string{}
	for i := range dirs {
		d := &dirs[i]
		if !d.Exists {
			continue
		}
		entries, err := os.ReadDir(d.Path)
		if err != nil {
			return nil, fmt.Errorf("reading the model folder %s (%s): %w", d.Path, d.Origin, err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".safetensors") || strings.HasPrefix(name, ".") {
				continue
			}
			id := strings.TrimSuffix(name, ".safetensors")
			path := filepath.Join(d.Path, name)
			m := libraryModel{ID: id, Path: path}
			if prev, ok := first[id]; ok {
				m.ShadowedBy = prev
			} else {
				first[id] = path
				d.Models++
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// librarySources turns the models found into the API's library: valid ids
// only, shadowed files left out. skipped says why a file was left out.
func librarySources(found []libraryModel) (sources []api.ModelSource, skipped []string) {
	for _, m := range found {
		if m.ShadowedBy != "" {
			skipped = append(skipped, fmt.Sprintf("%s: id %q is already %s", m.Path, m.ID, m.ShadowedBy))
			continue
		}
		if err := api.CheckID(m.ID); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v; rename the file", m.Path, err))
			continue
		}
		sources = append(sources, api.ModelSource{ID: m.ID, Source: m.Path})
	}
	return sources, skipped
}

type modelsArgs struct {
	models  string
	jsonOut bool
}

func modelsFlags() (*flagSet, *modelsArgs) {
	a := &modelsArgs{}
	fs := newFlagSet("models", "[flags]",
		"Lists the models remask can find, with their kind and sizes, read from each file's header:\n"+
			"the *.safetensors files of --models DIR, of every folder in $REMASK_MODELS (a path list),\n"+
			"of ./models, of the per-user folder $XDG_DATA_HOME/remask/models (default\n"+
			"~/.local/share/remask/models, where `remask pull` downloads) and of <executable dir>/../models.\n"+
			"A model's id is its file name without .safetensors; when two folders hold the same id, the\n"+
			"first one listed here wins.")
	fs.stringVar(&a.models, "models", "", "DIR", "an extra model folder, searched first")
	fs.showDefault("models", "none")
	fs.boolVar(&a.jsonOut, "json", false, "print one JSON object instead of a table")
	return fs, a
}

// modelsEntry is one row of `remask models --json`.
type modelsEntry struct {
	api.ModelInfo
	// Loaded hides ModelInfo's field, which says nothing outside a server.
	Loaded     *bool  `json:"loaded,omitempty"`
	ShadowedBy string `json:"shadowed_by,omitempty"`
}

// modelsCommand is `remask models`.
func modelsCommand(ctx context.Context, c *cli, args []string) error {
	fs, a := modelsFlags()
	if err := fs.parse(args, c.stdout); err != nil {
		return err
	}
	dirs := libraryDirs(a.models, c.getenv, c.executable)
	if a.models != "" && !dirs[0].Exists {
		return flagError("models", "%s is not a folder", a.models)
	}
	found, err := scanLibrary(dirs)
	if err != nil {
		return err
	}
	entries := make([]modelsEntry, len(found))
	for i, m := range found {
		info, err := api.ReadInfo(ctx, regularLoader{}, m.Path)
		if err != nil {
			info = api.ModelInfo{Source: m.Path, Error: err.Error()}
		}
		info.ID = m.ID
		entries[i] = modelsEntry{ModelInfo: info, ShadowedBy: m.ShadowedBy}
	}
	if a.jsonOut {
		out := struct {
			Models   []modelsEntry `json:"models"`
			Searched []libraryDir  `json:"searched"`
		}{entries, dirs}
		enc := json.NewEncoder(c.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	// File names and the errors about the files' contents are escaped
	// before they reach the terminal; --json stays exact.
	var b strings.Builder
	printModels(&b, entries)
	io.WriteString(c.stdout, termsafe.EscapeText(b.String()))
	b.Reset()
	printSearched(&b, dirs, len(entries))
	io.WriteString(c.stderr, termsafe.EscapeText(b.String()))
	return nil
}

// regularLoader opens the model files `remask models` lists: regular files
// only, opened without blocking, so that a FIFO or a device named
// *.safetensors is listed as unreadable instead of hanging the listing or
// being read without end.
type regularLoader struct{}

func (regularLoader) Open(ctx context.Context, path string) (io.ReadCloser, int64, error) {
	f, st, err := safefile.OpenRegular(path)
	if err != nil {
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// printModels prints the table of `remask models`.
func printModels(w io.Writer, entries []modelsEntry) {
	if len(entries) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tLAYERS\tHEADS\tEMBD\tBLOCK\tVOCAB\tPARAMS\tDTYPE\tSIZE\tEXTRA\tPATH")
	for _, e := range entries {
		if e.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\t\t\t\t\t%s\n", e.ID, "unreadable", e.Source)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Kind, e.NLayer, e.NHead, e.NEmbd,
			e.BlockSize, e.VocabSize, humanCount(e.Parameters), e.DType, units.Bytes(e.Bytes), modelExtra(&e), e.Source)
	}
	tw.Flush()
	for _, e := range entries {
		if e.Error != "" {
			fmt.Fprintf(w, "\n%s: %s\n", e.ID, e.Error)
		}
		if e.ShadowedBy != "" {
			fmt.Fprintf(w, "\n%s: not used: the id is already %s\n", e.Source, e.ShadowedBy)
		}
	}
}

// modelExtra names a model's heads and options in a few words.
func modelExtra(e *modelsEntry) string {
	var parts []string
	if e.Heads != nil {
		if e.Heads.Critic {
			parts = append(parts, "critic")
		}
		if e.Heads.Sampler {
			parts = append(parts, "sampler("+e.SamplerNeighbors+")")
		}
	}
	if e.NumTokenClasses > 0 {
		parts = append(parts, fmt.Sprintf("%d classes", e.NumTokenClasses))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

// printSearched says which folders were searched.
func printSearched(w io.Writer, dirs []libraryDir, n int) {
	var parts []string
	for _, d := range dirs {
		state := fmt.Sprintf("%d models", d.Models)
		if !d.Exists {
			state = "not found"
		}
		parts = append(parts, fmt.Sprintf("%s (%s, %s)", d.Path, d.Origin, state))
	}
	if n == 0 {
		fmt.Fprintf(w, "No models found. Put .safetensors model files into one of the folders (remask pull URL downloads one into the per-user folder), or pass --models DIR.\n")
	}
	fmt.Fprintf(w, "Searched: %s\n", strings.Join(parts, "; "))
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
