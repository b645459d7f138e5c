//go:build !js

package gpu

// The native half of the platform layer: wgpu-native through
// github.com/cogentcore/webgpu v0.23.0 (cgo, statically linked).
//
// Gaps of the binding that this file fills, each on purpose:
//   - Queue.Submit runs outside any error scope in the binding, and
//     wgpu-native treats an uncaptured error as fatal (it aborts the
//     process). submit() therefore pushes and pops validation
//     and out-of-memory error scopes itself, through the C API
//     (scope_native.go), so a bad submission is an error value.
//   - CreateInstance with a descriptor passes uninitialised memory, and
//     without one it enables every backend, GL included (whose probe can
//     abort the process): instance_native.go builds the descriptor itself.
//   - AdapterInfo.Name and VendorName hold wgpu-native's hexadecimal ids
//     ("0x0", "0x10005") on Vulkan; the readable name is in
//     DriverDescription, which info() uses instead when Name is a hex id.
//   - RequestDevice drops wgpu-native's message; we check limits ourselves
//     before asking, so a refusal names the limit.
//   - DeviceDescriptor.DeviceLostCallback is unusable (see openPlatform):
//     device loss is detected from error scopes and mapping statuses.
//   - Buffer.MapAsync only starts the mapping; read() waits for it by
//     polling the device without blocking, inline (pollUntil), so that a
//     context or a lost device ends the wait instead of hanging.
//   - ComputePassDescriptor has only a Label ("TimestampWrites: unused in
//     wgpu"), though wgpu-native v22's wgpuCommandEncoderBeginComputePass
//     honours WGPUComputePassDescriptor.timestampWrites. A timed pass is
//     therefore begun through the C API below (remask_begin_timed_pass) and
//     handed to the binding's ComputePassEncoder. The binding's other route,
//     CommandEncoder.WriteTimestamp, needs wgpu's
//     TIMESTAMP_QUERY_INSIDE_ENCODERS feature, which wgpu-native v22 has no
//     WGPUFeatureName for (it cannot be requested). Neither the binding nor
//     wgpu-native v22 exports the queue's timestamp period: see
//     timestampPeriod.

/*
#include <stdint.h>

typedef struct WGPUCommandEncoderImpl* remask_WGPUCommandEncoder;
typedef struct WGPUComputePassEncoderImpl* remask_WGPUComputePassEncoder;
typedef struct WGPUQuerySetImpl* remask_WGPUQuerySet;
typedef struct WGPUDeviceImpl* remask_WGPUDevice;

// WGPUComputePassTimestampWrites and WGPUComputePassDescriptor of the
// webgpu.h that the binding vendors (wgpu-native v22).
typedef struct {
	remask_WGPUQuerySet querySet;
	uint32_t beginningOfPassWriteIndex;
	uint32_t endOfPassWriteIndex;
} remask_pass_timestamp_writes;
typedef struct {
	const void *nextInChain;
	const char *label;
	const remask_pass_timestamp_writes *timestampWrites;
} remask_compute_pass_desc;

remask_WGPUComputePassEncoder wgpuCommandEncoderBeginComputePass(remask_WGPUCommandEncoder enc, const remask_compute_pass_desc *desc);
void wgpuDeviceReference(remask_WGPUDevice device);
void wgpuQuerySetDestroy(remask_WGPUQuerySet querySet);

// remask_begin_timed_pass begins a compute pass with timestamp writes
// (0xffffffff, WGPU_QUERY_SET_INDEX_UNDEFINED: no write) and takes the
// device reference that the binding's ComputePassEncoder.Release drops.
static void *remask_begin_timed_pass(void *enc, void *dev, void *qs, uint32_t begin, uint32_t end) {
	remask_pass_timestamp_writes tw = { (remask_WGPUQuerySet)qs, begin, end };
	remask_compute_pass_desc d = { 0, 0, &tw };
	remask_WGPUComputePassEncoder pass = wgpuCommandEncoderBeginComputePass((remask_WGPUCommandEncoder)enc, &d);
	if (pass) {
		wgpuDeviceReference((remask_WGPUDevice)dev);
	}
	return pass;
}

static void remask_query_set_destroy(void *qs) { wgpuQuerySetDestroy((remask_WGPUQuerySet)qs); }
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"
)

type buffer struct {
	h     *wgpu.Buffer
	size  uint64
	id    uint64
	label string
}

type pipeline struct {
	h   *wgpu.ComputePipeline
	bgl *wgpu.BindGroupLayout
	id  uint64
}

type bindGroup struct{ h *wgpu.BindGroup }

type platform struct {
	inst    *wgpu.Instance
	adapter *wgpu.Adapter
	dev     *wgpu.Device
	queue   *wgpu.Queue
	ai      AdapterInfo
	lim     Limits // the device's (granted) limits
	alim    Limits // the adapter's limits
	ts      bool   // the device was created with timestamp-query
	f16     bool   // the device was created with shader-f16

	ids atomic.Uint64

	mu   sync.Mutex
	lost error // set by the device-lost callback
}

// openMu serialises instance and adapter creation: concurrent first calls
// into wgpu-native's instance set-up were seen to fail in parallel tests.
var openMu sync.Mutex

// openPlatform requests the device with opts' limits, and the shader-f16
// feature for Options.Precision "f16" where the adapter offers it;
// platform.f16 says whether the device has it.
func openPlatform(ctx context.Context, opts Options) (*platform, error) {
	openMu.Lock()
	defer openMu.Unlock()
	wgpu.SetLogLevel(wgpu.LogLevelOff) // errors come back as values; the log would repeat them
	// One instance per backend set of instanceBackends (instance_native.go,
	// our own zeroed descriptor): on Linux Vulkan only, never GL and never
	// the binding's all-backends instance, whose GLES probe can abort the
	// process.
	ropts := &wgpu.RequestAdapterOptions{PowerPreference: wgpu.PowerPreferenceHighPerformance}
	var adapter *wgpu.Adapter
	var inst *wgpu.Instance
	var errs []string
	for _, backends := range instanceBackends(runtime.GOOS) {
		in := newInstance(backends)
		if in == nil {
			continue
		}
		a, err := in.RequestAdapter(ropts)
		if err == nil && a != nil {
			adapter, inst = a, in
			break
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
		in.Release()
	}
	if adapter == nil {
		msg := "wgpu-native found none"
		if len(errs) > 0 {
			msg += ": " + strings.Join(errs, "; ")
		}
		return nil, fmt.Errorf("gpu: %w: %s; on Linux install a Vulkan driver (apt-get install mesa-vulkan-drivers libvulkan1 gives the lavapipe CPU adapter)", ErrNoAdapter, msg)
	}
	p := &platform{inst: inst, adapter: adapter}
	info := adapter.GetInfo()
	name := info.Name
	if name == "" || strings.HasPrefix(name, "0x") {
		name = info.DriverDescription
	}
	vendor := info.VendorName
	if strings.HasPrefix(vendor, "0x") {
		vendor = ""
	}
	p.ai = AdapterInfo{
		Name:        name,
		Vendor:      vendor,
		Backend:     strings.ToLower(info.BackendType.String()),
		AdapterType: info.AdapterType.String(),
		ShaderF16:   adapter.HasFeature(wgpu.FeatureNameShaderF16),
		Timestamps:  adapter.HasFeature(wgpu.FeatureNameTimestampQuery),
	}
	al := adapter.GetLimits().Limits
	have := nativeLimits(al)
	p.alim = have
	if err := checkLimits(have, p.ai.Name); err != nil {
		p.release()
		return nil, err
	}
	// Ask for the adapter's maxima of the limits that grow with the model
	// and the batch; Net checks every buffer against them and names the
	// limit when a model or a shape does not fit.
	// With Options.Limits "default", nothing: wgpu.DefaultLimits leaves
	// every limit undefined, which wgpu-native grants as the spec's
	// default (SpecDefaults).
	req := wgpu.DefaultLimits()
	if !opts.defaultLimits() {
		req.MaxStorageBufferBindingSize = al.MaxStorageBufferBindingSize
		req.MaxBufferSize = al.MaxBufferSize
		req.MaxComputeWorkgroupStorageSize = al.MaxComputeWorkgroupStorageSize
		req.MaxComputeInvocationsPerWorkgroup = al.MaxComputeInvocationsPerWorkgroup
		req.MaxComputeWorkgroupSizeX = al.MaxComputeWorkgroupSizeX
		req.MaxStorageBuffersPerShaderStage = al.MaxStorageBuffersPerShaderStage
	}
	var features []wgpu.FeatureName
	if p.ai.Timestamps {
		features = append(features, wgpu.FeatureNameTimestampQuery)
		p.ts = true
	}
	if opts.Precision == "f16" && p.ai.ShaderF16 {
		features = append(features, wgpu.FeatureNameShaderF16)
		p.f16 = true
	}
	dev, err := adapter.RequestDevice(&wgpu.DeviceDescriptor{
		Label:            "remask",
		RequiredFeatures: features,
		RequiredLimits:   &wgpu.RequiredLimits{Limits: req},
		// No DeviceLostCallback: the binding stores a pointer to a Go
		// cgo.Handle inside the C descriptor, which cgo's pointer check
		// refuses (a panic) and which would dangle after RequestDevice
		// returns. A lost device is detected instead where wgpu-native
		// reports it: a "device lost" error in our error scopes and the
		// DeviceLost status of a mapping (markLost).
	})
	if err != nil {
		p.release()
		return nil, fmt.Errorf("gpu: adapter %q refused a device with its own limits: %v", p.ai.Name, err)
	}
	p.dev = dev
	p.queue = dev.GetQueue()
	p.lim = nativeLimits(dev.GetLimits().Limits)
	if err := checkLimits(p.lim, p.ai.Name); err != nil {
		p.release()
		return nil, err
	}
	return p, nil
}

// nativeLimits are the Limits of wgpu-native's.
func nativeLimits(l wgpu.Limits) Limits {
	return Limits{
		MaxStorageBufferBindingSize:       l.MaxStorageBufferBindingSize,
		MaxBufferSize:                     l.MaxBufferSize,
		MaxComputeWorkgroupStorageSize:    l.MaxComputeWorkgroupStorageSize,
		MaxComputeInvocationsPerWorkgroup: l.MaxComputeInvocationsPerWorkgroup,
		MaxComputeWorkgroupSizeX:          l.MaxComputeWorkgroupSizeX,
		MaxComputeWorkgroupSizeY:          l.MaxComputeWorkgroupSizeY,
		MaxComputeWorkgroupSizeZ:          l.MaxComputeWorkgroupSizeZ,
		MaxComputeWorkgroupsPerDimension:  l.MaxComputeWorkgroupsPerDimension,
		MaxStorageBuffersPerShaderStage:   l.MaxStorageBuffersPerShaderStage,
		MinUniformBufferOffsetAlignment:   l.MinUniformBufferOffsetAlignment,
		MinStorageBufferOffsetAlignment:   l.MinStorageBufferOffsetAlignment,
	}
}

func (p *platform) info() AdapterInfo     { return p.ai }
func (p *platform) limits() Limits        { return p.lim }
func (p *platform) adapterLimits() Limits { return p.alim }

// subgroups is false: wgpu-native v22 (the binding's) has no
// WGPUFeatureName for wgpu's SUBGROUP feature (its wgpu.h ends at
// ShaderEarlyDepthTest, and lavapipe's adapter enumerates none), so WGSL
// subgroup operations cannot be enabled natively; they run through Dawn
// (platform_js.go).
func (p *platform) subgroups() bool { return false }

// markLost records that the device is gone; every later call fails with it.
func (p *platform) markLost(msg string) {
	p.mu.Lock()
	if p.lost == nil {
		p.lost = fmt.Errorf("gpu: %w: %s", ErrDeviceLost, msg)
	}
	p.mu.Unlock()
}

func (p *platform) lostErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

func (p *platform) release() {
	if p.queue != nil {
		p.queue.Release()
		p.queue = nil
	}
	if p.dev != nil {
		p.dev.Release()
		p.dev = nil
	}
	if p.adapter != nil {
		p.adapter.Release()
		p.adapter = nil
	}
	if p.inst != nil {
		p.inst.Release()
		p.inst = nil
	}
}

// devRef is the C WGPUDevice behind the binding's Device, whose only field
// is that handle (cogentcore/webgpu v0.23.0 wgpu/device.go).
func (p *platform) devRef() unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(p.dev)) }

func (p *platform) newBuffer(label string, size uint64, u bufUsage) (*buffer, error) {
	if err := p.lostErr(); err != nil {
		return nil, err
	}
	size = (size + 3) &^ 3
	if size == 0 {
		size = 4
	}
	var usage wgpu.BufferUsage
	switch u {
	case usageStorage:
		usage = wgpu.BufferUsageStorage | wgpu.BufferUsageCopySrc | wgpu.BufferUsageCopyDst
	case usageUniform:
		usage = wgpu.BufferUsageUniform | wgpu.BufferUsageCopyDst
	case usageStaging:
		usage = wgpu.BufferUsageMapRead | wgpu.BufferUsageCopyDst
	case usageIndirect:
		usage = wgpu.BufferUsageIndirect | wgpu.BufferUsageStorage | wgpu.BufferUsageCopySrc | wgpu.BufferUsageCopyDst
	case usageQueryResolve:
		usage = wgpu.BufferUsageQueryResolve | wgpu.BufferUsageCopySrc | wgpu.BufferUsageCopyDst
	}
	var b *wgpu.Buffer
	err := withScopes(p.devRef(), func() (err error) {
		b, err = p.dev.CreateBuffer(&wgpu.BufferDescriptor{Label: label, Size: size, Usage: usage})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: create buffer %s (%d bytes): %w", label, size, err)
	}
	return &buffer{h: b, size: size, id: p.ids.Add(1), label: label}, nil
}

func (b *buffer) destroy() {
	if b != nil && b.h != nil {
		b.h.Destroy()
		b.h.Release()
		b.h = nil
	}
}

func (p *platform) write(b *buffer, off uint64, data []byte) error {
	if err := p.lostErr(); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if err := p.queue.WriteBuffer(b.h, off, data); err != nil {
		return fmt.Errorf("gpu: write %d bytes to %s at %d: %w", len(data), b.label, off, err)
	}
	return nil
}

func (p *platform) newPipeline(label, src, entry string, kinds []bindKind) (*pipeline, error) {
	if err := p.lostErr(); err != nil {
		return nil, err
	}
	entries := make([]wgpu.BindGroupLayoutEntry, len(kinds))
	for i, k := range kinds {
		t := wgpu.BufferBindingTypeUniform
		switch k {
		case bindRead:
			t = wgpu.BufferBindingTypeReadOnlyStorage
		case bindRW:
			t = wgpu.BufferBindingTypeStorage
		}
		entries[i] = wgpu.BindGroupLayoutEntry{Binding: uint32(i), Visibility: wgpu.ShaderStageCompute, Buffer: wgpu.BufferBindingLayout{Type: t}}
	}
	var pl *pipeline
	err := withScopes(p.devRef(), func() error {
		mod, err := p.dev.CreateShaderModule(&wgpu.ShaderModuleDescriptor{Label: label, WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: src}})
		if err != nil {
			return err
		}
		defer mod.Release()
		bgl, err := p.dev.CreateBindGroupLayout(&wgpu.BindGroupLayoutDescriptor{Label: label, Entries: entries})
		if err != nil {
			return err
		}
		layout, err := p.dev.CreatePipelineLayout(&wgpu.PipelineLayoutDescriptor{Label: label, BindGroupLayouts: []*wgpu.BindGroupLayout{bgl}})
		if err != nil {
			bgl.Release()
			return err
		}
		defer layout.Release()
		cp, err := p.dev.CreateComputePipeline(&wgpu.ComputePipelineDescriptor{
			Label:   label,
			Layout:  layout,
			Compute: wgpu.ProgrammableStageDescriptor{Module: mod, EntryPoint: entry},
		})
		if err != nil {
			bgl.Release()
			return err
		}
		pl = &pipeline{h: cp, bgl: bgl, id: p.ids.Add(1)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: pipeline %s: %w", label, err)
	}
	return pl, nil
}

func (p *platform) newBindGroup(pl *pipeline, bs []binding) (*bindGroup, error) {
	entries := make([]wgpu.BindGroupEntry, len(bs))
	for i, b := range bs {
		entries[i] = wgpu.BindGroupEntry{Binding: uint32(i), Buffer: b.buf.h, Offset: b.off, Size: b.size}
	}
	var g *wgpu.BindGroup
	err := withScopes(p.devRef(), func() (err error) {
		g, err = p.dev.CreateBindGroup(&wgpu.BindGroupDescriptor{Layout: pl.bgl, Entries: entries})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: bind group: %w", err)
	}
	return &bindGroup{h: g}, nil
}

func (g *bindGroup) release() {
	if g != nil && g.h != nil {
		g.h.Release()
		g.h = nil
	}
}

// recorder records one command buffer: compute dispatches in one compute
// pass, ended only around copies.
type recorder struct {
	p    *platform
	enc  *wgpu.CommandEncoder
	pass *wgpu.ComputePassEncoder
	err  error
	tw   *passTimestamps // the timestamp writes of the next pass (stage)
}

func (p *platform) newRecorder() (*recorder, error) {
	if err := p.lostErr(); err != nil {
		return nil, err
	}
	enc, err := p.dev.CreateCommandEncoder(&wgpu.CommandEncoderDescriptor{Label: "remask"})
	if err != nil {
		return nil, fmt.Errorf("gpu: command encoder: %w", err)
	}
	return &recorder{p: p, enc: enc}, nil
}

func (r *recorder) dispatch(pl *pipeline, bg *bindGroup, x, y, z uint32) {
	if r.pass == nil {
		r.beginPass()
	}
	r.pass.SetPipeline(pl.h)
	r.pass.SetBindGroup(0, bg.h, nil)
	r.pass.DispatchWorkgroups(x, y, z)
}

// dispatchIndirect dispatches with the workgroup counts at args[off:off+12].
func (r *recorder) dispatchIndirect(pl *pipeline, bg *bindGroup, args *buffer, off uint64) {
	if r.pass == nil {
		r.beginPass()
	}
	r.pass.SetPipeline(pl.h)
	r.pass.SetBindGroup(0, bg.h, nil)
	r.pass.DispatchWorkgroupsIndirect(args.h, off)
}

// beginPass begins the compute pass, with the timestamp writes of a pending
// stage if there is one.
func (r *recorder) beginPass() {
	tw := r.tw
	if tw == nil {
		r.pass = r.enc.BeginComputePass(nil)
		return
	}
	r.tw = nil
	// CommandEncoder is struct{ deviceRef, ref }, QuerySet struct{ ref } and
	// ComputePassEncoder struct{ deviceRef, ref } (cogentcore/webgpu v0.23.0,
	// wgpu/command_encoder.go, wgpu.go, compute_pass_encoder.go).
	enc := (*[2]unsafe.Pointer)(unsafe.Pointer(r.enc))
	qs := *(*unsafe.Pointer)(unsafe.Pointer(tw.q.h))
	var ref unsafe.Pointer
	err := withScopes(r.p.devRef(), func() error {
		ref = C.remask_begin_timed_pass(enc[1], enc[0], qs, queryIndex(tw.begin), queryIndex(tw.end))
		return nil
	})
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("timed compute pass: %w", err)
	}
	if ref == nil { // not seen (wgpu-native returns an invalid pass and reports the error)
		r.pass = r.enc.BeginComputePass(nil)
		return
	}
	r.pass = &wgpu.ComputePassEncoder{}
	*(*[2]unsafe.Pointer)(unsafe.Pointer(r.pass)) = [2]unsafe.Pointer{enc[0], ref}
}

// queryIndex is i, or WGPU_QUERY_SET_INDEX_UNDEFINED (no write) when i < 0.
func queryIndex(i int) C.uint32_t {
	if i < 0 {
		return C.uint32_t(0xffffffff)
	}
	return C.uint32_t(i)
}

func (p *platform) hasTimestamps() bool { return p.ts }

// timestampPeriod is the nanoseconds per timestamp tick. wgpu-core (v22)
// resolves raw device ticks (Vulkan: VkPhysicalDeviceLimits.timestampPeriod
// ns each; wgpu-core's queue_get_timestamp_period), and neither
// cogentcore/webgpu v0.23.0 nor wgpu-native v22 exports that period (no
// wgpuQueueGetTimestampPeriod). It is 1 on NVIDIA's Vulkan driver and on
// lavapipe, so this returns 1; on an adapter whose period differs
// (e.g. Mesa's Intel and AMD Vulkan drivers, 10 to 83 ns per tick) the
// stage times are in ticks, not nanoseconds.
func (p *platform) timestampPeriod() float64 { return 1 }

// querySet is a set of timestamp queries.
type querySet struct {
	h     *wgpu.QuerySet
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
	var q *wgpu.QuerySet
	err := withScopes(p.devRef(), func() (err error) {
		q, err = p.dev.CreateQuerySet(&wgpu.QuerySetDescriptor{Label: label, Type: wgpu.QueryTypeTimestamp, Count: uint32(count)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: query set %s (%d queries): %w", label, count, err)
	}
	return &querySet{h: q, count: count, label: label}, nil
}

func (q *querySet) destroy() {
	if q != nil && q.h != nil {
		C.remask_query_set_destroy(*(*unsafe.Pointer)(unsafe.Pointer(q.h)))
		q.h.Release()
		q.h = nil
	}
}

// resolve ends the pass and resolves count queries of q from first into dst
// (a usageQueryResolve buffer) at dstOff (a multiple of 256), 8 bytes each.
func (r *recorder) resolve(q *querySet, first, count int, dst *buffer, dstOff uint64) {
	r.endPass()
	if err := r.enc.ResolveQuerySet(q.h, uint32(first), uint32(count), dst.h, dstOff); err != nil && r.err == nil {
		r.err = err
	}
}

func (r *recorder) endPass() {
	if r.pass != nil {
		if err := r.pass.End(); err != nil && r.err == nil {
			r.err = err
		}
		r.pass.Release()
		r.pass = nil
	}
}

func (r *recorder) copy(src *buffer, srcOff uint64, dst *buffer, dstOff, size uint64) {
	r.endPass()
	if err := r.enc.CopyBufferToBuffer(src.h, srcOff, dst.h, dstOff, size); err != nil && r.err == nil {
		r.err = err
	}
}

// clear zeroes b on the device (its size is a multiple of 4: every buffer's).
func (r *recorder) clear(b *buffer) {
	r.endPass()
	if err := r.enc.ClearBuffer(b.h, 0, b.size); err != nil && r.err == nil {
		r.err = err
	}
}

// submit finishes the command buffer and submits it, inside error scopes.
func (r *recorder) submit() error {
	r.endPass()
	defer r.enc.Release()
	if r.err != nil {
		return fmt.Errorf("gpu: recording: %w", r.err)
	}
	cb, err := r.enc.Finish(nil)
	if err != nil {
		return fmt.Errorf("gpu: finish: %w", err)
	}
	defer cb.Release()
	if err := withScopes(r.p.devRef(), func() error { r.p.queue.Submit(cb); return nil }); err != nil {
		return fmt.Errorf("gpu: submit: %w", err)
	}
	return r.p.lostErr()
}

// pollUntil polls the device until done is closed, the context ends or the
// device is lost.
//
// It never calls Device.Poll(true): in this wgpu-native (wgpu-core 22) a
// blocking poll gives up after a fixed 5 s (CLEANUP_WAIT_MS) and then treats
// the submission it waited for as finished: it returns "queue empty", fires
// the callbacks and frees the submission's resources while the GPU may still
// be running it (gfx-rs/wgpu#4589, #3601; fixed upstream in wgpu 25 by #7030).
// On lavapipe a forward at 2 x 128 tokens can take longer than 5 s on two
// busy cores; that was the segfault inside libvulkan_lvp.so. Instead we poll
// without blocking (Poll(false) reads the fence and triages only what really
// finished): back to back for the first pollSpin, which covers a fast GPU
// without adding latency, then with sleeps growing to pollMaxSleep.
func (p *platform) pollUntil(ctx context.Context, done <-chan struct{}) error {
	start := time.Now()
	sleep := 20 * time.Microsecond
	for {
		p.dev.Poll(false, nil)
		select {
		case <-done:
			return nil
		default:
		}
		if err := p.lostErr(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("gpu: waiting for the device: %w", err)
		}
		if time.Since(start) < pollSpin {
			runtime.Gosched()
			continue
		}
		time.Sleep(sleep)
		sleep = min(2*sleep, pollMaxSleep)
	}
}

const (
	pollSpin     = 2 * time.Millisecond
	pollMaxSleep = time.Millisecond
)

// read maps staging (which a submitted copy filled) and copies len(dst)
// bytes out of it. After a cancelled wait the buffer is left pending and
// must not be reused (the caller drops it).
func (p *platform) read(ctx context.Context, staging *buffer, dst []byte) error {
	if err := p.lostErr(); err != nil {
		return err
	}
	n := uint64(len(dst))
	if n == 0 {
		return nil
	}
	size := (n + 3) &^ 3
	done := make(chan struct{})
	var status wgpu.BufferMapAsyncStatus
	err := staging.h.MapAsync(wgpu.MapModeRead, 0, size, func(s wgpu.BufferMapAsyncStatus) {
		status = s
		close(done)
	})
	if err != nil {
		return fmt.Errorf("gpu: map %s: %w", staging.label, err)
	}
	if err := p.pollUntil(ctx, done); err != nil {
		return err
	}
	if status != wgpu.BufferMapAsyncStatusSuccess {
		if status == wgpu.BufferMapAsyncStatusDeviceLost {
			p.markLost("a buffer mapping reported the device lost")
		}
		if err := p.lostErr(); err != nil {
			return err
		}
		return fmt.Errorf("gpu: map %s: status %s", staging.label, status)
	}
	copy(dst, staging.h.GetMappedRange(0, uint(size))[:n])
	if err := staging.h.Unmap(); err != nil {
		return fmt.Errorf("gpu: unmap %s: %w", staging.label, err)
	}
	return nil
}

// wait returns when every submitted command buffer has run.
func (p *platform) wait(ctx context.Context) error {
	if err := p.lostErr(); err != nil {
		return err
	}
	done := make(chan struct{})
	p.queue.OnSubmittedWorkDone(func(wgpu.QueueWorkDoneStatus) { close(done) })
	return p.pollUntil(ctx, done)
}

// f16CompilerNote names the shader compiler of this build for the error of
// an f16 kernel it refuses (device.checkF16).
// platformWaveSlots is Options.WaveSlots's default in the native build.
const platformWaveSlots = WaveSlots

// platformDirectWaves: natively Options.WaveDispatch auto is indirect
// (direct dispatches measured slower on the H200: BrowserDirectPositions).
const platformDirectWaves = false

const f16CompilerNote = "wgpu-native v22 through github.com/cogentcore/webgpu v0.23.0, whose naga parses no f16 WGSL: f16 needs wgpu 25 or later"
