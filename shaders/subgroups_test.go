package shaders

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// subgroupFamilies are the kernels with a subgroup variant: the reductions
// of the layer norm statistics, of the token draw's row maximum and
// total, and of the fused sampler-head wave (its LayerNorms and draw).
var subgroupFamilies = []string{"layernorm.wgsl", "addnorm.wgsl", "embednorm.wgsl", "sample.wgsl", "samplerwave.wgsl"}

// writeNaga writes the file at p without its `enable subgroups;` line
// (naga, the CLI and wgpu-native's, rejects the directive but validates
// subgroup operations without it) and returns the new path.
func writeNaga(t *testing.T, dir, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	q := filepath.Join(dir, "naga_"+filepath.Base(p))
	if err := os.WriteFile(q, []byte(strings.Replace(string(b), SubgroupsEnable+"\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return q
}

// TestSubgroupVariants builds the subgroup variant of every kernel that
// marks a block of subgroups.wgsl and validates it with Tint (Dawn's
// compiler, which runs it in browsers) and with naga (without the enable
// directive it does not parse). The kernels that have one are pinned, so a
// lost marker fails here; the fallback sources use no subgroup operation.
func TestSubgroupVariants(t *testing.T) {
	if got := SubgroupBlocks(); !slices.Equal(got, []string{"reduce_sum", "reduce_max"}) {
		t.Errorf("subgroups.wgsl offers %v, want reduce_sum and reduce_max", got)
	}
	dir := t.TempDir()
	var have []string
	for _, f := range Families() {
		src, err := Source(f.File, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(src, "subgroup") && !strings.Contains(src, "subgroups.wgsl") {
			t.Errorf("%s uses subgroups in its fallback form", f.File)
		}
		if !HasSubgroupVariant(src) {
			if _, err := SubgroupVariant(src); err == nil {
				t.Errorf("%s: SubgroupVariant of a kernel without a marked block gave no error", f.File)
			}
			continue
		}
		have = append(have, f.File)
		for _, consts := range []map[string]string{nil, {"WG": "64u"}} {
			if lnFamily(f.File) && consts != nil { // WG is layernorm.wgsl's (TestFusedNormWG)
				continue
			}
			src, err := Source(f.File, consts)
			if err != nil {
				t.Fatal(err)
			}
			v, err := SubgroupVariant(src)
			if err != nil {
				t.Fatalf("%s: %v", f.File, err)
			}
			if !strings.HasPrefix(v, SubgroupsEnable+"\n") || !strings.Contains(v, "subgroupAdd(") || strings.Count(v, "fn reduce_sum(") != 1 {
				t.Errorf("%s: the variant does not enable subgroups or does not hold exactly one subgroup reduce_sum", f.File)
			}
			fp, err := KernelFootprint(v)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "sg_"+f.File)
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, tool := range []string{"tint", "naga"} {
				bin, err := exec.LookPath(tool)
				if err != nil {
					if os.Getenv("CI") == "true" {
						t.Fatalf("%s CLI not on PATH, and CI must validate the subgroup variants with it", tool)
					}
					t.Logf("%s CLI not on PATH: skipped its half", tool)
					continue
				}
				var args []string
				if tool == "tint" {
					args = []string{"--format", "wgsl", "-o", os.DevNull, p}
				} else {
					args = []string{writeNaga(t, dir, p)}
				}
				if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
					t.Errorf("%s %s (subgroups, %v): %v\n%s", tool, f.File, consts, err, out)
				}
			}
			t.Logf("%s %v: subgroup variant validated (workgroup %v, %d bytes of workgroup memory)", f.File, consts, fp.WorkgroupSize, fp.SharedBytes)
		}
	}
	if !slices.Equal(have, subgroupFamilies) {
		t.Errorf("kernels with a subgroup variant: %v, want %v", have, subgroupFamilies)
	}
}
