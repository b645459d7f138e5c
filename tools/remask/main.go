// Command remask samples text from masked-diffusion char-level language
// models (the diffusion-first nanoGPT fork's models, as remask/1
// .safetensors files).
//
//	remask sample  [flags]   generate text (the reference sample_simple.py, and more)
//	remask forward [flags]   run one forward pass on token ids read as JSON from stdin
//	remask score   [flags]   the quality metrics of given text
//	remask models  [flags]   list the models found in the model folders
//	remask inspect FILE      describe a model file or a fork checkpoint
//	remask convert CKPT.pt   convert a fork checkpoint into a remask/1 model file
//	remask serve   [flags]   serve the generation API and the demo site
//	remask bench   [flags]   time the forward pass or whole generations
//	remask pull    URL       download a model into the per-user model folder
//	remask version           the module version and VCS revision (also --version)
//	remask help [command]    list the commands, or one command's flags
//
// docs/cli.md describes every flag. The whole program is run(): main only
// wires it to the process (arguments, standard streams, Ctrl-C), so that the
// tests call it in-process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"

	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/termsafe"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1   // the command ran and failed (a broken model file, an I/O error)
	exitUsage       = 2   // bad flags or input: nothing ran
	exitInternal    = 3   // a bug in remask: an unexpected panic (set REMASK_DEBUG=1 for the stack)
	exitInterrupted = 130 // Ctrl-C
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli is what one run of the program may touch: its standard streams and the
// two facts about the process that the model search needs. Tests fill it
// directly when they need to fake the environment.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	executable     func() (string, error)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
	// flags builds the command's flag set for --help without running it.
	flags func() *flagSet
}

func commands() []command {
	return []command{
		{"sample", "generate text with a masked-diffusion language model", runSample, func() *flagSet { fs, _ := sampleFlags(); return fs }},
		{"forward", "run one forward pass on token ids read as JSON from stdin; print logits as JSON", runForward, func() *flagSet { fs, _ := forwardFlags(); return fs }},
		{"score", "compute the quality metrics of given text (judge, self-confidence, critic)", scoreCommand, func() *flagSet { fs, _ := scoreFlags(); return fs }},
		{"models", "list the models found in the model folders, with their kind and sizes", modelsCommand, func() *flagSet { fs, _ := modelsFlags(); return fs }},
		{"inspect", "describe a model file, or what convert would make of a fork checkpoint", inspectCommand, func() *flagSet { fs, _ := inspectFlags(); return fs }},
		{"convert", "convert a fork checkpoint (ckpt.pt) into a remask/1 model file", convertCommand, func() *flagSet { fs, _ := convertFlags(); return fs }},
		{"serve", "serve the generation API and the demo site over HTTP", serveCommand, func() *flagSet { fs, _ := serveFlags(); return fs }},
		{"bench", "time the forward pass (ms per forward, TFLOP/s) or whole generations (--job standard|small) on a backend", runBench, func() *flagSet { fs, _ := benchFlags(); return fs }},
		{"eval", "quality against compute: every decoding policy at every step count, as a table, JSON and SVG curves", runEval, func() *flagSet { fs, _ := evalFlags(); return fs }},
		{"pull", "download a model file over http(s) into the per-user model folder (resumable, verified)", pullCommand, func() *flagSet { fs, _ := pullFlags(); return fs }},
	}
}

// run is the whole program: it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, executable: os.Executable}
	defer removeRuntimeDir() // the private XDG_RUNTIME_DIR of the GPU probe, if one was made
	return c.main(ctx, args)
}

func (c *cli) main(ctx context.Context, args []string) int {
	if len(args) == 0 {
		c.usage(c.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "version", "--version", "-version":
		fmt.Fprintln(c.stdout, versionString())
		return exitOK
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 {
			cmd, ok := findCommand(rest[0])
			if !ok {
				fmt.Fprintf(c.stderr, "remask help: unknown command %q\n\n", rest[0])
				c.usage(c.stderr)
				return exitUsage
			}
			cmd.flags().usage(c.stdout)
			return exitOK
		}
		c.usage(c.stdout)
		return exitOK
	}
	cmd, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(c.stderr, "remask: unknown command %q\n\n", name)
		c.usage(c.stderr)
		return exitUsage
	}
	return c.runCommand(ctx, cmd, rest)
}

// runCommand runs one command and maps its outcome to an exit code. A panic
// (a bug in remask, never the user's fault) becomes a short message with
// exit code 3 instead of a Go stack trace and exit code 2, which reads as a
// usage error; REMASK_DEBUG=1 prints the stack too. Panics on other
// goroutines cannot be caught here: those still crash with Go's trace.
func (c *cli) runCommand(ctx context.Context, cmd command, args []string) (code int) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		fmt.Fprintf(c.stderr, "remask %s: internal error: %s\n", cmd.name, termsafe.Escape(fmt.Sprint(r)))
		if c.getenv("REMASK_DEBUG") != "" {
			c.stderr.Write(debug.Stack())
		} else {
			fmt.Fprintln(c.stderr, "This is a bug in remask. Please report it with the command line you ran; REMASK_DEBUG=1 adds the stack trace.")
		}
		code = exitInternal
	}()
	return c.report(cmd.name, cmd.run(ctx, c, args))
}

func findCommand(name string) (command, bool) {
	for _, cmd := range commands() {
		if cmd.name == name {
			return cmd, true
		}
	}
	return command{}, false
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "remask samples text from masked-diffusion char-level language models.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage:")
	fmt.Fprintln(w, "  remask <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n", "version", "print the version, the VCS revision and the Go version (also --version)")
	fmt.Fprintf(w, "  %-8s %s\n", "help", "list the commands, or with a command name its flags")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Models are looked up in $REMASK_MODELS, ./models, the per-user folder")
	fmt.Fprintln(w, "$XDG_DATA_HOME/remask/models (default ~/.local/share/remask/models) and <executable dir>/../models.")
	fmt.Fprintln(w, "Run 'remask <command> --help' for a command's flags, their defaults and allowed ranges;")
	fmt.Fprintln(w, "docs/cli.md in the source tree has examples.")
}

// usageError is a mistake in the command line or the input: nothing ran.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// flagError names a flag in --kebab-case.
func flagError(flag, format string, a ...any) error {
	return &usageError{msg: "--" + flag + ": " + fmt.Sprintf(format, a...)}
}

// errHelp is returned by a command that printed its help on request.
var errHelp = errors.New("help requested")

// report prints err and maps it to an exit code.
func (c *cli) report(cmd string, err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	var ue *usageError
	var oe *sampler.OptionError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "remask %s: %s\n", cmd, termsafe.EscapeText(ue.msg))
		fmt.Fprintf(c.stderr, "Run 'remask %s --help' for the flags, their defaults and allowed ranges.\n", cmd)
		return exitUsage
	case errors.As(err, &oe):
		fmt.Fprintf(c.stderr, "remask %s: %s\n", cmd, termsafe.EscapeText(optionMessage(oe)))
		fmt.Fprintf(c.stderr, "Run 'remask %s --help' for the flags, their defaults and allowed ranges.\n", cmd)
		return exitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(c.stderr, "remask %s: interrupted\n", cmd)
		return exitInterrupted
	}
	// Errors may quote strings from files (a checkpoint's keys, a model's
	// metadata): escaped, as everything from a file that reaches the terminal.
	fmt.Fprintf(c.stderr, "remask %s: %s\n", cmd, termsafe.EscapeText(err.Error()))
	return exitFailure
}

// optionMessage turns a sampler option error into one that names the CLI
// flag: the field and every option name quoted in the message become
// --kebab-case.
func optionMessage(oe *sampler.OptionError) string {
	msg := oe.Msg
	for _, name := range optionNames() {
		msg = replaceWord(msg, name, "--"+kebab(name))
	}
	return "--" + kebab(oe.Field) + ": " + msg
}

// optionNames are the snake_case option names that contain an underscore
// (the others read the same either way), longest first so that no name is
// replaced inside a longer one.
func optionNames() []string {
	return []string{
		"randomness_strength", "remasking_model", "sampler_neighbors", "disable_sampler",
		"sequence_length", "masking_ratios", "quality_metric", "seed_placement",
		"schedule_mode", "unknown_chars", "num_samples", "start_ratio", "end_ratio",
		"seed_text", "top_p", "max_memory",
	}
}

func kebab(snake string) string { return strings.ReplaceAll(snake, "_", "-") }

// replaceWord replaces old by repl where old is not part of a longer
// identifier (letters, digits, '_' or '-' on either side).
func replaceWord(s, old, repl string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + len(old)
		whole := (i == 0 || !identByte(s[i-1])) && (end == len(s) || !identByte(s[end]))
		b.WriteString(s[:i])
		if whole {
			b.WriteString(repl)
		} else {
			b.WriteString(old)
		}
		s = s[end:]
	}
}

func identByte(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
