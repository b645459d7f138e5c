package gpu

import (
	"testing"

	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/internal/enginetest"
)

// goldenDir holds the PyTorch fixtures (tools/train/make_fixtures.py).
const goldenDir = "../../testdata/golden"

// TestGolden runs the contract suite's goldens on the GPU: every output of
// every fixture within enginetest.GoldenTol of PyTorch and of the CPU
// reference backend (the test log has the errors seen).
func TestGolden(t *testing.T) { enginetest.Golden(t, testBackend(t), cpu.New(1), goldenDir) }

// TestErrors runs the contract's table of bad arguments on the GPU backend.
func TestErrors(t *testing.T) { enginetest.Errors(t, testBackend(t), "gpu") }
