package gpu

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/remask/remask/internal/golden"
)

// One device per test binary: opening one on lavapipe costs time.
var (
	testOnce sync.Once
	testBE   *Backend
	testErr  error
)

// testBackend returns the shared backend. Without an adapter the test skips
// with a message, except in CI (CI=true), where the GPU tests must run.
func testBackend(t testing.TB) *Backend {
	t.Helper()
	testOnce.Do(func() {
		testBE, testErr = New(context.Background(), Options{})
		if testErr == nil {
			ai := testBE.Info()
			t.Logf("adapter: %s (%s, %s), shader-f16 %v", ai.Name, ai.Backend, ai.AdapterType, ai.ShaderF16)
		}
	})
	if testErr != nil {
		if errors.Is(testErr, ErrNoAdapter) && os.Getenv("CI") != "true" {
			t.Skipf("no WebGPU adapter, GPU tests skipped (they are required in CI): %v", testErr)
		}
		t.Fatalf("opening the WebGPU device: %v", testErr)
	}
	return testBE
}

// maxAbsDiff returns max |a[i] - b[i]| and where; NaN counts as infinite.
func maxAbsDiff(a []float32, b []float64) (float64, int) { return golden.MaxAbsDiff(a, b) }

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
