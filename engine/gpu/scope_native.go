//go:build !js

package gpu

// Error scopes through wgpu-native's C API. cogentcore/webgpu v0.23.0 wraps
// each create call in a validation scope, but not Queue.Submit, and it
// exposes no push/pop of its own; wgpu-native aborts the process on an
// uncaptured error. The prototypes below are those of the webgpu.h that the
// binding vendors (wgpu-native v22); the symbols come from the same static
// library the binding links.

/*
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

typedef struct WGPUDeviceImpl* WGPUDevice;
typedef uint32_t WGPUErrorFilter;
typedef uint32_t WGPUErrorType;
typedef void (*WGPUErrorCallback)(WGPUErrorType type, char const * message, void * userdata);
void wgpuDevicePushErrorScope(WGPUDevice device, WGPUErrorFilter filter);
void wgpuDevicePopErrorScope(WGPUDevice device, WGPUErrorCallback callback, void * userdata);

typedef struct {
	int called;
	uint32_t type;
	char msg[2048];
} remask_scope;

static void remask_scope_cb(WGPUErrorType type, char const * message, void * userdata) {
	remask_scope *s = (remask_scope *)userdata;
	s->called = 1;
	s->type = type;
	s->msg[0] = 0;
	if (message) {
		strncpy(s->msg, message, sizeof(s->msg) - 1);
		s->msg[sizeof(s->msg) - 1] = 0;
	}
}

static void remask_push(void *dev) {
	wgpuDevicePushErrorScope((WGPUDevice)dev, 1); // out of memory
	wgpuDevicePushErrorScope((WGPUDevice)dev, 0); // validation
}

static void remask_pop(void *dev, remask_scope *s) {
	wgpuDevicePopErrorScope((WGPUDevice)dev, remask_scope_cb, s);
}
*/
import "C"

import (
	"errors"
	"strings"
	"unsafe"
)

var errorTypes = map[uint32]string{1: "validation", 2: "out of memory", 3: "internal", 4: "unknown", 5: "device lost"}

// withScopes runs f inside validation and out-of-memory error scopes
// (this wgpu-native panics on the "internal" filter, so there is none) and returns f's error or the first GPU error the scopes caught.
func withScopes(dev unsafe.Pointer, f func() error) error {
	C.remask_push(dev)
	ferr := f()
	var msgs []string
	for i := 0; i < 2; i++ {
		s := (*C.remask_scope)(C.calloc(1, C.sizeof_remask_scope))
		C.remask_pop(dev, s)
		if s.called == 1 && s._type != 0 {
			msgs = append(msgs, errorTypes[uint32(s._type)]+" error: "+C.GoString(&s.msg[0]))
		}
		C.free(unsafe.Pointer(s))
	}
	if ferr != nil {
		return ferr
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}
