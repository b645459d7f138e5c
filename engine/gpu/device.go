package gpu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/remask/remask/shaders"
)

// device is an open WebGPU device with its pipeline cache. It is not locked:
// every Net of a Backend shares it, one goroutine at a time (see Backend).
type device struct {
	p       *platform
	pipes   map[string]*pipeline // key: file + sorted constants
	dummy   *buffer              // bound where a kernel's optional input is absent
	dummyRW *buffer              // the same for an optional read-write binding
	submits int                  // command buffers submitted through submit
	// noUnrolled makes matmuls and attention run matmul.wgsl and
	// attention.wgsl instead of the generated variants (tests of that path).
	noUnrolled bool
	// tile is Options.MatmulTile (nil: chooseTile decides).
	tile *matmulTile
	// The other Options: matmulDB = MatmulDoubleBuffer, splitMM and
	// splitAttn = Split's "mm" and "attn", attnTiled = Attention "tiled".
	matmulDB, splitMM, splitAttn, attnTiled bool
	// attnRows is Attention "rows"; attnAuto is Attention "" or "auto"
	// (the rows kernel where one of RowsTiles fits, else the
	// one-row-per-thread kernel); rowsTile the forced tile
	// (Options.AttentionTile; nil: the first of RowsTiles that fits).
	attnRows, attnAuto bool
	rowsTile           *shaders.AttentionRowsTile
	// caps are what the device granted, the one source of the kernels'
	// limit-dependent choices.
	caps caps
	// footprints are the footprint of every pipeline made (by key), for
	// the tests that check them against the limits.
	footprints map[string]shaders.Footprint
	maxBinding uint64 // the largest storage binding bound (checkBindings)
	// f16: the trunk's matmuls run their f16 variants (Options.Precision
	// "f16", checked by checkF16). f16Emulate (tests only, with f16 set by
	// hand on any device) runs them as the F16 form's arithmetic emulated
	// in f32 (shaders.MatmulUnrolled F16 = 2), so that the f16 path's
	// numerics and plumbing run where f16 WGSL cannot be compiled.
	f16, f16Emulate bool
	// waveSlots is Options.WaveSlots (the default when 0).
	waveSlots int
	// waveSlotsSet: Options.WaveSlots was given (not the default);
	// waveDispatch is Options.WaveDispatch ("" for auto). A loop resolves
	// both for its shape (Loop.waveMode).
	waveSlotsSet bool
	waveDispatch string
}

// caps are the device's granted limits and features as the kernels use
// them, computed once when the device opens. Every choice that depends on
// a limit reads it here (never a constant, never the adapter's limits):
// matmul tiles and their SHMAX (shmax), the tiled attention (shmax), the
// grid split (groupsPerDim), and the checks that refuse a pipeline or a
// buffer beyond a limit with a *LimitError instead of a validation error.
type caps struct {
	lim        Limits // the device's (granted) limits
	adapter    Limits // the adapter's: what Options.Limits "adapter" would grant
	defaults   bool   // Options.Limits "default"
	shmax      int    // maxComputeWorkgroupStorageSize
	invoc      int    // maxComputeInvocationsPerWorkgroup
	wgSize     [3]int // maxComputeWorkgroupSize{X,Y,Z}
	storageMax int    // maxStorageBuffersPerShaderStage
	groupsDim  int    // maxComputeWorkgroupsPerDimension
	subgroups  bool   // the device has the subgroups feature and Options.Subgroups allows it
}

func newCaps(p *platform, opts Options) caps {
	l := p.limits()
	c := caps{lim: l, adapter: p.adapterLimits(), defaults: opts.defaultLimits(),
		shmax: int(l.MaxComputeWorkgroupStorageSize), invoc: int(l.MaxComputeInvocationsPerWorkgroup),
		wgSize:     [3]int{int(l.MaxComputeWorkgroupSizeX), int(l.MaxComputeWorkgroupSizeY), int(l.MaxComputeWorkgroupSizeZ)},
		storageMax: int(l.MaxStorageBuffersPerShaderStage), groupsDim: int(l.MaxComputeWorkgroupsPerDimension),
		subgroups: p.subgroups() && opts.Subgroups != "off"}
	if c.groupsDim == 0 {
		c.groupsDim = 65535
	}
	return c
}

// limitError is a *LimitError for what needing want of the limit name (its
// value have), with the fix: a smaller job, or, where the adapter allows
// more than the device was granted (Options.Limits "default"), the
// adapter's limits.
func (c caps) limitError(name string, have, adapterHas, want uint64, what, adapter, smaller string) *LimitError {
	fix := smaller
	if adapterHas >= want && adapterHas > have {
		alt := fmt.Sprintf("the adapter allows %d: open the device with its limits (Options.Limits \"adapter\", --limits adapter)", adapterHas)
		if fix == "" {
			fix = alt
		} else {
			fix += ", or " + alt
		}
	} else if fix == "" {
		fix = "use a device with a larger limit"
	}
	return &LimitError{Limit: name, Have: have, Want: want, What: what, Adapter: adapter, Fix: fix}
}

func openDevice(ctx context.Context, opts Options) (*device, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	p, err := openPlatform(ctx, opts)
	if err != nil {
		return nil, err
	}
	d := &device{p: p, pipes: map[string]*pipeline{}, caps: newCaps(p, opts), footprints: map[string]shaders.Footprint{},
		matmulDB:  opts.MatmulDoubleBuffer,
		splitMM:   slices.Contains(opts.splits(), "mm"),
		splitAttn: slices.Contains(opts.splits(), "attn"),
		attnTiled: opts.Attention == "tiled", attnRows: opts.Attention == "rows",
		attnAuto: opts.Attention == "" || opts.Attention == "auto", waveSlots: opts.WaveSlots, waveSlotsSet: opts.WaveSlots != 0, waveDispatch: opts.WaveDispatch}
	if d.waveSlots == 0 {
		d.waveSlots = platformWaveSlots
	}
	if opts.MatmulTile != "" {
		t, err := parseTile(opts.MatmulTile, d.shmax())
		if err != nil {
			p.release()
			return nil, fmt.Errorf("%w (this device's maxComputeWorkgroupStorageSize)", err)
		}
		d.tile = &t
	}
	if d.attnTiled && d.shmax() < shaders.AttentionTiledShared {
		p.release()
		return nil, fmt.Errorf("gpu: attention \"tiled\" needs %d bytes of workgroup memory; this device has %d (maxComputeWorkgroupStorageSize; the adapter has %d): leave Options.Attention empty, or open the device with the adapter's limits", shaders.AttentionTiledShared, d.shmax(), d.caps.adapter.MaxComputeWorkgroupStorageSize)
	}
	if opts.AttentionTile != "" {
		t, err := shaders.ParseAttentionRowsTile(opts.AttentionTile)
		if err == nil && t.WG > d.caps.invoc {
			err = fmt.Errorf("shaders: attention tile %s needs %d invocations per workgroup; this device allows %d (maxComputeInvocationsPerWorkgroup)", t, t.WG, d.caps.invoc)
		}
		if err != nil {
			p.release()
			return nil, fmt.Errorf("gpu: %w", err)
		}
		d.rowsTile = &t
	}
	if d.dummy, err = p.newBuffer("dummy", 16, usageStorage); err != nil {
		p.release()
		return nil, err
	}
	if d.dummyRW, err = p.newBuffer("dummy rw", 16, usageStorage); err != nil {
		d.dummy.destroy()
		p.release()
		return nil, err
	}
	if opts.Precision == "f16" {
		if err := d.checkF16(); err != nil {
			d.close()
			return nil, err
		}
		d.f16 = true
	}
	return d, nil
}

// checkF16 reports whether the device can run Options.Precision "f16": the
// adapter must offer shader-f16 (the device was then created with it) and
// the platform's shader compiler must accept f16 WGSL, which it checks by
// creating the f16 matmul pipeline the trunk uses most: the tile of the
// standard model's largest trunk matmul (tileFor: tile128, its
// double-buffered form with Options.MatmulDoubleBuffer, or
// Options.MatmulTile, which openDevice checked against the granted
// workgroup memory), with SHMAX the granted workgroup memory (caps.shmax,
// Options.Limits), its footprint checked against the granted limits by
// pipeline like every kernel's (a *LimitError is returned as such).
// wgpu-native v22 (cogentcore/webgpu v0.23.0) offers the feature on Vulkan
// adapters but its WGSL front end (naga 22) has no f16 type: the pipeline
// is refused with naga's message ("expected global item ... found
// 'enable'"), and New with it (docs/gpu.md, "Precision").
func (d *device) checkF16() error {
	ai := d.p.info()
	if !ai.ShaderF16 || !d.p.f16 {
		return fmt.Errorf("gpu: precision f16 needs the adapter feature shader-f16, which the adapter %q (%s) does not offer; use precision f32 (or auto)", ai.Name, ai.Backend)
	}
	t := d.tileFor(16*1024, 4*384, 384) // mlp.c_fc of the 16 x 1024 forward of the standard model (C = 384)
	c := t.unrolledConsts(shaders.WeightF16, d.shmax())
	c["F16"] = "1u"
	if _, err := d.pipeline(shaders.MatmulUnrolled, c, matmulKinds); err != nil {
		if le := (*LimitError)(nil); errors.As(err, &le) {
			return fmt.Errorf("gpu: precision f16: %w", err) // the device's limits, not the compiler
		}
		return fmt.Errorf("gpu: precision f16: the adapter %q offers shader-f16, but this build's shader compiler refused the f16 matmul kernel (%s), so f16 cannot run here; use precision f32 (or auto): %w", ai.Name, f16CompilerNote, err)
	}
	return nil
}

// close waits (at most closeWait) for submitted work, then releases the
// device: wgpu-native's own wait when a device is dropped has the same 5 s
// give-up as Poll(true) (see pollUntil) and would free resources the GPU may
// still be using.
func (d *device) close() {
	if d.p.lostErr() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		d.p.wait(ctx)
		cancel()
	}
	d.dummy.destroy()
	d.dummyRW.destroy()
	d.p.release()
}

const closeWait = 2 * time.Minute

// submit submits rec's command buffer and counts it.
func (d *device) submit(rec *recorder) error {
	d.submits++
	return rec.submit()
}

// pipeline returns the compute pipeline of a kernel file with the given
// constants, creating it (inside error scopes) on first use.
func (d *device) pipeline(file string, consts map[string]string, kinds []bindKind) (*pipeline, error) {
	keys := make([]string, 0, len(consts))
	for k := range consts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var key strings.Builder
	key.WriteString(file)
	for _, k := range keys {
		fmt.Fprintf(&key, " %s=%s", k, consts[k])
	}
	if d.caps.subgroups {
		key.WriteString(" +subgroups") // the variant where the file has one (below)
	}
	if pl, ok := d.pipes[key.String()]; ok {
		return pl, nil
	}
	storage := 0
	for _, k := range kinds {
		if k != bindUniform {
			storage++
		}
	}
	if storage > int(required.MaxStorageBuffersPerShaderStage) {
		return nil, fmt.Errorf("gpu: %s binds %d storage buffers, more than the %d that Open requires of an adapter (raise required.MaxStorageBuffersPerShaderStage)", file, storage, required.MaxStorageBuffersPerShaderStage)
	}
	src, err := shaders.Source(file, consts)
	if err != nil {
		return nil, err
	}
	if d.caps.subgroups && shaders.HasSubgroupVariant(src) {
		// The reductions through subgroup operations (shaders/subgroups.wgsl).
		if src, err = shaders.SubgroupVariant(src); err != nil {
			return nil, err
		}
	}
	fp, err := d.checkKernel(key.String(), src, storage)
	if err != nil {
		return nil, err
	}
	pl, err := d.p.newPipeline(key.String(), src, "main", kinds)
	if err != nil {
		return nil, err
	}
	d.pipes[key.String()] = pl
	d.footprints[key.String()] = fp
	return pl, nil
}

// checkKernel refuses a kernel whose workgroup size, workgroup memory or
// storage bindings exceed the device's limits (caps), naming the limit,
// before the device would refuse it with a validation error.
func (d *device) checkKernel(name, src string, storage int) (shaders.Footprint, error) {
	fp, err := shaders.KernelFootprint(src)
	if err != nil {
		return fp, fmt.Errorf("gpu: %s: %w", name, err)
	}
	c, a := d.caps, d.caps.adapter
	type lim struct {
		name             string
		have, adapt, use int
	}
	for _, l := range []lim{
		{"maxComputeWorkgroupStorageSize", c.shmax, int(a.MaxComputeWorkgroupStorageSize), fp.SharedBytes},
		{"maxComputeInvocationsPerWorkgroup", c.invoc, int(a.MaxComputeInvocationsPerWorkgroup), fp.Invocations()},
		{"maxComputeWorkgroupSizeX", c.wgSize[0], int(a.MaxComputeWorkgroupSizeX), fp.WorkgroupSize[0]},
		{"maxComputeWorkgroupSizeY", c.wgSize[1], int(a.MaxComputeWorkgroupSizeY), fp.WorkgroupSize[1]},
		{"maxComputeWorkgroupSizeZ", c.wgSize[2], int(a.MaxComputeWorkgroupSizeZ), fp.WorkgroupSize[2]},
		{"maxStorageBuffersPerShaderStage", c.storageMax, int(a.MaxStorageBuffersPerShaderStage), storage},
	} {
		if l.use > l.have {
			return fp, c.limitError(l.name, uint64(l.have), uint64(l.adapt), uint64(l.use), "the kernel "+name, d.p.info().Name, "")
		}
	}
	return fp, nil
}

// checkBuffer refuses a buffer the device cannot hold or bind, naming the
// limit.
func (d *device) checkBuffer(what string, size uint64) error {
	lim, al := d.caps.lim, d.caps.adapter
	const smaller = "use a smaller batch or sequence (fewer positions B·T), or a smaller model"
	// The adapter's limits are the fix only where they admit both.
	alBuf, alBind := al.MaxBufferSize, al.MaxStorageBufferBindingSize
	if size > alBuf || size > alBind {
		alBuf, alBind = 0, 0
	}
	if size > lim.MaxBufferSize {
		return d.caps.limitError("maxBufferSize", lim.MaxBufferSize, alBuf, size, what, d.p.info().Name, smaller)
	}
	if size > lim.MaxStorageBufferBindingSize {
		return d.caps.limitError("maxStorageBufferBindingSize", lim.MaxStorageBufferBindingSize, alBind, size, what, d.p.info().Name, smaller)
	}
	return nil
}

// checkBindings refuses storage bindings the device cannot bind (larger
// than maxStorageBufferBindingSize, or at an offset that is not a multiple
// of minStorageBufferOffsetAlignment) with an error naming the limit, and
// records the largest binding (maxBinding) for the tests.
func (d *device) checkBindings(name string, bs []binding) error {
	lim := d.caps.lim
	for i, b := range bs {
		if b.size > lim.MaxStorageBufferBindingSize {
			return d.caps.limitError("maxStorageBufferBindingSize", lim.MaxStorageBufferBindingSize, d.caps.adapter.MaxStorageBufferBindingSize, b.size,
				fmt.Sprintf("%s (binding %d, %s)", name, i+1, b.buf.label), d.p.info().Name, "use a smaller batch or sequence (fewer positions B·T)")
		}
		if a := uint64(lim.MinStorageBufferOffsetAlignment); a > 0 && b.off%a != 0 {
			return fmt.Errorf("gpu: %s: binding %d (%s) at offset %d, not a multiple of the device's minStorageBufferOffsetAlignment %d", name, i+1, b.buf.label, b.off, a)
		}
		d.maxBinding = max(d.maxBinding, b.size)
	}
	return nil
}

// storage makes a storage buffer after checking it against the limits.
func (d *device) storage(what string, size uint64) (*buffer, error) {
	if err := d.checkBuffer(what, size); err != nil {
		return nil, err
	}
	return d.p.newBuffer(what, size, usageStorage)
}

// allocator makes buffers in a row and stops at the first error, which it
// keeps in err: a Net's activations and sampler rows (and a Loop's
// buffers) are made this way and checked once. made lists every buffer it
// created, for the caller to release.
type allocator struct {
	d    *device
	err  error
	made []*buffer
}

// buffer makes a buffer of size bytes for u after checking it against the
// limits; nil once an error happened.
func (a *allocator) buffer(what string, size uint64, u bufUsage) *buffer {
	if a.err != nil {
		return nil
	}
	if a.err = a.d.checkBuffer(what, size); a.err != nil {
		return nil
	}
	b, err := a.d.p.newBuffer(what, size, u)
	if err != nil {
		a.err = err
		return nil
	}
	a.made = append(a.made, b)
	return b
}

// words makes a storage buffer of n 32-bit values (floats or ids).
func (a *allocator) words(what string, n uint64) *buffer { return a.buffer(what, 4*n, usageStorage) }

// op is one kernel dispatch: a pipeline, its storage bindings (1..n; binding
// 0 is the params uniform), its params and its workgroup counts, or the
// counts at ind[indOff:] (an indirect dispatch). An op without a pipeline
// is a buffer copy (cp).
type op struct {
	name   string
	pl     *pipeline
	params []byte
	binds  []binding
	wg     [3]uint32
	ind    *buffer
	indOff uint64
	cp     *copyOp
	stage  string // the timed stage it belongs to (program.timer), "" for none
}

// copyOp copies size bytes from src at srcOff to dst at dstOff.
type copyOp struct {
	src, dst       *buffer
	srcOff, dstOff uint64
	size           uint64
}

// copyBuf is the op that copies size bytes of src to dst (both from 0).
func copyBuf(src, dst *buffer, size uint64) op {
	return op{name: "copy " + src.label, cp: &copyOp{src: src, dst: dst, size: size}}
}

// program records lists of ops. It owns a uniform buffer with one
// 256-byte-aligned slot per distinct params of a list (ops with equal params,
// such as the sampler-head waves' or a second trunk pass's, share one) and
// caches bind groups by what they bind, so a forward at a known shape
// creates nothing.
type program struct {
	d     *device
	label string
	uni   *buffer
	slot  uint64
	slots int
	host  []byte
	bgs   map[string]*bindGroup
	// timer, when set, times the ops' stages (timestamps.go); record
	// finishes it, the caller reads it after the submission.
	timer *stageTimer
}

func newProgram(d *device, label string) *program {
	slot := uint64(max(256, d.caps.lim.MinUniformBufferOffsetAlignment))
	return &program{d: d, label: label, slot: slot, bgs: map[string]*bindGroup{}}
}

// reset drops the cached bind groups (after activation buffers changed).
func (pr *program) reset() {
	for _, g := range pr.bgs {
		g.release()
	}
	clear(pr.bgs)
}

func (pr *program) release() {
	pr.reset()
	pr.uni.destroy()
	pr.uni = nil
}

// record writes the params of ops and records their dispatches into rec.
func (pr *program) record(rec *recorder, ops []op) error {
	// The params slot of each op: one per distinct params, in order of
	// first use (so the slots of a list's fixed prefix do not move).
	slotOf := make([]int, len(ops))
	seen := make(map[string]int, len(ops))
	var uniq [][]byte
	for i, o := range ops {
		if o.cp != nil {
			continue
		}
		if len(o.params) > int(pr.slot) {
			return fmt.Errorf("%s: params of %d bytes exceed the %d-byte slot", o.name, len(o.params), pr.slot)
		}
		u, ok := seen[string(o.params)]
		if !ok {
			u = len(uniq)
			seen[string(o.params)] = u
			uniq = append(uniq, o.params)
		}
		slotOf[i] = u
	}
	if len(uniq) > pr.slots {
		pr.reset()
		pr.uni.destroy()
		n := max(len(uniq), 2*pr.slots, 16)
		u, err := pr.d.p.newBuffer(pr.label+" params", uint64(n)*pr.slot, usageUniform)
		if err != nil {
			return err
		}
		pr.uni, pr.slots = u, n
		pr.host = make([]byte, uint64(n)*pr.slot)
	}
	for u, p := range uniq {
		copy(pr.host[uint64(u)*pr.slot:], p)
	}
	if err := pr.d.p.write(pr.uni, 0, pr.host[:uint64(len(uniq))*pr.slot]); err != nil {
		return err
	}
	var key []byte
	cur := ""
	for i, o := range ops {
		if o.cp != nil {
			rec.copy(o.cp.src, o.cp.srcOff, o.cp.dst, o.cp.dstOff, o.cp.size)
			cur = "" // a copy ends the timed pass: begin the stage again
			continue
		}
		if pr.timer != nil && o.stage != "" && o.stage != cur {
			pr.timer.begin(rec, o.stage)
			cur = o.stage
		}
		key = strconv.AppendUint(key[:0], o.pl.id, 10)
		key = append(key, '/')
		key = strconv.AppendInt(key, int64(slotOf[i]), 10)
		for _, b := range o.binds {
			key = append(key, '/')
			key = strconv.AppendUint(key, b.buf.id, 10)
			key = append(key, ':')
			key = strconv.AppendUint(key, b.off, 10)
			key = append(key, ':')
			key = strconv.AppendUint(key, b.size, 10)
		}
		bg, ok := pr.bgs[string(key)]
		if !ok {
			if err := pr.d.checkBindings(o.name, o.binds); err != nil {
				return err
			}
			all := make([]binding, 0, len(o.binds)+1)
			all = append(all, binding{buf: pr.uni, off: uint64(slotOf[i]) * pr.slot, size: uint64(len(o.params))})
			all = append(all, o.binds...)
			var err error
			if bg, err = pr.d.p.newBindGroup(o.pl, all); err != nil {
				return fmt.Errorf("%s: %w", o.name, err)
			}
			pr.bgs[string(key)] = bg
		}
		if o.ind != nil {
			rec.dispatchIndirect(o.pl, bg, o.ind, o.indOff)
			continue
		}
		rec.dispatch(o.pl, bg, o.wg[0], o.wg[1], o.wg[2])
	}
	if pr.timer != nil {
		pr.timer.finish(rec)
	}
	return nil
}

// grid spreads n workgroups over x and y (at most maxPerDim per dimension);
// the kernels compute their index as x + y·(workgroups in x) and skip the
// overshoot.
func (d *device) grid(n uint64) [3]uint32 {
	maxd := uint64(d.caps.groupsDim)
	if n == 0 {
		n = 1
	}
	if n <= maxd {
		return [3]uint32{uint32(n), 1, 1}
	}
	y := (n + maxd - 1) / maxd
	x := (n + y - 1) / y
	return [3]uint32{uint32(x), uint32(y), 1}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
