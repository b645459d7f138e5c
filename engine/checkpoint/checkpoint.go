// Package checkpoint reads the checkpoints of the diffusion-first nanoGPT
// fork (ckpt.pt, written by torch.save) and converts them into remask/1
// models (engine/model), the job of `remask convert` and `remask inspect`.
//
// It knows both generations of the fork's model.py (sampler-spec.md 1.1,
// 1.7, 2.2): [SH] checkpoints, whose model_args carry a pickled
// model.ModelMode, and [D7] checkpoints (LoRA adapters, shared block
// matrices, guidance modules, dual heads, mode in config['model_mode']).
// Conversion is strict: every tensor of the state dict is either used,
// merged, or dropped for a stated reason, and every tensor the architecture
// needs must be there with its exact shape (sampler-spec Q23). Anything
// remask cannot run is an error that names it; nothing is guessed silently.
//
// It does not run PyTorch and needs no Python: the torch.save zip archive
// and its pickle are decoded in Go (pickle.go).
package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/types"

	"github.com/remask/remask/internal/safefile"
)

// Family is the generation of the fork's model.py that wrote a checkpoint.
type Family string

const (
	// SH is the feature/sampler-head branch: ModelMode in model_args, sampler
	// head, absolute or rotary positions, causal or bidirectional attention.
	SH Family = "sh"
	// D7 is the diffusion_07_10 branch (and [SEED]/[DOC], whose model.py is
	// the same): rotary, bidirectional, LoRA, shared matrices, guidance.
	D7 Family = "d7"
)

// Label is the family as the spec writes it: "[SH]" or "[D7]".
func (f Family) Label() string { return "[" + strings.ToUpper(string(f)) + "]" }

// Tensor is one entry of a checkpoint's state dict, gathered into a dense
// row-major array and widened to float32.
type Tensor struct {
	Shape []int
	// DType is the stored dtype: "F32", "F16", "BF16", "F64", or an integer
	// or bool dtype ("I64", "BOOL", ...), for which Data is nil.
	DType string
	Data  []float32
}

// Numel is the element count of the shape.
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Checkpoint is a fork ckpt.pt as read from disk. The optimizer state is
// never decoded. Tests and tools may edit StateDict, ModelArgs and Config
// before calling Convert.
type Checkpoint struct {
	// Path is the file that was opened.
	Path string
	// StateDict is checkpoint['model'] by key, exactly as saved (a
	// `_orig_mod.` prefix is still there; Convert strips it).
	StateDict map[string]*Tensor
	// ModelArgs is checkpoint['model_args'], the GPTConfig arguments.
	ModelArgs Dict
	// Config is checkpoint['config'] (train.py globals and the dataset meta
	// in config['meta']), nil when absent.
	Config Dict
	// IterNum is checkpoint['iter_num'], nil when absent.
	IterNum *int
	// BestValLoss is checkpoint['best_val_loss'] (a float or a 0-d tensor
	// in the file), nil when absent or not a number.
	BestValLoss *float64
	// HasOptimizer says whether the file has an 'optimizer' entry (ignored).
	HasOptimizer bool
	// Keys are the top-level keys of the saved dict, in order.
	Keys []string
}

// Open reads a fork checkpoint: the torch.save zip archive, its pickled
// dict, the state dict's tensors, model_args, config, iter_num and
// best_val_loss. It does not interpret model_args; Convert does. The path
// must name a regular file (a FIFO or a device is refused at once), and
// the memory it takes is bounded by DefaultMaxBytes of the file's size.
func Open(path string) (*Checkpoint, error) {
	return OpenLimited(path, Limits{})
}

// OpenLimited is Open with explicit limits.
func OpenLimited(path string, lim Limits) (*Checkpoint, error) {
	f, st, err := safefile.OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", openError(err))
	}
	defer f.Close()
	return read(path, f, st.Size(), lim)
}

// read is Open on the bytes of r (size bytes); path names them in messages.
func read(path string, r io.ReaderAt, size int64, lim Limits) (*Checkpoint, error) {
	head := make([]byte, 16)
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if err := sniff(path, head[:n]); err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable zip archive (%v): the file is truncated or corrupted; copy it again", path, err)
	}
	a := &archive{zr: zr, records: map[string]*zip.File{}, storages: map[string]*storage{}, budget: newBudget(lim, size)}
	defer a.close()
	var pkl *zip.File
	for _, f := range zr.File {
		a.records[f.Name] = f
		dir, base := splitRecord(f.Name)
		if base == "data.pkl" && strings.Count(dir, "/") <= 1 {
			if pkl != nil {
				return nil, fmt.Errorf("%s: the archive has two data.pkl records (%s, %s): not a single torch.save file", path, pkl.Name, f.Name)
			}
			pkl = f
			a.prefix = f.Name[:len(f.Name)-len("data.pkl")]
		}
	}
	if pkl == nil {
		return nil, fmt.Errorf("%s: a zip archive without data.pkl: not a file written by torch.save", path)
	}
	if a.records[a.prefix+"constants.pkl"] != nil {
		return nil, fmt.Errorf("%s: a TorchScript archive (torch.jit.save), not a training checkpoint: convert the ckpt.pt that the fork's train.py wrote", path)
	}
	data, err := readRecord(pkl, a.budget)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	top, err := unpickle(data, a.persistentLoad, a.budget)
	if err != nil {
		if errors.Is(err, errTruncated) || errors.Is(err, ErrLimit) {
			return nil, fmt.Errorf("%s: %s: %w", path, pkl.Name, err)
		}
		return nil, fmt.Errorf("%s: cannot decode the pickled checkpoint: %v", path, err)
	}
	c, err := fromPickle(path, top)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// readRecord reads a whole record (data.pkl), charging its size to b first.
// Reading to the end makes the zip reader verify its size and CRC-32.
func readRecord(f *zip.File, b *budget) ([]byte, error) {
	n := f.UncompressedSize64
	if n > math.MaxInt64 {
		n = math.MaxInt64
	}
	hint := ""
	if f.Method != zip.Store {
		hint = fmt.Sprintf("; it is compressed from %d bytes (a zip bomb?)", f.CompressedSize64)
	}
	if err := b.take(int64(n), "record "+f.Name, hint); err != nil {
		return nil, err
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", f.Name, err)
	}
	defer rc.Close()
	data := make([]byte, n)
	if _, err := io.ReadFull(rc, data); err != nil {
		return nil, fmt.Errorf("%s: %v: %w (copy the checkpoint again)", f.Name, err, errTruncated)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, fmt.Errorf("%s: %v: the checkpoint is corrupted; copy it again", f.Name, err)
	}
	return data, nil
}

// sniff recognises, from its first bytes, the files people mistake for a
// ckpt.pt and says what to do.
func sniff(path string, head []byte) error {
	n := len(head)
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return nil
	case n == 0:
		return fmt.Errorf("%s: the file is empty: %w; copy the checkpoint again", path, errTruncated)
	case head[0] == 0x80 && !(n >= 4 && head[2] == 0x8a && head[3] == 0x0a):
		// A pickle that does not start with torch.save's magic number (a
		// LONG1 of 10 bytes).
		return fmt.Errorf("%s: a plain pickle (a dataset meta.pkl?), not a torch.save checkpoint: pass it with --meta, and the ckpt.pt as the checkpoint", path)
	case head[0] == 0x80:
		return fmt.Errorf("%s: a legacy (non-zip) torch.save file, written before PyTorch 1.6 or with _use_new_zipfile_serialization=False; remask reads the zip format: re-save it with a current PyTorch, e.g. torch.save(torch.load(p, weights_only=False), p)", path)
	case n >= 9 && binary.LittleEndian.Uint64(head) < 100_000_000 && head[8] == '{':
		return fmt.Errorf("%s: a .safetensors file, not a PyTorch checkpoint: if it is a remask/1 model it needs no conversion (see `remask inspect`)", path)
	}
	return fmt.Errorf("%s: not a PyTorch checkpoint (no zip signature at the start): convert the ckpt.pt written by the fork's train.py", path)
}

// splitRecord splits an archive record name at its last slash.
func splitRecord(name string) (dir, base string) {
	i := strings.LastIndex(name, "/")
	return name[:i+1], name[i+1:]
}

// fromPickle interprets the top-level dict of a fork checkpoint.
func fromPickle(path string, top any) (*Checkpoint, error) {
	entries, ok := dictEntries(top)
	if !ok {
		return nil, fmt.Errorf("the saved object is %s, not the fork's checkpoint dict {'model', 'optimizer', 'model_args', 'iter_num', 'best_val_loss', 'config'}", describe(top))
	}
	c := &Checkpoint{Path: path}
	raw := map[string]any{}
	for _, e := range entries {
		k, ok := e.Key.(string)
		if !ok {
			return nil, fmt.Errorf("the checkpoint dict has a key that is %s; want string keys", describe(e.Key))
		}
		c.Keys = append(c.Keys, k)
		raw[k] = e.Value
	}
	sdRaw, hasModel := raw["model"]
	if _, hasArgs := raw["model_args"]; !hasModel || !hasArgs {
		if looksLikeStateDict(entries) {
			return nil, errors.New("a bare state_dict (torch.save(model.state_dict())), not a fork checkpoint: it has no model_args, so its architecture is unknown; convert the ckpt.pt that the fork's train.py wrote")
		}
		return nil, fmt.Errorf("no 'model' and 'model_args' entries (the top-level keys are %s): not a checkpoint of the diffusion-first nanoGPT fork", quoteList(c.Keys))
	}
	sd, err := stateDict(sdRaw)
	if err != nil {
		return nil, err
	}
	c.StateDict = sd
	_, c.HasOptimizer = raw["optimizer"]

	args, err := normalize(raw["model_args"], 0)
	if err != nil {
		return nil, fmt.Errorf("model_args: %v", err)
	}
	if c.ModelArgs, ok = args.(Dict); !ok {
		return nil, fmt.Errorf("model_args is %s, want a dict of GPTConfig arguments", describe(args))
	}
	if v, ok := raw["config"]; ok && v != nil {
		cfg, err := normalize(v, 0)
		if err != nil {
			return nil, fmt.Errorf("config: %v", err)
		}
		if c.Config, ok = cfg.(Dict); !ok {
			return nil, fmt.Errorf("config is %s, want a dict of train.py settings", describe(cfg))
		}
	}
	if v, ok := raw["iter_num"]; ok && v != nil {
		it, err := normalize(v, 0)
		if err != nil {
			return nil, fmt.Errorf("iter_num: %v", err)
		}
		n, ok := it.(int)
		if !ok {
			return nil, fmt.Errorf("iter_num is %s, want an int", describe(it))
		}
		c.IterNum = &n
	}
	if v, ok := raw["best_val_loss"]; ok && v != nil {
		// Informational: a float, or a 0-d tensor (nanoGPT stores the mean
		// loss tensor); anything else is left out.
		if bv, err := normalize(v, 0); err == nil {
			switch x := bv.(type) {
			case float64:
				c.BestValLoss = &x
			case int:
				f := float64(x)
				c.BestValLoss = &f
			case *Tensor:
				if len(x.Data) == 1 {
					f := float64(x.Data[0])
					c.BestValLoss = &f
				}
			}
		}
	}
	return c, nil
}

// dictEntries returns the entries of a pickled dict or OrderedDict, in order.
func dictEntries(v any) ([]types.DictEntry, bool) {
	switch d := v.(type) {
	case *types.Dict:
		return *d, true
	case *types.OrderedDict:
		out := make([]types.DictEntry, 0, d.Len())
		for el := d.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			out = append(out, types.DictEntry{Key: e.Key, Value: e.Value})
		}
		return out, true
	}
	return nil, false
}

func looksLikeStateDict(entries []types.DictEntry) bool {
	if len(entries) == 0 {
		return false
	}
	for _, e := range entries {
		if _, ok := e.Value.(*rawTensor); !ok {
			return false
		}
	}
	return true
}

// stateDict gathers checkpoint['model'] into dense tensors.
func stateDict(v any) (map[string]*Tensor, error) {
	entries, ok := dictEntries(v)
	if !ok {
		return nil, fmt.Errorf("checkpoint['model'] is %s, want the model's state_dict", describe(v))
	}
	sd := make(map[string]*Tensor, len(entries))
	for _, e := range entries {
		name, ok := e.Key.(string)
		if !ok {
			return nil, fmt.Errorf("the state dict has a key that is %s; want parameter names", describe(e.Key))
		}
		rt, ok := e.Value.(*rawTensor)
		if !ok {
			return nil, fmt.Errorf("state dict entry %s is %s, not a tensor", name, describe(e.Value))
		}
		t, err := rt.tensor()
		if err != nil {
			return nil, fmt.Errorf("state dict entry %s: %w", name, err)
		}
		if _, dup := sd[name]; dup {
			return nil, fmt.Errorf("the state dict lists %s twice", name)
		}
		sd[name] = t
	}
	return sd, nil
}

// Family tells which generation of the fork wrote the checkpoint: [SH] when
// model_args has 'mode' or the [SH]-only fields, [D7] when it has the [D7]
// fields (LoRA, guidance, shared matrices) and no 'mode'.
func (c *Checkpoint) Family() (Family, error) {
	has := func(keys ...string) []string {
		var found []string
		for _, k := range keys {
			if _, ok := c.ModelArgs[k]; ok {
				found = append(found, k)
			}
		}
		return found
	}
	if len(has("mode")) > 0 {
		return SH, nil
	}
	d7 := has("use_guidance", "use_lora_attn", "use_lora_mlp", "lora_rank", "lora_alpha", "share_main_matrices", "plan_tokens")
	sh := has("attention_type", "position_encoding", "add_sampler_head", "num_token_classes", "binary_classification")
	switch {
	case len(d7) > 0 && len(sh) == 0:
		return D7, nil
	case len(sh) > 0 && len(d7) == 0:
		return SH, nil
	case len(sh) > 0:
		return "", fmt.Errorf("model_args mixes [SH] fields (%s) and [D7] fields (%s) and has no 'mode': remask cannot tell which model.py wrote it", strings.Join(sh, ", "), strings.Join(d7, ", "))
	}
	return "", fmt.Errorf("model_args has neither 'mode' nor any field of a known fork generation (keys: %s): remask converts checkpoints of the diffusion-first nanoGPT fork's [SH] and [D7] model.py only", quoteList(sortedKeys(c.ModelArgs)))
}

func quoteList(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = "'" + k + "'"
	}
	sort.Strings(q)
	return "[" + strings.Join(q, ", ") + "]"
}
