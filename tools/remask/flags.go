package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// flagSet is a standard flag.FlagSet plus what --help prints: the flags in
// the order they were declared, grouped, each with a metavar, a help text that
// states the allowed range, and its default.
type flagSet struct {
	fs       *flag.FlagSet
	name     string // "sample", "forward"
	synopsis string
	about    []string // paragraphs printed after the synopsis
	groups   []flagGroup
}

type flagGroup struct {
	title string
	docs  []flagDoc
}

type flagDoc struct {
	name    string
	metavar string // "" for booleans
	help    string
	def     string // the default as shown; "" = taken from the flag
}

func newFlagSet(name, synopsis string, about ...string) *flagSet {
	fs := flag.NewFlagSet("remask "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are printed by us
	return &flagSet{fs: fs, name: name, synopsis: synopsis, about: about}
}

func (s *flagSet) group(title string) { s.groups = append(s.groups, flagGroup{title: title}) }

func (s *flagSet) add(name, metavar, help string) {
	if len(s.groups) == 0 {
		s.group("Flags")
	}
	g := &s.groups[len(s.groups)-1]
	g.docs = append(g.docs, flagDoc{name: name, metavar: metavar, help: help})
}

// showDefault overrides how a flag's default is shown in --help.
func (s *flagSet) showDefault(name, def string) {
	for gi := range s.groups {
		for di := range s.groups[gi].docs {
			if s.groups[gi].docs[di].name == name {
				s.groups[gi].docs[di].def = def
			}
		}
	}
}

func (s *flagSet) stringVar(p *string, name, def, metavar, help string) {
	s.fs.StringVar(p, name, def, help)
	s.add(name, metavar, help)
}

func (s *flagSet) intVar(p *int, name string, def int, metavar, help string) {
	s.fs.IntVar(p, name, def, help)
	s.add(name, metavar, help)
}

func (s *flagSet) int64Var(p *int64, name string, def int64, metavar, help string) {
	s.fs.Int64Var(p, name, def, help)
	s.add(name, metavar, help)
}

func (s *flagSet) floatVar(p *float64, name string, def float64, metavar, help string) {
	s.fs.Float64Var(p, name, def, help)
	s.add(name, metavar, help)
}

func (s *flagSet) boolVar(p *bool, name string, def bool, help string) {
	s.fs.BoolVar(p, name, def, help)
	s.add(name, "", help)
}

// parse parses args. It returns errHelp after printing the help to stdout
// for -h/--help, and a usageError naming the flag in --kebab-case otherwise.
func (s *flagSet) parse(args []string, stdout io.Writer) error {
	err := s.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		s.usage(stdout)
		return errHelp
	}
	if err != nil {
		return &usageError{msg: s.parseMessage(err)}
	}
	if rest := s.fs.Args(); len(rest) > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q: %s takes flags only (values that contain spaces need quotes)", rest[0], s.name)}
	}
	return nil
}

// invalidValue matches the flag package's messages for a value that does
// not parse: `invalid value "x" for flag -name: ...` and
// `invalid boolean value "x" for -name: ...`.
var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-([^:]+): (.*)$`)

// parseMessage rewrites the flag package's messages, which name flags as
// -name, to name them as --name and to say what the value must be.
func (s *flagSet) parseMessage(err error) string {
	msg := err.Error()
	const notDefined = "flag provided but not defined: -"
	if strings.HasPrefix(msg, notDefined) {
		return fmt.Sprintf("unknown flag --%s", strings.TrimPrefix(msg, notDefined))
	}
	const needsArg = "flag needs an argument: -"
	if strings.HasPrefix(msg, needsArg) {
		return fmt.Sprintf("--%s needs a value", strings.TrimPrefix(msg, needsArg))
	}
	m := invalidValue.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	value, name, why := m[1], m[2], m[3]
	f := s.fs.Lookup(name)
	if f == nil {
		return msg
	}
	if _, ok := f.Value.(sizeValue); ok {
		return fmt.Sprintf("--%s: %s is not a size that fits (bytes, or a number with a binary unit such as 512M, 4GiB, 1.5T); allowed: %s", name, value, s.help(name))
	}
	want := "a valid value"
	switch f.Value.(flag.Getter).Get().(type) {
	case bool:
		want = "true or false"
	case int, int64:
		want = "a whole number"
	case float64:
		want = "a number"
	}
	if strings.Contains(why, "value out of range") {
		want += " of a size that fits"
	}
	return fmt.Sprintf("--%s: %s is not %s; allowed: %s", name, value, want, s.help(name))
}

// help returns the help text of a flag.
func (s *flagSet) help(name string) string {
	for _, g := range s.groups {
		for _, d := range g.docs {
			if d.name == name {
				return d.help
			}
		}
	}
	return "see --help"
}

// usage prints the synopsis and every flag with its default.
func (s *flagSet) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: remask %s %s\n", s.name, s.synopsis)
	for _, p := range s.about {
		fmt.Fprintln(w)
		fmt.Fprintln(w, p)
	}
	for _, g := range s.groups {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%s:\n", g.title)
		for _, d := range g.docs {
			head := "  --" + d.name
			if d.metavar != "" {
				head += " " + d.metavar
			}
			fmt.Fprintln(w, head)
			def := d.def
			if def == "" {
				def = s.defValue(d.name)
			}
			fmt.Fprintf(w, "        %s (default: %s)\n", d.help, def)
		}
	}
}

func (s *flagSet) defValue(name string) string {
	f := s.fs.Lookup(name)
	if f == nil {
		return "?"
	}
	if f.DefValue == "" {
		return `""`
	}
	if strings.ContainsAny(f.DefValue, " \t\n") {
		return strconv.Quote(f.DefValue)
	}
	return f.DefValue
}

// wasSet reports whether the flag was given on the command line.
func (s *flagSet) wasSet(name string) bool {
	set := false
	s.fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
