package checkpoint

import (
	"fmt"
	"path/filepath"
	"strings"
)

// The warnings about the heads' training, and the model card.

// trainingWarnings: heads saved before their training started or finished
// ramping up are still used by the reference (sampler-spec Q25).
func (c *Checkpoint) trainingWarnings(arch *architecture) []string {
	cfg := &arch.cfg
	if !cfg.HasCritic() && !cfg.HasSampler() {
		return nil
	}
	if c.IterNum == nil {
		return []string{"the checkpoint has no iter_num: cannot tell whether its critic/sampler heads were trained"}
	}
	it := *c.IterNum
	var w []string
	if cfg.HasSampler() && it < arch.startSampler {
		w = append(w, fmt.Sprintf("sampler head untrained: saved at iter_num %d, before start_sampler_iteration %d, so its weights are random; sample with --disable-sampler, or convert a later checkpoint", it, arch.startSampler))
	}
	if cfg.HasCritic() {
		switch {
		case it < arch.startCritic:
			w = append(w, fmt.Sprintf("critic head untrained: saved at iter_num %d, before start_critic_iteration %d, so its scores are random; do not use critic-based remasking with this checkpoint", it, arch.startCritic))
		case it < arch.endCritic:
			w = append(w, fmt.Sprintf("critic head half-trained: saved at iter_num %d, before end_critic_iteration %d (its loss weight was still ramping up); its scores may be unreliable", it, arch.endCritic))
		}
	}
	return w
}

// card is the model card: what the file is and where it came from.
func (c *Checkpoint) card(conv *Conversion) string {
	m := conv.Model
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", strings.TrimSuffix(filepath.Base(c.Path), filepath.Ext(c.Path)))
	fmt.Fprintf(&b, "A %s converted by `remask convert` from the diffusion-first nanoGPT fork checkpoint `%s` (%s family).\n\n",
		m.Config.Kind, filepath.Base(c.Path), conv.Family.Label())
	fmt.Fprintf(&b, "- size: %d layers, %d heads, n_embd %d, block_size %d, vocabulary %d\n", m.Config.NLayer, m.Config.NHead, m.Config.NEmbd, m.Config.BlockSize, m.Config.VocabSize)
	if c.IterNum != nil {
		fmt.Fprintf(&b, "- iter_num: %d\n", *c.IterNum)
	}
	if c.BestValLoss != nil {
		fmt.Fprintf(&b, "- best_val_loss (as saved; the latest validation loss when always_save_checkpoint is set): %.4f\n", *c.BestValLoss)
	}
	if d := c.dataset(""); d != "" {
		fmt.Fprintf(&b, "- dataset: %s\n", d)
	}
	for _, a := range conv.Actions {
		fmt.Fprintf(&b, "- conversion: %s\n", a)
	}
	for _, w := range conv.Warnings {
		fmt.Fprintf(&b, "- warning: %s\n", w)
	}
	return b.String()
}
