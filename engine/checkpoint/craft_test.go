package checkpoint

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"math"
	"sort"
	"testing"
)

// A small pickle writer and torch.save-style zip builder for crafted
// checkpoints: the hostile inputs of the hardening tests and the fuzz seeds.
// It writes protocol-2 opcodes for the few kinds of value a fork checkpoint
// holds.

// pdict is a pickled dict with its entries in order.
type pdict []pkv

type pkv struct {
	k string
	v any
}

// ptuple is a pickled tuple.
type ptuple []any

// pglobal is a GLOBAL reference to module.name.
type pglobal struct{ module, name string }

// pcall is REDUCE: fn(*args).
type pcall struct {
	fn   pglobal
	args ptuple
}

// pbig is an int written as a LONG1 of arbitrary bytes (two's complement).
type pbig []byte

// ptensor is a torch._utils._rebuild_tensor_v2 call on a persistent storage.
type ptensor struct {
	class        string // "FloatStorage", ...
	key          string // the record data/<key>
	numel        int    // the storage's declared element count
	offset       int
	size, stride []int
}

type pickler struct{ bytes.Buffer }

func (p *pickler) value(v any) {
	switch x := v.(type) {
	case nil:
		p.WriteByte('N')
	case bool:
		if x {
			p.WriteByte(0x88)
		} else {
			p.WriteByte(0x89)
		}
	case int:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(x))
		p.WriteByte(0x8a) // LONG1
		p.WriteByte(8)
		p.Write(b[:])
	case pbig:
		p.WriteByte(0x8a)
		p.WriteByte(byte(len(x)))
		p.Write(x)
	case float64:
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], math.Float64bits(x))
		p.WriteByte('G')
		p.Write(b[:])
	case string:
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(x)))
		p.WriteByte('X')
		p.Write(n[:])
		p.WriteString(x)
	case pglobal:
		p.WriteString("c" + x.module + "\n" + x.name + "\n")
	case ptuple:
		p.WriteByte('(')
		for _, it := range x {
			p.value(it)
		}
		p.WriteByte('t')
	case []int:
		t := make(ptuple, len(x))
		for i, n := range x {
			t[i] = n
		}
		p.value(t)
	case pdict:
		p.WriteByte('}')
		if len(x) > 0 {
			p.WriteByte('(')
			for _, e := range x {
				p.value(e.k)
				p.value(e.v)
			}
			p.WriteByte('u')
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := make(pdict, len(keys))
		for i, k := range keys {
			d[i] = pkv{k, x[k]}
		}
		p.value(d)
	case map[int]string:
		p.WriteByte('}')
		if len(x) > 0 {
			keys := make([]int, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Ints(keys)
			p.WriteByte('(')
			for _, k := range keys {
				p.value(k)
				p.value(x[k])
			}
			p.WriteByte('u')
		}
	case pcall:
		p.value(x.fn)
		p.value(x.args)
		p.WriteByte('R')
	case ptensor:
		p.value(pglobal{"torch._utils", "_rebuild_tensor_v2"})
		p.WriteByte('(')
		p.value(ptuple{"storage", pglobal{"torch", x.class}, x.key, "cpu", x.numel})
		p.WriteByte('Q') // BINPERSID
		p.value(x.offset)
		p.value(x.size)
		p.value(x.stride)
		p.value(false)
		p.value(pcall{pglobal{"collections", "OrderedDict"}, nil})
		p.WriteByte('t')
		p.WriteByte('R')
	default:
		panic("pickler: unsupported value")
	}
}

// pickleBytes is the protocol-2 pickle of v.
func pickleBytes(v any) []byte {
	var p pickler
	p.Write([]byte{0x80, 0x02})
	p.value(v)
	p.WriteByte('.')
	return p.Bytes()
}

// record is one file of a crafted archive.
type record struct {
	name    string
	data    []byte
	deflate bool
	// raw, when set, is the record's compressed bytes as they go into the
	// archive (data is then only used for the sizes and the CRC).
	raw       []byte
	rawSize   uint64
	noCRC     bool // write CRC-32 0, which the zip reader does not check
	sizeLie64 uint64
}

// zipBytes builds a zip archive of the records, in order.
func zipBytes(t testing.TB, recs ...record) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, r := range recs {
		h := &zip.FileHeader{Name: r.name, Method: zip.Store}
		payload := r.data
		h.UncompressedSize64 = uint64(len(r.data))
		if !r.noCRC {
			h.CRC32 = crc32.ChecksumIEEE(r.data)
		}
		switch {
		case r.raw != nil:
			h.Method = zip.Deflate
			payload = r.raw
			h.UncompressedSize64 = r.rawSize
		case r.deflate:
			h.Method = zip.Deflate
			var c bytes.Buffer
			fw, err := flate.NewWriter(&c, flate.BestCompression)
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(r.data)
			fw.Close()
			payload = c.Bytes()
		}
		if r.sizeLie64 != 0 {
			h.UncompressedSize64 = r.sizeLie64
		}
		h.CompressedSize64 = uint64(len(payload))
		w, err := zw.CreateRaw(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// deflatedZeros is a raw deflate stream of n zero bytes (n a multiple of
// 1 MiB), about n/1000 bytes long. Compressing a gigabyte takes seconds, so
// it compresses 2 MiB once and repeats the block that encodes the second
// MiB: after the first MiB the window is all zeros, and so is every block
// that follows, so the same bits decode to the same megabyte every time.
func deflatedZeros(t testing.TB, n int64) []byte {
	t.Helper()
	const mib = 1 << 20
	if n < 2*mib || n%mib != 0 {
		t.Fatalf("deflatedZeros(%d): want a multiple of 1 MiB, at least 2", n)
	}
	var c bytes.Buffer
	fw, err := flate.NewWriter(&c, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, mib)
	fw.Write(zeros)
	fw.Flush() // byte-aligned end of the first MiB
	first := len(c.Bytes())
	fw.Write(zeros)
	fw.Flush()
	block := bytes.Clone(c.Bytes()[first:])
	head := bytes.Clone(c.Bytes()[:first])
	c.Reset()
	fw.Close() // the final, empty block
	tail := bytes.Clone(c.Bytes())
	out := bytes.Clone(head)
	for i := int64(1); i < n/mib; i++ {
		out = append(out, block...)
	}
	return append(out, tail...)
}

// float32Bytes is the little-endian storage of vals.
func float32Bytes(vals []float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// craftedCheckpoint is a torch.save archive whose data.pkl is the pickle
// of top, with the given storage records (data/<key>), all stored.
func craftedCheckpoint(t testing.TB, top any, storages map[string][]byte) []byte {
	t.Helper()
	recs := []record{{name: "archive/data.pkl", data: pickleBytes(top)}}
	keys := make([]string, 0, len(storages))
	for k := range storages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		recs = append(recs, record{name: "archive/data/" + k, data: storages[k]})
	}
	return zipBytes(t, recs...)
}

// oneTensor is a checkpoint dict whose state dict holds the single tensor w.
func oneTensor(w ptensor) pdict {
	return pdict{
		{"model", pdict{{"w", w}}},
		{"model_args", pdict{{"n_layer", 1}}},
	}
}
