package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/remask/remask/internal/safefile"
)

// maxCalibrationBytes bounds a calibration.json (the fork's, with a table
// for each of its checkpoints, is under 4 KB).
const maxCalibrationBytes = 16 << 20

// calibrationSize is the length of a [D7] critic calibration table.
const calibrationSize = 100

// calibrate attaches the [D7] critic calibration table (sampler-spec 2.7)
// when one is given, and notes its absence otherwise.
func (c *Checkpoint) calibrate(opts Options, arch *architecture, conv *Conversion) error {
	cfg := &conv.Model.Config
	if opts.CalibrationPath == "" {
		if arch.family == D7 && cfg.HasCritic() {
			note := "no critic calibration table (pass --calibration calibration.json): calibrated remasking will be unavailable for this model"
			next := filepath.Join(filepath.Dir(c.Path), "calibration.json")
			if _, err := os.Stat(next); err == nil {
				note += fmt.Sprintf("; %s exists next to the checkpoint", next)
			}
			conv.Warnings = append(conv.Warnings, note)
		}
		return nil
	}
	if !cfg.HasCritic() {
		return fmt.Errorf("a calibration table was given (%s) but the model has no critic head: the table maps critic probabilities; leave --calibration out", opts.CalibrationPath)
	}
	table, key, how, err := readCalibration(opts.CalibrationPath, c.Path)
	if err != nil {
		return err
	}
	cfg.CriticCalibration = table
	conv.Actions = append(conv.Actions, fmt.Sprintf("critic calibration table from %s, entry %q (matched by %s)", opts.CalibrationPath, key, how))
	return nil
}

// readCalibration finds the table for ckpt in a calibration.json, which maps
// checkpoint paths to 100 numbers. Keys are matched as the reference does
// (the path as given, then the resolved path) and then by file name, which
// the reference lacks: the fork's shipped file has Windows keys such as
// `out-char-diffusion\ckpt.pt` that never match on POSIX (sampler-spec Q22).
func readCalibration(path, ckpt string) (table []float64, key, how string, err error) {
	data, err := safefile.ReadFile(path, maxCalibrationBytes)
	if err != nil {
		return nil, "", "", fmt.Errorf("read calibration: %w", openError(err))
	}
	keys, values, err := jsonObject(data)
	if err != nil {
		return nil, "", "", fmt.Errorf("%s: not a JSON object mapping checkpoint paths to 100 numbers: %v", path, err)
	}
	absCkpt, _ := filepath.Abs(ckpt)
	realCkpt, _ := filepath.EvalSymlinks(ckpt)
	tiers := []struct {
		how   string
		match func(k string) bool
	}{
		{"exact path", func(k string) bool { return k == ckpt }},
		{"resolved path", func(k string) bool {
			if abs, err := filepath.Abs(k); err == nil && abs == absCkpt {
				return true
			}
			real, err := filepath.EvalSymlinks(k)
			return err == nil && realCkpt != "" && real == realCkpt
		}},
		{"file name", func(k string) bool { return baseName(k) == filepath.Base(ckpt) }},
	}
	for _, tier := range tiers {
		var found []int
		for i, k := range keys {
			if tier.match(k) {
				found = append(found, i)
			}
		}
		if len(found) == 0 {
			continue
		}
		first, err := calibrationTable(path, keys[found[0]], values[found[0]])
		if err != nil {
			return nil, "", "", err
		}
		for _, i := range found[1:] {
			other, err := calibrationTable(path, keys[i], values[i])
			if err != nil {
				return nil, "", "", err
			}
			if !slices.Equal(first, other) {
				return nil, "", "", fmt.Errorf("%s: entries %q and %q both match %s by %s and hold different tables: keep one", path, keys[found[0]], keys[i], filepath.Base(ckpt), tier.how)
			}
		}
		return first, keys[found[0]], tier.how, nil
	}
	shown := make([]string, 0, len(keys))
	for _, k := range keys {
		shown = append(shown, fmt.Sprintf("%q", k))
	}
	return nil, "", "", fmt.Errorf("%s has no table for %s (its keys: %s); entries match by exact path, resolved path or file name: pass the calibration file written for this checkpoint", path, ckpt, strings.Join(shown, ", "))
}

// baseName is the last element of a path with either separator.
func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

func calibrationTable(path, key string, raw json.RawMessage) ([]float64, error) {
	var table []float64
	if err := json.Unmarshal(raw, &table); err != nil {
		return nil, fmt.Errorf("%s: entry %q is not a list of numbers: %v", path, key, err)
	}
	if len(table) != calibrationSize {
		return nil, fmt.Errorf("%s: entry %q has %d numbers, want %d (one per critic-probability bucket)", path, key, len(table), calibrationSize)
	}
	for i, v := range table {
		if !(v >= 0 && v <= 1) {
			return nil, fmt.Errorf("%s: entry %q: value %d is %v, want a probability in [0, 1]", path, key, i, v)
		}
	}
	return table, nil
}

// jsonObject splits a JSON object into keys and raw values, in file order.
func jsonObject(data []byte) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("it starts with %v", tok)
	}
	var keys []string
	var values []json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
		values = append(values, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	return keys, values, nil
}
