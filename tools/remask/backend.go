package main

import (
	"context"
	"fmt"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/gpu"
)

// maxThreads bounds --threads.
const maxThreads = 1024

// newBackend turns --backend and --threads into a backend, opening a GPU
// with ctx (the command's, canceled by Ctrl-C). note says why auto chose
// what it chose ("" when the user named the backend).
//
// auto takes the WebGPU backend when a hardware adapter exists. A software
// adapter (adapter type "cpu": Mesa's lavapipe, SwiftShader) is only used
// when asked for with --backend gpu: on the same cores the CPU backend is
// faster.
func newBackend(ctx context.Context, name string, threads int) (be engine.Backend, note string, err error) {
	return openBackend(ctx, name, threads, gpu.Options{})
}

// limitsHelp is the help of --limits (sample, bench, serve).
const limitsHelp = "GPU backend: the device limits to request: adapter (the adapter's maxima) or default (none above the WebGPU spec's defaults, what a phone or an integrated GPU grants; the kernels adapt, docs/gpu.md)"

// limitsOptions turns --limits into the GPU backend's options; naming
// default with --backend cpu is an error (the CPU backend has no limits).
func limitsOptions(limits, backend string) (gpu.Options, error) {
	o := gpu.Options{Limits: limits}
	if err := o.Check(); err != nil {
		return gpu.Options{}, flagError("limits", "%q is not a limits choice; allowed: adapter, default", limits)
	}
	if backend == "cpu" && limits != "adapter" {
		return gpu.Options{}, flagError("limits", "chooses the GPU device's limits; --backend cpu has none (use --backend gpu)")
	}
	return o, nil
}

// precisionHelp is the help of --precision (sample, bench, serve).
const precisionHelp = "GPU backend arithmetic of the trunk's matmuls: auto | f32 | f16; auto = f32 (f16 measured slower than f32 on an H200 through Dawn: docs/gpu.md, Precision); f16 needs an adapter with shader-f16 and a shader compiler with f16 (not this build's wgpu-native: docs/gpu.md, Precision) and never falls back"

// precisionOptions checks --precision against --backend: f16 exists only
// on the GPU backend.
func precisionOptions(backend, precision string) (gpu.Options, error) {
	o := gpu.Options{Precision: precision}
	if err := o.Check(); err != nil {
		return gpu.Options{}, flagError("precision", "%v", err)
	}
	if precision == "f16" && backend == "cpu" {
		return gpu.Options{}, flagError("precision", "f16 runs on the GPU backend only; the CPU backend computes in f32 (use --backend gpu, or drop --precision)")
	}
	return o, nil
}

// deviceOptions are the GPU backend's options of --limits and
// --precision (sample, bench, serve), each checked against --backend
// with an error naming its flag.
func deviceOptions(backend, limits, precision string) (gpu.Options, error) {
	lo, err := limitsOptions(limits, backend)
	if err != nil {
		return gpu.Options{}, err
	}
	po, err := precisionOptions(backend, precision)
	if err != nil {
		return gpu.Options{}, err
	}
	return gpu.Options{Limits: lo.Limits, Precision: po.Precision}, nil
}

// openBackend is newBackend with the GPU backend's options.
func openBackend(ctx context.Context, name string, threads int, gopts gpu.Options) (be engine.Backend, note string, err error) {
	if name == "gpu" || name == "auto" {
		ensureRuntimeDir() // no Mesa "XDG_RUNTIME_DIR is invalid" line while probing
	}
	if threads < 0 || threads > maxThreads {
		// Each thread gets its own attention scratch: an unbounded count
		// would be an unbounded allocation.
		return nil, "", flagError("threads", "%d is out of range; use 0 for one thread per CPU core, or 1 to %d", threads, maxThreads)
	}
	if err := gopts.Check(); err != nil {
		return nil, "", fmt.Errorf("gpu options: %w", err)
	}
	switch name {
	case "cpu":
		return cpu.New(threads), "", nil
	case "gpu":
		g, err := gpu.New(ctx, gopts)
		if err != nil {
			return nil, "", fmt.Errorf("--backend gpu: %w", err)
		}
		return g, "", nil
	case "auto":
		g, err := gpu.New(ctx, gopts)
		if err != nil && gopts.Precision == "f16" {
			// f16 was asked for: the CPU backend would silently be f32.
			return nil, "", fmt.Errorf("--precision f16: %w", err)
		}
		if err != nil {
			return cpu.New(threads), fmt.Sprintf("auto: no usable WebGPU adapter (%v)", err), nil
		}
		if ai := g.Info(); ai.AdapterType == "cpu" && gopts.Precision != "f16" {
			g.Close()
			return cpu.New(threads), fmt.Sprintf("auto: the WebGPU adapter %q is a CPU emulation; --backend gpu uses it anyway", ai.Name), nil
		}
		return g, "auto: WebGPU adapter found", nil
	}
	return nil, "", flagError("backend", "%q is not a backend; allowed: auto, cpu, gpu", name)
}
