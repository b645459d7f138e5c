package shaders

import (
	"fmt"
	"regexp"
	"strings"
)

// SubgroupsFile holds the subgroup forms of the workgroup reductions.
const SubgroupsFile = "subgroups.wgsl"

// SubgroupsEnable is the directive a module that uses subgroup operations
// starts with (WGSL's `subgroups` extension, which Dawn and browsers
// require; naga, wgpu-native's compiler, does not parse it yet).
const SubgroupsEnable = "enable subgroups;"

var blockBegin = regexp.MustCompile(`(?m)^// ([a-z0-9_]+) begin$`)

// SubgroupBlocks are the names of the blocks SubgroupsFile offers
// (reduce_sum, reduce_max).
func SubgroupBlocks() []string {
	b, err := files.ReadFile(SubgroupsFile)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range blockBegin.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// HasSubgroupVariant reports whether src (a kernel's source, as Source
// returns it) marks a block that SubgroupsFile has a subgroup form of.
func HasSubgroupVariant(src string) bool {
	for _, name := range SubgroupBlocks() {
		if strings.Contains(src, "\n// "+name+" begin\n") {
			return true
		}
	}
	return false
}

// SubgroupVariant returns src with every marked block that SubgroupsFile
// has a form of ("// NAME begin" ... "// NAME end") replaced by that form,
// and SubgroupsEnable as its first line. It is an error when src marks
// none, or marks a block without its end.
func SubgroupVariant(src string) (string, error) {
	b, err := files.ReadFile(SubgroupsFile)
	if err != nil {
		return "", err
	}
	sg := string(b)
	n := 0
	for _, name := range SubgroupBlocks() {
		begin, end := "// "+name+" begin\n", "// "+name+" end\n"
		i := strings.Index(src, "\n"+begin)
		if i < 0 {
			continue
		}
		i++
		j := strings.Index(src[i:], end)
		if j < 0 {
			return "", fmt.Errorf("shaders: a kernel marks %q without %q", strings.TrimSpace(begin), strings.TrimSpace(end))
		}
		k, l := strings.Index(sg, begin), strings.Index(sg, end)
		src = src[:i] + sg[k:l+len(end)] + src[i+j+len(end):]
		n++
	}
	if n == 0 {
		return "", fmt.Errorf("shaders: the kernel marks no block of %s (%s)", SubgroupsFile, strings.Join(SubgroupBlocks(), ", "))
	}
	return SubgroupsEnable + "\n" + src, nil
}
