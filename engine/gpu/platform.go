package gpu

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/remask/remask/shaders"
)

// The platform layer: everything that differs between wgpu-native (cgo,
// platform_native.go) and the browser (GOOS=js, platform_js.go) lives behind
// the small set of types and methods below, which both files implement with
// the same names and signatures:
//
//	openPlatform(ctx, opts) (*platform, error)
//	(*platform) info() AdapterInfo, limits() Limits, lostErr() error, release()
//	(*platform) adapterLimits() Limits, subgroups() bool
//	(*platform) newBuffer(label, size, usage) (*buffer, error)
//	(*platform) write(b, off, data) error
//	(*platform) newPipeline(label, wgsl, entry, kinds) (*pipeline, error)
//	(*platform) newBindGroup(pl, bindings) (*bindGroup, error)
//	(*platform) newRecorder() (*recorder, error)
//	(*recorder) dispatch(pl, bg, x, y, z), dispatchIndirect(pl, bg, args, off),
//	            copy(src, srcOff, dst, dstOff, size), submit() error
//	(*platform) read(ctx, staging, dst) error, wait(ctx) error
//
// and, for GPU timestamps (used by timestamps.go, only where hasTimestamps()):
//
//	(*platform) hasTimestamps() bool, timestampPeriod() float64
//	(*platform) newQuerySet(label, count) (*querySet, error); (*querySet) destroy()
//	(*recorder) stage(q, begin, end), stagePending() bool,
//	            resolve(q, first, count, dst, dstOff)
//
// Everything above this layer (device.go, kernels.go, net.go) is shared and
// compiles unchanged for both.

// Options configures New (the same on native and browser builds). The zero
// value is the measured default (docs/performance.md: on an H200 the split
// kernels take the 1 x 256 forward from 1.37 to 0.87-0.91 ms and do not
// trigger at 16 x 1024; double-buffered tiles and the tiled attention were
// slower there, so they stay opt-in).
type Options struct {
	// MatmulTile forces one tiling of the generated matmul kernel,
	// "BMxBNxBKxTMxTN" (e.g. "128x64x16x8x4"), with the suffixes, in this
	// order, "db" for its double-buffered form (e.g. "64x64x16x4x4db"), "n"
	// for nested shared tiles, "wX" for warp tiles X threads wide, "cL"
	// for rows loaded by L invocations each and "kN" for K sliced N ways
	// inside the workgroup (shaders.MatmulTiling's Nest, WX, CL and KW;
	// e.g. "128x128x8x8x8nw8c2", "32x32x16x4x4k4"), on
	// every matmul whose shape it can run; other shapes keep the automatic
	// choice (chooseTile). A tuning knob; "" is the automatic choice. New
	// refuses a value that is not a tiling the generator can build (the
	// layout's constraints, a register estimate that would spill), or
	// whose workgroup memory exceeds the device's.
	MatmulTile string
	// MatmulDoubleBuffer runs the automatically chosen tiles in their
	// double-buffered form (one barrier per K tile instead of two, twice
	// the workgroup memory; every default tile still fits 16 KiB).
	MatmulDoubleBuffer bool
	// Split chooses the split kernels: "mm" splits deep-K matmuls of
	// small grids over K (a second, reduce dispatch each), "attn" splits
	// attention of short sequences over keys (a second, combine dispatch);
	// "none" turns both off. Empty: the default, both (they apply only
	// where a grid is small: short sequences and small batches).
	Split []string
	// Attention picks the attention kernel where no split applies: "" or
	// "auto" the several-rows-per-thread kernel where a tile of RowsTiles
	// fits, else the one-row-per-thread kernel, "tiled" the tiled kernel
	// (shaders.AttentionTiled; head size 64 only: Load refuses other
	// models, and New a device with too little workgroup memory), "rows"
	// the several-rows-per-thread kernel (shaders.AttentionRows; head
	// sizes that are multiples of 4; an error where no tile fits).
	Attention string
	// AttentionTile forces the tiling of Attention "rows", "RxWGxBCxN[pf]"
	// (shaders.AttentionRowsTile: R query rows per thread, WG threads, key
	// tiles of BC keys, N keys scored at a time, pf: the next key tile
	// prefetched into registers; e.g. "2x64x16x8", "1x64x32x8pf"). A
	// tuning knob; "" picks the first of RowsTiles that fits the device's
	// workgroup memory at the model's head size. New refuses a tile the
	// generator cannot build or the device cannot run, and the option
	// without Attention "rows".
	AttentionTile string
	// Limits chooses the limits the device is requested with: "" or
	// "adapter" the adapter's own maxima of the limits that grow with the
	// model and the batch (buffer and binding sizes, workgroup memory and
	// size), "default" none above the WebGPU spec's defaults (what any
	// conformant adapter, a phone's included, grants). The kernels adapt
	// to the granted limits either way (caps, device.go); a job that does
	// not fit fails with a *LimitError naming the limit and the fix.
	Limits string
	// Subgroups chooses the subgroup reductions: "" or "auto" use them
	// where the device offers the WebGPU `subgroups` feature (Dawn,
	// browsers; wgpu-native v22 does not expose it), "off" never (the
	// workgroup-memory reductions every device runs).
	Subgroups string
	// Precision is the arithmetic of the trunk's matmuls: "f32", "f16" or
	// "auto" ("" = "auto"). "f16" runs the f16 variants of the generated
	// matmul (shaders.MatmulUnrolled with F16: operands as f16 in workgroup
	// memory, f16 products summed in f16 within one K tile, f32 across K
	// tiles and in the epilogue; LayerNorm, attention, softmax, the
	// residual stream and every head stay f32) and needs the adapter
	// feature shader-f16 and a shader compiler that accepts f16 WGSL: New
	// refuses "f16" without either, naming which (docs/gpu.md, "Precision").
	// "auto" is f32: f16 is to be chosen automatically only where it was
	// measured to pay, and on the one GPU it ran on (an H200, through Dawn)
	// it was slower than f32 (docs/gpu.md, "Precision").
	Precision string
	// WaveSlots bounds the sampler-head waves an iteration encodes without
	// a read: an iteration whose schedule allows at most that many waves
	// records them all (the ones past the device's plan are empty
	// dispatches) and reads nothing back; one that allows more reads its
	// wave count once, after the plan, and records exactly those. 0 is
	// the default (WaveSlots natively; in the js/wasm build
	// BrowserDirectWaveSlots for direct waves, else BrowserWaveSlots);
	// negative is refused.
	WaveSlots int
	// WaveDispatch is how a sampler-head wave slot is dispatched:
	// "indirect" (the default, "" or "auto"): one indirect dispatch whose
	// workgroup count the device's wave plan wrote; "direct": a direct
	// dispatch of B·T workgroups, of which those past the wave's positions
	// return at once (for runtimes where indirect dispatches are dear).
	WaveDispatch string
}

// WaveDispatchKinds are the values Options.WaveDispatch accepts.
var WaveDispatchKinds = []string{"auto", "indirect", "direct"}

// LimitsKinds are the values Options.Limits accepts.
var LimitsKinds = []string{"adapter", "default"}

// SubgroupsKinds are the values Options.Subgroups accepts.
var SubgroupsKinds = []string{"auto", "off"}

// defaultLimits reports whether o asks for the spec's default limits.
func (o Options) defaultLimits() bool { return o.Limits == "default" }

// Precisions are the values Options.Precision accepts.
var Precisions = []string{"auto", "f32", "f16"}

// SplitKinds are the split kernels Options.Split names ("none" alone turns
// them all off).
var SplitKinds = []string{"attn", "mm"}

// DefaultSplits are the split kernels used when Options.Split is empty.
var DefaultSplits = []string{"attn", "mm"}

// splits are the split kernels o turns on.
func (o Options) splits() []string {
	switch {
	case len(o.Split) == 0:
		return DefaultSplits
	case len(o.Split) == 1 && o.Split[0] == "none":
		return nil
	}
	return o.Split
}

// AttentionKinds are the values Options.Attention accepts.
var AttentionKinds = []string{"auto", "tiled", "rows"}

// RowsTiles are the tilings Attention "rows" and "auto" try in order when
// Options.AttentionTile is empty: the first whose workgroup memory and
// invocations fit the device at the model's head size runs (at head size
// 64 both need 16 KiB, WebGPU's default; 1x128x32x8 was the fastest tile
// of the H200 sweep, 0.84x the one-row-per-thread kernel's 16 x 1024
// forward, and 2x64x16x8 was 1.54x slower: docs/performance.md). Where
// none fits, "auto" runs the one-row-per-thread kernel.
var RowsTiles = []string{"1x128x32x8", "1x64x32x8"}

// Check reports whether o is valid (New calls it before opening anything).
func (o Options) Check() error {
	if o.MatmulTile != "" {
		if _, err := parseTile(o.MatmulTile, math.MaxInt32); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, k := range o.Split {
		if k == "none" && len(o.Split) == 1 {
			continue
		}
		if k == "none" {
			return fmt.Errorf("gpu: split \"none\" cannot be combined with other split kinds")
		}
		if !slices.Contains(SplitKinds, k) {
			return fmt.Errorf("gpu: split %q is not a split kernel kind (want %s, or none)", k, strings.Join(SplitKinds, " or "))
		}
		if seen[k] {
			return fmt.Errorf("gpu: split %q is named twice", k)
		}
		seen[k] = true
	}
	if o.WaveSlots < 0 {
		return fmt.Errorf("gpu: wave slots %d is negative (0 is the default, %d)", o.WaveSlots, WaveSlots)
	}
	if o.WaveDispatch != "" && !slices.Contains(WaveDispatchKinds, o.WaveDispatch) {
		return fmt.Errorf("gpu: wave dispatch %q is not a dispatch kind (want %s)", o.WaveDispatch, strings.Join(WaveDispatchKinds, ", "))
	}
	if o.Attention != "" && !slices.Contains(AttentionKinds, o.Attention) {
		return fmt.Errorf("gpu: attention %q is not an attention kernel (want %s)", o.Attention, strings.Join(AttentionKinds, ", "))
	}
	if o.AttentionTile != "" {
		if o.Attention != "rows" {
			return fmt.Errorf("gpu: attention tile %q applies to the attention kernel \"rows\" only (the attention kernel is %q): set Attention to rows or leave the tile empty", o.AttentionTile, o.Attention)
		}
		if _, err := shaders.ParseAttentionRowsTile(o.AttentionTile); err != nil {
			return fmt.Errorf("gpu: %w", err)
		}
	}
	if o.Limits != "" && !slices.Contains(LimitsKinds, o.Limits) {
		return fmt.Errorf("gpu: limits %q is not a limits choice (want %s)", o.Limits, strings.Join(LimitsKinds, " or "))
	}
	if o.Subgroups != "" && !slices.Contains(SubgroupsKinds, o.Subgroups) {
		return fmt.Errorf("gpu: subgroups %q is not a subgroups choice (want %s)", o.Subgroups, strings.Join(SubgroupsKinds, " or "))
	}
	if o.Precision != "" && !slices.Contains(Precisions, o.Precision) {
		return fmt.Errorf("gpu: precision %q is not a precision (want %s)", o.Precision, strings.Join(Precisions, ", "))
	}
	return nil
}

// bufUsage says what a buffer is for.
type bufUsage int

const (
	usageStorage      bufUsage = iota // storage, copy source and destination
	usageUniform                      // uniform, copy destination
	usageStaging                      // map-read, copy destination
	usageIndirect                     // indirect dispatch arguments, storage, copies
	usageQueryResolve                 // query-resolve destination, copy source and destination
)

// bindKind is the type of one binding of a kernel's bind group layout.
type bindKind int

const (
	bindUniform bindKind = iota
	bindRead             // read-only storage
	bindRW               // read-write storage
)

// binding is one bind group entry: a range of a buffer.
type binding struct {
	buf       *buffer
	off, size uint64
}

// whole binds all of b.
func whole(b *buffer) binding { return binding{buf: b, size: b.size} }

// AdapterInfo describes the adapter a device was made on.
type AdapterInfo struct {
	Name        string // e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.6, 256 bits)"
	Vendor      string
	Backend     string // "vulkan", "metal", "webgpu" (browser), ...
	AdapterType string // "discrete GPU", "cpu", ...
	ShaderF16   bool   // the adapter offers shader-f16 (requested only for Options.Precision "f16")
	Timestamps  bool   // the adapter offers the timestamp-query feature
	Subgroups   bool   // the adapter offers the subgroups feature (requested unless Options.Subgroups is "off")
}

// Limits are the device limits remask depends on.
type Limits struct {
	MaxStorageBufferBindingSize       uint64
	MaxBufferSize                     uint64
	MaxComputeWorkgroupStorageSize    uint32
	MaxComputeInvocationsPerWorkgroup uint32
	MaxComputeWorkgroupSizeX          uint32
	MaxComputeWorkgroupSizeY          uint32
	MaxComputeWorkgroupSizeZ          uint32
	MaxComputeWorkgroupsPerDimension  uint32
	MaxStorageBuffersPerShaderStage   uint32
	MinUniformBufferOffsetAlignment   uint32
	MinStorageBufferOffsetAlignment   uint32
}

// SpecDefaults are the WebGPU spec's default limits (the ones above):
// what a device requested with no limits gets, and what any conformant
// adapter offers at least. Options.Limits "default" requests no more.
var SpecDefaults = Limits{
	MaxStorageBufferBindingSize:       128 << 20,
	MaxBufferSize:                     256 << 20,
	MaxComputeWorkgroupStorageSize:    16384,
	MaxComputeInvocationsPerWorkgroup: 256,
	MaxComputeWorkgroupSizeX:          256,
	MaxComputeWorkgroupSizeY:          256,
	MaxComputeWorkgroupSizeZ:          64,
	MaxComputeWorkgroupsPerDimension:  65535,
	MaxStorageBuffersPerShaderStage:   8,
	MinUniformBufferOffsetAlignment:   256,
	MinStorageBufferOffsetAlignment:   256,
}

// required are the limits every remask kernel needs, whatever the model:
// the largest workgroup (256 invocations), the most storage bindings of one
// kernel (8: embednorm.wgsl's, WebGPU's default, which every conformant
// adapter offers; device.pipeline refuses a kernel with more), and the
// workgroup memory of the biggest tile (attention with
// BC·D = 2048 floats for K and V: 16 KiB, the WebGPU default).
var required = Limits{
	MaxComputeWorkgroupStorageSize:    16384,
	MaxComputeInvocationsPerWorkgroup: 256,
	MaxComputeWorkgroupSizeX:          256,
	MaxStorageBuffersPerShaderStage:   8,
}

// checkLimits refuses an adapter below required, naming the limit.
func checkLimits(have Limits, adapter string) error {
	type lim struct {
		name       string
		have, want uint64
	}
	for _, l := range []lim{
		{"maxComputeWorkgroupStorageSize", uint64(have.MaxComputeWorkgroupStorageSize), uint64(required.MaxComputeWorkgroupStorageSize)},
		{"maxComputeInvocationsPerWorkgroup", uint64(have.MaxComputeInvocationsPerWorkgroup), uint64(required.MaxComputeInvocationsPerWorkgroup)},
		{"maxComputeWorkgroupSizeX", uint64(have.MaxComputeWorkgroupSizeX), uint64(required.MaxComputeWorkgroupSizeX)},
		{"maxStorageBuffersPerShaderStage", uint64(have.MaxStorageBuffersPerShaderStage), uint64(required.MaxStorageBuffersPerShaderStage)},
	} {
		if l.have < l.want {
			return &LimitError{Limit: l.name, Have: l.have, Want: l.want, What: "remask's kernels", Adapter: adapter}
		}
	}
	return nil
}
