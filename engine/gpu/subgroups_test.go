package gpu

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestSubgroupReductions runs the kernels with a subgroup variant
// (layernorm, the token draw) against their CPU twins on both paths: the
// shared test backend uses the subgroup forms where the device has the
// `subgroups` feature (Dawn: the wasm build under Node with dawn.node, or
// a browser), and a backend opened with Subgroups "off" the
// workgroup-memory trees. Natively wgpu-native v22 offers no subgroups, so
// there both runs take the trees, and the test checks that no pipeline was
// built from a subgroup variant.
func TestSubgroupReductions(t *testing.T) {
	be := testBackend(t)
	off, err := New(context.Background(), Options{Subgroups: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	info := be.Info()
	t.Logf("adapter %s: subgroups offered %v, used %v", info.Name, info.Subgroups, be.d.caps.subgroups)
	if runtime.GOOS != "js" && (info.Subgroups || be.d.caps.subgroups) {
		t.Errorf("wgpu-native reports subgroups (offered %v, used %v), which its v22 C API cannot enable", info.Subgroups, be.d.caps.subgroups)
	}
	// ./build.sh test runs this under Dawn on SwiftShader, which offers
	// subgroups, and sets REMASK_WANT_SUBGROUPS=1 so that the subgroup path
	// must run there: a Dawn that stopped offering them fails, not passes on
	// the trees alone.
	if os.Getenv("REMASK_WANT_SUBGROUPS") == "1" && !be.d.caps.subgroups {
		t.Errorf("REMASK_WANT_SUBGROUPS=1 but the backend does not use subgroups (adapter %s offers them: %v)", info.Name, info.Subgroups)
	}
	if runtime.GOOS == "js" && info.Subgroups != be.d.caps.subgroups {
		t.Errorf("the adapter offers subgroups %v but the default backend uses them %v", info.Subgroups, be.d.caps.subgroups)
	}
	for _, c := range []struct {
		name string
		d    *device
		sg   bool
	}{{"auto", be.d, be.d.caps.subgroups}, {"off", off.d, false}} {
		t.Run(c.name+"/layernorm", func(t *testing.T) { layerNormSweep(t, c.d) })
		t.Run(c.name+"/sample", func(t *testing.T) { sampleTokensSweep(t, c.d) })
		for _, file := range []string{"layernorm.wgsl", "sample.wgsl"} {
			found := false
			for key := range c.d.pipes {
				if strings.HasPrefix(key, file) {
					found = true
					if strings.HasSuffix(key, " +subgroups") != c.sg {
						t.Errorf("%s: pipeline %q, want the subgroup variant %v", c.name, key, c.sg)
					}
				}
			}
			if !found {
				t.Errorf("%s: no %s pipeline was made", c.name, file)
			}
		}
	}
}
