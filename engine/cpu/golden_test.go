package cpu

import (
	"testing"

	"github.com/remask/remask/internal/enginetest"
)

// goldenDir holds the PyTorch fixtures written by tools/train/make_fixtures.py
// (./build.sh goldens): NAME.safetensors plus NAME.json with the inputs and
// the outputs of the PyTorch model, computed in float64.
const goldenDir = "../../testdata/golden"

// TestGolden: every output of every fixture within enginetest.GoldenTol of
// PyTorch (the contract suite every backend runs).
func TestGolden(t *testing.T) { enginetest.Golden(t, New(2), nil, goldenDir) }
