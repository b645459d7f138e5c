package main

import (
	"bytes"
	"context"
	"flag"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/remask/remask/engine/sampler"
)

// golden is the folder of the PyTorch-made fixtures (never edited by hand).
var golden = filepath.Join("..", "..", "testdata", "golden")

func goldenPath(name string) string { return filepath.Join(golden, name) }

// runCLI runs the program in-process.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpListsEveryFlag(t *testing.T) {
	type helpCase struct {
		args  []string
		flags func() *flagSet // nil: the command list
	}
	cases := []helpCase{{[]string{"--help"}, nil}, {[]string{"-h"}, nil}, {[]string{"help"}, nil}}
	for _, cmd := range commands() {
		cases = append(cases, helpCase{[]string{cmd.name, "--help"}, cmd.flags}, helpCase{[]string{"help", cmd.name}, cmd.flags})
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, "", tc.args...)
			if code != exitOK {
				t.Fatalf("exit %d, want 0; stderr:\n%s", code, errOut)
			}
			if tc.flags == nil {
				for _, cmd := range append(commands(), command{name: "help"}) {
					if !strings.Contains(out, "\n  "+cmd.name+" ") {
						t.Errorf("usage does not list command %q:\n%s", cmd.name, out)
					}
				}
				return
			}
			fs := tc.flags()
			n := 0
			fs.fs.VisitAll(func(f *flag.Flag) {
				n++
				// Every flag is listed, with a help line that ends in its default.
				i := strings.Index(out, "\n  --"+f.Name+"\n")
				if i < 0 {
					i = strings.Index(out, "\n  --"+f.Name+" ")
				}
				if i < 0 {
					t.Errorf("--%s is not in the help:\n%s", f.Name, out)
					return
				}
				lines := strings.SplitN(out[i+1:], "\n", 3)
				if len(lines) < 2 || !strings.Contains(lines[1], "(default: ") {
					t.Errorf("--%s: help line %q does not show the default", f.Name, lines[1])
				}
			})
			documented := 0
			for _, g := range fs.groups {
				documented += len(g.docs)
			}
			if documented != n {
				t.Errorf("%d flags defined but %d documented", n, documented)
			}
		})
	}
}

func TestSampleHelpShowsDefaultsAndRanges(t *testing.T) {
	_, out, _ := runCLI(t, "", "sample", "--help")
	d := sampler.Defaults()
	for _, want := range []string{
		"--temperature X\n        logit divisor; > 0, lower is greedier (default: 0.8)",
		"--top-p X\n        nucleus sampling mass; in (0, 1], 1 disables it (default: 1)",
		"--num-samples N",
		"(default: " + strconv.Itoa(d.NumSamples) + ")",
		"--seed N\n        random seed; -1 = a random 63-bit seed",
		"--backend NAME\n        compute backend: auto | cpu | gpu",
		"wave-cap, global-bootstrap, critic-on-input, mask-pad-only, judge-keep-last, or all",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sample --help lacks %q:\n%s", want, out)
		}
	}
}

func TestUnknownCommandAndNoArgs(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"smaple"}, `unknown command "smaple"`},
		{[]string{"help", "nope"}, `unknown command "nope"`},
	}
	for _, tc := range cases {
		code, out, errOut := runCLI(t, "", tc.args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d", tc.args, code, exitUsage)
		}
		if out != "" {
			t.Errorf("%q: wrote to stdout: %q", tc.args, out)
		}
		if !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "Commands:") {
			t.Errorf("%q: stderr lacks %q and the command list:\n%s", tc.args, tc.want, errOut)
		}
	}
}

func TestOptionMessageNamesFlags(t *testing.T) {
	cases := []struct {
		field, msg, want string
	}{
		{"top_p", "1.5 is out of range; must be in (0, 1]", "--top-p: 1.5 is out of range; must be in (0, 1]"},
		{"seed_text", "is 30 characters long; raise sequence_length", "--seed-text: is 30 characters long; raise --sequence-length"},
		{"template", "cannot be combined with seed_text; put it in", "--template: cannot be combined with --seed-text; put it in"},
		// Not an option name: left alone.
		{"sequence_length", "the model's block_size is 32", "--sequence-length: the model's block_size is 32"},
		{"num_samples", "num_samples_x and --num_samples stay", "--num-samples: num_samples_x and --num_samples stay"},
	}
	for _, tc := range cases {
		got := optionMessage(&sampler.OptionError{Field: tc.field, Msg: tc.msg})
		if got != tc.want {
			t.Errorf("optionMessage(%s, %q) = %q, want %q", tc.field, tc.msg, got, tc.want)
		}
	}
}

func TestFlagParseMessages(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"sample", "--bogus"}, "unknown flag --bogus"},
		{[]string{"sample", "--temperature", "warm"}, `--temperature: "warm" is not a number; allowed: logit divisor; > 0`},
		{[]string{"sample", "--num-samples", "2.5"}, `--num-samples: "2.5" is not a whole number; allowed: number of samples, generated as one batch; 1 or more`},
		{[]string{"sample", "--seed", "9223372036854775808"}, `--seed: "9223372036854775808" is not a whole number of a size that fits; allowed: random seed; -1 = a random 63-bit seed`},
		{[]string{"sample", "--verbose=maybe"}, `--verbose: "maybe" is not true or false`},
		{[]string{"sample", "--temperature"}, "--temperature needs a value"},
		{[]string{"sample", "stray"}, `unexpected argument "stray"`},
		{[]string{"forward", "--bogus"}, "unknown flag --bogus"},
	}
	for _, tc := range cases {
		code, _, errOut := runCLI(t, "", tc.args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d; stderr:\n%s", tc.args, code, exitUsage, errOut)
		}
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: stderr lacks %q:\n%s", tc.args, tc.want, errOut)
		}
	}
}
