package checkpoint

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/remask/remask/engine/model"
)

// Reading torch.save files.
//
// A torch.save file (PyTorch >= 1.6) is a zip archive: <root>/data.pkl is a
// pickle of the saved object, in which every tensor is a call of
// torch._utils._rebuild_tensor_v2 on a storage that the pickle names by a
// persistent id ('storage', torch.FloatStorage, key, location, numel); the
// storage's bytes are the record <root>/data/<key>.
//
// The pickle opcodes are decoded by github.com/nlpodyssey/gopickle/pickle;
// the classes a pickle names are resolved here (resolveClass), and storages
// are read lazily: a tensor's bytes are decoded only when the converter asks
// for them, so the optimizer state (most of a checkpoint's bytes) is never
// read. Classes this package does not know become Opaque values instead of
// errors: a checkpoint may carry anything in parts remask ignores, and the
// parts it uses are checked field by field.

// ModelMode is a pickled member of the fork's `model.ModelMode` enum, as its
// value string ("language_model", "token_classifier", "sequence_scorer").
type ModelMode string

// Opaque is a pickled object of a class remask does not interpret.
type Opaque struct {
	// Class is "module.Name" of the pickled class or function.
	Class string
}

func (o *Opaque) String() string { return "a pickled " + o.Class + " object" }

// PySetState and the five methods below are what the pickle machinery
// calls on objects under construction; an Opaque accepts and forgets
// everything.
func (o *Opaque) PySetState(any) error        { return nil }
func (o *Opaque) PyDictSet(_, _ any) error    { return nil }
func (o *Opaque) PySetAttr(string, any) error { return nil }
func (o *Opaque) Set(_, _ any)                {}
func (o *Opaque) Append(any)                  {}
func (o *Opaque) Add(any)                     {}

// opaqueClass stands for a class or function remask does not know: calling
// or instantiating it gives an Opaque.
type opaqueClass struct{ name string }

func (c *opaqueClass) Call(...any) (any, error)  { return &Opaque{Class: c.name}, nil }
func (c *opaqueClass) PyNew(...any) (any, error) { return &Opaque{Class: c.name}, nil }

// modeClass is the fork's ModelMode enum class. Python <= 3.10 pickles a
// member as ModelMode(value); Python >= 3.11 as getattr(ModelMode, NAME).
type modeClass struct{ name string }

func (c *modeClass) Call(args ...any) (any, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%s called with %d arguments, want 1 (the member's value)", c.name, len(args))
	}
	v, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("%s called with %s, want the member's value string", c.name, describe(args[0]))
	}
	return ModelMode(v), nil
}

// getattrFunc is Python's getattr, which pickles use to name enum members.
type getattrFunc struct{}

func (getattrFunc) Call(args ...any) (any, error) {
	if len(args) == 2 {
		if _, ok := args[0].(*modeClass); ok {
			if name, ok := args[1].(string); ok {
				return ModelMode(strings.ToLower(name)), nil
			}
		}
	}
	return &Opaque{Class: "builtins.getattr"}, nil
}

// rebuildTensor is torch._utils._rebuild_tensor_v2(storage, storage_offset,
// size, stride, requires_grad, backward_hooks[, metadata]).
type rebuildTensor struct{}

func (rebuildTensor) Call(args ...any) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("torch._utils._rebuild_tensor_v2 called with %d arguments, want 6 or 7", len(args))
	}
	st, ok := args[0].(*storage)
	if !ok {
		return nil, fmt.Errorf("torch._utils._rebuild_tensor_v2: the storage is %s, not a tensor storage", describe(args[0]))
	}
	offset, ok := args[1].(int)
	if !ok || offset < 0 {
		return nil, fmt.Errorf("torch._utils._rebuild_tensor_v2: storage offset %v is not an int >= 0", args[1])
	}
	size, err := intTuple(args[2])
	if err != nil {
		return nil, fmt.Errorf("torch._utils._rebuild_tensor_v2: size: %v", err)
	}
	stride, err := intTuple(args[3])
	if err != nil {
		return nil, fmt.Errorf("torch._utils._rebuild_tensor_v2: stride: %v", err)
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("torch._utils._rebuild_tensor_v2: size %v and stride %v differ in length", size, stride)
	}
	return &rawTensor{st: st, offset: offset, size: size, stride: stride}, nil
}

// rebuildParameter is torch._utils._rebuild_parameter(data, requires_grad,
// backward_hooks): a Parameter is its data.
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("torch._utils._rebuild_parameter called without arguments")
	}
	return args[0], nil
}

// storageClass is one of torch.FloatStorage, torch.HalfStorage, ...
type storageClass struct {
	name  string // "FloatStorage"
	dtype string // "F32", "F16", "BF16", "F64", or an integer/bool dtype
	size  uint64 // bytes per element
}

var storageClasses = map[string]storageClass{
	"FloatStorage":    {"FloatStorage", model.F32, 4},
	"HalfStorage":     {"HalfStorage", model.F16, 2},
	"BFloat16Storage": {"BFloat16Storage", model.BF16, 2},
	"DoubleStorage":   {"DoubleStorage", "F64", 8},
	"LongStorage":     {"LongStorage", "I64", 8},
	"IntStorage":      {"IntStorage", "I32", 4},
	"ShortStorage":    {"ShortStorage", "I16", 2},
	"CharStorage":     {"CharStorage", "I8", 1},
	"ByteStorage":     {"ByteStorage", "U8", 1},
	"BoolStorage":     {"BoolStorage", "BOOL", 1},
}

// storage is one storage record of the archive, decoded on first use.
type storage struct {
	class  storageClass
	key    string
	numel  int
	record *zip.File
	floats []float32 // decoded values, nil until loaded
	err    error
}

func isFloat(dtype string) bool {
	switch dtype {
	case model.F32, model.F16, model.BF16, "F64":
		return true
	}
	return false
}

// values reads and decodes the storage to float32 (F64 is rounded).
func (s *storage) values() ([]float32, error) {
	if s.floats != nil || s.err != nil {
		return s.floats, s.err
	}
	s.floats, s.err = s.load()
	return s.floats, s.err
}

func (s *storage) load() ([]float32, error) {
	if !isFloat(s.class.dtype) {
		return nil, fmt.Errorf("storage %s is a torch.%s; remask reads floating-point tensors only", s.key, s.class.name)
	}
	n := uint64(s.numel) * s.class.size
	if s.record.UncompressedSize64 < n {
		return nil, fmt.Errorf("storage record %s holds %d bytes but its %d %s elements need %d: %w (copy the checkpoint again)",
			s.record.Name, s.record.UncompressedSize64, s.numel, s.class.name, n, errTruncated)
	}
	rc, err := s.record.Open()
	if err != nil {
		return nil, fmt.Errorf("storage record %s: %v", s.record.Name, err)
	}
	defer rc.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("storage record %s: %v: %w (copy the checkpoint again)", s.record.Name, err, errTruncated)
	}
	// Read to the end so that the zip reader verifies the record's CRC-32.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, fmt.Errorf("storage record %s: %v: the checkpoint is corrupted; copy it again", s.record.Name, err)
	}
	out := make([]float32, s.numel)
	le := binary.LittleEndian
	switch s.class.dtype {
	case model.F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(buf[4*i:]))
		}
	case model.F16:
		for i := range out {
			out[i] = model.Float16ToFloat32(le.Uint16(buf[2*i:]))
		}
	case model.BF16:
		for i := range out {
			out[i] = model.BFloat16ToFloat32(le.Uint16(buf[2*i:]))
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(buf[8*i:])))
		}
	}
	return out, nil
}

// rawTensor is a tensor as the pickle describes it: a strided view of a storage.
type rawTensor struct {
	st     *storage
	offset int
	size   []int
	stride []int
}

// numel is the element count of the view, or an error on overflow.
func (t *rawTensor) numel() (int, error) {
	n := 1
	for _, d := range t.size {
		if d < 0 {
			return 0, fmt.Errorf("size %v has a negative dimension", t.size)
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, fmt.Errorf("size %v is too large", t.size)
		}
		n *= d
	}
	return n, nil
}

// tensor gathers the view into a dense row-major Tensor.
func (t *rawTensor) tensor() (*Tensor, error) {
	n, err := t.numel()
	if err != nil {
		return nil, err
	}
	out := &Tensor{Shape: append([]int{}, t.size...), DType: t.st.class.dtype}
	if !isFloat(t.st.class.dtype) {
		return out, nil // kept for messages; Data stays nil
	}
	vals, err := t.st.values()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		out.Data = []float32{}
		return out, nil
	}
	// The largest index the view touches must lie in the storage.
	last := t.offset
	for i, d := range t.size {
		if t.stride[i] < 0 {
			return nil, fmt.Errorf("stride %v is negative", t.stride)
		}
		last += (d - 1) * t.stride[i]
	}
	if last >= len(vals) {
		return nil, fmt.Errorf("the view (offset %d, size %v, stride %v) reaches element %d of a %d-element storage: the checkpoint is corrupted",
			t.offset, t.size, t.stride, last, len(vals))
	}
	out.Data = make([]float32, n)
	if contiguous(t.size, t.stride) {
		copy(out.Data, vals[t.offset:t.offset+n])
		return out, nil
	}
	idx := make([]int, len(t.size))
	for i := range out.Data {
		p := t.offset
		for d := range idx {
			p += idx[d] * t.stride[d]
		}
		out.Data[i] = vals[p]
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < t.size[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out, nil
}

func contiguous(size, stride []int) bool {
	want := 1
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] != 1 && stride[i] != want {
			return false
		}
		want *= size[i]
	}
	return true
}

var errTruncated = model.ErrTruncated

// resolveClass maps the classes and functions a fork checkpoint or meta.pkl
// names; anything else becomes an opaqueClass.
func resolveClass(module, name string) (any, error) {
	full := module + "." + name
	switch full {
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor{}, nil
	case "torch._utils._rebuild_parameter":
		return rebuildParameter{}, nil
	case "builtins.getattr", "__builtin__.getattr":
		return getattrFunc{}, nil
	}
	if module == "torch" {
		if c, ok := storageClasses[name]; ok {
			return c, nil
		}
	}
	// The fork's enum lives in model.py, imported as `model` by its scripts;
	// accept it under any module path (a package install, __main__).
	if name == "ModelMode" {
		return &modeClass{name: full}, nil
	}
	return &opaqueClass{name: full}, nil
}

// unpickle decodes one pickle stream. persistentLoad may be nil (meta.pkl
// has no tensors). Panics inside the decoder (it has a few on malformed
// input) become errors.
func unpickle(r io.Reader, persistentLoad func(any) (any, error)) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("malformed pickle data (%v)", p)
		}
	}()
	u := pickle.NewUnpickler(r)
	u.FindClass = resolveClass
	if persistentLoad != nil {
		u.PersistentLoad = persistentLoad
	} else {
		u.PersistentLoad = func(id any) (any, error) {
			return nil, fmt.Errorf("the pickle refers to external data (%s): a plain pickle was expected", describe(id))
		}
	}
	return u.Load()
}

// archive is an opened torch.save zip file.
type archive struct {
	zr       *zip.ReadCloser
	prefix   string // "<root>/"
	records  map[string]*zip.File
	storages map[string]*storage
}

// persistentLoad resolves ('storage', class, key, location, numel) to a lazy storage.
func (a *archive) persistentLoad(id any) (any, error) {
	t, ok := id.(*types.Tuple)
	if !ok || t.Len() < 5 {
		return nil, fmt.Errorf("persistent id %s is not a ('storage', class, key, location, numel) tuple", describe(id))
	}
	if kind, _ := t.Get(0).(string); kind != "storage" {
		return nil, fmt.Errorf("persistent id of kind %v; torch.save files only have 'storage'", t.Get(0))
	}
	class, ok := t.Get(1).(storageClass)
	if !ok {
		return nil, fmt.Errorf("storage of unknown class %s (known: torch.FloatStorage, HalfStorage, BFloat16Storage, DoubleStorage and the integer storages)", describe(t.Get(1)))
	}
	key, ok1 := t.Get(2).(string)
	numel, ok2 := t.Get(4).(int)
	if !ok1 || !ok2 || numel < 0 {
		return nil, fmt.Errorf("storage id %v: want a string key and an element count >= 0", *t)
	}
	if s, ok := a.storages[key]; ok {
		if s.class != class || s.numel != numel {
			return nil, fmt.Errorf("storage %s is named twice with different types or sizes: the checkpoint is corrupted", key)
		}
		return s, nil
	}
	rec := a.records[a.prefix+"data/"+key]
	if rec == nil {
		return nil, fmt.Errorf("storage %s has no record %sdata/%s in the archive: %w (copy the checkpoint again)", key, a.prefix, key, errTruncated)
	}
	s := &storage{class: class, key: key, numel: numel, record: rec}
	a.storages[key] = s
	return s, nil
}

func intTuple(v any) ([]int, error) {
	var items []any
	switch t := v.(type) {
	case *types.Tuple:
		items = *t
	case *types.List:
		items = *t
	default:
		return nil, fmt.Errorf("%s is not a tuple of ints", describe(v))
	}
	out := make([]int, len(items))
	for i, it := range items {
		n, ok := it.(int)
		if !ok {
			return nil, fmt.Errorf("%s is not a tuple of ints", describe(v))
		}
		out[i] = n
	}
	return out, nil
}

// Dict is a normalized Python dict. Keys are int, string, bool or float64
// (other keys become their printed form).
type Dict map[any]any

// normalize turns decoded pickle values into plain Go values: nil, bool,
// int, float64, string, *big.Int (ints beyond int64), []any (list, tuple,
// set), Dict, ModelMode, *Tensor, *Opaque. Tensors are read from the
// archive here, so normalize only what remask uses (never the optimizer).
func normalize(v any, depth int) (any, error) {
	if depth > 64 {
		return nil, errors.New("values nested more than 64 levels deep (a self-referencing object?)")
	}
	switch x := v.(type) {
	case nil, bool, int, float64, string, ModelMode, *Opaque:
		return x, nil
	case *rawTensor:
		return x.tensor()
	case *big.Int:
		if x.IsInt64() && x.Int64() >= math.MinInt && x.Int64() <= math.MaxInt {
			return int(x.Int64()), nil
		}
		return x, nil
	case *types.Tuple:
		return normalizeList(*x, depth)
	case *types.List:
		return normalizeList(*x, depth)
	case *types.Set:
		var items []any
		for k := range *x {
			items = append(items, k)
		}
		return normalizeList(items, depth)
	case *types.FrozenSet:
		var items []any
		for k := range *x {
			items = append(items, k)
		}
		return normalizeList(items, depth)
	case *types.Dict:
		d := make(Dict, len(*x))
		for _, e := range *x {
			if err := d.put(e.Key, e.Value, depth); err != nil {
				return nil, err
			}
		}
		return d, nil
	case *types.OrderedDict:
		d := make(Dict, x.Len())
		for el := x.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			if err := d.put(e.Key, e.Value, depth); err != nil {
				return nil, err
			}
		}
		return d, nil
	case *types.ByteArray:
		return []byte(*x), nil
	case []byte:
		return x, nil
	case *modeClass:
		return &Opaque{Class: x.name}, nil
	case storageClass:
		return &Opaque{Class: "torch." + x.name}, nil
	case *storage:
		return &Opaque{Class: "torch." + x.class.name + " (a bare storage)"}, nil
	}
	return &Opaque{Class: fmt.Sprintf("%T", v)}, nil
}

func normalizeList(items []any, depth int) ([]any, error) {
	out := make([]any, len(items))
	for i, it := range items {
		v, err := normalize(it, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (d Dict) put(k, v any, depth int) error {
	key, err := normalize(k, depth+1)
	if err != nil {
		return err
	}
	switch key.(type) {
	case int, string, bool, float64, ModelMode:
	default:
		key = fmt.Sprint(key)
	}
	val, err := normalize(v, depth+1)
	if err != nil {
		return err
	}
	d[key] = val
	return nil
}

// describe names the Python type of a value for messages.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return fmt.Sprintf("the bool %v", x)
	case int, *big.Int:
		return fmt.Sprintf("the int %v", x)
	case float64:
		return fmt.Sprintf("the float %v", x)
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return fmt.Sprintf("the string %q", x)
	case []any, *types.List:
		return "a list"
	case *types.Tuple:
		return "a tuple"
	case Dict, *types.Dict, *types.OrderedDict:
		return "a dict"
	case ModelMode:
		return fmt.Sprintf("ModelMode %q", string(x))
	case *rawTensor:
		return fmt.Sprintf("a tensor of size %v", x.size)
	case *Tensor:
		return fmt.Sprintf("a tensor of shape %v", x.Shape)
	case *Opaque:
		return x.String()
	case *opaqueClass:
		return "the class " + x.name
	case storageClass:
		return "torch." + x.name
	}
	return fmt.Sprintf("a %T", v)
}

// sortedKeys returns the string keys of d in order (for stable messages).
func sortedKeys(d Dict) []string {
	var keys []string
	for k := range d {
		if s, ok := k.(string); ok {
			keys = append(keys, s)
		}
	}
	sort.Strings(keys)
	return keys
}
