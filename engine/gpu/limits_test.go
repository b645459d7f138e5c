package gpu

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/enginetest"
	"github.com/remask/remask/shaders"
)

// The GPU suite's representative parts again on a device requested with
// Options.Limits "default": no limit above the WebGPU spec's defaults, as a
// phone or an integrated GPU grants (on lavapipe the adapter offers 32 KiB
// of workgroup memory, 1024 invocations, 2 GiB buffers and 32 storage
// buffers per stage, so this device is really smaller than the adapter's).

var (
	defOnce sync.Once
	defBE   *Backend
	defErr  error
)

// testDefaultBackend is the shared backend with Options.Limits "default".
func testDefaultBackend(t testing.TB) *Backend {
	t.Helper()
	testBackend(t) // skips without an adapter (outside CI)
	defOnce.Do(func() { defBE, defErr = New(context.Background(), Options{Limits: "default"}) })
	if defErr != nil {
		t.Fatalf("opening the WebGPU device with the default limits: %v", defErr)
	}
	return defBE
}

// TestDefaultLimitsGranted: the device opened with Limits "default" has
// exactly the spec's defaults of every limit remask uses, and caps reads
// them.
func TestDefaultLimitsGranted(t *testing.T) {
	be := testDefaultBackend(t)
	got, al := be.Limits(), be.d.caps.adapter
	want := SpecDefaults
	// Alignments and the workgroup count per dimension are minima/maxima
	// the spec fixes too; compare the whole struct.
	if got != want {
		t.Errorf("device limits with Limits \"default\":\n got %+v\nwant %+v", got, want)
	}
	c := be.d.caps
	if c.shmax != 16384 || c.invoc != 256 || c.wgSize != [3]int{256, 256, 64} || c.storageMax != 8 || !c.defaults {
		t.Errorf("caps %+v do not hold the default limits", c)
	}
	if !strings.Contains(be.Name(), "default limits") || strings.Contains(testBackend(t).Name(), "default limits") {
		t.Errorf("backend names %q (default limits) and %q (adapter limits) do not say which limits they have", be.Name(), testBackend(t).Name())
	}
	t.Logf("adapter %s offers %+v; the default-limits device has %+v", be.Info().Name, al, got)
}

// checkWithinLimits checks every pipeline the backend made and every
// storage binding it bound against the device's granted limits.
func checkWithinLimits(t *testing.T, be *Backend) {
	t.Helper()
	d := be.d
	lim := d.caps.lim
	if len(d.footprints) == 0 {
		t.Fatal("no pipeline recorded a footprint")
	}
	maxSh, maxInv := 0, 0
	for key, fp := range d.footprints {
		if fp.SharedBytes > int(lim.MaxComputeWorkgroupStorageSize) || fp.Invocations() > int(lim.MaxComputeInvocationsPerWorkgroup) ||
			fp.WorkgroupSize[0] > int(lim.MaxComputeWorkgroupSizeX) || fp.WorkgroupSize[1] > int(lim.MaxComputeWorkgroupSizeY) ||
			fp.WorkgroupSize[2] > int(lim.MaxComputeWorkgroupSizeZ) {
			t.Errorf("pipeline %s: footprint %+v exceeds the device's limits %+v", key, fp, lim)
		}
		maxSh, maxInv = max(maxSh, fp.SharedBytes), max(maxInv, fp.Invocations())
	}
	if d.maxBinding > lim.MaxStorageBufferBindingSize {
		t.Errorf("a storage binding of %d bytes > maxStorageBufferBindingSize %d", d.maxBinding, lim.MaxStorageBufferBindingSize)
	}
	t.Logf("%d pipelines: at most %d bytes of workgroup memory (limit %d), %d invocations (limit %d); largest storage binding %d bytes (limit %d)",
		len(d.footprints), maxSh, lim.MaxComputeWorkgroupStorageSize, maxInv, lim.MaxComputeInvocationsPerWorkgroup, d.maxBinding, lim.MaxStorageBufferBindingSize)
}

// TestGoldenDefaultLimits is TestGolden on the default-limits device.
func TestGoldenDefaultLimits(t *testing.T) {
	be := testDefaultBackend(t)
	enginetest.Golden(t, be, cpu.New(1), goldenDir)
	checkWithinLimits(t, be)
}

// TestDeviceLoopMatchesHostDefaultLimits is TestDeviceLoopMatchesHost on
// the default-limits device.
func TestDeviceLoopMatchesHostDefaultLimits(t *testing.T) {
	be := testDefaultBackend(t)
	deviceLoopMatchesHost(t, be)
	checkWithinLimits(t, be)
}

// TestPipelinesDefaultLimits creates every pipeline variant on the
// default-limits device (the matmul tiles that need more workgroup memory
// are left out by the same check the backend makes) and checks them all.
func TestPipelinesDefaultLimits(t *testing.T) {
	be := testDefaultBackend(t)
	pipelinesOn(t, be)
	checkWithinLimits(t, be)
}

// TestKernelBeyondLimits: a kernel whose workgroup or workgroup memory
// exceeds the granted limits is refused before the device sees it, with a
// *LimitError naming the limit and, where the adapter has more, the
// adapter limits as the fix.
func TestKernelBeyondLimits(t *testing.T) {
	be := testDefaultBackend(t)
	d := be.d
	for _, c := range []struct {
		src, limit string
		adapter    uint64
	}{
		{"@compute @workgroup_size(512) fn main() {}", "maxComputeInvocationsPerWorkgroup", uint64(d.caps.adapter.MaxComputeInvocationsPerWorkgroup)},
		{"var<workgroup> A: array<vec4<f32>, 1536>;\n@compute @workgroup_size(64) fn main() { A[0] = vec4<f32>(); }", "maxComputeWorkgroupStorageSize", uint64(d.caps.adapter.MaxComputeWorkgroupStorageSize)},
		{"@compute @workgroup_size(1, 1, 128) fn main() {}", "maxComputeWorkgroupSizeZ", uint64(d.caps.adapter.MaxComputeWorkgroupSizeZ)},
	} {
		_, err := d.checkKernel("test kernel", c.src, 1)
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != c.limit {
			t.Errorf("%q: got %v, want a *LimitError for %s", c.src, err, c.limit)
			continue
		}
		if c.adapter >= le.Want && !strings.Contains(err.Error(), "--limits adapter") {
			t.Errorf("%q: %v does not name the adapter limits as the fix (the adapter allows %d)", c.src, err, c.adapter)
		}
		t.Logf("refused: %v", err)
	}
	// The tiled attention needs more workgroup memory than the default.
	if _, err := New(context.Background(), Options{Limits: "default", Attention: "tiled"}); err == nil || !strings.Contains(err.Error(), "workgroup memory") {
		t.Errorf("Attention \"tiled\" on a default-limits device: %v, want an error naming its workgroup memory", err)
	} else {
		t.Logf("tiled attention at the default limits: %v", err)
	}
}

// TestTooBigJobDefaultLimits: a forward whose activation does not fit
// maxStorageBufferBindingSize (128 MiB at the default limits) fails at
// Encode with a *LimitError naming the limit, the buffer and the fix, and
// the Net still runs a job that fits.
func TestTooBigJobDefaultLimits(t *testing.T) {
	be := testDefaultBackend(t)
	ctx := context.Background()
	cfg := model.Standard()
	cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.BlockSize, cfg.VocabSize = 1, 2, 64, 64, 16
	cfg.Heads, cfg.Sampler = nil, nil
	m, err := model.Random(cfg, 3, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	n, err := be.Load(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	defer n.(*Net).Close()
	// fch holds B·T·4C floats: 4·64·4 = 1 KiB a position, so 131072
	// positions fill 128 MiB; 2200 x 64 = 140800 positions do not fit.
	B, T := 2200, 64
	tokens := make([]int32, B*T)
	_, err = n.Encode(ctx, tokens, B, T)
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != "maxStorageBufferBindingSize" || !strings.Contains(le.What, "fch") {
		t.Fatalf("encode %d x %d at the default limits: %v, want a *LimitError for maxStorageBufferBindingSize naming fch", B, T, err)
	}
	if !strings.Contains(err.Error(), "smaller batch") {
		t.Errorf("%v does not name the fix", err)
	}
	t.Logf("refused: %v", err)
	h, err := n.Encode(ctx, tokens[:2*T], 2, T)
	if err != nil {
		t.Fatalf("a 2 x %d job after the refused one: %v", T, err)
	}
	out := make([]float32, 2*T*cfg.VocabSize)
	if err := n.Logits(ctx, h, out); err != nil {
		t.Fatal(err)
	}
}

// TestOptionsLimitsCheck: Options.Check refuses an unknown Limits or
// Subgroups value, naming the allowed ones.
func TestOptionsLimitsCheck(t *testing.T) {
	for _, o := range []Options{{Limits: "max"}, {Subgroups: "on"}} {
		if err := o.Check(); err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("Check(%+v) = %v, want an error naming the allowed values", o, err)
		}
	}
	for _, o := range []Options{{Limits: "adapter"}, {Limits: "default"}, {Subgroups: "off"}, {Subgroups: "auto"}} {
		if err := o.Check(); err != nil {
			t.Errorf("Check(%+v) = %v", o, err)
		}
	}
}

// TestMatmulGridLimit: a matmul whose rows need more workgroups than
// maxComputeWorkgroupsPerDimension is refused with a *LimitError when its
// op is built, before any dispatch.
func TestMatmulGridLimit(t *testing.T) {
	d := testDefaultBackend(t).d
	w := wbuf{b: d.dummy}
	M := 1 << 24 // 131072 row tiles of 128, 524288 of 32
	_, err := d.matmul("huge", M, 64, 64, whole(d.dummy), w, nil, whole(d.dummyRW), 0, false)
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != "maxComputeWorkgroupsPerDimension" {
		t.Fatalf("matmul of %d rows: %v, want a *LimitError for maxComputeWorkgroupsPerDimension", M, err)
	}
	t.Logf("refused: %v", err)
	if _, err := d.matmul("fits", 4096, 64, 64, whole(d.dummy), w, nil, whole(d.dummyRW), 0, false); err != nil {
		t.Errorf("matmul of 4096 rows: %v", err)
	}
}

// TestRequiredWithinSpecDefaults: what Open requires of an adapter is at
// most the spec's defaults (so every conformant adapter qualifies), and the
// copies of the default workgroup memory agree.
func TestRequiredWithinSpecDefaults(t *testing.T) {
	r, s := required, SpecDefaults
	if r.MaxComputeWorkgroupStorageSize > s.MaxComputeWorkgroupStorageSize || r.MaxComputeInvocationsPerWorkgroup > s.MaxComputeInvocationsPerWorkgroup ||
		r.MaxComputeWorkgroupSizeX > s.MaxComputeWorkgroupSizeX || r.MaxStorageBuffersPerShaderStage > s.MaxStorageBuffersPerShaderStage {
		t.Errorf("required %+v exceeds the spec defaults %+v", r, s)
	}
	if int(s.MaxComputeWorkgroupStorageSize) != shaders.DefaultWorkgroupStorage || floorShared != shaders.DefaultWorkgroupStorage {
		t.Errorf("default workgroup memory: SpecDefaults %d, shaders.DefaultWorkgroupStorage %d, floorShared %d", s.MaxComputeWorkgroupStorageSize, shaders.DefaultWorkgroupStorage, floorShared)
	}
}
