package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/remask/remask/engine/checkpoint"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/termsafe"
)

// `remask inspect FILE`: what a remask/1 model file holds, or what `remask
// convert` would make of a fork checkpoint.

// inspectArgs are the flags of `remask inspect`.
type inspectArgs struct {
	json        bool
	meta        string
	calibration string
}

func inspectFlags() (*flagSet, *inspectArgs) {
	a := &inspectArgs{}
	fs := newFlagSet("inspect", "FILE [flags]",
		"Describes a remask/1 model file (.safetensors) or a fork checkpoint (ckpt.pt): kind, sizes, parameter\n"+
			"count, heads, attention, positions, vocabulary and its special ids, dtype, source and card. For a\n"+
			"checkpoint it reports what `remask convert` would do: the fork family it detected ([SH] or [D7]),\n"+
			"each conversion step, the warnings, or why it cannot convert (then the exit status is 1).\n"+
			"Flags may come before or after FILE.")
	fs.boolVar(&a.json, "json", false, "print one JSON object on stdout instead of text")
	fs.stringVar(&a.meta, "meta", "", "FILE", "checkpoints only: the dataset's meta.pkl, as for remask convert")
	fs.showDefault("meta", "the checkpoint's config['meta']")
	fs.stringVar(&a.calibration, "calibration", "", "FILE", "checkpoints only: [D7] calibration.json, as for remask convert")
	fs.showDefault("calibration", "none")
	return fs, a
}

// inspectCommand is `remask inspect` in the command table's form.
func inspectCommand(ctx context.Context, c *cli, args []string) error {
	fs, a := inspectFlags()
	operands, err := parseOperands(fs, args, c.stdout)
	if err != nil {
		return err
	}
	path, err := oneOperand("inspect", "FILE", operands)
	if err != nil {
		return err
	}
	if err := checkInput("", path); err != nil {
		return err
	}
	opts, err := checkpointOptions(a.meta, a.calibration)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := checkpoint.InspectFile(path, opts)
	if err != nil {
		return err
	}
	if a.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return err
		}
	} else {
		// Every string of the summary comes from the file (card, vocabulary,
		// source, a checkpoint's keys): control characters are escaped
		// before they reach the terminal. JSON stays exact.
		var b strings.Builder
		writeSummary(&b, s)
		io.WriteString(c.stdout, termsafe.EscapeText(b.String()))
	}
	if s.Error != "" {
		return fmt.Errorf("%s cannot be converted as it is (the error is above)", path)
	}
	return nil
}

// maxListedSpecial bounds the special ids printed in text.
const maxListedSpecial = 8

// writeSummary prints s as aligned "field  value" lines.
func writeSummary(w io.Writer, s *checkpoint.Summary) {
	line := func(k, format string, a ...any) { fmt.Fprintf(w, "%-12s%s\n", k, fmt.Sprintf(format, a...)) }
	line("file", "%s", s.File)
	switch s.Format {
	case model.Format:
		line("format", "%s model file", s.Format)
	default:
		f := "fork checkpoint (torch.save)"
		if s.ForkFamily != "" {
			f += ", " + checkpoint.Family(s.ForkFamily).Label() + " family"
		}
		if s.IterNum != nil {
			f += fmt.Sprintf(", iter_num %d", *s.IterNum)
		}
		line("format", "%s", f)
	}
	if s.NLayer > 0 {
		line("kind", "%s", s.Kind)
		line("sizes", "n_layer %d, n_head %d, n_embd %d, block_size %d, vocab_size %d", s.NLayer, s.NHead, s.NEmbd, s.BlockSize, s.VocabSize)
		if s.Parameters > 0 {
			line("parameters", "%s", thousands(s.Parameters))
		}
		line("heads", "%s", headsText(s))
		line("attention", "%s", s.Attention)
		pos := s.PositionEncoding
		if s.PositionEncoding == model.Rotary {
			pos += fmt.Sprintf(" (base %g)", s.RopeBase)
		}
		line("positions", "%s", pos)
		line("bias", "%s", yesNo(s.Bias))
		if s.CLSTokenID != nil {
			line("cls", "id %d is replaced by cls_embedding", *s.CLSTokenID)
		}
		if s.Kind == model.LanguageModel {
			cal := "none"
			if s.CriticCalibration {
				cal = "critic calibration table (100 entries)"
			}
			line("calibration", "%s", cal)
		}
	}
	if v := s.Vocab; v != nil {
		line("vocabulary", "%s, %d ids: %d characters, then %d special", v.Type, v.Size, v.BaseVocabSize, len(v.Special))
		for i, sp := range v.Special {
			if i == maxListedSpecial {
				fmt.Fprintf(w, "%-12s... and %d more\n", "", len(v.Special)-i)
				break
			}
			role := ""
			if sp.Role != "" {
				role = " (" + sp.Role + ")"
			}
			fmt.Fprintf(w, "%-12s%d %s%s\n", "", sp.ID, sp.Token, role)
		}
	}
	if s.DType != "" {
		line("dtype", "%s", s.DType)
	}
	if src := s.Source; src != nil {
		var parts []string
		add := func(k, v string) {
			if v != "" {
				parts = append(parts, k+" "+v)
			}
		}
		add("converted_from", src.ConvertedFrom)
		add("fork_family", src.ForkFamily)
		if src.IterNum != nil {
			add("iter_num", fmt.Sprint(*src.IterNum))
		}
		add("dataset", src.Dataset)
		add("trainer", src.Trainer)
		add("created", src.Created)
		if len(parts) > 0 {
			line("source", "%s", strings.Join(parts, "; "))
		}
	}
	list := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintln(w, title)
		for _, it := range items {
			fmt.Fprintf(w, "  - %s\n", strings.ReplaceAll(it, "\n", "\n    "))
		}
	}
	list("conversion", s.Conversion)
	list("warnings", s.Warnings)
	if s.Error != "" {
		fmt.Fprintln(w, "error")
		fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(s.Error, "\n", "\n  "))
	}
	if s.Card != "" {
		fmt.Fprintln(w, "card")
		for _, l := range strings.Split(strings.TrimRight(s.Card, "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

func headsText(s *checkpoint.Summary) string {
	var parts []string
	for _, h := range s.Heads {
		switch h {
		case "lm":
			parts = append(parts, "lm (tied to wte)")
		case "sampler":
			parts = append(parts, fmt.Sprintf("sampler (neighbors %s, min_neighbors_ratio %g)", s.SamplerNeighbors, s.MinNeighborsRatio))
		case "classifier":
			parts = append(parts, fmt.Sprintf("classifier (%d classes)", s.NumTokenClasses))
		case "judge":
			parts = append(parts, "judge (sequence head on position 0)")
		default:
			parts = append(parts, h)
		}
	}
	return strings.Join(parts, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
