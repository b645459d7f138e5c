//go:build js

package gpu

// The browser half of the platform layer, on navigator.gpu through
// syscall/js. cogentcore/webgpu v0.23.0's js backend is not used here
// because it cannot do what this layer must: its Buffer and Device hide
// their js.Value (so no error scopes, no device.lost), its MapAsync reports
// success without looking at the promise, GetMappedRange copies through
// jsx.BytesToJS which needs a page-set `globalThis.wasm`, and
// ComputePipeline.GetBindGroupLayout is missing. The calls below are the
// WebGPU JavaScript API one to one (https://gpuweb.github.io/gpuweb/).
//
// Every wait is a promise awaited from a goroutine; do not call into a Net
// from inside a js.FuncOf callback (the event loop would be blocked).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall/js"

	"github.com/remask/remask/internal/jsutil"
)

type buffer struct {
	v     js.Value
	size  uint64
	id    uint64
	label string
	ri    uint32 // index in platform.reg (indirect arguments)
	p     *platform
}

type pipeline struct {
	v   js.Value
	bgl js.Value
	id  uint64
	ri  uint32 // index in platform.reg
}

type bindGroup struct {
	v  js.Value
	ri uint32 // index in platform.reg
	p  *platform
}

type platform struct {
	adapter, dev, queue js.Value
	ai                  AdapterInfo
	lim                 Limits // the device's (granted) limits
	alim                Limits // the adapter's limits
	ts                  bool   // the device was created with timestamp-query
	sg                  bool   // the device was created with subgroups
	f16                 bool   // the device was created with shader-f16
	ids                 atomic.Uint64
	mu                  sync.Mutex
	lost                error

	// The batched recording (see runPassSource): reg holds the pipelines,
	// bind groups and indirect-argument buffers by index, runPass is the
	// JavaScript function that records a pass's dispatches from cmds (a
	// Uint8Array over which cmds32 is a Uint32Array view). runPass is
	// undefined where the page forbids creating it (a Content Security
	// Policy without 'unsafe-eval'); the recorder then calls the WebGPU
	// methods one by one.
	reg, runPass, cmds, cmds32 js.Value
	regN                       uint32   // reg's length
	regFree                    []uint32 // reg's unused indices
	regRetired                 []uint32 // released since the last submission (see unregister)
	unflushed                  int      // recorders holding commands not yet flushed
	passCalls                  int      // runPass calls (tests: the batched path ran)

	// pending are the error scopes' promises of submissions not yet
	// checked (submit does not wait for them; read, wait and the next
	// submits beyond maxPendingScopes do).
	pending []pendingScope
}

// pendingScope is one submission's two popErrorScope promises.
type pendingScope struct{ oom, validation js.Value }

// maxPendingScopes bounds the unchecked submissions (their promises); at
// the bound, submit waits for the oldest.
const maxPendingScopes = 64

// batchDispatches turns the batched recording on (tests turn it off to
// compare).
var batchDispatches = true

// runPassSource records the dispatches of one compute pass from a command
// array, in JavaScript: each dispatch is three WebGPU calls, and from Go
// each call into JavaScript costs a few microseconds of syscall/js (argument
// conversion, a reflection call), which at the small job's 230 dispatches an
// iteration made the browser build's recording, not the GPU, its limit.
// Command layout (u32 words, 6 per dispatch): kind (0 direct, 1 indirect),
// pipeline, bind group (indices in reg), then x, y, z for a direct dispatch
// or the argument buffer's index and the offset's low and high words.
const runPassSource = `
for (let i = 0; i < n; i += 6) {
	pass.setPipeline(reg[cmds[i + 1]]);
	pass.setBindGroup(0, reg[cmds[i + 2]]);
	if (cmds[i] === 0) pass.dispatchWorkgroups(cmds[i + 3], cmds[i + 4], cmds[i + 5]);
	else pass.dispatchWorkgroupsIndirect(reg[cmds[i + 3]], cmds[i + 4] + cmds[i + 5] * 4294967296);
}`

// initBatch creates the registry and runPass (left undefined where the
// page's policy refuses new Function: the unbatched path then runs).
func (p *platform) initBatch() {
	p.reg = js.Global().Get("Array").New()
	p.runPass = js.Undefined()
	defer func() {
		if recover() != nil { // a CSP without 'unsafe-eval': new Function throws
			p.runPass = js.Undefined()
		}
	}()
	p.runPass = js.Global().Get("Function").New("pass", "reg", "cmds", "n", runPassSource)
}

// register puts v in reg and returns its index.
func (p *platform) register(v js.Value) uint32 {
	var i uint32
	if n := len(p.regFree); n > 0 {
		i, p.regFree = p.regFree[n-1], p.regFree[:n-1]
	} else {
		i = p.regN
		p.regN++
	}
	p.reg.SetIndex(int(i), v)
	return i
}

// unregister drops reg's reference to an object that is gone, at the next
// submission: a recorder's unflushed commands may still name the index (a
// program's bind groups can be released while another program records into
// the same recorder), and every recorder flushes before it submits.
func (p *platform) unregister(i uint32) {
	if p != nil && p.reg.Truthy() {
		p.regRetired = append(p.regRetired, i)
	}
}

// retire frees the indices released before this submission, unless another
// recorder (another goroutine's, waiting in an error scope) still holds
// unflushed commands.
func (p *platform) retire() {
	if p.unflushed > 0 {
		return
	}
	for _, i := range p.regRetired {
		p.reg.SetIndex(int(i), js.Undefined())
		p.regFree = append(p.regFree, i)
	}
	p.regRetired = p.regRetired[:0]
}

// await waits for a promise (jsutil.Await); a rejection becomes an error
// that reads as the rejected value's toString(), the WebGPU error's name and
// message.
func await(ctx context.Context, p js.Value) (js.Value, error) {
	v, err := jsutil.Await(ctx, p)
	var je *jsutil.Error
	if errors.As(err, &je) && !je.Value.IsUndefined() && !je.Value.IsNull() {
		return v, fmt.Errorf("%s", je.Value.Call("toString").String())
	}
	return v, err
}

func jsLimits(l js.Value) Limits {
	u32 := func(n string) uint32 { return uint32(l.Get(n).Int()) }
	u64 := func(n string) uint64 { return uint64(l.Get(n).Float()) }
	return Limits{
		MaxStorageBufferBindingSize:       u64("maxStorageBufferBindingSize"),
		MaxBufferSize:                     u64("maxBufferSize"),
		MaxComputeWorkgroupStorageSize:    u32("maxComputeWorkgroupStorageSize"),
		MaxComputeInvocationsPerWorkgroup: u32("maxComputeInvocationsPerWorkgroup"),
		MaxComputeWorkgroupSizeX:          u32("maxComputeWorkgroupSizeX"),
		MaxComputeWorkgroupSizeY:          u32("maxComputeWorkgroupSizeY"),
		MaxComputeWorkgroupSizeZ:          u32("maxComputeWorkgroupSizeZ"),
		MaxComputeWorkgroupsPerDimension:  u32("maxComputeWorkgroupsPerDimension"),
		MaxStorageBuffersPerShaderStage:   u32("maxStorageBuffersPerShaderStage"),
		MinUniformBufferOffsetAlignment:   u32("minUniformBufferOffsetAlignment"),
		MinStorageBufferOffsetAlignment:   u32("minStorageBufferOffsetAlignment"),
	}
}

// openPlatform requests the device with opts' limits and features: the
// shader-f16 feature for Options.Precision "f16", where the adapter offers
// it (platform.f16 says whether the device has it).
func openPlatform(ctx context.Context, opts Options) (*platform, error) {
	gpu := js.Global().Get("navigator").Get("gpu")
	if !gpu.Truthy() {
		return nil, fmt.Errorf("gpu: %w: this browser has no navigator.gpu (WebGPU is off or unsupported)", ErrNoAdapter)
	}
	adapter, err := await(ctx, gpu.Call("requestAdapter", map[string]any{"powerPreference": "high-performance"}))
	if err != nil || !adapter.Truthy() {
		return nil, fmt.Errorf("gpu: %w: navigator.gpu.requestAdapter gave none (%v)", ErrNoAdapter, err)
	}
	p := &platform{adapter: adapter}
	name := "WebGPU adapter"
	if info := adapter.Get("info"); info.Truthy() {
		parts := []string{}
		for _, k := range []string{"vendor", "architecture", "device", "description"} {
			if s := info.Get(k); s.Truthy() && s.String() != "" {
				parts = append(parts, s.String())
			}
		}
		if len(parts) > 0 {
			name = fmt.Sprint(parts)
			name = name[1 : len(name)-1]
		}
	}
	p.ai = AdapterInfo{Name: name, Backend: "browser",
		ShaderF16:  adapter.Get("features").Call("has", "shader-f16").Bool(),
		Timestamps: adapter.Get("features").Call("has", "timestamp-query").Bool(),
		Subgroups:  adapter.Get("features").Call("has", "subgroups").Bool()}
	have := jsLimits(adapter.Get("limits"))
	p.alim = have
	if err := checkLimits(have, name); err != nil {
		return nil, err
	}
	// Options.Limits "default": no requiredLimits, so the device gets the
	// spec's defaults (SpecDefaults).
	req := map[string]any{}
	if !opts.defaultLimits() {
		req = map[string]any{
			"maxStorageBufferBindingSize":       float64(have.MaxStorageBufferBindingSize),
			"maxBufferSize":                     float64(have.MaxBufferSize),
			"maxComputeWorkgroupStorageSize":    have.MaxComputeWorkgroupStorageSize,
			"maxComputeInvocationsPerWorkgroup": have.MaxComputeInvocationsPerWorkgroup,
			"maxComputeWorkgroupSizeX":          have.MaxComputeWorkgroupSizeX,
			"maxStorageBuffersPerShaderStage":   have.MaxStorageBuffersPerShaderStage,
		}
	}
	features := []any{}
	if p.ai.Timestamps {
		features = append(features, "timestamp-query")
		p.ts = true
	}
	if p.ai.Subgroups && opts.Subgroups != "off" {
		features = append(features, "subgroups")
		p.sg = true
	}
	if opts.Precision == "f16" && p.ai.ShaderF16 {
		features = append(features, "shader-f16")
		p.f16 = true
	}
	dev, err := await(ctx, adapter.Call("requestDevice", map[string]any{"label": "remask", "requiredLimits": req, "requiredFeatures": features}))
	if err != nil || !dev.Truthy() {
		return nil, fmt.Errorf("gpu: adapter %q refused a device with its own limits: %v", name, err)
	}
	p.dev = dev
	p.queue = dev.Get("queue")
	p.lim = jsLimits(dev.Get("limits"))
	p.sg = p.sg && dev.Get("features").Call("has", "subgroups").Bool()
	lost := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "no details"
		if len(args) > 0 && args[0].Truthy() {
			msg = args[0].Get("reason").String() + ": " + args[0].Get("message").String()
		}
		p.mu.Lock()
		if p.lost == nil {
			p.lost = fmt.Errorf("gpu: %w: %s", ErrDeviceLost, msg)
		}
		p.mu.Unlock()
		return nil
	})
	dev.Get("lost").Call("then", lost) // lives as long as the device
	p.initBatch()
	return p, nil
}

func (p *platform) info() AdapterInfo     { return p.ai }
func (p *platform) limits() Limits        { return p.lim }
func (p *platform) adapterLimits() Limits { return p.alim }

// subgroups reports whether the device was created with the `subgroups`
// feature (the WGSL `enable subgroups;` of Dawn and browsers).
func (p *platform) subgroups() bool { return p.sg }

func (p *platform) lostErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

func (p *platform) release() {
	if p.dev.Truthy() {
		p.dev.Call("destroy")
	}
}

// scoped runs f between pushErrorScope and popErrorScope for validation and
// out-of-memory errors, and returns the first error caught.
func (p *platform) scoped(f func()) error {
	p.dev.Call("pushErrorScope", "out-of-memory")
	p.dev.Call("pushErrorScope", "validation")
	f()
	var first error
	for i := 0; i < 2; i++ {
		e, err := await(context.Background(), p.dev.Call("popErrorScope"))
		if err == nil && e.Truthy() && first == nil {
			first = fmt.Errorf("%s", e.Get("message").String())
		} else if err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		first = p.lostErr()
	}
	return first
}

func (p *platform) newBuffer(label string, size uint64, u bufUsage) (*buffer, error) {
	if err := p.lostErr(); err != nil {
		return nil, err
	}
	size = (size + 3) &^ 3
	if size == 0 {
		size = 4
	}
	// GPUBufferUsage: MAP_READ 1, COPY_SRC 4, COPY_DST 8, UNIFORM 64, STORAGE 128, INDIRECT 256, QUERY_RESOLVE 512.
	usage := 128 | 4 | 8
	switch u {
	case usageQueryResolve:
		usage = 512 | 4 | 8
	case usageIndirect:
		usage = 256 | 128 | 4 | 8
	case usageUniform:
		usage = 64 | 8
	case usageStaging:
		usage = 1 | 8
	}
	var v js.Value
	err := p.scoped(func() {
		v = p.dev.Call("createBuffer", map[string]any{"label": label, "size": float64(size), "usage": usage})
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: create buffer %s (%d bytes): %w", label, size, err)
	}
	b := &buffer{v: v, size: size, id: p.ids.Add(1), label: label}
	if u == usageIndirect {
		b.p, b.ri = p, p.register(v)
	}
	return b, nil
}

func (b *buffer) destroy() {
	if b != nil && b.v.Truthy() {
		b.v.Call("destroy")
		b.v = js.Undefined()
		b.p.unregister(b.ri)
	}
}

func (p *platform) write(b *buffer, off uint64, data []byte) error {
	if err := p.lostErr(); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	arr := js.Global().Get("Uint8Array").New(len(data))
	js.CopyBytesToJS(arr, data)
	p.queue.Call("writeBuffer", b.v, float64(off), arr)
	return nil
}

func (p *platform) newPipeline(label, src, entry string, kinds []bindKind) (*pipeline, error) {
	if err := p.lostErr(); err != nil {
		return nil, err
	}
	entries := make([]any, len(kinds))
	for i, k := range kinds {
		t := "uniform"
		switch k {
		case bindRead:
			t = "read-only-storage"
		case bindRW:
			t = "storage"
		}
		entries[i] = map[string]any{"binding": i, "visibility": 4 /* COMPUTE */, "buffer": map[string]any{"type": t}}
	}
	var pl *pipeline
	err := p.scoped(func() {
		mod := p.dev.Call("createShaderModule", map[string]any{"label": label, "code": src})
		bgl := p.dev.Call("createBindGroupLayout", map[string]any{"label": label, "entries": entries})
		layout := p.dev.Call("createPipelineLayout", map[string]any{"label": label, "bindGroupLayouts": []any{bgl}})
		cp := p.dev.Call("createComputePipeline", map[string]any{"label": label, "layout": layout, "compute": map[string]any{"module": mod, "entryPoint": entry}})
		pl = &pipeline{v: cp, bgl: bgl, id: p.ids.Add(1)}
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: pipeline %s: %w", label, err)
	}
	pl.ri = p.register(pl.v)
	return pl, nil
}

func (p *platform) newBindGroup(pl *pipeline, bs []binding) (*bindGroup, error) {
	entries := make([]any, len(bs))
	for i, b := range bs {
		entries[i] = map[string]any{"binding": i, "resource": map[string]any{"buffer": b.buf.v, "offset": float64(b.off), "size": float64(b.size)}}
	}
	var g js.Value
	err := p.scoped(func() {
		g = p.dev.Call("createBindGroup", map[string]any{"layout": pl.bgl, "entries": entries})
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: bind group: %w", err)
	}
	return &bindGroup{v: g, ri: p.register(g), p: p}, nil
}

func (g *bindGroup) release() {
	if g != nil && g.v.Truthy() {
		g.p.unregister(g.ri)
		g.v = js.Undefined()
	}
}

type recorder struct {
	p    *platform
	enc  js.Value
	pass js.Value
	tw   *passTimestamps // the timestamp writes of the next pass (stage)
	err  error
	cmds []byte // the open pass's dispatches for runPass (runPassSource)
}

func (p *platform) newRecorder() (*recorder, error) {
	if err := p.lostErr(); err != nil {
		return nil, err
	}
	return &recorder{p: p, enc: p.dev.Call("createCommandEncoder", map[string]any{"label": "remask"})}, nil
}

func (r *recorder) batched() bool { return batchDispatches && r.p.runPass.Truthy() }

func (r *recorder) dispatch(pl *pipeline, bg *bindGroup, x, y, z uint32) {
	if !r.pass.Truthy() {
		r.beginPass()
	}
	if r.batched() {
		r.hold()
		r.cmds = appendWords(r.cmds, 0, pl.ri, bg.ri, x, y, z)
		return
	}
	r.pass.Call("setPipeline", pl.v)
	r.pass.Call("setBindGroup", 0, bg.v)
	r.pass.Call("dispatchWorkgroups", x, y, z)
}

// dispatchIndirect dispatches with the workgroup counts at args[off:off+12].
func (r *recorder) dispatchIndirect(pl *pipeline, bg *bindGroup, args *buffer, off uint64) {
	if !r.pass.Truthy() {
		r.beginPass()
	}
	if r.batched() && args.p != nil {
		r.hold()
		r.cmds = appendWords(r.cmds, 1, pl.ri, bg.ri, args.ri, uint32(off), uint32(off>>32))
		return
	}
	r.pass.Call("setPipeline", pl.v)
	r.pass.Call("setBindGroup", 0, bg.v)
	r.pass.Call("dispatchWorkgroupsIndirect", args.v, float64(off))
}

// hold counts the recorder among those with unflushed commands (retire).
func (r *recorder) hold() {
	if len(r.cmds) == 0 {
		r.p.unflushed++
	}
}

func appendWords(b []byte, w ...uint32) []byte {
	for _, x := range w {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

// flush records the batched dispatches into the open pass: one call of
// runPass, the commands copied into a Uint8Array kept between calls.
func (r *recorder) flush() {
	if len(r.cmds) == 0 {
		return
	}
	p := r.p
	if !p.cmds.Truthy() || p.cmds.Get("length").Int() < len(r.cmds) {
		p.cmds = js.Global().Get("Uint8Array").New(max(len(r.cmds), 4096))
		p.cmds32 = js.Global().Get("Uint32Array").New(p.cmds.Get("buffer"))
	}
	js.CopyBytesToJS(p.cmds, r.cmds)
	p.runPass.Invoke(r.pass, p.reg, p.cmds32, len(r.cmds)/4)
	p.passCalls++
	r.cmds = r.cmds[:0]
	p.unflushed--
}

// beginPass begins the compute pass, with the timestamp writes of a pending
// stage if there is one.
func (r *recorder) beginPass() {
	tw := r.tw
	if tw == nil {
		r.pass = r.enc.Call("beginComputePass")
		return
	}
	r.tw = nil
	w := map[string]any{"querySet": tw.q.v}
	if tw.begin >= 0 {
		w["beginningOfPassWriteIndex"] = tw.begin
	}
	if tw.end >= 0 {
		w["endOfPassWriteIndex"] = tw.end
	}
	r.pass = r.enc.Call("beginComputePass", map[string]any{"timestampWrites": w})
}

func (p *platform) hasTimestamps() bool { return p.ts }

// timestampPeriod is the nanoseconds per tick: WebGPU timestamps are
// nanoseconds.
func (p *platform) timestampPeriod() float64 { return 1 }

// querySet is a set of timestamp queries.
type querySet struct {
	v     js.Value
	count int
	label string
}

func (p *platform) newQuerySet(label string, count int) (*querySet, error) {
	if err := p.lostErr(); err != nil {
		return nil, err
	}
	if !p.ts {
		return nil, fmt.Errorf("gpu: query set %s: the device has no timestamp-query feature", label)
	}
	if count < 1 || count > maxQueries {
		return nil, fmt.Errorf("gpu: query set %s: %d queries, want 1 to %d", label, count, maxQueries)
	}
	var v js.Value
	err := p.scoped(func() {
		v = p.dev.Call("createQuerySet", map[string]any{"label": label, "type": "timestamp", "count": count})
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: query set %s (%d queries): %w", label, count, err)
	}
	return &querySet{v: v, count: count, label: label}, nil
}

func (q *querySet) destroy() {
	if q != nil && q.v.Truthy() {
		q.v.Call("destroy")
		q.v = js.Undefined()
	}
}

// resolve ends the pass and resolves count queries of q from first into dst
// (a usageQueryResolve buffer) at dstOff (a multiple of 256), 8 bytes each.
func (r *recorder) resolve(q *querySet, first, count int, dst *buffer, dstOff uint64) {
	r.endPass()
	r.enc.Call("resolveQuerySet", q.v, first, count, dst.v, float64(dstOff))
}

func (r *recorder) endPass() {
	if r.pass.Truthy() {
		r.flush()
		r.pass.Call("end")
		r.pass = js.Undefined()
	}
}

func (r *recorder) copy(src *buffer, srcOff uint64, dst *buffer, dstOff, size uint64) {
	r.endPass()
	r.enc.Call("copyBufferToBuffer", src.v, float64(srcOff), dst.v, float64(dstOff), float64(size))
}

// clear zeroes b on the device (its size is a multiple of 4: every buffer's).
func (r *recorder) clear(b *buffer) {
	r.endPass()
	r.enc.Call("clearBuffer", b.v, 0, float64(b.size))
}

func (r *recorder) submit() error {
	r.endPass()
	if r.err != nil {
		return fmt.Errorf("gpu: recording: %w", r.err)
	}
	// The error scopes are pushed and popped around the submission as
	// scoped does, but their promises are checked later (checkPending:
	// by the next read or wait, or here beyond maxPendingScopes): waiting
	// for them here would make every iteration wait for a round trip to
	// the GPU process before recording the next.
	p := r.p
	p.dev.Call("pushErrorScope", "out-of-memory")
	p.dev.Call("pushErrorScope", "validation")
	cb := r.enc.Call("finish")
	p.queue.Call("submit", []any{cb})
	p.retire()
	v := p.dev.Call("popErrorScope")
	p.pending = append(p.pending, pendingScope{validation: v, oom: p.dev.Call("popErrorScope")})
	if len(p.pending) > maxPendingScopes {
		return p.checkPending(context.Background(), 1)
	}
	return p.lostErr()
}

// checkPending waits for the error scopes of the oldest n unchecked
// submissions (all of them for n < 0) and returns the first error, as the
// submission that caused it would have.
func (p *platform) checkPending(ctx context.Context, n int) error {
	if n < 0 || n > len(p.pending) {
		n = len(p.pending)
	}
	// Taken off the list before the first wait, so that another
	// goroutine's check does not wait for the same ones.
	take := slices.Clone(p.pending[:n])
	p.pending = slices.Delete(p.pending, 0, n)
	var first error
	for _, s := range take {
		for _, pr := range []js.Value{s.validation, s.oom} {
			e, err := await(ctx, pr)
			if err != nil && ctx.Err() != nil {
				return ctx.Err() // cancelled: the scopes' verdicts no longer matter
			}
			if err == nil && e.Truthy() && first == nil {
				first = fmt.Errorf("gpu: submit: %s", e.Get("message").String())
			} else if err != nil && first == nil {
				first = fmt.Errorf("gpu: submit: %w", err)
			}
		}
	}
	if first == nil {
		first = p.lostErr()
	}
	return first
}

// read maps staging and copies len(dst) bytes out of it. Unlike the
// binding's MapAsync, a rejected mapping (device lost, bad range) is an
// error here.
func (p *platform) read(ctx context.Context, staging *buffer, dst []byte) error {
	if err := p.checkPending(ctx, -1); err != nil {
		return err
	}
	n := uint64(len(dst))
	if n == 0 {
		return nil
	}
	size := (n + 3) &^ 3
	if _, err := await(ctx, staging.v.Call("mapAsync", 1 /* READ */, 0, float64(size))); err != nil {
		if lerr := p.lostErr(); lerr != nil {
			return lerr
		}
		return fmt.Errorf("gpu: map %s: %w", staging.label, err)
	}
	view := js.Global().Get("Uint8Array").New(staging.v.Call("getMappedRange", 0, float64(size)))
	js.CopyBytesToGo(dst, view)
	staging.v.Call("unmap")
	return nil
}

func (p *platform) wait(ctx context.Context) error {
	if err := p.checkPending(ctx, -1); err != nil {
		return err
	}
	_, err := await(ctx, p.queue.Call("onSubmittedWorkDone"))
	if err != nil {
		return fmt.Errorf("gpu: waiting for the device: %w", err)
	}
	return p.lostErr()
}

// f16CompilerNote names the shader compiler of this build for the error of
// an f16 kernel it refuses (device.checkF16).
const f16CompilerNote = "the browser's WebGPU implementation"

// platformWaveSlots is Options.WaveSlots's default in the browser build.
const platformWaveSlots = BrowserWaveSlots

// platformDirectWaves: Options.WaveDispatch auto dispatches small loops'
// waves directly in the browser build (BrowserDirectPositions).
const platformDirectWaves = true
