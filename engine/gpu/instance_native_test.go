//go:build !js

package gpu

import (
	"slices"
	"testing"
)

// TestInstanceNeverGL: on Linux the only instance asks for Vulkan alone; no
// system gets GL or the all-backends instance (issue 11, defect 14:
// wgpu-native's GLES probe panics in egl.rs where GLVND has no driver,
// aborting `--backend auto` instead of falling back to the CPU). The
// descriptor is read back from the C code that builds it.
func TestInstanceNeverGL(t *testing.T) {
	if got := instanceBackends("linux"); !slices.Equal(got, []uint32{instanceBackendVulkan}) {
		t.Errorf("linux: backends %v, want only Vulkan (%d)", got, instanceBackendVulkan)
	}
	for _, goos := range []string{"linux", "android", "freebsd", "darwin", "windows"} {
		sets := instanceBackends(goos)
		if len(sets) == 0 {
			t.Errorf("%s: no instance", goos)
		}
		for _, b := range sets {
			if b == 0 || b&instanceBackendGL != 0 {
				t.Errorf("%s: backend set %#x is all backends or includes GL", goos, b)
			}
			got, sType, others := descriptorBackends(b)
			if got != b || sType != 0x00030006 || others != 0 {
				t.Errorf("%s: descriptor for %#x holds backends %#x, sType %#x, other fields %#x; want %#x, WGPUSType_InstanceExtras, 0", goos, b, got, sType, others, b)
			}
		}
	}
}
