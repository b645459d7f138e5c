package model

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/remask/remask/internal/safefile"
)

// Write validates m and writes it to w as a remask/1 file with every tensor
// stored as dtype ("F32", "F16" or "BF16"; F16 and BF16 round to nearest,
// ties to even). The metadata holds format, model, vocab, source and card
// (card only when not empty); the tensors follow Expected order, and a
// language model's lm_head.weight is left out (it is tied to wte).
//
// Nothing is written when m is invalid or a value does not fit dtype (a
// finite weight that would become inf in F16 is an error naming the tensor).
// An error from w itself can leave a partial stream: use Save for files.
func Write(w io.Writer, m *Model, dtype string) error {
	header, specs, err := prepareWrite(m, dtype)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := bw.Write(prefix[:]); err != nil {
		return fmt.Errorf("write %s: %w", m.Name(), err)
	}
	if _, err := bw.Write(header); err != nil {
		return fmt.Errorf("write %s: %w", m.Name(), err)
	}
	buf := make([]byte, 0, 1<<16)
	for _, s := range specs {
		data := m.Tensors[s.Name].Data
		for len(data) > 0 {
			n := min(len(data), cap(buf)/4)
			buf = encodeValues(buf[:0], dtype, data[:n])
			if _, err := bw.Write(buf); err != nil {
				return fmt.Errorf("write %s: tensor %s: %w", m.Name(), s.Name, err)
			}
			data = data[n:]
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", m.Name(), err)
	}
	return nil
}

// Save writes m to path as dtype, replacing an existing file: SaveWith
// with Force.
func Save(path string, m *Model, dtype string) error {
	return SaveWith(path, m, dtype, safefile.CreateOptions{Force: true})
}

// SaveWith writes m to path as dtype through safefile.WriteFile: a
// temporary file in the same directory renamed over path only once
// complete (path never holds a half-written model; a symlink's target is
// replaced, the link kept), never over one of opt.Inputs, over an existing
// file only with opt.Force. Nothing is created when m is invalid.
func SaveWith(path string, m *Model, dtype string, opt safefile.CreateOptions) error {
	if _, _, err := prepareWrite(m, dtype); err != nil {
		return err // before creating anything
	}
	return safefile.WriteFile(path, opt, func(w io.Writer) error { return Write(w, m, dtype) })
}

// prepareWrite validates m and dtype, checks that every value fits dtype,
// and returns the padded header and the tensors to write, in order.
func prepareWrite(m *Model, dtype string) ([]byte, []TensorSpec, error) {
	size, ok := dtypeSize(dtype)
	if !ok {
		return nil, nil, fmt.Errorf("write %s: dtype %q is not supported, want F32, F16 or BF16", m.Name(), dtype)
	}
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("write %s: %w", m.Name(), err)
	}
	specs := Expected(&m.Config)
	for _, s := range specs {
		if err := checkFits(s.Name, m.Tensors[s.Name].Data, dtype); err != nil {
			return nil, nil, fmt.Errorf("write %s: %w", m.Name(), err)
		}
	}
	header, err := buildHeader(m, specs, dtype, size)
	if err != nil {
		return nil, nil, fmt.Errorf("write %s: %w", m.Name(), err)
	}
	return header, specs, nil
}

// checkFits reports the first finite value that would overflow to inf.
func checkFits(name string, data []float32, dtype string) error {
	narrow := narrowFunc(dtype)
	if narrow == nil {
		return nil // F32 holds every float32
	}
	for i, v := range data {
		if _, ok := narrow(v); !ok {
			return fmt.Errorf("tensor %s: element %d is %v, which overflows %s to infinity: save as F32 (or BF16, which has the float32 range)", name, i, v, dtype)
		}
	}
	return nil
}

// narrowFunc returns the float32 -> 16-bit conversion of dtype, nil for F32.
func narrowFunc(dtype string) func(float32) (uint16, bool) {
	switch dtype {
	case F16:
		return Float32ToFloat16
	case BF16:
		return Float32ToBFloat16
	}
	return nil
}

// encodeValues appends the little-endian encoding of vals in dtype to dst.
// Values were checked by checkFits.
func encodeValues(dst []byte, dtype string, vals []float32) []byte {
	le := binary.LittleEndian
	if narrow := narrowFunc(dtype); narrow != nil {
		for _, v := range vals {
			h, _ := narrow(v)
			dst = le.AppendUint16(dst, h)
		}
		return dst
	}
	for _, v := range vals {
		dst = le.AppendUint32(dst, math.Float32bits(v))
	}
	return dst
}

// buildHeader writes the safetensors JSON header: __metadata__ first, then
// the tensors in Expected order with offsets relative to the start of the
// data section, padded with spaces to a multiple of 8 bytes.
func buildHeader(m *Model, specs []TensorSpec, dtype string, size uint64) ([]byte, error) {
	model, err := compactJSON(&m.Config)
	if err != nil {
		return nil, err
	}
	vocab, err := compactJSON(&m.Vocab)
	if err != nil {
		return nil, err
	}
	source, err := compactJSON(&m.Source)
	if err != nil {
		return nil, err
	}
	meta := [][2]string{{"format", Format}, {"model", model}, {"vocab", vocab}, {"source", source}}
	if m.Card != "" {
		meta = append(meta, [2]string{"card", m.Card})
	}

	var b bytes.Buffer
	b.WriteString(`{"__metadata__":{`)
	for i, kv := range meta {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := compactJSON(kv[0])
		if err != nil {
			return nil, err
		}
		v, err := compactJSON(kv[1])
		if err != nil {
			return nil, err
		}
		b.WriteString(k + ":" + v)
	}
	b.WriteByte('}')
	var offset uint64
	for _, s := range specs {
		name, err := compactJSON(s.Name)
		if err != nil {
			return nil, err
		}
		n := size * uint64(m.Tensors[s.Name].Numel())
		fmt.Fprintf(&b, `,%s:{"dtype":"%s","shape":[`, name, dtype)
		for i, d := range s.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, offset+n)
		offset += n
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderBytes {
		return nil, fmt.Errorf("the header would be %d bytes, more than the %d-byte limit (is the card or the vocabulary huge?)", b.Len(), MaxHeaderBytes)
	}
	return b.Bytes(), nil
}

// compactJSON encodes v as JSON on one line, without HTML escaping (so a
// card with "<" stays readable in the header).
func compactJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("encode metadata: %w", err)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}
