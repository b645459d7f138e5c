package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
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
// picklescan.go checks the stream first (declared lengths, opcode count);
// the classes a pickle names are resolved here (resolveClass), and storages
// are read lazily (storage.go): a tensor's bytes are decoded only when the
// converter asks for them, so the optimizer state (most of a checkpoint's
// bytes) is never read. Classes this package does not know become Opaque values instead of
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

// rebuildParameter is torch._utils._rebuild_parameter(data, requires_grad,
// backward_hooks): a Parameter is its data.
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("torch._utils._rebuild_parameter called without arguments")
	}
	return args[0], nil
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

// unpickle decodes one pickle stream, charging what the decoder may
// allocate to b (see scanPickle). persistentLoad may be nil (meta.pkl has
// no tensors). Panics inside the decoder (it has a few on malformed input)
// become errors.
func unpickle(data []byte, persistentLoad func(any) (any, error), b *budget) (v any, err error) {
	ops, err := scanPickle(data)
	if err != nil {
		return nil, err
	}
	if err := b.takeMul(ops, pickleOpCost, fmt.Sprintf("decoding a pickle of %d opcodes", ops), ""); err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("malformed pickle data (%v)", p)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(data))
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
// A pickle can reference one object many times (a list of two references
// to a list of two references to ...), so that the plain values it stands
// for grow exponentially with its size: normalize stops after maxNodes
// values.
func normalize(v any, depth int) (any, error) {
	n := normalizer{left: maxNodes}
	return n.value(v, depth)
}

// maxNodes bounds the values one normalize call produces (a character
// vocabulary has a few hundred; a 50,000-token itos and stoi 200,000).
const maxNodes = 1 << 20

type normalizer struct{ left int }

func (n *normalizer) value(v any, depth int) (any, error) {
	if depth > 64 {
		return nil, errors.New("values nested more than 64 levels deep (a self-referencing object?)")
	}
	if n.left--; n.left < 0 {
		return nil, fmt.Errorf("more than %d values (objects referenced over and over?): not a checkpoint the fork wrote", maxNodes)
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
		return n.list(*x, depth)
	case *types.List:
		return n.list(*x, depth)
	case *types.Set:
		var items []any
		for k := range *x {
			items = append(items, k)
		}
		return n.list(items, depth)
	case *types.FrozenSet:
		var items []any
		for k := range *x {
			items = append(items, k)
		}
		return n.list(items, depth)
	case *types.Dict:
		d := make(Dict, len(*x))
		for _, e := range *x {
			if err := n.put(d, e.Key, e.Value, depth); err != nil {
				return nil, err
			}
		}
		return d, nil
	case *types.OrderedDict:
		d := make(Dict, x.Len())
		for el := x.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			if err := n.put(d, e.Key, e.Value, depth); err != nil {
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

func (n *normalizer) list(items []any, depth int) ([]any, error) {
	out := make([]any, len(items))
	for i, it := range items {
		v, err := n.value(it, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (n *normalizer) put(d Dict, k, v any, depth int) error {
	key, err := n.value(k, depth+1)
	if err != nil {
		return err
	}
	switch key.(type) {
	case int, string, bool, float64, ModelMode:
	default:
		key = fmt.Sprint(key)
	}
	val, err := n.value(v, depth+1)
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
