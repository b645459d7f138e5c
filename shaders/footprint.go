package shaders

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Footprint is what a compute kernel asks of a device's limits: its
// workgroup size and the workgroup memory it declares, counted as WebGPU
// counts it against maxComputeWorkgroupStorageSize (each var<workgroup>
// rounded up to 16 bytes).
type Footprint struct {
	WorkgroupSize [3]int // x, y, z (1 where not given)
	SharedBytes   int
}

// Invocations is the workgroup's size x·y·z
// (maxComputeInvocationsPerWorkgroup).
func (f Footprint) Invocations() int {
	return f.WorkgroupSize[0] * f.WorkgroupSize[1] * f.WorkgroupSize[2]
}

var (
	fpConst  = regexp.MustCompile(`(?m)^const ([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*[a-z0-9]+)?\s*=\s*([^;]+);`)
	fpWGSize = regexp.MustCompile(`@workgroup_size\(([^)]*)\)`)
	fpShared = regexp.MustCompile(`(?m)^var<workgroup>\s+[A-Za-z_][A-Za-z0-9_]*\s*:\s*(.+?)\s*;`)
)

// KernelFootprint reads the footprint of one compute entry point's WGSL
// source (what Source returns): the module-scope integer constants, the one
// @workgroup_size and every var<workgroup>. It is an error when a size
// cannot be evaluated (an unknown name, a struct type), so a kernel the
// parser does not understand is never counted as free.
func KernelFootprint(src string) (Footprint, error) {
	consts := map[string]int64{}
	for _, m := range fpConst.FindAllStringSubmatch(src, -1) {
		if v, err := evalInt(m[2], consts); err == nil {
			consts[m[1]] = v
		}
	}
	var f Footprint
	ws := fpWGSize.FindAllStringSubmatch(src, -1)
	if len(ws) != 1 {
		return f, fmt.Errorf("shaders: %d @workgroup_size attributes, want one", len(ws))
	}
	f.WorkgroupSize = [3]int{1, 1, 1}
	for i, e := range strings.Split(ws[0][1], ",") {
		if strings.TrimSpace(e) == "" {
			continue
		}
		if i > 2 {
			return f, fmt.Errorf("shaders: @workgroup_size(%s) has more than three dimensions", ws[0][1])
		}
		v, err := evalInt(e, consts)
		if err != nil {
			return f, fmt.Errorf("shaders: @workgroup_size(%s): %w", ws[0][1], err)
		}
		f.WorkgroupSize[i] = int(v)
	}
	for _, m := range fpShared.FindAllStringSubmatch(src, -1) {
		size, _, err := wgslSize(strings.TrimSpace(m[1]), consts)
		if err != nil {
			return f, fmt.Errorf("shaders: var<workgroup> of type %s: %w", m[1], err)
		}
		f.SharedBytes += (size + 15) &^ 15
	}
	return f, nil
}

// wgslSize is the size and alignment of a WGSL type (host-shareable
// layout) made of scalars, vectors, atomics and fixed-size arrays.
func wgslSize(t string, consts map[string]int64) (size, align int, err error) {
	switch t {
	case "f32", "u32", "i32", "atomic<u32>", "atomic<i32>":
		return 4, 4, nil
	case "f16":
		return 2, 2, nil
	}
	if strings.HasPrefix(t, "vec") && len(t) > 5 && t[4] == '<' && strings.HasSuffix(t, ">") {
		n := int(t[3] - '0')
		es, _, err := wgslSize(t[5:len(t)-1], consts)
		if err != nil || n < 2 || n > 4 {
			return 0, 0, fmt.Errorf("vector type %s", t)
		}
		al := es * n
		if n == 3 {
			al = es * 4
		}
		return es * n, al, nil
	}
	if strings.HasPrefix(t, "array<") && strings.HasSuffix(t, ">") {
		body := t[len("array<") : len(t)-1]
		// The element type may itself hold commas (array<vec4<f32>, N>):
		// the count follows the last top-level comma.
		depth, cut := 0, -1
		for i, c := range body {
			switch c {
			case '<':
				depth++
			case '>':
				depth--
			case ',':
				if depth == 0 {
					cut = i
				}
			}
		}
		if cut < 0 {
			return 0, 0, fmt.Errorf("runtime-sized array %s in workgroup memory", t)
		}
		es, ea, err := wgslSize(strings.TrimSpace(body[:cut]), consts)
		if err != nil {
			return 0, 0, err
		}
		n, err := evalInt(body[cut+1:], consts)
		if err != nil {
			return 0, 0, err
		}
		stride := (es + ea - 1) / ea * ea
		return int(n) * stride, ea, nil
	}
	return 0, 0, fmt.Errorf("type %s is not one the footprint parser sizes", t)
}

// evalInt evaluates a WGSL integer constant expression of literals
// (decimal or hex, with an optional u or i suffix), known constant names,
// parentheses and + - * / % << >>.
func evalInt(expr string, consts map[string]int64) (int64, error) {
	e := &exprParser{s: strings.TrimSpace(expr), consts: consts}
	v, err := e.parse(0)
	if err != nil {
		return 0, err
	}
	e.skip()
	if e.i != len(e.s) {
		return 0, fmt.Errorf("cannot evaluate %q", expr)
	}
	return v, nil
}

type exprParser struct {
	s      string
	i      int
	consts map[string]int64
}

func (e *exprParser) skip() {
	for e.i < len(e.s) && e.s[e.i] == ' ' {
		e.i++
	}
}

var binPrec = map[string]int{"<<": 1, ">>": 1, "+": 2, "-": 2, "*": 3, "/": 3, "%": 3}

func (e *exprParser) op() string {
	e.skip()
	for _, o := range []string{"<<", ">>", "+", "-", "*", "/", "%"} {
		if strings.HasPrefix(e.s[e.i:], o) {
			return o
		}
	}
	return ""
}

func (e *exprParser) parse(minPrec int) (int64, error) {
	v, err := e.atom()
	if err != nil {
		return 0, err
	}
	for {
		o := e.op()
		p, ok := binPrec[o]
		if !ok || p <= minPrec {
			return v, nil
		}
		e.i += len(o)
		r, err := e.parse(p)
		if err != nil {
			return 0, err
		}
		switch o {
		case "+":
			v += r
		case "-":
			v -= r
		case "*":
			v *= r
		case "/", "%":
			if r == 0 {
				return 0, fmt.Errorf("division by zero in %q", e.s)
			}
			if o == "/" {
				v /= r
			} else {
				v %= r
			}
		case "<<":
			v <<= r
		case ">>":
			v >>= r
		}
	}
}

var atomRE = regexp.MustCompile(`^(0[xX][0-9a-fA-F]+|[0-9]+)[ui]?|^[A-Za-z_][A-Za-z0-9_]*`)

func (e *exprParser) atom() (int64, error) {
	e.skip()
	if e.i < len(e.s) && e.s[e.i] == '(' {
		e.i++
		v, err := e.parse(0)
		if err != nil {
			return 0, err
		}
		e.skip()
		if e.i >= len(e.s) || e.s[e.i] != ')' {
			return 0, fmt.Errorf("unbalanced parentheses in %q", e.s)
		}
		e.i++
		return v, nil
	}
	m := atomRE.FindStringSubmatch(e.s[e.i:])
	if m == nil {
		return 0, fmt.Errorf("cannot evaluate %q", e.s)
	}
	e.i += len(m[0])
	if m[1] != "" {
		return strconv.ParseInt(m[1], 0, 64)
	}
	v, ok := e.consts[m[0]]
	if !ok {
		return 0, fmt.Errorf("unknown constant %s in %q", m[0], e.s)
	}
	return v, nil
}
