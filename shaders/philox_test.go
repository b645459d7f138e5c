package shaders

import (
	"fmt"
	"strings"
	"testing"
)

const philoxBegin, philoxEnd = "// philox begin\n", "// philox end\n"

// philoxBlock returns the text from src's "// philox begin" line through its
// "// philox end" line; an error unless there is exactly one such block.
func philoxBlock(src string) (string, error) {
	if strings.Count(src, philoxBegin) != 1 || strings.Count(src, philoxEnd) != 1 {
		return "", fmt.Errorf("%d %q and %d %q lines, want one of each",
			strings.Count(src, philoxBegin), strings.TrimSpace(philoxBegin), strings.Count(src, philoxEnd), strings.TrimSpace(philoxEnd))
	}
	i, j := strings.Index(src, philoxBegin), strings.Index(src, philoxEnd)
	if j < i {
		return "", fmt.Errorf("%q comes before %q", strings.TrimSpace(philoxEnd), strings.TrimSpace(philoxBegin))
	}
	return src[i : j+len(philoxEnd)], nil
}

// checkPhilox checks one kernel that draws random numbers: as written
// (written, before the include splice) it must define none of the Philox
// functions itself but include rng.wgsl's block, and as compiled (spliced)
// it must hold exactly one Philox block, byte for byte rng.wgsl's (want).
func checkPhilox(written, spliced, want string) error {
	for _, fn := range []string{"fn philox4x32(", "fn mulhilo(", "fn rng_uniform(", "fn to_unit("} {
		if strings.Contains(written, fn) {
			return fmt.Errorf("defines %s) itself; replace the copy with the line \"// include: rng.wgsl philox\"", fn)
		}
	}
	if !strings.Contains(written, "// include: rng.wgsl philox\n") {
		return fmt.Errorf("draws random numbers but does not include rng.wgsl's philox block")
	}
	got, err := philoxBlock(spliced)
	if err != nil {
		return err
	}
	if got != want {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		return fmt.Errorf("its Philox block differs from rng.wgsl's at byte %d", i)
	}
	return nil
}

// TestPhiloxCopies checks that every kernel drawing random numbers (it
// calls rng_uniform or philox4x32) gets rng.wgsl's Philox block through the
// include splice, unchanged (engine/gpu's TestPhiloxBitExact checks
// rng.wgsl against engine/rng bit for bit).
func TestPhiloxCopies(t *testing.T) {
	rngSrc, err := Raw("rng.wgsl")
	if err != nil {
		t.Fatal(err)
	}
	want, err := philoxBlock(rngSrc)
	if err != nil {
		t.Fatalf("rng.wgsl: %v", err)
	}
	var users []string
	for _, file := range Files() {
		if file == "rng.wgsl" {
			continue
		}
		written, err := files.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		spliced, err := Raw(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(spliced, "rng_uniform(") && !strings.Contains(spliced, "philox4x32(") {
			continue
		}
		users = append(users, file)
		if err := checkPhilox(string(written), spliced, want); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
	// The kernels known to draw: a file that stops drawing should say so here.
	if got := strings.Join(users, " "); got != "certain.wgsl remask.wgsl sample.wgsl samplerwave.wgsl" {
		t.Errorf("kernels drawing random numbers: %s, want certain.wgsl remask.wgsl sample.wgsl samplerwave.wgsl", got)
	}
}

// TestCheckPhiloxCatchesDrift makes sure checkPhilox can fail: a hand copy
// in the kernel, a block with one constant changed, a kernel without the
// include, and a doubled block.
func TestCheckPhiloxCatchesDrift(t *testing.T) {
	rngSrc, err := Raw("rng.wgsl")
	if err != nil {
		t.Fatal(err)
	}
	want, err := philoxBlock(rngSrc)
	if err != nil {
		t.Fatal(err)
	}
	written, err := files.ReadFile("remask.wgsl")
	if err != nil {
		t.Fatal(err)
	}
	spliced, err := Raw("remask.wgsl")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPhilox(string(written), spliced, want); err != nil {
		t.Fatalf("remask.wgsl as it is: %v", err)
	}
	mutated := strings.Replace(want, "0xD2511F53u", "0xD2511F54u", 1)
	if mutated == want {
		t.Fatal("rng.wgsl has no multiplier 0xD2511F53u to mutate")
	}
	handCopy := strings.Replace(string(written), "// include: rng.wgsl philox\n", mutated, 1)
	cases := []struct{ name, written, spliced string }{
		{"a mutated hand copy", handCopy, handCopy},
		{"a mutated spliced block", string(written), strings.Replace(spliced, want, mutated, 1)},
		{"no include", strings.Replace(string(written), "// include: rng.wgsl philox\n", "", 1), spliced},
		{"two blocks", string(written), spliced + want},
	}
	for _, c := range cases {
		if err := checkPhilox(c.written, c.spliced, want); err == nil {
			t.Errorf("%s passed", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}
