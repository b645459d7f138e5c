//go:build !js

package gpu

// wgpu instances for chosen backends only (on Linux: Vulkan only), created
// through wgpu-native's C API.
//
// The binding's CreateInstance(descriptor) mallocs WGPUInstanceExtras and
// leaves flags, gles3MinorVersion and the DXC paths uninitialised (seen: an
// abort on a random "gles3 minor version"), and choosing the backend through
// RequestAdapterOptions.backendType instead makes wgpu-native print "WARN:
// WGPURequestAdapterOptions.backendType is unsupported" on every start. So
// we build a zeroed descriptor ourselves (the layout of the wgpu.h that the
// binding vendors, wgpu-native v22) and hand the instance to the binding's
// Instance type, whose only field is the C handle.

/*
#include <stdint.h>
#include <string.h>

typedef struct remask_chained { const void *next; uint32_t sType; } remask_chained;
typedef struct remask_instance_extras {
	remask_chained chain;
	uint32_t backends, flags, dx12ShaderCompiler, gles3MinorVersion;
	const char *dxilPath, *dxcPath;
} remask_instance_extras;
typedef struct remask_instance_desc { const remask_chained *nextInChain; } remask_instance_desc;
typedef struct WGPUInstanceImpl* WGPUInstance;
WGPUInstance wgpuCreateInstance(const remask_instance_desc *descriptor);

static void remask_fill_extras(remask_instance_extras *ex, uint32_t backends) {
	memset(ex, 0, sizeof *ex);
	ex->chain.sType = 0x00030006; // WGPUSType_InstanceExtras
	ex->backends = backends;
}

static WGPUInstance remask_create_instance(uint32_t backends) {
	remask_instance_extras ex;
	remask_fill_extras(&ex, backends);
	remask_instance_desc d = { &ex.chain };
	return wgpuCreateInstance(&d);
}

// remask_descriptor_backends is what remask_create_instance puts into the
// descriptor, for the test.
static uint32_t remask_descriptor_backends(uint32_t backends, uint32_t *stype, uint32_t *flags) {
	remask_instance_extras ex;
	remask_fill_extras(&ex, backends);
	*stype = ex.chain.sType;
	*flags = ex.flags | ex.gles3MinorVersion | ex.dx12ShaderCompiler;
	return ex.backends;
}
*/
import "C"

import (
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"
)

// WGPUInstanceBackend flags (wgpu.h of wgpu-native v22).
const (
	instanceBackendVulkan = 1 << 0
	instanceBackendGL     = 1 << 1
	instanceBackendMetal  = 1 << 2
	instanceBackendDX12   = 1 << 3
)

// instanceBackends are the backend sets openPlatform tries, in order, on
// the operating system goos: on Linux Vulkan only. Never GL, and never the
// binding's descriptor-less all-backends instance: wgpu-native's GLES
// backend panics in egl.rs (Option::unwrap() on None, gfx-rs/wgpu#6165) on a
// Linux machine that has the GL dispatch library (GLVND) but no driver, and
// a Rust panic aborts the whole process, so `--backend auto` could never
// fall back to the CPU. Metal on macOS, DX12 after Vulkan on Windows.
func instanceBackends(goos string) []uint32 {
	switch goos {
	case "darwin", "ios":
		return []uint32{instanceBackendMetal}
	case "windows":
		return []uint32{instanceBackendVulkan, instanceBackendDX12}
	}
	return []uint32{instanceBackendVulkan}
}

// newInstance returns an instance that enumerates the adapters of the
// backends set only, or nil when wgpu-native cannot create one.
func newInstance(backends uint32) *wgpu.Instance {
	ref := C.remask_create_instance(C.uint32_t(backends))
	if ref == nil {
		return nil
	}
	// wgpu.Instance is struct{ ref C.WGPUInstance } (cogentcore/webgpu
	// v0.23.0, pinned in go.mod): set that one pointer field.
	inst := &wgpu.Instance{}
	*(*unsafe.Pointer)(unsafe.Pointer(inst)) = unsafe.Pointer(ref)
	return inst
}

// descriptorBackends returns the backends, the sType and the OR of the
// other fields of the descriptor newInstance(backends) passes to
// wgpuCreateInstance (tests; cgo cannot be used in test files).
func descriptorBackends(backends uint32) (got, sType, others uint32) {
	var st, fl C.uint32_t
	b := C.remask_descriptor_backends(C.uint32_t(backends), &st, &fl)
	return uint32(b), uint32(st), uint32(fl)
}
