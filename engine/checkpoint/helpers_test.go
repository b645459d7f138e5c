package checkpoint

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/golden"
)

// forkDir holds the fork-format fixtures written by
// tools/train/fork_checkpoints.py: NAME.pt and NAME.expected.json.
const forkDir = "../../testdata/fork"

func fixture(name string) string { return filepath.Join(forkDir, name) }

func readExpected(t testing.TB, name string) *golden.File {
	t.Helper()
	e, err := golden.Read(fixture(name + ".expected.json"))
	if err != nil {
		t.Fatalf("%v (run /usr/bin/python3 tools/train/fork_checkpoints.py)", err)
	}
	return e
}

func open(t testing.TB, name string) *Checkpoint {
	t.Helper()
	c, err := Open(fixture(name + ".pt"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// errors of each output against the expected one: the largest absolute
// difference per output, by name.
type outputErrors map[string]float64

func (e outputErrors) max() (string, float64) {
	name, worst := "", 0.0
	for k, v := range e {
		if v >= worst {
			name, worst = k, v
		}
	}
	return name, worst
}

// compareOutputs runs m on the CPU backend and measures every output of e.
func compareOutputs(t testing.TB, m *model.Model, e *golden.File) outputErrors {
	t.Helper()
	if m.Config.Kind != e.Kind {
		t.Fatalf("kind %q, expected.json says %q", m.Config.Kind, e.Kind)
	}
	net, err := cpu.New(1).Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	tokens, B, T := e.Batch()
	ctx := context.Background()
	h, err := net.Encode(ctx, tokens, B, T)
	if err != nil {
		t.Fatal(err)
	}
	outs := e.Outputs()
	if len(outs) == 0 {
		t.Fatal("expected.json has no outputs")
	}
	errs := outputErrors{}
	for _, o := range outs {
		got := make([]float32, len(o.Want))
		if err := o.Run(ctx, net, h, got); err != nil {
			t.Fatalf("%s: %v", o.Name, err)
		}
		errs[o.Name], _ = golden.MaxAbsDiff(got, o.Want)
	}
	return errs
}
