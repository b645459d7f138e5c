package checkpoint

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/remask/remask/engine/model"
)

// Mapping the state dict onto the tensors of model.Expected: names, shapes,
// LoRA merges, and what is dropped and why.

var (
	reCausalMask = regexp.MustCompile(`^transformer\.h\.\d+\.attn\.bias$`)
	reRopeBuffer = regexp.MustCompile(`\.(inv_freq|cos_cached|sin_cached)$`)
	reGuidance   = regexp.MustCompile(`^(plan_encoder\.|transformer\.h\.\d+\.(cross|ln_cross)\.)`)
	reLoRA       = regexp.MustCompile(`^transformer\.h\.\d+\.(attn\.lora_(qkv|out)|mlp\.lora_(fc|proj))\.`)
)

// loraTargets pairs each base Linear of a block with its [D7] adapter.
var loraTargets = []struct{ base, lora string }{
	{"attn.c_attn", "attn.lora_qkv"},
	{"attn.c_proj", "attn.lora_out"},
	{"mlp.c_fc", "mlp.lora_fc"},
	{"mlp.c_proj", "mlp.lora_proj"},
}

// maxProblems bounds the tensor problems listed in one error.
const maxProblems = 40

// mapTensors turns the state dict into exactly the tensors of
// model.Expected, checking names and shapes, merging LoRA and dropping what
// inference does not use. The phases run in this order, and each adds to
// the actions (what was done) and the problems (reported together at the
// end, so that one error lists every mismatch).
func (c *Checkpoint) mapTensors(arch *architecture) (map[string]*model.Tensor, []string, error) {
	m, err := newTensorMapper(c.StateDict, arch)
	if err != nil {
		return nil, nil, err
	}
	m.dropBuffers()
	if err := m.dropHeads(); err != nil {
		return nil, nil, err
	}
	m.takeExpected()
	m.mergeLoRA()
	return m.finish()
}

// tensorMapper is the state of one mapTensors call.
type tensorMapper struct {
	arch *architecture
	cfg  *model.Config
	// sd is the state dict with the torch.compile prefix stripped.
	sd map[string]*Tensor
	// used marks the entries of sd that were taken, merged or dropped.
	used map[string]bool
	// out are the tensors of the model, by model.Expected name.
	out      map[string]*model.Tensor
	actions  []string
	problems []string
}

// newTensorMapper strips the torch.compile prefix `_orig_mod.` (the
// loaders strip a leading one only).
func newTensorMapper(stateDict map[string]*Tensor, arch *architecture) (*tensorMapper, error) {
	m := &tensorMapper{
		arch: arch,
		cfg:  &arch.cfg,
		sd:   make(map[string]*Tensor, len(stateDict)),
		used: map[string]bool{},
		out:  map[string]*model.Tensor{},
	}
	prefixed := 0
	for _, k := range sortedNames(stateDict) {
		name := k
		if strings.HasPrefix(k, "_orig_mod.") {
			name = strings.TrimPrefix(k, "_orig_mod.")
			prefixed++
		}
		if _, dup := m.sd[name]; dup {
			return nil, fmt.Errorf("the state dict has both %s and _orig_mod.%s", name, name)
		}
		m.sd[name] = stateDict[k]
	}
	if prefixed > 0 {
		m.actions = append(m.actions, fmt.Sprintf("stripped the _orig_mod. prefix (torch.compile) from %d keys", prefixed))
	}
	return m, nil
}

// drop marks names as used, with one action line saying why.
func (m *tensorMapper) drop(names []string, why string) {
	if len(names) == 0 {
		return
	}
	for _, n := range names {
		m.used[n] = true
	}
	m.actions = append(m.actions, fmt.Sprintf("dropped %s: %s", countNames(names), why))
}

// matching lists the names of sd that re matches, in order.
func (m *tensorMapper) matching(re *regexp.Regexp) []string {
	var out []string
	for _, n := range sortedNames(m.sd) {
		if re.MatchString(n) {
			out = append(out, n)
		}
	}
	return out
}

func (m *tensorMapper) problem(format string, args ...any) {
	m.problems = append(m.problems, fmt.Sprintf(format, args...))
}

// dropBuffers drops the buffers inference recomputes: causal masks and RoPE
// tables.
func (m *tensorMapper) dropBuffers() {
	var masks []string
	for _, n := range m.matching(reCausalMask) {
		if s := m.sd[n].Shape; len(s) == 4 && s[0] == 1 && s[1] == 1 && s[2] == s[3] {
			masks = append(masks, n)
		}
	}
	m.drop(masks, "causal-mask buffers (attn.bias) of the non-SDPA attention")
	m.drop(m.matching(reRopeBuffer), "RoPE buffers (recomputed from rope_base)")
}

// dropHeads drops the LM head a language model ties to the embedding (it
// must be equal), the [D7] heads the mode does not use, and the guidance
// weights.
func (m *tensorMapper) dropHeads() error {
	arch, sd := m.arch, m.sd
	if head, ok := sd["lm_head.weight"]; ok {
		switch {
		case m.cfg.Kind == model.LanguageModel:
			if wte, ok := sd["transformer.wte.weight"]; ok {
				if err := checkTied(head, wte); err != nil {
					return err
				}
				m.drop([]string{"lm_head.weight"}, "tied to transformer.wte.weight (equal values; remask ties it back)")
			}
		case arch.dropLM:
			m.drop([]string{"lm_head.weight"}, "the [D7] LM head, unused by a sequence_scorer")
		}
	}
	if arch.dropSequence {
		var seq []string
		for _, n := range []string{"sequence_head.base_predictor.weight", "sequence_head.A", "sequence_head.B", "sequence_head.temperature"} {
			if _, ok := sd[n]; ok {
				seq = append(seq, n)
			}
		}
		m.drop(seq, "the [D7] sequence head, unused by a language model")
	}
	if arch.dropCritic {
		if _, ok := sd["critic_head.weight"]; ok {
			m.drop([]string{"critic_head.weight"}, "the critic head, unused by a sequence_scorer")
		}
	}
	if arch.family == D7 && arch.guidance {
		m.drop(m.matching(reGuidance), "guidance weights (plan_encoder, cross, ln_cross), never used at sampling time (sampler-spec 1.7)")
	}
	return nil
}

// takeExpected takes every tensor the architecture needs, with its exact
// shape; with share_main_matrices a base matrix listed under block 0 only
// serves every block.
func (m *tensorMapper) takeExpected() {
	shared := 0
	for _, spec := range model.Expected(m.cfg) {
		name := spec.Name
		t, ok := m.sd[name]
		if !ok && m.arch.shareMain {
			// Shared matrices are listed under every block; tolerate a file
			// that lists them under block 0 only.
			if src, isBase := block0(name); isBase {
				if t, ok = m.sd[src]; ok {
					shared++
				}
			}
		}
		if !ok {
			m.problem("missing tensor %s, shape %v", name, spec.Shape)
			continue
		}
		m.used[name] = true
		if !slices.Equal(t.Shape, spec.Shape) {
			m.problem("tensor %s: shape %v, want %v", name, t.Shape, spec.Shape)
			continue
		}
		if t.Data == nil {
			m.problem("tensor %s: dtype %s, want a floating-point tensor", name, t.DType)
			continue
		}
		m.out[name] = &model.Tensor{Shape: slices.Clone(spec.Shape), Data: slices.Clone(t.Data)}
	}
	switch {
	case shared > 0:
		m.actions = append(m.actions, fmt.Sprintf("share_main_matrices: %d base matrices and biases not listed under their block were taken from block 0", shared))
	case m.arch.shareMain:
		m.actions = append(m.actions, "share_main_matrices: every block keeps its own copy of block 0's base matrices, so that each block's LoRA is merged into its own copy")
	}
}

// mergeLoRA merges the [D7] adapters: W' = W + (alpha/rank) * B @ A, per
// block (adapters are per block even when the base matrices are shared).
func (m *tensorMapper) mergeLoRA() {
	arch := m.arch
	if arch.family != D7 || !arch.loraAttn && !arch.loraMLP {
		return
	}
	merged := 0
	for i := 0; i < m.cfg.NLayer; i++ {
		for _, tg := range loraTargets {
			if strings.HasPrefix(tg.base, "attn.") && !arch.loraAttn || strings.HasPrefix(tg.base, "mlp.") && !arch.loraMLP {
				continue
			}
			p := fmt.Sprintf("transformer.h.%d.", i)
			w := m.out[p+tg.base+".weight"]
			if w == nil {
				continue // already reported
			}
			if m.mergeOne(w, p+tg.lora) {
				merged++
			}
		}
	}
	if merged > 0 {
		m.actions = append(m.actions, fmt.Sprintf("merged LoRA into %d matrices: W + (alpha/rank) * B @ A with rank %d, scaling %g", merged, arch.loraRank, arch.loraScale))
	}
}

// mergeOne merges the adapter lora (its .A and .B) into w, or records why
// it cannot.
func (m *tensorMapper) mergeOne(w *model.Tensor, lora string) bool {
	r := m.arch.loraRank
	nOut, nIn := w.Shape[0], w.Shape[1]
	aName, bName := lora+".A.weight", lora+".B.weight"
	A, okA := m.sd[aName]
	B, okB := m.sd[bName]
	if !okA {
		m.problem("missing tensor %s, shape %v (model_args enable LoRA with rank %d)", aName, []int{r, nIn}, r)
	}
	if !okB {
		m.problem("missing tensor %s, shape %v (model_args enable LoRA with rank %d)", bName, []int{nOut, r}, r)
	}
	if !okA || !okB {
		return false
	}
	m.used[aName], m.used[bName] = true, true
	if !slices.Equal(A.Shape, []int{r, nIn}) || A.Data == nil {
		m.problem("tensor %s: shape %v %s, want %v float", aName, A.Shape, A.DType, []int{r, nIn})
		return false
	}
	if !slices.Equal(B.Shape, []int{nOut, r}) || B.Data == nil {
		m.problem("tensor %s: shape %v %s, want %v float", bName, B.Shape, B.DType, []int{nOut, r})
		return false
	}
	mergeLoRA(w.Data, A.Data, B.Data, nOut, nIn, r, m.arch.loraScale)
	return true
}

// finish reports every tensor nothing used as unexpected, and every
// problem in one error; else it ties the LM head back.
func (m *tensorMapper) finish() (map[string]*model.Tensor, []string, error) {
	for _, n := range sortedNames(m.sd) {
		if !m.used[n] {
			m.problem("unexpected tensor %s, shape %v%s", n, m.sd[n].Shape, unexpectedHint(n, m.arch))
		}
	}
	if problems := m.problems; len(problems) > 0 {
		if len(problems) > maxProblems {
			problems = append(problems[:maxProblems], fmt.Sprintf("... and %d more", len(problems)-maxProblems))
		}
		cfg := m.cfg
		return nil, nil, fmt.Errorf("the state dict does not match the %s %s that model_args describe (n_layer %d, n_head %d, n_embd %d, vocab_size %d, bias %v%s):\n  %s",
			m.arch.family.Label(), cfg.Kind, cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.VocabSize, cfg.Bias, headsNote(cfg), strings.Join(problems, "\n  "))
	}
	if m.cfg.Kind == model.LanguageModel {
		m.out["lm_head.weight"] = m.out["transformer.wte.weight"]
	}
	return m.out, m.actions, nil
}

// block0 maps a shared base matrix of block i to block 0's name.
func block0(name string) (string, bool) {
	var i int
	var rest string
	if n, _ := fmt.Sscanf(name, "transformer.h.%d.%s", &i, &rest); n != 2 || i == 0 {
		return "", false
	}
	for _, tg := range loraTargets {
		if rest == tg.base+".weight" || rest == tg.base+".bias" {
			return "transformer.h.0." + rest, true
		}
	}
	return "", false
}

// unexpectedHint says which model_args flag would explain a tensor.
func unexpectedHint(name string, arch *architecture) string {
	switch {
	case strings.HasPrefix(name, "sampler_head."):
		return " (model_args add_sampler_head is not True)"
	case strings.HasPrefix(name, "critic_head."):
		return " (model_args add_critic_head is not True)"
	case name == "cls_embedding":
		return " (model_args cls_token_id is not set, or this mode has no CLS embedding)"
	case name == "transformer.wpe.weight":
		return " (the model_args position encoding is not absolute)"
	case reLoRA.MatchString(name):
		return " (model_args do not enable LoRA for this layer)"
	case reGuidance.MatchString(name):
		return " (model_args use_guidance is False)"
	case strings.HasSuffix(name, ".bias") && !arch.cfg.Bias:
		return " (model_args bias is False)"
	}
	return ""
}

func headsNote(cfg *model.Config) string {
	if cfg.Heads == nil {
		return ""
	}
	return fmt.Sprintf(", critic %v, sampler %v", cfg.Heads.Critic, cfg.Heads.Sampler)
}

// checkTied accepts an LM head only as a copy of the token embedding.
func checkTied(head, wte *Tensor) error {
	if head.Data == nil || wte.Data == nil {
		return fmt.Errorf("lm_head.weight (%s) or transformer.wte.weight (%s) is not a floating-point tensor: the checkpoint is not a fork model", head.DType, wte.DType)
	}
	if !slices.Equal(head.Shape, wte.Shape) {
		return fmt.Errorf("lm_head.weight has shape %v but transformer.wte.weight has %v: remask supports only LM heads tied to the token embedding (the fork ties them)", head.Shape, wte.Shape)
	}
	for i := range head.Data {
		if math.Float32bits(head.Data[i]) != math.Float32bits(wte.Data[i]) {
			return fmt.Errorf("lm_head.weight differs from transformer.wte.weight (element %d: %v vs %v): an untied LM head is not supported by remask/1 (the fork's models tie it)", i, head.Data[i], wte.Data[i])
		}
	}
	return nil
}

// mergeLoRA adds scale * B @ A to w in place: w (out, in), a (r, in), b (out, r).
// Sums are taken in float64 and rounded once.
func mergeLoRA(w, a, b []float32, nOut, nIn, r int, scale float64) {
	row := make([]float64, nIn)
	for o := 0; o < nOut; o++ {
		clear(row)
		for k := 0; k < r; k++ {
			bk := float64(b[o*r+k])
			ak := a[k*nIn : (k+1)*nIn]
			for i, v := range ak {
				row[i] += bk * float64(v)
			}
		}
		wo := w[o*nIn : (o+1)*nIn]
		for i := range wo {
			wo[i] = float32(float64(wo[i]) + scale*row[i])
		}
	}
}

func sortedNames[T any](m map[string]T) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// countNames is "3 tensors (a, b, c)", abbreviated after a few names.
func countNames(names []string) string {
	const show = 4
	list := names
	more := ""
	if len(list) > show {
		list, more = list[:show], fmt.Sprintf(", ... %d more", len(names)-show)
	}
	noun := "tensors"
	if len(names) == 1 {
		noun = "tensor"
	}
	return fmt.Sprintf("%d %s (%s%s)", len(names), noun, strings.Join(list, ", "), more)
}
