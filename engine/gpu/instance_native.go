//go:build !js

package gpu

// A Vulkan-only wgpu instance, created through wgpu-native's C API.
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

static WGPUInstance remask_create_instance(uint32_t backends) {
	remask_instance_extras ex;
	memset(&ex, 0, sizeof ex);
	ex.chain.sType = 0x00030006; // WGPUSType_InstanceExtras
	ex.backends = backends;
	remask_instance_desc d = { &ex.chain };
	return wgpuCreateInstance(&d);
}
*/
import "C"

import (
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"
)

const instanceBackendVulkan = 1 << 0 // WGPUInstanceBackend_Vulkan

// vulkanInstance returns an instance that enumerates Vulkan adapters only,
// or nil when wgpu-native cannot create one.
func vulkanInstance() *wgpu.Instance {
	ref := C.remask_create_instance(instanceBackendVulkan)
	if ref == nil {
		return nil
	}
	// wgpu.Instance is struct{ ref C.WGPUInstance } (cogentcore/webgpu
	// v0.23.0, pinned in go.mod): set that one pointer field.
	inst := &wgpu.Instance{}
	*(*unsafe.Pointer)(unsafe.Pointer(inst)) = unsafe.Pointer(ref)
	return inst
}
