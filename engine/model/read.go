package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nlpodyssey/safetensors"

	"github.com/remask/remask/internal/safefile"
)

// Reading a remask/1 file happens in three stages, each with its own errors:
//
//  1. the container (our own pre-checks, then github.com/nlpodyssey/safetensors):
//     length prefix, header JSON, dtypes, shapes against byte counts, offsets
//     that tile the data section exactly;
//  2. the metadata: format, model (Config.Validate), vocab (Vocab.Validate),
//     source, card;
//  3. the tensors against Expected(&cfg): names, shapes, one dtype, the tied
//     LM head; then the conversion to float32.
//
// The pre-checks exist so that every error says which file, which tensor or
// field, what was expected and what was found, and what to do. They also
// bound every allocation by the size of the file.

// MaxHeaderBytes is the largest JSON header a model file may have (the
// safetensors limit).
const MaxHeaderBytes = 100_000_000

// ErrTruncated is wrapped by every error about a file that ends too early
// (a cut-off download): errors.Is(err, ErrTruncated).
var ErrTruncated = errors.New("truncated")

// Stored dtypes.
const (
	F32  = "F32"
	F16  = "F16"
	BF16 = "BF16"
)

// dtypeSize is the byte size of one element of each dtype remask reads.
func dtypeSize(dtype string) (uint64, bool) {
	switch dtype {
	case F32:
		return 4, true
	case F16, BF16:
		return 2, true
	}
	return 0, false
}

// entry is one tensor as the header describes it.
type entry struct {
	name       string
	dtype      string
	shape      []int
	begin, end uint64 // byte offsets into the data section
}

// Load reads and validates the remask/1 model file at path. Only a regular
// file is read (a FIFO or a device is refused without blocking), and no more
// than its size: every allocation is bounded by the file's size.
func Load(path string) (*Model, error) {
	data, err := safefile.ReadFile(path, 0)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	return Parse(path, data)
}

// Header is what the header of a remask/1 file says, read and checked
// without the tensor bytes: the metadata (format, model, vocab, source,
// card) and the tensor entries against Expected(&Config) (names, shapes,
// one dtype, offsets that tile the data section).
type Header struct {
	Config Config
	Vocab  Vocab
	Source Source
	Card   string
	// DType is the dtype every tensor is stored in.
	DType string
	// Bytes is the length of the header with its 8-byte length prefix: where
	// the data section begins.
	Bytes int64

	entries []entry // in header order
}

// ReadHeader reads the header of the remask/1 file that r starts with and
// checks it exactly as Load does (exact keys, no duplicates, every
// metadata object and every tensor entry): the one header reader of remask,
// used by the model reader, the API's model info, `remask models` and the
// site manifest. size is the file's length, or -1 when unknown (a
// download); with it, the header must fit the file and the tensors must
// tile the rest exactly. It reads the 8-byte length and the header, nothing
// more, and allocates no more than it has read. name starts every error
// message.
func ReadHeader(name string, r io.Reader, size int64) (*Header, error) {
	var prefix [8]byte
	if got, err := io.ReadFull(r, prefix[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: %w: the file is %d bytes, shorter than the 8-byte header length that starts every safetensors file: download or convert it again", name, ErrTruncated, got)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if n > MaxHeaderBytes {
		hint := "not a safetensors file, or a corrupted one"
		if bytes.HasPrefix(prefix[:], []byte("PK\x03\x04")) {
			hint = "this looks like a zip archive such as a PyTorch ckpt.pt: run `remask convert` on it"
		}
		return nil, fmt.Errorf("%s: the header length is %d bytes, more than the %d-byte limit: %s", name, n, MaxHeaderBytes, hint)
	}
	if size >= 0 && (size < 8 || n > uint64(size-8)) {
		return nil, fmt.Errorf("%s: %w: the header is %d bytes but only %d bytes follow the 8-byte length (file is %d bytes): download it again", name, ErrTruncated, n, max(size-8, 0), size)
	}
	header, err := readUpTo(r, int(n))
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: %w: the file ends inside its %d-byte header (after %d bytes): download it again", name, ErrTruncated, n, len(header))
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	meta, entries, err := parseHeader(name, header)
	if err != nil {
		return nil, err
	}
	h := &Header{Bytes: 8 + int64(n), entries: entries}
	section := int64(-1)
	if size >= 0 {
		section = size - h.Bytes
	}
	if err := checkLayout(name, entries, section, size); err != nil {
		return nil, err
	}
	if err := readMetadata(name, meta, h); err != nil {
		return nil, err
	}
	if err := checkTensors(name, h); err != nil {
		return nil, err
	}
	return h, nil
}

// readUpTo reads exactly n bytes, growing its buffer as data arrives, so
// that a header length that promises more than the reader holds costs no
// more memory than the bytes that came. A short read returns what came and
// io.ErrUnexpectedEOF.
func readUpTo(r io.Reader, n int) ([]byte, error) {
	const chunk = 1 << 20
	buf := make([]byte, 0, min(n, chunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), max(len(buf), chunk)))
		}
		got, err := io.ReadFull(r, buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+got]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

// Parse validates a whole remask/1 file held in data and returns the model
// with every tensor converted to float32. name says where data came from and
// starts every error message; it also becomes Model.Path.
func Parse(name string, data []byte) (*Model, error) {
	h, err := ReadHeader(name, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	st, err := readContainer(name, data, h.entries)
	if err != nil {
		return nil, err
	}
	m := &Model{Path: name, Config: h.Config, Vocab: h.Vocab, Source: h.Source, Card: h.Card}
	if err := readTensors(name, h, st, m); err != nil {
		return nil, err
	}
	return m, nil
}

// readContainer parses data with github.com/nlpodyssey/safetensors, the
// container parser of record, which serves the tensor bytes. ReadHeader's
// checks exist for precise messages, so a disagreement between the two is
// reported as such.
func readContainer(name string, data []byte, entries []entry) (*safetensors.SafeTensors, error) {
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid safetensors container: %v", name, err)
	}
	if st.Len() != len(entries) {
		return nil, fmt.Errorf("%s: invalid safetensors container: the header lists %d tensors but the safetensors parser found %d", name, len(entries), st.Len())
	}
	for _, e := range entries {
		v, ok := st.Tensor(e.name)
		if !ok || v.DType().String() != e.dtype || uint64(len(v.Data())) != e.end-e.begin || !sameShape(v.Shape(), e.shape) {
			return nil, fmt.Errorf("%s: invalid safetensors container: the safetensors parser reads tensor %q differently from the header", name, e.name)
		}
	}
	return &st, nil
}

func sameShape(a []uint64, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != uint64(b[i]) {
			return false
		}
	}
	return true
}

// parseHeader decodes the JSON header: string metadata plus one entry per
// tensor. It rejects duplicate names, which a plain JSON decoder would merge.
func parseHeader(name string, header []byte) (map[string]string, []entry, error) {
	if !utf8.Valid(header) {
		return nil, nil, fmt.Errorf("%s: the header is not valid UTF-8: the file is corrupted; download or convert it again", name)
	}
	keys, values, err := objectMembers(header)
	var dup duplicateKeyError
	if errors.As(err, &dup) && dup == "__metadata__" {
		return nil, nil, fmt.Errorf("%s: the header has two __metadata__ objects: the file is corrupted; convert it again", name)
	}
	if errors.As(err, &dup) {
		return nil, nil, fmt.Errorf("%s: the header lists tensor %q twice (duplicate names): the file is corrupted; convert it again", name, string(dup))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the header is not a valid JSON object (%v): the file is corrupted; download or convert it again", name, err)
	}
	var meta map[string]string
	var entries []entry
	for i, key := range keys {
		if key == "__metadata__" && string(values[i]) == "null" {
			continue // no metadata, as some writers put it; reported as "no format"
		}
		if key == "__metadata__" {
			if meta, err = parseStringMap(values[i]); err != nil {
				return nil, nil, fmt.Errorf("%s: __metadata__: %v: the file is corrupted; convert it again", name, err)
			}
			continue
		}
		e, err := parseEntry(key, values[i])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %v", name, err)
		}
		entries = append(entries, e)
	}
	return meta, entries, nil
}

// objectMembers splits a JSON object into its keys and raw values, in order,
// and rejects duplicate keys and anything after the closing brace except
// white space (safetensors pads the header with spaces).
func objectMembers(data []byte) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("want a JSON object, found %v", tok)
	}
	var keys []string
	var values []json.RawMessage
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("want an object key, found %v", tok)
		}
		if seen[key] {
			return nil, nil, duplicateKeyError(key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("value of %q: %v", key, err)
		}
		keys = append(keys, key)
		values = append(values, v)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("unexpected data after the closing brace")
	}
	return keys, values, nil
}

// duplicateKeyError is a key that appears twice in one JSON object, which
// a plain decoder would silently merge.
type duplicateKeyError string

func (k duplicateKeyError) Error() string { return fmt.Sprintf("duplicate key %q", string(k)) }

// parseStringMap decodes __metadata__, whose values must all be strings.
func parseStringMap(data json.RawMessage) (map[string]string, error) {
	keys, values, err := objectMembers(data)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(keys))
	for i, k := range keys {
		var s string
		if err := json.Unmarshal(values[i], &s); err != nil {
			return nil, fmt.Errorf("the value of %q is %.40s, want a string (safetensors metadata maps strings to strings)", k, values[i])
		}
		m[k] = s
	}
	return m, nil
}

// parseEntry decodes and checks one tensor entry on its own: dtype, shape,
// offsets and that the byte span matches dtype x shape.
func parseEntry(name string, data json.RawMessage) (entry, error) {
	var raw struct {
		DType   *string            `json:"dtype"`
		Shape   *[]json.RawMessage `json:"shape"`
		Offsets *[]json.RawMessage `json:"data_offsets"`
	}
	if err := decodeExact(data, &raw, true); err != nil {
		return entry{}, fmt.Errorf("tensor %q: invalid header entry (%v): want {\"dtype\", \"shape\", \"data_offsets\"}", name, err)
	}
	switch {
	case raw.DType == nil:
		return entry{}, fmt.Errorf("tensor %q: header entry has no \"dtype\"", name)
	case raw.Shape == nil:
		return entry{}, fmt.Errorf("tensor %q: header entry has no \"shape\"", name)
	case raw.Offsets == nil:
		return entry{}, fmt.Errorf("tensor %q: header entry has no \"data_offsets\"", name)
	case len(*raw.Offsets) != 2:
		return entry{}, fmt.Errorf("tensor %q: data_offsets has %d numbers, want 2 (begin, end)", name, len(*raw.Offsets))
	}
	e := entry{name: name, dtype: *raw.DType}
	var err error
	if e.begin, err = naturalNumber((*raw.Offsets)[0]); err != nil {
		return entry{}, fmt.Errorf("tensor %q: data_offsets: %v: the file is corrupted; convert it again", name, err)
	}
	if e.end, err = naturalNumber((*raw.Offsets)[1]); err != nil {
		return entry{}, fmt.Errorf("tensor %q: data_offsets: %v: the file is corrupted; convert it again", name, err)
	}
	dims := make([]uint64, len(*raw.Shape))
	for i, d := range *raw.Shape {
		if dims[i], err = naturalNumber(d); err != nil {
			return entry{}, fmt.Errorf("tensor %q: shape: %v: the file is corrupted; convert it again", name, err)
		}
	}
	size, ok := dtypeSize(e.dtype)
	if !ok {
		return entry{}, fmt.Errorf("tensor %q: dtype %q is not supported, want F32, F16 or BF16: convert the checkpoint again with `remask convert`", name, e.dtype)
	}
	if e.end < e.begin {
		return entry{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] end before they begin: the file is corrupted; convert it again", name, e.begin, e.end)
	}
	// Element count with overflow checks: a corrupted shape must not wrap
	// around to a small number that happens to match the byte span.
	numel := uint64(1)
	for _, d := range dims {
		hi, lo := bits.Mul64(numel, d)
		if hi != 0 || d > math.MaxInt64 {
			return entry{}, fmt.Errorf("tensor %q: shape %v has too many elements: the file is corrupted; convert it again", name, dims)
		}
		numel = lo
		e.shape = append(e.shape, int(d))
	}
	if e.shape == nil {
		e.shape = []int{} // a scalar
	}
	hi, want := bits.Mul64(numel, size)
	if hi != 0 {
		return entry{}, fmt.Errorf("tensor %q: shape %v needs more than 2^64 bytes: the file is corrupted; convert it again", name, dims)
	}
	if e.end-e.begin != want {
		return entry{}, fmt.Errorf("tensor %q: dtype %s and shape %v need %d bytes, but data_offsets [%d, %d] span %d bytes: the file is corrupted; convert it again", name, e.dtype, e.shape, want, e.begin, e.end, e.end-e.begin)
	}
	return e, nil
}

// naturalNumber parses a JSON number literal that must be a non-negative
// integer, exactly as the safetensors format (and its Rust and Go readers)
// take it: no sign, no fraction, no exponent, no quotes.
func naturalNumber(raw json.RawMessage) (uint64, error) {
	s := string(raw)
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%s is negative", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%.30s is not a natural number below 2^64", s)
	}
	return n, nil
}

// checkLayout checks that the tensors tile the data section exactly: no
// overlap, no gap, no missing bytes (truncation), no trailing bytes.
func checkLayout(name string, entries []entry, section, fileLen int64) error {
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ea, eb := entries[a], entries[b]
		switch {
		case ea.begin != eb.begin:
			return cmpU64(ea.begin, eb.begin)
		default:
			return cmpU64(ea.end, eb.end)
		}
	})
	var end uint64
	prev := ""
	for _, i := range order {
		e := entries[i]
		switch {
		case e.begin < end:
			return fmt.Errorf("%s: tensor %q bytes [%d, %d) overlap tensor %q, which ends at %d: the offsets are corrupted; convert the file again", name, e.name, e.begin, e.end, prev, end)
		case e.begin > end && prev == "":
			return fmt.Errorf("%s: the data section starts with %d bytes that belong to no tensor (the first tensor, %q, begins at %d, want 0): the offsets are corrupted; convert the file again", name, e.begin, e.name, e.begin)
		case e.begin > end:
			return fmt.Errorf("%s: bytes [%d, %d) of the data section belong to no tensor (between %q and %q): the offsets are corrupted; convert the file again", name, end, e.begin, prev, e.name)
		}
		end, prev = e.end, e.name
	}
	if section < 0 {
		return nil // the file's length is not known (yet)
	}
	sectionLen := uint64(section)
	if end > sectionLen {
		return fmt.Errorf("%s: %w: the tensors need a data section of %d bytes but the file has only %d (file is %d bytes, want %d): download it again", name, ErrTruncated, end, sectionLen, fileLen, uint64(fileLen)-sectionLen+end)
	}
	if end < sectionLen {
		return fmt.Errorf("%s: %d trailing bytes after the last tensor (the tensors end at byte %d of a %d-byte data section): the file is corrupted or was appended to; download or convert it again", name, sectionLen-end, end, sectionLen)
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readMetadata checks the `__metadata__` keys and fills h.Config, h.Vocab,
// h.Source and h.Card. Unknown metadata keys are ignored (tools may add
// their own); unknown fields inside `model` and `vocab` are errors.
func readMetadata(name string, meta map[string]string, m *Header) error {
	format, ok := meta["format"]
	switch {
	case !ok:
		return fmt.Errorf("%s: no \"format\" in the safetensors metadata: this is a plain safetensors file, not converted by remask; run `remask convert` on the original checkpoint", name)
	case format == Format:
	case strings.HasPrefix(format, "remask/"):
		return fmt.Errorf("%s: metadata format is %q but this remask reads %q: the file was written by a newer remask; upgrade remask", name, format, Format)
	default:
		return fmt.Errorf("%s: metadata format is %q, want %q: this is a plain safetensors file, not converted by remask; run `remask convert` on the original checkpoint", name, format, Format)
	}
	if err := decodeObject(meta, "model", &m.Config, true); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if err := m.Config.Validate(); err != nil {
		return fmt.Errorf("%s: metadata \"model\": %v", name, err)
	}
	if err := decodeObject(meta, "vocab", &m.Vocab, true); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if err := m.Vocab.Validate(&m.Config); err != nil {
		return fmt.Errorf("%s: metadata \"vocab\": %v", name, err)
	}
	if err := decodeObject(meta, "source", &m.Source, false); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	m.Card = meta["card"]
	return nil
}

// decodeObject decodes the JSON object stored as the string meta[key] into v.
// strict rejects unknown fields (model, vocab); source is informational and
// may carry fields a newer converter added.
func decodeObject(meta map[string]string, key string, v any, strict bool) error {
	s, ok := meta[key]
	if !ok {
		return fmt.Errorf("metadata has no %q object: the file was not written by `remask convert`; convert it again", key)
	}
	clean, err := exactKeys([]byte(s), reflect.TypeOf(v), strict, "")
	var unknown unknownFieldError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("metadata %q: %v: remask/1 does not know this field (written by a newer or a different tool? upgrade remask or run `remask convert` again)", key, err)
	case err != nil:
		return fmt.Errorf("metadata %q is not a valid JSON object (%v): convert the file again", key, err)
	}
	if err := json.Unmarshal(clean, v); err != nil {
		return fmt.Errorf("metadata %q: %v: convert the file again", key, err)
	}
	return nil
}

// checkTensors checks the entries against Expected(&h.Config) (names,
// shapes, a stored lm_head only as the tied copy) and sets h.DType, the
// one dtype they share.
func checkTensors(name string, h *Header) error {
	cfg, entries := &h.Config, h.entries
	want := Expected(cfg)
	byName := make(map[string]*entry, len(entries))
	for i := range entries {
		byName[entries[i].name] = &entries[i]
	}
	var problems []string
	for _, s := range want {
		e, ok := byName[s.Name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing tensor %s, want shape %v", s.Name, s.Shape))
		case !slices.Equal(e.shape, s.Shape):
			problems = append(problems, fmt.Sprintf("tensor %s: shape %v, want %v", s.Name, e.shape, s.Shape))
		}
	}
	expected := make(map[string]bool, len(want))
	for _, s := range want {
		expected[s.Name] = true
	}
	tiedCopy := cfg.Kind == LanguageModel && byName["lm_head.weight"] != nil
	for _, e := range entries {
		if expected[e.name] || (tiedCopy && e.name == "lm_head.weight") {
			continue
		}
		problems = append(problems, fmt.Sprintf("unexpected tensor %s (converted with an older converter? run `remask convert` again)", e.name))
	}
	if len(problems) > 0 {
		if len(problems) > maxListedDiff {
			problems = append(problems[:maxListedDiff], fmt.Sprintf("... and %d more", len(problems)-maxListedDiff))
		}
		return fmt.Errorf("%s: the tensors do not match the %s described by the \"model\" metadata (n_layer %d, n_embd %d, vocab_size %d):\n  %s",
			name, cfg.Kind, cfg.NLayer, cfg.NEmbd, cfg.VocabSize, strings.Join(problems, "\n  "))
	}

	first := &entries[0] // there is at least one: Expected always lists wte
	for i := range entries {
		if e := &entries[i]; e.dtype != first.dtype {
			return fmt.Errorf("%s: mixed dtypes: tensor %q is %s but tensor %q is %s; all tensors must share one dtype: convert the file again", name, first.name, first.dtype, e.name, e.dtype)
		}
	}
	if tiedCopy {
		head, wte := byName["lm_head.weight"], byName["transformer.wte.weight"]
		if !slices.Equal(head.shape, wte.shape) {
			return fmt.Errorf("%s: tensor lm_head.weight has shape %v but transformer.wte.weight has %v: remask supports only LM heads tied to the token embedding", name, head.shape, wte.shape)
		}
	}
	h.DType = first.dtype
	return nil
}

// readTensors converts the checked entries (checkTensors) to float32, and
// checks that a stored lm_head holds the same bytes as wte.
func readTensors(name string, h *Header, st *safetensors.SafeTensors, m *Model) error {
	cfg := &m.Config
	want := Expected(cfg)
	byName := make(map[string]*entry, len(h.entries))
	for i := range h.entries {
		byName[h.entries[i].name] = &h.entries[i]
	}
	tiedCopy := cfg.Kind == LanguageModel && byName["lm_head.weight"] != nil
	bytesOf := func(e *entry) []byte {
		v, _ := st.Tensor(e.name) // present: checked by readContainer
		return v.Data()
	}

	if tiedCopy {
		head, wte := byName["lm_head.weight"], byName["transformer.wte.weight"]
		if !bytes.Equal(bytesOf(head), bytesOf(wte)) {
			return fmt.Errorf("%s: tensor lm_head.weight is stored and differs from transformer.wte.weight: remask supports only LM heads tied to the token embedding (an untied head cannot be used); check the checkpoint, then run `remask convert` again", name)
		}
	}

	m.DType = h.DType
	m.Tensors = make(map[string]*Tensor, len(want)+1)
	for _, s := range want {
		e := byName[s.Name]
		m.Tensors[s.Name] = &Tensor{Shape: slices.Clone(s.Shape), Data: decodeValues(e.dtype, bytesOf(e))}
	}
	if cfg.Kind == LanguageModel {
		m.Tensors["lm_head.weight"] = m.Tensors["transformer.wte.weight"]
	}
	return nil
}

// decodeValues converts little-endian stored values to float32, exactly.
// The dtype was checked by parseEntry.
func decodeValues(dtype string, b []byte) []float32 {
	le := binary.LittleEndian
	switch dtype {
	case F32:
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out
	case F16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = Float16ToFloat32(le.Uint16(b[2*i:]))
		}
		return out
	case BF16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = BFloat16ToFloat32(le.Uint16(b[2*i:]))
		}
		return out
	}
	panic("model: decodeValues: unchecked dtype " + dtype)
}
