package checkpoint

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// writeTemp writes data to a file in a test directory.
func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCraftedViews: tensor views whose offset, size or stride arithmetic
// overflows, and storages whose byte size overflows, are errors, never
// panics (issue 11, defect 3).
func TestCraftedViews(t *testing.T) {
	floats := float32Bytes(make([]float32, 16))
	for _, tc := range []struct {
		name string
		w    ptensor
		want string
	}{
		// (3-1)*2^62 wraps last to -2^63, under the bounds check; the
		// gather then indexed element 2^62.
		{"stride wraps", ptensor{class: "FloatStorage", key: "0", numel: 16, size: []int{3, 2}, stride: []int{1 << 62, 1}}, "overflows"},
		// offset+n wraps negative: vals[offset:offset+n].
		{"offset wraps", ptensor{class: "FloatStorage", key: "0", numel: 16, offset: math.MaxInt - 100, size: []int{2144}, stride: []int{1}}, "overflows"},
		{"offset beyond storage", ptensor{class: "FloatStorage", key: "0", numel: 16, offset: 16, size: []int{1}, stride: []int{1}}, "reaches element 16 of a 16-element storage"},
		{"negative offset", ptensor{class: "FloatStorage", key: "0", numel: 16, offset: -1, size: []int{1}, stride: []int{1}}, "storage offset"},
		{"negative stride", ptensor{class: "FloatStorage", key: "0", numel: 16, size: []int{2}, stride: []int{-1}}, "negative"},
		{"negative size", ptensor{class: "FloatStorage", key: "0", numel: 16, size: []int{-2}, stride: []int{1}}, "negative"},
		{"numel overflows", ptensor{class: "FloatStorage", key: "0", numel: 16, size: []int{1 << 32, 1 << 32}, stride: []int{0, 0}}, "too large"},
		// numel*4 wrapped to 0: the record size check passed and
		// make([]float32, 2^62) panicked.
		{"storage bytes wrap", ptensor{class: "FloatStorage", key: "0", numel: 1 << 62, size: []int{2}, stride: []int{1}}, "too large"},
		{"storage bytes wrap, double", ptensor{class: "DoubleStorage", key: "0", numel: 1 << 61, size: []int{2}, stride: []int{1}}, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, "crafted.pt", craftedCheckpoint(t, oneTensor(tc.w), map[string][]byte{"0": floats}))
			_, err := Open(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			t.Logf("%v", err)
			if !strings.HasPrefix(err.Error(), path+": ") {
				t.Errorf("error does not name the file: %v", err)
			}
			// `remask inspect` takes the same path.
			if _, ierr := InspectFile(path, Options{}); ierr == nil || ierr.Error() != err.Error() {
				t.Errorf("InspectFile: %v, want %v", ierr, err)
			}
		})
	}
}

// bombCheckpoint is a checkpoint of about 1 MB whose one storage is a
// deflated gigabyte of zeros (2^28 floats); its tensor views the first
// `use` elements.
func bombCheckpoint(t testing.TB, use int) []byte {
	t.Helper()
	const numel = 1 << 28
	raw := deflatedZeros(t, 4*numel)
	top := oneTensor(ptensor{class: "FloatStorage", key: "0", numel: numel, size: []int{use}, stride: []int{1}})
	return zipBytes(t,
		record{name: "archive/data.pkl", data: pickleBytes(top)},
		record{name: "archive/data/0", raw: raw, rawSize: 4 * numel, noCRC: true},
	)
}

// The bomb's stream inflates to exactly the gigabyte it claims.
func TestDeflatedZerosHelper(t *testing.T) {
	raw := deflatedZeros(t, 64<<20)
	n, err := io.Copy(io.Discard, flate.NewReader(bytes.NewReader(raw)))
	if err != nil || n != 64<<20 {
		t.Fatalf("inflated %d bytes (%v), want %d", n, err, 64<<20)
	}
	t.Logf("64 MiB of zeros deflate to %d bytes", len(raw))
}

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestZipBomb: a 1 MB checkpoint whose deflated storage claims 2^28 floats
// (issue 11, defect 9). Before, Open inflated the whole storage and
// allocated 2 GiB (2.1 GB RSS in `remask inspect`) even for a view of
// 2,144 elements; now it reads only what the views touch, and refuses a
// view of the whole storage before inflating it.
func TestZipBomb(t *testing.T) {
	const budget = 16 << 20
	for _, tc := range []struct {
		name string
		use  int
		want string // "" = opens
	}{
		{"view of 2144 elements", 2144, ""},
		{"view of the whole storage", 1 << 28, "a zip bomb?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bombCheckpoint(t, tc.use)
			path := writeTemp(t, "bomb.pt", data)
			var c *Checkpoint
			var err error
			n := allocated(func() { c, err = Open(path) })
			t.Logf("%d-byte file: allocated %.1f MB; error: %v", len(data), float64(n)/1e6, err)
			if n > budget {
				t.Errorf("Open allocated %d bytes, want <= %d", n, budget)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if w := c.StateDict["w"]; len(w.Data) != tc.use {
					t.Fatalf("tensor w has %d values, want %d", len(w.Data), tc.use)
				}
				return
			}
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrLimit saying %q", err, tc.want)
			}
		})
	}
}

// TestPickleBomb: a data.pkl that claims a gigabyte (deflated), and pickle
// opcodes that declare more bytes than the stream has (the decoder would
// allocate them first: a fatal out-of-memory error for a terabyte), are
// refused before anything is allocated.
func TestPickleBomb(t *testing.T) {
	zeros := deflatedZeros(t, 1<<30)
	bomb := zipBytes(t, record{name: "archive/data.pkl", raw: zeros, rawSize: 1 << 30, noCRC: true})
	long := func(op byte, n uint64, width int) []byte {
		b := []byte{0x80, 0x02, op}
		for i := 0; i < width; i++ {
			b = append(b, byte(n>>(8*i)))
		}
		return append(b, '.')
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"deflated data.pkl", bomb, "a zip bomb?"},
		{"BINBYTES8 of 1 TB", zipBytes(t, record{name: "archive/data.pkl", data: long(0x8e, 1<<40, 8)}), "declares 1099511627776 bytes"},
		{"BINUNICODE8 of 2^63", zipBytes(t, record{name: "archive/data.pkl", data: long(0x8d, 1<<63, 8)}), "declares 9223372036854775808 bytes"},
		{"FRAME of 1 TB", zipBytes(t, record{name: "archive/data.pkl", data: long(0x95, 1<<40, 8)}), "frame"},
		{"BINUNICODE of 4 GB", zipBytes(t, record{name: "archive/data.pkl", data: long('X', 1<<32-1, 4)}), "declares 4294967295 bytes"},
		{"no STOP", zipBytes(t, record{name: "archive/data.pkl", data: []byte{0x80, 0x02, '}'}}), "without a STOP"},
		{"unknown opcode", zipBytes(t, record{name: "archive/data.pkl", data: []byte{0x80, 0x02, 0xff, '.'}}), "unknown pickle opcode 0xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, "bomb.pt", tc.data)
			var err error
			n := allocated(func() { _, err = Open(path) })
			t.Logf("allocated %.1f MB; error: %v", float64(n)/1e6, err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if n > 16<<20 {
				t.Errorf("Open allocated %d bytes", n)
			}
		})
	}
}

// TestBillionLaughs: a pickle whose values reference each other so that
// they stand for 2^60 values is refused, quickly.
func TestBillionLaughs(t *testing.T) {
	var p pickler
	p.Write([]byte{0x80, 0x02})
	p.WriteString("X\x06\x00\x00\x00config")
	p.WriteString("N") // level 0
	for i := 0; i < 60; i++ {
		p.WriteString("2\x86") // DUP, TUPLE2: (x, x)
	}
	p.WriteString("q\x00") // BINPUT 0
	p.WriteByte('0')
	body := p.Bytes()
	var top pickler
	top.Write([]byte{0x80, 0x02, '}', '('})
	top.value("model")
	top.value(pdict{})
	top.value("model_args")
	top.value(pdict{{"n_layer", 1}})
	top.Write(body[2:]) // "config", then the tuple tower...
	top.WriteString("h\x00u.")
	path := writeTemp(t, "laughs.pt", zipBytes(t, record{name: "archive/data.pkl", data: top.Bytes()}))
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "more than 1048576 values") {
		t.Fatalf("error %v, want a refusal of too many values", err)
	}
}

// TestManyOpenRecords: thousands of views that each read part of their own
// deflated storage keep a decompressor open each (about 50 KB for a few
// hundred bytes of file); those are charged to the limit too.
func TestManyOpenRecords(t *testing.T) {
	const n = 1000
	sd := pdict{}
	recs := []record{{}}
	for i := range n {
		key := strconv.Itoa(i)
		sd = append(sd, pkv{"w" + key, ptensor{class: "FloatStorage", key: key, numel: 2, size: []int{1}, stride: []int{1}}})
		recs = append(recs, record{name: "archive/data/" + key, data: make([]byte, 8), deflate: true})
	}
	recs[0] = record{name: "archive/data.pkl", data: pickleBytes(pdict{{"model", sd}, {"model_args", pdict{{"n_layer", 1}}}})}
	data := zipBytes(t, recs...)
	const limit = 16 << 20
	var err error
	got := allocated(func() { _, err = read("many.pt", bytes.NewReader(data), int64(len(data)), Limits{MaxBytes: limit}) })
	t.Logf("%d-byte file: allocated %.1f MB; %v", len(data), float64(got)/1e6, err)
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "opening storage record") {
		t.Fatalf("error %v, want ErrLimit when opening a record", err)
	}
	if got > 2*limit {
		t.Errorf("allocated %d bytes under a limit of %d", got, limit)
	}
	// With room for them all, the file reads.
	if _, err := read("many.pt", bytes.NewReader(data), int64(len(data)), Limits{}); err != nil {
		t.Fatal(err)
	}
}

// TestForkCheckpointsWithinLimit: the fork checkpoints of testdata/fork read
// within half of the per-byte limit, without the 64 MiB floor (they need 6
// to 19 times their size).
func TestForkCheckpointsWithinLimit(t *testing.T) {
	for _, name := range []string{"sh_lm", "sh_lm_abs_causal", "sh_lm_compiled", "sh_judge", "sh_classifier", "d7_lora"} {
		data, err := os.ReadFile(fixture(name + ".pt"))
		if err != nil {
			t.Fatal(err)
		}
		lim := Limits{MaxBytes: limitPerByte / 2 * int64(len(data))}
		if _, err := read(name, bytes.NewReader(data), int64(len(data)), lim); err != nil {
			t.Errorf("%s (%d bytes) does not read within %d bytes: %v", name, len(data), lim.MaxBytes, err)
		}
	}
}
