package main

import (
	"bufio"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/checked"
)

// The memory budget of `sample`, `score` and `bench`: --max-memory, by
// default three quarters of the memory the system reports available.

// maxMemoryHelp is --max-memory's help line.
const maxMemoryHelp = "memory budget: a job whose estimated memory (activations and logits of every model x samples x length) exceeds it is refused before it starts; bytes, or with a binary unit: 512M, 8G, 1.5T; auto = 3/4 of the available memory"

// parseSize parses --max-memory: auto, or a number of bytes with an
// optional binary unit (K, M, G, T, with or without "iB" or "B").
func parseSize(flag, s string) (int64, error) {
	if s == "" || s == "auto" {
		return 0, nil
	}
	t := strings.TrimSpace(s)
	mult := 1.0
	lower := strings.ToLower(t)
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"tb", 1 << 40},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40}, {"b", 1}} {
		if strings.HasSuffix(lower, u.suffix) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.m
			break
		}
	}
	x, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(x) || x <= 0 || x*mult >= math.MaxInt64 {
		return 0, flagError(flag, "%q is not a size; give auto, or bytes with an optional binary unit, e.g. 512M, 8G, 1.5T", s)
	}
	return int64(x * mult), nil
}

// memoryBudget is --max-memory's value in bytes: the given size, or for
// auto three quarters of MemAvailable (Linux), else sampler's default.
func memoryBudget(flag, s string) (int64, error) {
	n, err := parseSize(flag, s)
	if err != nil {
		return 0, err
	}
	total, known := meminfo("MemTotal:")
	if n > 0 && known && n > total {
		// More than the machine has cannot be met: the job would die of
		// "out of memory" instead of being refused.
		return 0, flagError(flag, "%s is more than this machine's %s of memory; give at most %s", s, sampler.FormatBytes(total), sampler.FormatBytes(total))
	}
	if n > 0 {
		return n, nil
	}
	if avail, ok := meminfo("MemAvailable:"); ok {
		return avail / 4 * 3, nil
	}
	return sampler.DefaultMemoryBudget, nil
}

// meminfo reads a field of /proc/meminfo (Linux) in bytes.
func meminfo(field string) (int64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == field && fields[2] == "kB" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil || kb <= 0 {
				return 0, false
			}
			b, ok := checked.Mul64(kb, 1024)
			return b, ok
		}
	}
	return 0, false
}
