package checkpoint

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/nlpodyssey/gopickle/types"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/checked"
)

// Storages, tensor views, and the memory limit of reading a checkpoint.
//
// A tensor in a torch.save file is a strided view (offset, size, stride)
// of a storage record. Every number of a view comes from the file, so all
// of its arithmetic is checked (internal/checked): a stride or an offset
// that would wrap around the bounds check is an error. A storage is read
// only as far as its views reach: a view of 2,144 elements of a storage
// that claims 2^28 inflates 8.4 KB, not a gigabyte. And everything Open
// allocates from the file (the pickle's objects, the storage elements the
// views touch, the dense tensors) is charged to one limit, by default
// 64 MiB plus 64 times the file size. torch.save stores tensors
// uncompressed, so a fork checkpoint needs a small multiple of its size (the
// fixtures of testdata/fork need 6 to 19 times, mostly the pickle
// decoder's estimate, which dominates in models this small), while a "zip
// bomb" (a deflated record inflating about a thousand times) is refused
// before it is inflated.

// ErrLimit is wrapped by the errors of Open for checkpoints that would need
// more memory than Limits allow.
var ErrLimit = errors.New("over the memory limit for reading a checkpoint")

// Limits bound the memory that reading one checkpoint may take.
type Limits struct {
	// MaxBytes bounds the bytes Open allocates from what the file says:
	// the pickle and the objects it builds, the storage elements that
	// tensor views touch (as float32), and the dense tensors. 0 means
	// DefaultMaxBytes of the file's size.
	MaxBytes int64
}

const (
	// limitFloor and limitPerByte make DefaultMaxBytes.
	limitFloor   = 64 << 20
	limitPerByte = 64
	// pickleOpCost is what one pickle opcode may allocate in the decoder,
	// at most: a new dict, list, tuple or tensor view with its headers.
	pickleOpCost = 512
	// openStoredCost and openDeflatedCost are what an open record reader
	// takes (a deflated one holds a decompressor and its 32 KB window).
	openStoredCost   = 1 << 10
	openDeflatedCost = 64 << 10
	// maxDims bounds a view's dimensions (PyTorch allows 64).
	maxDims = 64
)

// DefaultMaxBytes is the memory limit of a checkpoint of fileSize bytes:
// 64 MiB plus 64 times its size. A fork checkpoint's weights take about
// twice their size in the file (decoded, then as dense tensors; the
// optimizer state is never read), float16 weights four times, [D7] shared
// matrices once more per block that lists them, and the pickle up to
// pickleOpCost per opcode (TestForkCheckpointsWithinLimit).
func DefaultMaxBytes(fileSize int64) int64 {
	n, ok := checked.Mul64(max(fileSize, 0), limitPerByte)
	if !ok {
		return math.MaxInt64
	}
	if n, ok = checked.Add64(n, limitFloor); !ok {
		return math.MaxInt64
	}
	return n
}

// budget is the memory limit of one Open and what it has used.
type budget struct {
	limit, used int64
	fileSize    int64
	explicit    bool // the limit was given in Limits, not derived
}

func newBudget(lim Limits, fileSize int64) *budget {
	b := &budget{limit: lim.MaxBytes, fileSize: fileSize, explicit: lim.MaxBytes > 0}
	if !b.explicit {
		b.limit = DefaultMaxBytes(fileSize)
	}
	return b
}

// take charges n bytes for what, or says why they are refused; hint ends
// the message (the deflate ratio of a storage, say).
func (b *budget) take(n int64, what, hint string) error {
	if n >= 0 && n <= b.limit-b.used {
		b.used += n
		return nil
	}
	which := fmt.Sprintf("the limit for a %d-byte file (64 MiB + %d × its size)", b.fileSize, limitPerByte)
	if b.explicit {
		which = "the limit given"
	}
	before := ""
	if b.used > 0 {
		before = fmt.Sprintf(" on top of the %d bytes already taken", b.used)
	}
	return fmt.Errorf("%s needs %d bytes of memory%s; %s is %d bytes%s: %w", what, n, before, which, b.limit, hint, ErrLimit)
}

// takeMul charges count*size bytes; a product that overflows is over every
// limit.
func (b *budget) takeMul(count, size int, what, hint string) error {
	n, ok := checked.Mul(count, size)
	if !ok {
		return fmt.Errorf("%s needs %d × %d bytes of memory, more than any computer has: %w", what, count, size, ErrLimit)
	}
	return b.take(int64(n), what, hint)
}

// storageClass is one of torch.FloatStorage, torch.HalfStorage, ...
type storageClass struct {
	name  string // "FloatStorage"
	dtype string // "F32", "F16", "BF16", "F64", or an integer/bool dtype
	size  int    // bytes per element
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

func isFloat(dtype string) bool {
	switch dtype {
	case model.F32, model.F16, model.BF16, "F64":
		return true
	}
	return false
}

// storage is one storage record of the archive. It is read lazily and only
// as far as its views reach: vals holds its first elements, decoded to
// float32, and rc stays open to read more if a later view needs them.
type storage struct {
	a      *archive
	class  storageClass
	key    string
	numel  int
	record *zip.File
	vals   []float32
	rc     io.ReadCloser
	done   bool  // the record was read to its end (and its CRC-32 checked)
	err    error // a read error, returned again to every later view
}

// check is what every view of the storage needs first: a float dtype, a
// byte size that fits an int, a record that holds it.
func (s *storage) check() error {
	if !isFloat(s.class.dtype) {
		return fmt.Errorf("storage %s is a torch.%s; remask reads floating-point tensors only", s.key, s.class.name)
	}
	n, ok := checked.Mul(s.numel, s.class.size)
	if !ok {
		return fmt.Errorf("storage %s claims %d %s elements, too large for any file: the checkpoint is corrupted", s.key, s.numel, s.class.name)
	}
	if s.record.UncompressedSize64 < uint64(n) {
		return fmt.Errorf("storage record %s holds %d bytes but its %d %s elements need %d: %w (copy the checkpoint again)",
			s.record.Name, s.record.UncompressedSize64, s.numel, s.class.name, n, errTruncated)
	}
	return nil
}

// deflateHint describes a compressed record for the memory-limit message.
func (s *storage) deflateHint() string {
	r := s.record
	if r.Method == zip.Store {
		return ""
	}
	ratio := "an unbounded"
	if r.CompressedSize64 > 0 {
		ratio = fmt.Sprintf("%d:1", r.UncompressedSize64/r.CompressedSize64)
	}
	return fmt.Sprintf("; record %s is compressed from %d to %d bytes, %s ratio (a zip bomb? torch.save stores tensors uncompressed)",
		r.Name, r.CompressedSize64, r.UncompressedSize64, ratio)
}

// prefix returns the storage's first n elements (n <= numel; check has
// passed), reading and decoding more of the record when needed.
func (s *storage) prefix(n int) ([]float32, error) {
	if n <= len(s.vals) {
		return s.vals[:n], nil
	}
	if s.err != nil {
		return nil, s.err
	}
	have := len(s.vals)
	if err := s.a.budget.takeMul(n-have, 4, fmt.Sprintf("reading %d elements of storage %s", n, s.key), s.deflateHint()); err != nil {
		return nil, err
	}
	if s.rc == nil {
		// An open record stays open for later views; a deflated one holds
		// a decompressor with its 32 KB window.
		cost := int64(openStoredCost)
		if s.record.Method != zip.Store {
			cost = openDeflatedCost
		}
		if err := s.a.budget.take(cost, fmt.Sprintf("opening storage record %s", s.record.Name), ""); err != nil {
			return nil, err
		}
		rc, err := s.record.Open()
		if err != nil {
			s.err = fmt.Errorf("storage record %s: %v", s.record.Name, err)
			return nil, s.err
		}
		s.rc = rc
	}
	vals := make([]float32, n)
	copy(vals, s.vals)
	if err := s.decode(vals[have:]); err != nil {
		s.err = err
		return nil, err
	}
	s.vals = vals
	if n == s.numel && s.record.UncompressedSize64 == uint64(n*s.class.size) && !s.done {
		// The whole record was read: reach its end so that the zip reader
		// verifies its CRC-32.
		s.done = true
		_, err := io.Copy(io.Discard, s.rc)
		s.rc.Close()
		s.rc = nil
		if err != nil {
			s.err = fmt.Errorf("storage record %s: %v: the checkpoint is corrupted; copy it again", s.record.Name, err)
			return nil, s.err
		}
	}
	return s.vals, nil
}

// decode reads len(out) elements from the record's stream into out.
func (s *storage) decode(out []float32) error {
	size := s.class.size
	buf := make([]byte, min(len(out)*size, 1<<16/size*size))
	le := binary.LittleEndian
	for len(out) > 0 {
		k := min(len(out), len(buf)/size)
		b := buf[:k*size]
		if _, err := io.ReadFull(s.rc, b); err != nil {
			return fmt.Errorf("storage record %s: %v: %w (copy the checkpoint again)", s.record.Name, err, errTruncated)
		}
		switch s.class.dtype {
		case model.F32:
			for i := range k {
				out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
			}
		case model.F16:
			for i := range k {
				out[i] = model.Float16ToFloat32(le.Uint16(b[2*i:]))
			}
		case model.BF16:
			for i := range k {
				out[i] = model.BFloat16ToFloat32(le.Uint16(b[2*i:]))
			}
		case "F64":
			for i := range k {
				out[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
			}
		}
		out = out[k:]
	}
	return nil
}

// rawTensor is a tensor as the pickle describes it: a strided view of a storage.
type rawTensor struct {
	st     *storage
	offset int
	size   []int
	stride []int
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
		return nil, fmt.Errorf("torch._utils._rebuild_tensor_v2: the storage offset is %s, want an int >= 0", describe(args[1]))
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
	if len(size) > maxDims {
		return nil, fmt.Errorf("torch._utils._rebuild_tensor_v2: size has %d dimensions; PyTorch tensors have at most %d", len(size), maxDims)
	}
	return &rawTensor{st: st, offset: offset, size: size, stride: stride}, nil
}

// numel is the element count of the view, or an error on overflow.
func (t *rawTensor) numel() (int, error) {
	for _, d := range t.size {
		if d < 0 {
			return 0, fmt.Errorf("size %v has a negative dimension", t.size)
		}
	}
	n, ok := checked.MulAll(t.size...)
	if !ok || n > math.MaxInt32 {
		return 0, fmt.Errorf("size %v is too large", t.size)
	}
	return n, nil
}

// last is the largest storage index the view touches (numel > 0), or an
// error when the arithmetic overflows.
func (t *rawTensor) last() (int, error) {
	last := t.offset
	for i, d := range t.size {
		if t.stride[i] < 0 {
			return 0, fmt.Errorf("stride %v is negative", t.stride)
		}
		step, ok := checked.Mul(d-1, t.stride[i])
		if ok {
			last, ok = checked.Add(last, step)
		}
		if !ok {
			return 0, fmt.Errorf("the view (offset %d, size %v, stride %v) overflows: the checkpoint is corrupted", t.offset, t.size, t.stride)
		}
	}
	return last, nil
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
	if err := t.st.check(); err != nil {
		return nil, err
	}
	if n == 0 {
		out.Data = []float32{}
		return out, nil
	}
	last, err := t.last()
	if err != nil {
		return nil, err
	}
	// The largest index the view touches must lie in the storage.
	if last >= t.st.numel {
		return nil, fmt.Errorf("the view (offset %d, size %v, stride %v) reaches element %d of a %d-element storage: the checkpoint is corrupted",
			t.offset, t.size, t.stride, last, t.st.numel)
	}
	vals, err := t.st.prefix(last + 1)
	if err != nil {
		return nil, err
	}
	if err := t.st.a.budget.takeMul(n, 4, fmt.Sprintf("a tensor of size %v", t.size), ""); err != nil {
		return nil, err
	}
	out.Data = make([]float32, n)
	if contiguous(t.size, t.stride) {
		copy(out.Data, vals[t.offset:last+1])
		return out, nil
	}
	idx := make([]int, len(t.size))
	for i := range out.Data {
		p := t.offset
		for d := range idx {
			p += idx[d] * t.stride[d] // <= last: no overflow
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
		want *= size[i] // the numel check bounds the product
	}
	return true
}

// archive is an opened torch.save zip file.
type archive struct {
	zr       *zip.Reader
	prefix   string // "<root>/"
	records  map[string]*zip.File
	storages map[string]*storage
	budget   *budget
}

// close closes the records that views left open.
func (a *archive) close() {
	for _, s := range a.storages {
		if s.rc != nil {
			s.rc.Close()
			s.rc = nil
		}
	}
}

// persistentLoad resolves ('storage', class, key, location, numel) to a lazy storage.
func (a *archive) persistentLoad(id any) (any, error) {
	t, ok := id.(*types.Tuple)
	if !ok || t.Len() < 5 {
		return nil, fmt.Errorf("persistent id %s is not a ('storage', class, key, location, numel) tuple", describe(id))
	}
	if kind, _ := t.Get(0).(string); kind != "storage" {
		return nil, fmt.Errorf("persistent id of kind %s; torch.save files only have 'storage'", describe(t.Get(0)))
	}
	class, ok := t.Get(1).(storageClass)
	if !ok {
		return nil, fmt.Errorf("storage of unknown class %s (known: torch.FloatStorage, HalfStorage, BFloat16Storage, DoubleStorage and the integer storages)", describe(t.Get(1)))
	}
	key, ok1 := t.Get(2).(string)
	numel, ok2 := t.Get(4).(int)
	if !ok1 || !ok2 || numel < 0 {
		return nil, fmt.Errorf("storage id (%s, %s): want a string key and an element count >= 0", describe(t.Get(2)), describe(t.Get(4)))
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
	s := &storage{a: a, class: class, key: key, numel: numel, record: rec}
	a.storages[key] = s
	return s, nil
}
