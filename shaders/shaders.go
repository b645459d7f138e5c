// Package shaders holds the WGSL compute kernels of remask's WebGPU backend
// (engine/gpu), one .wgsl file per kernel family, embedded, together with a
// typed Go twin of each file's `struct Params` (the uniform every kernel
// reads at @group(0) @binding(0)).
//
// A .wgsl file is valid WGSL as it stands unless it has a `// include:`
// line; those are valid once Raw has spliced the shared block in (CI
// validates every file in that form with naga when it is on PATH, and
// engine/gpu's tests compile every variant on a real adapter). Variants are
// made by Source, a deliberately tiny preprocessor: it
// replaces the value of a module-scope `const NAME: TYPE = VALUE;` line, and
// nothing else. Tile sizes, the head size, the weight dtype and the
// bounds-check-free fast path are set that way.
//
// This package knows nothing about devices; it is plain data plus checks.
package shaders

import (
	"embed"
	"encoding/binary"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.wgsl
var files embed.FS

// Weight dtypes, the WDTYPE constant of the kernels that read weight matrices
// (matmul, embed, gather). Halves are packed two per u32 word, element 2k in
// the low 16 bits, so browsers without `shader-f16` read them too.
const (
	WeightF32  = 0
	WeightF16  = 1
	WeightBF16 = 2
)

// Activations of MatmulParams.Act.
const (
	ActNone = 0
	ActGELU = 1
	ActSiLU = 2
)

// MatmulParams mirrors matmul.wgsl's Params.
type MatmulParams struct {
	M, N, K    uint32
	Act        uint32
	HasBias    uint32
	Accumulate uint32
	Pad0, Pad1 uint32
}

// LayerNormParams mirrors layernorm.wgsl's Params.
type LayerNormParams struct {
	N, C    uint32
	HasBias uint32
	Eps     float32
}

// AddNormParams mirrors addnorm.wgsl's Params.
type AddNormParams struct {
	N, C       uint32
	HasBias    uint32
	Eps        float32
	S          uint32
	HasMBias   uint32
	Pad0, Pad1 uint32
}

// EmbedNormParams mirrors embednorm.wgsl's Params.
type EmbedNormParams struct {
	N, T, C uint32
	ClsID   uint32
	HasCls  uint32
	HasWPE  uint32
	HasBias uint32
	Eps     float32
}

// RopeParams mirrors rope.wgsl's Params.
type RopeParams struct {
	N, T, C, H uint32
}

// AttentionParams mirrors attention.wgsl's Params.
type AttentionParams struct {
	T, C, H          uint32
	Causal           uint32
	Scale            float32
	Pad0, Pad1, Pad2 uint32
}

// RowDotParams mirrors rowdot.wgsl's Params.
type RowDotParams struct {
	N, C       uint32
	Stride     uint32
	Sigmoid    uint32
	A, B       float32
	Pad0, Pad1 uint32
}

// GatherParams mirrors gather.wgsl's Params.
type GatherParams struct {
	N, C       uint32
	Pad0, Pad1 uint32
}

// RngParams mirrors rng.wgsl's Params.
type RngParams struct {
	N                uint32
	Pad0, Pad1, Pad2 uint32
}

// SampleParams mirrors sample.wgsl's Params.
type SampleParams struct {
	V, N, T        uint32
	Iteration      uint32
	Temperature    float32
	TopP           float32
	SeedLo, SeedHi uint32
	Mode           uint32 // SampleList or SampleFill
	Mask           uint32
	Keep           uint32 // fill: KeepUnmasked or KeepProtected
	Pad0           uint32
}

// Modes of SampleParams.Mode (sample.wgsl's MODE_*; 1 was the sampler-head
// waves' scatter, which samplerwave.wgsl replaced).
const (
	SampleList = 0
	SampleFill = 2
)

// Fill modes of SampleParams.Keep (sample.wgsl's KEEP_*): which positions
// keep their token instead of drawing one.
const (
	KeepUnmasked  = 0 // positions whose token is not [MASK] (the naive path)
	KeepProtected = 1 // protected positions (the multinomial method)
)

// NoID marks "no id" or "no position" in the loop kernels' u32 words
// (NONE in sample.wgsl, select.wgsl, waveplan.wgsl and sampler_in.wgsl).
const NoID = 0xffffffff

// RemaskParams mirrors remask.wgsl's Params.
type RemaskParams struct {
	N, T, V        uint32
	Strategy       uint32 // internal/step's Strategy (remask.wgsl's STRATEGY_*)
	Iteration      uint32
	SeedLo, SeedHi uint32
	R              float32
	Stride, Col    uint32
	Pad0, Pad1     uint32
}

// SelectParams mirrors select.wgsl's Params.
type SelectParams struct {
	T, B, K    uint32
	Threshold  uint32 // SelectRatio or SelectThreshold
	Thr        float32
	Mask       uint32
	Pad0, Pad1 uint32
}

// Modes of SelectParams.Threshold (select.wgsl's SELECT_*).
const (
	SelectRatio     = 0
	SelectThreshold = 1
)

// select.wgsl's counter words (CNT_*): the total selected, the smallest
// selected wrongness as an order-preserving key, two unused words, then
// one count per row from CountRows on.
const (
	CountTotal    = 0
	CountMinWrong = 1
	CountRows     = 4
)

// The loop's error words (ERR in sample.wgsl and select.wgsl), each the
// smallest flat position that failed, NoID when none did: ErrDraw is
// sample.wgsl's draw with no finite probability, ErrScore select.wgsl's
// candidate with a non-finite score or wrongness (ERR_SCORE).
const (
	ErrDraw  = 0
	ErrScore = 1
)

// CertainParams mirrors certain.wgsl's Params.
type CertainParams struct {
	V, N, T        uint32
	Iteration      uint32
	Temperature    float32
	TopP           float32
	SeedLo, SeedHi uint32
	Mask           uint32
	Ordering       uint32 // internal/step's Ordering (certain.wgsl's ORDER_*)
	OrderTemp      float32
	Pad0           uint32
}

// certain.wgsl's output per position (CERT_*, read by unmask.wgsl):
// CertainWords floats, the ordering key, the top-1 probability and the
// top-1/top-2 gap.
const (
	CertainWords = 3
	CertainKey   = 0
	CertainP1    = 1
	CertainGap   = 2
)

// UnmaskParams mirrors unmask.wgsl's Params.
type UnmaskParams struct {
	T, B, Mask uint32
	Blocks     uint32
	BlockLen   uint32
	Pad0       uint32
	Tau, Gap   float32
}

// UnmaskStateWords is unmask.wgsl's state per row (block, step, steps, unused).
const UnmaskStateWords = 4

// WavePlanParams mirrors waveplan.wgsl's Params.
type WavePlanParams struct {
	B, T, V, Mask uint32
	Phase         uint32 // WavePlan, WaveScan or WaveList
	Global, All   uint32
	Cap           uint32 // 1: the wave cap (at most T waves)
	Slots         uint32 // waves encoded by the host
	Iteration     uint32
	Maxd          uint32
	Pad0          uint32
}

// Phases of WavePlanParams.Phase (waveplan.wgsl's PHASE_*).
const (
	WavePlan = 0
	WaveScan = 1
	WaveList = 2
)

// waveplan.wgsl's wave state words (WS): a header (W_*; words 5 to 7
// unused), then the count of wave w at WaveCounts + w (w = 1 .. B·T), then
// WaveSlotWords per slot from WaveSlotAt(N): the wave's count, its first
// index in the list and the workgroups samplerwave.wgsl launched for the
// slots before it.
const (
	WaveMax    = 0 // this iteration's last wave (reset by the scan)
	WaveTotal  = 1 // waves run so far
	WaveOver   = 2 // 0, or 1 + the first iteration whose waves exceeded the slots
	WaveLast   = 3 // the latest iteration's wave count
	WaveTicket = 4 // samplerwave.wgsl's workgroup tickets (reset by the scan)
	WaveCounts = 8
	// WaveSlotWords is the words per slot: count, first, workgroups before, unused.
	WaveSlotWords = 4
	// WaveArgsWords is the indirect dispatch arguments per slot: one
	// dispatch (x, y, z) of samplerwave.wgsl.
	WaveArgsWords = 3
)

// waveplan.wgsl's list entries (LIST_*, read by samplerwave.wgsl): the
// position in the low bits, and a flag each for a left and a right
// neighbour in the same wave. Positions must be below WaveListPos + 1.
const (
	WaveListLeft  = 0x80000000
	WaveListRight = 0x40000000
	WaveListPos   = 0x3fffffff
)

// WaveSlotAt is the first slot word of WS for B·T = n positions.
func WaveSlotAt(n int) int { return WaveCounts + n + 1 }

// WaveStateWords is the size of WS in words for n positions and up to n slots.
func WaveStateWords(n int) int { return WaveSlotAt(n) + WaveSlotWords*n }

// SamplerWaveParams mirrors samplerwave.wgsl's Params.
type SamplerWaveParams struct {
	C, V, T        uint32
	SlotAt         uint32 // WS's first slot word (WaveSlotAt)
	Slots          uint32 // slots of this iteration
	Eps            float32
	Mask           uint32
	Embeddings     uint32
	Iteration      uint32
	Temperature    float32
	TopP           float32
	SeedLo, SeedHi uint32
	W3At           uint32 // TAB's W3ᵀ, in floats (engine/gpu's samplerLayout)
	WOAt           uint32 // TAB's WOᵀ
	VecAt          uint32 // TAB's vectors
	Slot           uint32 // Direct: this dispatch's slot
	Direct         uint32 // 1: a direct dispatch of a fixed grid runs slot Slot's wave; 0: an indirect one, the wave found by ticket
	Pad0, Pad1     uint32
}

// StatsParams mirrors stats.wgsl's Params.
type StatsParams struct {
	B, T, V, Mask uint32
	Pad           uint32
	HasCritic     uint32
	Pad0, Pad1    uint32
}

// stats.wgsl's output words per row (STATS_*): StatsWords floats, of
// which these.
const (
	StatsWords       = 8
	StatsSelf        = 0 // self-confidence
	StatsSelfCount   = 1 // positions it averages
	StatsCriticMean  = 2
	StatsCriticP10   = 3
	StatsCriticP50   = 4
	StatsCriticP90   = 5
	StatsCriticCount = 6 // positions the critic statistics cover
	// StatsCriticNonFinite counts those positions whose critic logit is
	// NaN or ±Inf, tested on its bits: WGSL lets an implementation assume
	// that no NaN or infinity occurs, so a NaN need not survive sigmoid and
	// the sums into the mean (under Dawn it did not).
	StatsCriticNonFinite = 7
)

// Family is one kernel family: a .wgsl file, its entry point and the Go twin
// of its Params.
type Family struct {
	File   string
	Entry  string
	Params reflect.Type
}

// Families lists every kernel family.
func Families() []Family {
	return []Family{
		{"matmul.wgsl", "main", reflect.TypeFor[MatmulParams]()},
		{"layernorm.wgsl", "main", reflect.TypeFor[LayerNormParams]()},
		{"addnorm.wgsl", "main", reflect.TypeFor[AddNormParams]()},
		{"embednorm.wgsl", "main", reflect.TypeFor[EmbedNormParams]()},
		{"rope.wgsl", "main", reflect.TypeFor[RopeParams]()},
		{"attention.wgsl", "main", reflect.TypeFor[AttentionParams]()},
		{"rowdot.wgsl", "main", reflect.TypeFor[RowDotParams]()},
		{"gather.wgsl", "main", reflect.TypeFor[GatherParams]()},
		{"rng.wgsl", "main", reflect.TypeFor[RngParams]()},
		{"sample.wgsl", "main", reflect.TypeFor[SampleParams]()},
		{"remask.wgsl", "main", reflect.TypeFor[RemaskParams]()},
		{"select.wgsl", "main", reflect.TypeFor[SelectParams]()},
		{"waveplan.wgsl", "main", reflect.TypeFor[WavePlanParams]()},
		{"samplerwave.wgsl", "main", reflect.TypeFor[SamplerWaveParams]()},
		{"stats.wgsl", "main", reflect.TypeFor[StatsParams]()},
		{"certain.wgsl", "main", reflect.TypeFor[CertainParams]()},
		{"unmask.wgsl", "main", reflect.TypeFor[UnmaskParams]()},
	}
}

// Files lists the embedded .wgsl file names, sorted.
func Files() []string {
	ents, _ := files.ReadDir(".")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// Raw returns a file's text as written, with every "// include: FILE NAME"
// line replaced by FILE's block between its "// NAME begin" and "// NAME end"
// lines (markers included), so that shared WGSL (rng.wgsl's Philox, the
// weight loader of matmul.wgsl, sample.wgsl's draw) is written once and
// every file still validates on its own. FILE's own includes are spliced
// first (one level: a block may not come from a file that includes a file
// that includes).
func Raw(file string) (string, error) {
	return raw(file, 0)
}

func raw(file string, depth int) (string, error) {
	b, err := files.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("shaders: no kernel file %q (have %s)", file, strings.Join(Files(), ", "))
	}
	src := string(b)
	var ierr error
	src = includeLine.ReplaceAllStringFunc(src, func(line string) string {
		m := includeLine.FindStringSubmatch(line)
		if depth > 1 {
			ierr = fmt.Errorf("shaders: %s: nested include of %s", file, m[1])
			return line
		}
		from, err := raw(m[1], depth+1)
		if err != nil {
			ierr = err
			return line
		}
		begin, end := "// "+m[2]+" begin\n", "// "+m[2]+" end\n"
		i, j := strings.Index(from, begin), strings.Index(from, end)
		if i < 0 || j < i {
			ierr = fmt.Errorf("shaders: %s includes block %q of %s, which has no %q ... %q lines", file, m[2], m[1], strings.TrimSpace(begin), strings.TrimSpace(end))
			return line
		}
		return from[i : j+len(end)]
	})
	return src, ierr
}

var includeLine = regexp.MustCompile(`(?m)^// include: ([a-z0-9_]+\.wgsl) ([a-z0-9_]+)\n`)

var constLine = regexp.MustCompile(`(?m)^const ([A-Za-z_][A-Za-z0-9_]*): ([a-z0-9]+) = ([^;]+);`)

// Source returns file with the module-scope constants named in consts set
// to the given WGSL literals (e.g. {"D": "64u", "FAST": "true"}). Naming a
// constant the file does not declare is an error, so a renamed constant
// cannot be ignored silently.
//
// MatmulUnrolled and AttentionUnrolled are not files but generated
// (matmulgen.go); Source returns their text for the given constants.
func Source(file string, consts map[string]string) (string, error) {
	switch file {
	case MatmulUnrolled:
		return unrolledSource(consts)
	case AttentionUnrolled:
		return attentionUnrolledSource(consts)
	case AttentionCombine:
		return attentionCombineSource(consts)
	case MatmulReduce:
		return matmulReduceSource(consts)
	case AttentionTiled:
		return attentionTiledSource(consts)
	case AttentionRows:
		return attentionRowsSource(consts)
	}
	src, err := Raw(file)
	if err != nil {
		return "", err
	}
	seen := map[string]bool{}
	src = constLine.ReplaceAllStringFunc(src, func(line string) string {
		m := constLine.FindStringSubmatch(line)
		v, ok := consts[m[1]]
		if !ok {
			return line
		}
		seen[m[1]] = true
		return fmt.Sprintf("const %s: %s = %s;", m[1], m[2], v)
	})
	for name := range consts {
		if !seen[name] {
			return "", fmt.Errorf("shaders: %s declares no module-scope constant %s", file, name)
		}
	}
	return src, nil
}

// Bytes encodes a Params struct as its uniform buffer contents (little
// endian, fields in order: every field is 4 bytes, so WGSL's layout has no
// holes).
func Bytes(p any) []byte {
	b, err := binary.Append(nil, binary.LittleEndian, p)
	if err != nil {
		panic(fmt.Sprintf("shaders: %T is not a fixed-size params struct: %v", p, err))
	}
	return b
}

// Field is one member of a WGSL struct.
type Field struct{ Name, Type string }

var structRE = regexp.MustCompile(`(?s)struct\s+Params\s*\{(.*?)\}`)
var fieldRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([A-Za-z0-9_<>]+)\s*,?\s*$`)

// paramsStruct is the `struct Params { ... }` declaration of a kernel file,
// as written there: the generated kernels copy their sources' params, so
// that one struct (pinned to its Go twin by TestParamsMatch) serves both.
func paramsStruct(file string) (string, error) {
	raw, err := Raw(file)
	if err != nil {
		return "", err
	}
	params := structRE.FindString(raw)
	if params == "" {
		return "", fmt.Errorf("shaders: %s has no struct Params", file)
	}
	return params, nil
}

// WGSLParams parses the `struct Params` of a kernel file.
func WGSLParams(file string) ([]Field, error) {
	src, err := paramsStruct(file)
	if err != nil {
		return nil, err
	}
	m := structRE.FindStringSubmatch(src)
	var out []Field
	for _, line := range strings.Split(m[1], "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := fieldRE.FindStringSubmatch(line)
		if f == nil {
			return nil, fmt.Errorf("shaders: %s: cannot parse struct Params member %q", file, strings.TrimSpace(line))
		}
		out = append(out, Field{f[1], f[2]})
	}
	return out, nil
}

// CheckParams reports whether the Go struct t has the same members, in the
// same order and of the same types, as file's WGSL struct Params. Names
// match case-insensitively with underscores dropped (HasBias = has_bias).
func CheckParams(file string, t reflect.Type) error {
	fields, err := WGSLParams(file)
	if err != nil {
		return err
	}
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("shaders: %s: Go twin %v is not a struct", file, t)
	}
	if t.NumField() != len(fields) {
		return fmt.Errorf("shaders: %s: WGSL Params has %d members, Go %v has %d", file, len(fields), t, t.NumField())
	}
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	for i, f := range fields {
		g := t.Field(i)
		if norm(g.Name) != norm(f.Name) {
			return fmt.Errorf("shaders: %s: Params member %d is %q in WGSL, %q in Go %v", file, i, f.Name, g.Name, t)
		}
		want := map[string]reflect.Kind{"u32": reflect.Uint32, "f32": reflect.Float32, "i32": reflect.Int32}[f.Type]
		if want == reflect.Invalid {
			return fmt.Errorf("shaders: %s: Params member %s has type %s; only u32, f32 and i32 are allowed", file, f.Name, f.Type)
		}
		if g.Type.Kind() != want {
			return fmt.Errorf("shaders: %s: Params member %s is %s in WGSL, %v in Go %v", file, f.Name, f.Type, g.Type, t)
		}
	}
	if size := 4 * len(fields); size%16 != 0 {
		return fmt.Errorf("shaders: %s: Params is %d bytes; pad it to a multiple of 16", file, size)
	}
	return nil
}

var uintConst = regexp.MustCompile(`^(0x[0-9a-fA-F]+|[0-9]+)u$`)

// Const returns the value of file's module-scope `const NAME: u32 = VALUEu;`
// (after the include splice), so that Go constants shared with WGSL can be
// pinned by a test (CheckConst).
func Const(file, name string) (uint64, error) {
	src, err := Raw(file)
	if err != nil {
		return 0, err
	}
	var found []string
	for _, m := range constLine.FindAllStringSubmatch(src, -1) {
		if m[1] == name {
			found = append(found, strings.TrimSpace(m[3]))
			if m[2] != "u32" {
				return 0, fmt.Errorf("shaders: %s: const %s is a %s, not a u32", file, name, m[2])
			}
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("shaders: %s declares no module-scope const %s", file, name)
	case 1:
	default:
		return 0, fmt.Errorf("shaders: %s declares const %s %d times", file, name, len(found))
	}
	lit := uintConst.FindStringSubmatch(found[0])
	if lit == nil {
		return 0, fmt.Errorf("shaders: %s: const %s = %s is not a plain u32 literal", file, name, found[0])
	}
	v, err := strconv.ParseUint(lit[1], 0, 32)
	if err != nil {
		return 0, fmt.Errorf("shaders: %s: const %s = %s: %v", file, name, found[0], err)
	}
	return v, nil
}

// CheckConst reports whether file declares `const NAME: u32` with the
// value of the Go constant want.
func CheckConst(file, name string, want uint64) error {
	got, err := Const(file, name)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("shaders: %s: const %s = %du, but the Go constant is %d; change one to match the other", file, name, got, want)
	}
	return nil
}

// UintLiteral writes v as a WGSL u32 literal ("64u").
func UintLiteral(v int) string { return fmt.Sprintf("%du", v) }
