package main

// Flag kinds that only `remask serve` uses: repeatable lists, durations and
// byte sizes.

import (
	"strconv"
	"strings"
	"time"
)

// listValue collects a repeatable flag; each use may also hold a
// comma-separated list.
type listValue struct{ items *[]string }

func (v listValue) String() string {
	if v.items == nil {
		return ""
	}
	return strings.Join(*v.items, ",")
}

func (v listValue) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*v.items = append(*v.items, part)
		}
	}
	return nil
}

func (v listValue) Get() any { return *v.items }

func (s *flagSet) listVar(p *[]string, name, metavar, help string) {
	s.fs.Var(listValue{p}, name, help)
	s.add(name, metavar, help)
}

func (s *flagSet) durationVar(p *time.Duration, name string, def time.Duration, metavar, help string) {
	s.fs.DurationVar(p, name, def, help)
	s.add(name, metavar, help)
}

// sizeValue is a byte count parsed by parseSize (budget.go): a number with
// an optional binary unit, or auto (0: the flag's computed default).
type sizeValue struct {
	name string
	n    *int64
}

func (v sizeValue) String() string {
	if v.n == nil {
		return "0"
	}
	return formatSize(*v.n)
}

func (v sizeValue) Set(s string) error {
	n, err := parseSize(v.name, s)
	if err != nil {
		return err
	}
	*v.n = n
	return nil
}

func (v sizeValue) Get() any { return *v.n }

// formatSize writes n with the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (s *flagSet) sizeVar(p *int64, name string, def int64, metavar, help string) {
	*p = def
	s.fs.Var(sizeValue{name, p}, name, help)
	s.add(name, metavar, help)
}
