package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/remask/remask/engine/checkpoint"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/safefile"
	"github.com/remask/remask/internal/termsafe"
)

// `remask convert CKPT.pt -o OUT.safetensors`: a fork checkpoint in, a
// remask/1 model file out (engine/checkpoint does the work; docs/convert.md
// says what is supported).

// convertArgs are the flags of `remask convert`.
type convertArgs struct {
	output      string
	meta        string
	calibration string
	dtype       string
	neighbors   string
	card        string
	force       bool
}

func convertFlags() (*flagSet, *convertArgs) {
	a := &convertArgs{}
	fs := newFlagSet("convert", "CKPT.pt -o OUT.safetensors [flags]",
		"Converts a checkpoint of the diffusion-first nanoGPT fork (the ckpt.pt its train.py writes, from the\n"+
			"[SH] or the [D7] model.py) into a remask/1 model file. The vocabulary comes from the checkpoint's\n"+
			"config['meta'], or from --meta. Untrained heads and a missing calibration table are reported as\n"+
			"warnings on stderr; anything remask cannot run is an error naming it. docs/convert.md has the details.\n"+
			"Given a remask/1 .safetensors file instead of CKPT.pt, it writes that model again with --dtype and\n"+
			"--card (weights, vocabulary and provenance kept), e.g. to store a card measured after conversion.\n"+
			"Flags may come before or after CKPT.pt.")
	fs.stringVar(&a.output, "output", "", "FILE", "the remask/1 .safetensors file to write; replaced only once complete")
	fs.showDefault("output", "none: required")
	fs.stringVar(&a.output, "o", "", "FILE", "short for --output")
	fs.showDefault("o", "none: required")
	fs.stringVar(&a.meta, "meta", "", "FILE", "the dataset's meta.pkl (data/<dataset>/meta.pkl), for checkpoints without config['meta']; it replaces an embedded one")
	fs.showDefault("meta", "the checkpoint's config['meta']")
	fs.stringVar(&a.calibration, "calibration", "", "FILE", "[D7] calibration.json; the checkpoint's entry is matched by its path, resolved path or file name")
	fs.showDefault("calibration", "none: no critic calibration table")
	fs.stringVar(&a.dtype, "dtype", "f32", "TYPE", "stored weight type: f32 | f16 | bf16")
	fs.stringVar(&a.neighbors, "sampler-neighbors", "", "MODE", "zeros | embeddings: how the sampler head was trained (fork heads: zeros, spec Q2)")
	fs.showDefault("sampler-neighbors", "the checkpoint's config['sampler_neighbors'], else zeros")
	fs.stringVar(&a.card, "card", "", "FILE", "a Markdown model card to store in the file instead of the generated one")
	fs.showDefault("card", "a card generated from the checkpoint (family, iteration, what was converted)")
	fs.boolVar(&a.force, "force", false, "let --output replace an existing file (never the checkpoint or another input); without it an existing path is refused")
	return fs, a
}

// convertCommand is `remask convert` in the command table's form.
func convertCommand(ctx context.Context, c *cli, args []string) error {
	fs, a := convertFlags()
	operands, err := parseOperands(fs, args, c.stdout)
	if err != nil {
		return err
	}
	in, err := oneOperand("convert", "CKPT.pt -o OUT.safetensors", operands)
	if err != nil {
		return err
	}
	if a.output == "" {
		return flagError("output", "missing: name the remask/1 file to write, e.g. -o model.safetensors")
	}
	dtype, err := parseDType(a.dtype)
	if err != nil {
		return err
	}
	if same, _ := sameFile(in, a.output); same {
		return flagError("output", "%s is the checkpoint itself: write the model to another file", a.output)
	}
	if err := checkInput("", in); err != nil {
		return err
	}
	out := safefile.CreateOptions{Force: a.force, Flag: "--output", Inputs: []string{in, a.meta, a.calibration, a.card}}
	if err := safefile.CheckOutput(a.output, out); err != nil {
		return &usageError{msg: err.Error()}
	}
	if isModelFile(in) {
		return a.rewrite(c, in, dtype, out)
	}
	opts, err := checkpointOptions(a.meta, a.calibration)
	if err != nil {
		return err
	}
	switch a.neighbors {
	case "", model.NeighborsZeros, model.NeighborsEmbeddings:
		opts.SamplerNeighbors = a.neighbors
	default:
		return flagError("sampler-neighbors", "%q is not a neighbour mode; allowed: zeros, embeddings", a.neighbors)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ck, err := checkpoint.Open(in)
	if err != nil {
		return err
	}
	conv, err := ck.Plan(opts)
	if err != nil {
		return err
	}
	if err := a.setCard(conv.Model); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := model.SaveWith(a.output, conv.Model, dtype, out); err != nil {
		return err
	}
	size := fileSize(a.output)
	for _, w := range conv.Warnings {
		fmt.Fprintf(c.stderr, "remask convert: warning: %s\n", termsafe.EscapeText(w))
	}
	fmt.Fprintf(c.stdout, "wrote %s: %s\n", a.output, convertSummary(conv, dtype, size))
	return nil
}

// isModelFile reports whether path starts like a safetensors file (an 8-byte
// little-endian header length, then the header's "{"), not like a
// checkpoint (a zip archive or a pickle). Unreadable files are no model
// files: the checkpoint reader then names the problem.
func isModelFile(path string) bool {
	f, _, err := safefile.OpenRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [9]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	return b[8] == '{' && b[7] == 0 && b[6] == 0
}

// rewrite is convert with a remask/1 file as input: the model is read and
// checked as every command reads it, and written again with --dtype and, with
// --card, a new card (e.g. a trained model whose card is measured after its
// checkpoint was converted). Weights, vocabulary and provenance are kept;
// f16 -> f16 and f32 -> f32 keep every bit. The checkpoint-only flags are
// refused, not ignored.
func (a *convertArgs) rewrite(c *cli, in, dtype string, out safefile.CreateOptions) error {
	for _, f := range []struct{ name, val string }{{"meta", a.meta}, {"calibration", a.calibration}, {"sampler-neighbors", a.neighbors}} {
		if f.val != "" {
			return flagError(f.name, "applies to checkpoints; %s is already a remask/1 model file (its vocabulary, calibration and sampler neighbours are kept)", in)
		}
	}
	m, err := model.Load(in)
	if err != nil {
		return err
	}
	if err := a.setCard(m); err != nil {
		return err
	}
	if err := model.SaveWith(a.output, m, dtype, out); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s: the remask/1 model %s rewritten as %s (%s bytes)\n", a.output, termsafe.EscapeText(in), dtype, thousands(fileSize(a.output)))
	return nil
}

// setCard stores --card's file, when given, as m's card.
func (a *convertArgs) setCard(m *model.Model) error {
	if a.card == "" {
		return nil
	}
	card, err := safefile.ReadFile(a.card, maxCardBytes)
	if err != nil {
		return flagError("card", "%v", err)
	}
	m.Card = string(card)
	return nil
}

// fileSize is the size of the file written at path, or -1 if it cannot be
// read back (the summary line then says so).
func fileSize(path string) int64 {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size()
	}
	return -1
}

// convertSummary is the one-line description of a conversion.
func convertSummary(conv *checkpoint.Conversion, dtype string, size int64) string {
	m := conv.Model
	cfg := &m.Config
	s := checkpoint.Summarize(m)
	from := conv.Family.Label()
	if m.Source.IterNum != nil {
		from += fmt.Sprintf(" iter %d", *m.Source.IterNum)
	}
	line := fmt.Sprintf("%s from %s; n_layer %d, n_head %d, n_embd %d, block_size %d, vocab %d; %s parameters; heads %s; %s",
		cfg.Kind, from, cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.BlockSize, cfg.VocabSize,
		thousands(s.Parameters), strings.Join(s.Heads, "+"), dtype)
	if size >= 0 {
		line += fmt.Sprintf(", %s bytes", thousands(size))
	}
	if n := len(conv.Warnings); n > 0 {
		line += fmt.Sprintf(" (%d warning%s on stderr)", n, plural(n))
	}
	return line
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// thousands writes n with comma separators: 1234567 -> "1,234,567".
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// parseDType turns --dtype into a model dtype.
func parseDType(s string) (string, error) {
	switch strings.ToLower(s) {
	case "f32", "float32":
		return model.F32, nil
	case "f16", "float16":
		return model.F16, nil
	case "bf16", "bfloat16":
		return model.BF16, nil
	}
	return "", flagError("dtype", "%q is not a stored type; allowed: f32, f16, bf16", s)
}

// checkpointOptions checks --meta and --calibration and reads the meta, so
// that a wrong path is reported against its flag.
func checkpointOptions(meta, calibration string) (checkpoint.Options, error) {
	var opts checkpoint.Options
	if meta != "" {
		if err := checkInput("meta", meta); err != nil {
			return opts, err
		}
		m, err := checkpoint.ReadMeta(meta)
		if err != nil {
			return opts, flagError("meta", "%v", err)
		}
		opts.Meta = m
	}
	if calibration != "" {
		if err := checkInput("calibration", calibration); err != nil {
			return opts, err
		}
		opts.CalibrationPath = calibration
	}
	return opts, nil
}

// maxCardBytes bounds a --card file (a model card is a page of Markdown).
const maxCardBytes = 1 << 20

// checkInput refuses, before any reader opens it, a path that is not a
// regular file (a FIFO would block the reader forever, /dev/zero would be
// read until memory runs out), as a usage error naming flag ("" for the
// command's operand, whose missing file stays a failure, exit 1). The open does not block: safefile.OpenRegular.
func checkInput(flag, path string) error {
	f, _, err := safefile.OpenRegular(path)
	switch {
	case err == nil:
	case flag != "":
		return flagError(flag, "%v", err)
	case errors.Is(err, safefile.ErrNotRegular):
		return &usageError{msg: err.Error()}
	default:
		return err // a missing or unreadable file: the command failed (exit 1)
	}
	return f.Close()
}

// sameFile reports whether two paths name one existing file.
func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

// parseOperands parses flags that may come before, between or after the
// operands (the flag package alone stops at the first operand), and returns
// the operands. Everything after "--" is an operand.
func parseOperands(fs *flagSet, args []string, stdout io.Writer) ([]string, error) {
	var operands []string
	for {
		err := fs.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.usage(stdout)
			return nil, errHelp
		}
		if err != nil {
			return nil, &usageError{msg: fs.parseMessage(err)}
		}
		rest := fs.fs.Args()
		if len(rest) == 0 {
			return operands, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(operands, rest...), nil
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

// oneOperand requires exactly one operand (the file a command works on).
func oneOperand(cmd, synopsis string, operands []string) (string, error) {
	switch len(operands) {
	case 0:
		return "", &usageError{msg: fmt.Sprintf("missing the file to work on: remask %s %s", cmd, synopsis)}
	case 1:
		return operands[0], nil
	}
	return "", &usageError{msg: fmt.Sprintf("unexpected argument %q: %s takes one file (values that contain spaces need quotes)", operands[1], cmd)}
}
