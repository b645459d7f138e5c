//go:build !js

package gpu

import (
	"context"
	"errors"
	"os"
	"reflect"
	"regexp"
	"testing"
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"

	"github.com/remask/remask/internal/enginetest"
)

// TestBindingLayouts guards the unsafe code of platform_native.go (devRef,
// beginPass, querySet.destroy) and instance_native.go (vulkanInstance),
// which read and write the handle fields of cogentcore/webgpu's structs
// through unsafe pointers: each struct must still be exactly the pointer
// fields, in the order, that code assumes. A new binding version that
// changes one fails here, naming it, instead of corrupting memory.
func TestBindingLayouts(t *testing.T) {
	ptr := unsafe.Sizeof(unsafe.Pointer(nil))
	for _, tc := range []struct {
		v      any
		fields []string // pointer-sized C handles, in memory order
	}{
		{wgpu.Instance{}, []string{"ref"}},
		{wgpu.Device{}, []string{"ref"}},
		{wgpu.QuerySet{}, []string{"ref"}},
		{wgpu.CommandEncoder{}, []string{"deviceRef", "ref"}},
		{wgpu.ComputePassEncoder{}, []string{"deviceRef", "ref"}},
	} {
		typ := reflect.TypeOf(tc.v)
		if got, want := typ.Size(), uintptr(len(tc.fields))*ptr; got != want {
			t.Errorf("unsafe.Sizeof(wgpu.%s) = %d, want %d (%d pointers)", typ.Name(), got, want, len(tc.fields))
		}
		if typ.NumField() != len(tc.fields) {
			t.Errorf("wgpu.%s has %d fields, want %d: %v", typ.Name(), typ.NumField(), len(tc.fields), tc.fields)
			continue
		}
		for i, name := range tc.fields {
			f := typ.Field(i)
			if f.Name != name || f.Type.Kind() != reflect.Pointer || f.Offset != uintptr(i)*ptr {
				t.Errorf("wgpu.%s field %d is %s %s at offset %d, want the C handle %s at offset %d", typ.Name(), i, f.Name, f.Type, f.Offset, name, uintptr(i)*ptr)
			}
		}
	}
	// The layouts above were read from v0.23.0; another version needs a
	// fresh look at its structs (and at this test). go.mod pins it.
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*github\.com/cogentcore/webgpu v0\.23\.0\s*$`).Match(gomod) {
		t.Errorf("go.mod does not require github.com/cogentcore/webgpu v0.23.0; the unsafe code was written for that version: re-read its structs")
	}
	if regexp.MustCompile(`(?m)^replace .*cogentcore/webgpu`).Match(gomod) {
		t.Errorf("go.mod replaces github.com/cogentcore/webgpu; the unsafe code was written for v0.23.0 as published")
	}
}

// TestCancelledReadbackDestroysStaging: a head whose readback wait is
// cancelled destroys its staging buffer (its mapping may still be pending,
// so it is not reused, and it must not leak), and the next call works.
func TestCancelledReadbackDestroysStaging(t *testing.T) {
	be := testBackend(t)
	cfg := enginetest.Config()
	net := enginetest.Load(t, be, enginetest.RandomModel(t, cfg, 1)).(*Net)
	ctx := context.Background()
	tokens := enginetest.RandomTokens(2, cfg.BlockSize, cfg.VocabSize, 1)
	h, err := net.Encode(ctx, tokens, 2, cfg.BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 2*cfg.BlockSize*cfg.VocabSize)
	if err := net.Logits(ctx, h, dst); err != nil {
		t.Fatal(err)
	}
	want := append([]float32(nil), dst...)
	// The wait is cancelled only when the copy has not finished by the
	// first poll; on lavapipe that is nearly every time, so a few tries do.
	cancelled := false
	for try := 0; try < 50 && !cancelled; try++ {
		old := net.staging
		err := net.Logits(&enginetest.CancelAfter{Context: ctx, OK: 1}, h, dst)
		if err == nil {
			continue
		}
		cancelled = true
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if net.staging != nil || old == nil || old.h != nil {
			t.Errorf("after a cancelled readback: staging %p (want nil), the old one destroyed = %v", net.staging, old != nil && old.h == nil)
		}
	}
	if !cancelled {
		t.Fatal("no readback wait was cancelled in 50 tries; the test did not exercise the path")
	}
	clear(dst)
	if err := net.Logits(ctx, h, dst); err != nil {
		t.Fatalf("the head after a cancelled readback: %v", err)
	}
	for i := range dst {
		if dst[i] != want[i] {
			t.Fatalf("logits[%d] = %v after a cancelled readback, %v before", i, dst[i], want[i])
		}
	}
}
