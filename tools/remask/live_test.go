package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
)

// tinyVocab is a 4-token vocabulary: a, b, newline, [MASK].
func tinyVocab() *model.Vocab {
	mask := 3
	return &model.Vocab{Type: "char", Tokens: []string{"a", "b", "\n", "[MASK]"}, MaskTokenID: &mask, BaseVocabSize: 3}
}

// sgrRE matches one SGR sequence and captures its parameters.
var sgrRE = regexp.MustCompile("\x1b\\[([0-9;]*)m")

// stripSGR removes the SGR sequences of s.
func stripSGR(s string) string { return sgrRE.ReplaceAllString(s, "") }

// styleAt returns the SGR parameters in force before the n-th visible rune
// of a rendered line ("" = plain).
func styleAt(line string, n int) string {
	cur := ""
	for len(line) > 0 {
		if m := sgrRE.FindStringSubmatchIndex(line); m != nil && m[0] == 0 {
			cur = strings.TrimPrefix(line[m[2]:m[3]], "0;")
			if cur == "0" {
				cur = ""
			}
			line = line[m[1]:]
			continue
		}
		r := []rune(line)[0]
		if n == 0 {
			return cur
		}
		n--
		line = line[len(string(r)):]
	}
	return "<past the end>"
}

// hasColourParam reports whether an SGR sequence of s sets a colour
// (foreground, background, 256-colour or bright).
func hasColourParam(s string) bool {
	for _, m := range sgrRE.FindAllStringSubmatch(s, -1) {
		ps := strings.Split(m[1], ";")
		for i := 0; i < len(ps); i++ {
			n, _ := strconv.Atoi(ps[i])
			switch {
			case n == 38 || n == 48:
				return true
			case n >= 30 && n <= 37, n == 39, n >= 40 && n <= 47, n == 49, n >= 90 && n <= 97, n >= 100 && n <= 107:
				return true
			}
		}
	}
	return false
}

// event0 and event1 are a known two-iteration run of a 6-token row:
// iteration 1 predicts "ab\naba" and remasks 1, 3, 4; iteration 2 fills
// them with "a", "b", "b".
func event0() *sampler.Event {
	return &sampler.Event{Iteration: 0, Iterations: 2, Masked: 6, Total: 6,
		Tokens: []int32{0, 1, 2, 0, 1, 0}, Filled: []bool{true, true, true, true, true, true},
		Remasked:  [][]int{{1, 3, 4}},
		Wrongness: []float64{0.1, 0.9, 0.2, 0.8, 0.95, 0.05},
		Ratio:     0.5, MinWrongness: 0.8}
}

func event1() *sampler.Event {
	return &sampler.Event{Iteration: 1, Iterations: 2, Masked: 3, Total: 6,
		Tokens: []int32{0, 0, 2, 1, 1, 0}, Filled: []bool{false, true, false, true, true, false},
		Ratio: math.NaN(), MinWrongness: math.NaN()}
}

func TestLiveMaskedDimFreshHighlighted(t *testing.T) {
	for _, color := range []bool{true, false} {
		r := newLiveRenderer(tinyVocab(), 1, 40, 4, color, false)
		lines := r.frame(event0(), time.Second)
		text := lines[1]
		if got := stripSGR(text); got != "a░⏎░░a" {
			t.Fatalf("color %v: row 0 reads %q, want a░⏎░░a", color, got)
		}
		fresh := "1;32"
		if !color {
			fresh = "1;4"
		}
		for i, want := range []string{fresh, "2", fresh, "2", "2", fresh} {
			if got := styleAt(text, i); got != want {
				t.Errorf("color %v: cell %d has SGR %q, want %q (line %q)", color, i, got, want, text)
			}
		}
		// Iteration 2: the kept cells are plain, the filled ones fresh.
		text = r.frame(event1(), 2*time.Second)[1]
		for i, want := range []string{"", fresh, "", fresh, fresh, ""} {
			if got := styleAt(text, i); got != want {
				t.Errorf("color %v: iteration 2 cell %d has SGR %q, want %q (line %q)", color, i, got, want, text)
			}
		}
	}
}

func TestLiveWithdrawnCellsMarked(t *testing.T) {
	r := newLiveRenderer(tinyVocab(), 1, 40, 4, true, false)
	r.frame(event0(), time.Second)
	// Iteration 2 of 3 withdraws position 0 (a kept token) and remasks the
	// freshly filled position 1.
	e := &sampler.Event{Iteration: 1, Iterations: 3, Masked: 3, Total: 6,
		Tokens: []int32{0, 0, 2, 1, 1, 0}, Filled: []bool{false, true, false, true, true, false},
		Remasked: [][]int{{0, 1}}}
	text := r.frame(e, time.Second)[1]
	if got := stripSGR(text); got != "▒░⏎bba" {
		t.Fatalf("row 0 reads %q, want ▒░⏎bba", got)
	}
	if got := styleAt(text, 0); got != "1;31" {
		t.Errorf("withdrawn cell has SGR %q, want bold red 1;31", got)
	}
	if got := styleAt(text, 1); got != "2" {
		t.Errorf("masked cell has SGR %q, want dim", got)
	}
	if !strings.HasPrefix(r.frame(event1(), time.Second)[0], "Iteration 2/2") {
		t.Error("bar does not start with the iteration")
	}
}

func TestLiveMultinomialChangedCellsFresh(t *testing.T) {
	r := newLiveRenderer(tinyVocab(), 1, 40, 4, true, false)
	r.frame(&sampler.Event{Iterations: 2, Total: 3, Tokens: []int32{0, 1, 0}, Filled: []bool{true, true, true}}, time.Second)
	text := r.frame(&sampler.Event{Iteration: 1, Iterations: 2, Total: 3, Tokens: []int32{0, 0, 0}}, time.Second)[1]
	for i, want := range []string{"", "1;32", ""} {
		if got := styleAt(text, i); got != want {
			t.Errorf("cell %d has SGR %q, want %q (line %q)", i, got, want, text)
		}
	}
}

func TestLiveHeatmapMonotone(t *testing.T) {
	// The ramp rises in redness: r - g of the colour-cube entry grows.
	prev := math.MinInt
	for i, c := range heatRamp {
		v := c - 16
		red, green := v/36, v/6%6
		if red-green <= prev {
			t.Errorf("heatRamp[%d] = %d (r %d, g %d) is not redder than the one before", i, c, red, green)
		}
		prev = red - green
	}
	// The bucket never falls as the wrongness rises, spans the ramp, and
	// clamps what is outside [0, 1].
	last := -1
	for i := 0; i <= 1000; i++ {
		b := heatBucket(float64(i) / 1000)
		if b < last {
			t.Fatalf("heatBucket(%g) = %d < %d", float64(i)/1000, b, last)
		}
		last = b
	}
	if heatBucket(0) != 0 || heatBucket(1) != len(heatRamp)-1 || heatBucket(-3) != 0 || heatBucket(7) != len(heatRamp)-1 || heatBucket(math.NaN()) != -1 {
		t.Error("heatBucket does not span and clamp the ramp")
	}
	// In a frame, each cell's background is the ramp entry of its wrongness.
	r := newLiveRenderer(tinyVocab(), 1, 40, 4, true, true)
	lines := r.frame(event0(), time.Second)
	for i, w := range event0().Wrongness {
		want := "48;5;" + strconv.Itoa(heatRamp[heatBucket(w)])
		if got := styleAt(lines[1], i); !strings.Contains(got, want) || !strings.Contains(got, "38;5;16") {
			t.Errorf("cell %d (wrongness %g) has SGR %q, want black on %s", i, w, got, want)
		}
	}
	if key := stripSGR(lines[2]); !strings.Contains(key, "wrongness 0          1") {
		t.Errorf("key line %q lacks the legend", key)
	}
	// The last iteration has no wrongness: no background, and the key says so.
	lines = r.frame(event1(), time.Second)
	if strings.Contains(lines[1], "48;5;") || !strings.Contains(lines[2], "no heatmap on the last iteration") {
		t.Errorf("last iteration: %q / %q", lines[1], lines[2])
	}
}

func TestLiveNoColorHasNoColourCodes(t *testing.T) {
	r := newLiveRenderer(tinyVocab(), 2, 100, 4, false, true) // NO_COLOR with --heatmap
	e := event0()
	e.Tokens = append(e.Tokens, e.Tokens...) // two rows
	e.Total = 12
	var all []string
	all = append(all, r.frame(e, time.Second)...)
	all = append(all, r.frame(event1(), time.Second)...)
	out := strings.Join(all, "\n")
	if hasColourParam(out) {
		t.Errorf("NO_COLOR frame holds a colour SGR:\n%q", out)
	}
	if !strings.Contains(out, "\x1b[0;1;4m") || !strings.Contains(out, "\x1b[0;2m") {
		t.Errorf("NO_COLOR frame lost the bold/dim attributes:\n%q", out)
	}
	if !strings.Contains(out, "no heatmap: NO_COLOR is set") || !strings.Contains(out, "(sample 1 of 2)") {
		t.Errorf("key line does not say why there is no heatmap:\n%q", out)
	}
}

func TestLiveWrapAndRowCap(t *testing.T) {
	v := tinyVocab()
	row := []int32{0, 1, 0, 1, 0, 1, 2, 0, 1, 0, 3} // "ababab⏎aba" + a [MASK] id
	e := &sampler.Event{Iterations: 1, Total: len(row), Tokens: row}
	r := newLiveRenderer(v, 1, 8, 10, false, false) // width 8: the least
	lines := r.frame(e, time.Second)
	text := lines[1 : len(lines)-1]
	if got, want := strings.Join(text, "|"), "ababab⏎a|ba░"; got != want {
		t.Errorf("wrapped to 8: %q, want %q", got, want)
	}
	for _, l := range lines {
		if n := runeLen(stripSGR(l)); n > 8 {
			t.Errorf("line %q is %d columns wide, more than 8", l, n)
		}
	}
	// Capped at one line: the line ends in '…'.
	r = newLiveRenderer(v, 1, 8, 1, false, false)
	if got, want := r.frame(e, time.Second)[1], "ababab⏎…"; got != want {
		t.Errorf("one line of 8: %q, want %q", got, want)
	}
}

func TestLiveMultiByteCells(t *testing.T) {
	mask := 5
	v := &model.Vocab{Tokens: []string{"é", "世", "\t", "\u0301", "\x01", "[MASK]"}, MaskTokenID: &mask}
	row := []int32{0, 1, 2, 3, 4, 5, 1, 1, 1}
	r := newLiveRenderer(v, 1, 8, 10, false, false)
	lines := r.frame(&sampler.Event{Iterations: 1, Total: len(row), Tokens: row}, time.Second)
	text := lines[1 : len(lines)-1]
	// é 1, 世 2, ⇥ 1, ◌́ 1, ␁ 1, ░ 1 = 7 columns; the next 世 (2) wraps.
	if got, want := strings.Join(text, "|"), "é世⇥◌\u0301␁░|世世世"; got != want {
		t.Errorf("cells %q, want %q", got, want)
	}
	for _, l := range text {
		cols := 0
		for _, c := range stripSGR(l) {
			if !(c >= 0x300 && c <= 0x36f) { // combining marks take no column
				cols += runeCols(c)
			}
		}
		if cols > 8 {
			t.Errorf("line %q takes %d columns, more than 8", l, cols)
		}
	}
	if g := tokenGlyph("[MASK]"); g.cols != 6 {
		t.Errorf("a literal multi-rune token takes %d columns, want 6", g.cols)
	}
	if g := r.glyphOf(5); g.text != glyphMasked || g.cols != 1 {
		t.Errorf("[MASK] is drawn as %q (%d columns), want one %s", g.text, g.cols, glyphMasked)
	}
}

// fakeClock returns t0, t0+step, t0+2 step, ...
func fakeClock(step time.Duration) func() time.Time {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	return func() time.Time {
		t := t0.Add(time.Duration(n) * step)
		n++
		return t
	}
}

// TestLiveViewGolden checks the bytes of a whole live view, derived by
// hand: a header, two frames drawn over each other, and the final frame.
func TestLiveViewGolden(t *testing.T) {
	var out bytes.Buffer
	a := &sampleArgs{liveRows: 2}
	o := &sampler.Options{NumSamples: 1}
	header := func(T int) { out.WriteString("HEADER T=" + strconv.Itoa(T) + "\n") }
	lv := newLiveView(&out, tinyVocab(), o, a, true, func() (int, int) { return 71, 0 }, fakeClock(500*time.Millisecond), header)
	lv.observe(event0())
	lv.observe(event1())
	lv.done(&sampler.Result{IterationsRun: 2, Seconds: 1, TokensPerSecond: 6, Samples: []sampler.Sample{{Tokens: make([]int32, 6)}}})
	lv.done(nil) // a second call writes nothing

	const (
		clear = "\r\x1b[2K"
		green = "\x1b[0;1;32m"
		dim   = "\x1b[0;2m"
		red   = "\x1b[0;1;31m"
		reset = "\x1b[0m"
		key   = dim + "░" + reset + " masked  " + red + "▒" + reset + " remasked  " + green + "new" + reset + "  ⏎ newline"
	)
	want := "HEADER T=6\n" +
		"\x1b[?25l" +
		clear + "Iteration 1/2 ━━━━━━─────── 50.0% masked | 0.5s | 6.0 tok/s | ETA 0.5s\n" +
		clear + green + "a" + dim + "░" + green + "⏎" + dim + "░░" + green + "a" + reset + "\n" +
		clear + key + "\n" +
		"\x1b[J" +
		"\x1b[3A" +
		clear + "Iteration 2/2 ━━━━━━━━━━━━━━━━━━ 0.0% masked | 1.0s | 6.0 tok/s | done\n" +
		clear + "a" + green + "a" + reset + "⏎" + green + "bb" + reset + "a\n" +
		clear + key + "\n" +
		"\x1b[J" +
		"\x1b[3A" +
		clear + "Done: 2 iterations, 6 tokens in 1.0s, 6.0 tokens/s\n" +
		clear + "aa⏎bba\n" +
		"\x1b[J\x1b[?25h"
	if got := out.String(); got != want {
		t.Errorf("live view bytes differ\n got: %q\nwant: %q", got, want)
	}
}

func TestLiveViewShrinksToTheTerminal(t *testing.T) {
	var out bytes.Buffer
	a := &sampleArgs{liveRows: 12}
	row := make([]int32, 100) // "aaaa…": 100 cells
	lv := newLiveView(&out, tinyVocab(), &sampler.Options{NumSamples: 1}, a, true,
		func() (int, int) { return 21, 6 }, fakeClock(time.Second), nil)
	lv.observe(&sampler.Event{Iterations: 1, Total: 100, Tokens: row})
	// 6 rows: the bar, 3 text lines of 20, the key, and the cursor's line.
	frame := strings.Split(strings.TrimSuffix(strings.TrimPrefix(out.String(), "\x1b[?25l"), "\n\x1b[J"), "\n")
	if len(frame) != 5 {
		t.Fatalf("frame has %d lines, want 5:\n%q", len(frame), frame)
	}
	if got := stripSGR(strings.TrimPrefix(frame[3], "\r\x1b[2K")); got != strings.Repeat("a", 19)+"…" {
		t.Errorf("last text line %q, want 19 a and …", got)
	}
	for _, l := range frame {
		if n := runeLen(stripSGR(strings.TrimPrefix(l, "\r\x1b[2K"))); n > 20 {
			t.Errorf("line %q is %d columns, more than 20", l, n)
		}
	}
}

func TestUseLive(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	cases := []struct {
		mode       string
		quiet, tty bool
		getenv     func(string) string
		want       bool
	}{
		{liveAuto, false, true, env(), true},
		{liveAuto, false, false, env(), false},
		{liveAuto, true, true, env(), false},
		{liveAuto, false, true, env("TERM", "dumb"), false},
		{liveAuto, false, true, env("NO_COLOR", "1"), true}, // NO_COLOR: no colour, still redrawn
		{liveOn, false, false, env(), true},
		{liveOff, false, true, env(), false},
	}
	for _, tc := range cases {
		if got := useLive(tc.mode, tc.quiet, tc.tty, tc.getenv); got != tc.want {
			t.Errorf("useLive(%s, quiet %v, tty %v) = %v, want %v", tc.mode, tc.quiet, tc.tty, got, tc.want)
		}
	}
	if !noColor(env("NO_COLOR", "1")) || noColor(env("NO_COLOR", "")) {
		t.Error("noColor does not follow NO_COLOR (set and not empty)")
	}
	if liveWidth(env("COLUMNS", "132")) != 132 || liveWidth(env("COLUMNS", "wide")) != 80 {
		t.Error("liveWidth does not read $COLUMNS")
	}
}

// fakeTerminal is a stderr that says it is a terminal of the given size.
type fakeTerminal struct {
	bytes.Buffer
	cols, rows int
}

func (f *fakeTerminal) terminalSize() (int, int, bool) { return f.cols, f.rows, true }

// runSampleOn runs `remask sample args` with stderr on w and the given
// environment.
func runSampleOn(t *testing.T, w interface {
	Write([]byte) (int, error)
	String() string
}, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out bytes.Buffer
	c := testCLI(&out, w)
	c.getenv = func(k string) string { return env[k] }
	code = c.report("sample", runSample(context.Background(), c, args))
	return code, out.String(), w.String()
}

func TestSampleLiveOnTerminal(t *testing.T) {
	term := &fakeTerminal{cols: 25, rows: 30} // 24 columns: 32 tokens take 2 lines
	code, out, errOut := runSampleOn(t, term, nil, "--model", lmFull, "--backend", "cpu", "--num-samples", "2", "--sequence-length", "32",
		"--iterations", "6", "--seed", "3", "--heatmap") // --live auto: the terminal turns it on
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("stdout holds escape sequences:\n%q", out)
	}
	if strings.Contains(errOut, "Iteration 1/6: ") {
		t.Errorf("the plain progress lines were printed with the live view:\n%q", errOut)
	}
	for _, want := range []string{"Starting diffusion generation:", "\x1b[?25l", "\x1b[4A", "\x1b[J", "48;5;", "wrongness 0 "} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%q", want, errOut)
		}
	}
	if n := strings.Count(errOut, "\x1b[4A"); n != 6 { // frames 2..6 and the final one climb 4 lines
		t.Errorf("%d redraws over a 4-line frame, want 6:\n%q", n, errOut)
	}
	// The end is the clean final frame: bar and sample 1, no SGR, cursor back.
	i := strings.LastIndex(errOut, "\x1b[4A")
	final := errOut[i+len("\x1b[4A"):]
	if !strings.HasSuffix(final, "\x1b[J\x1b[?25h") {
		t.Fatalf("stderr does not end with the final frame and the cursor shown:\n%q", final)
	}
	if sgrRE.MatchString(final) {
		t.Errorf("the final frame holds SGR sequences:\n%q", final)
	}
	text := sampleText(t, out, 1)
	want := "\r\x1b[2KDone: 6 iterations, 64 …" // cut to 24 columns
	if !strings.HasPrefix(final, want) {
		t.Errorf("final frame %q does not start with %q", final, want)
	}
	shown := strings.ReplaceAll(text, "\n", "⏎")
	lines := strings.Split(strings.TrimSuffix(final, "\n\x1b[J\x1b[?25h"), "\n")[1:]
	joined := ""
	for _, l := range lines {
		l = strings.TrimPrefix(l, "\r\x1b[2K")
		if runeLen(l) > 24 {
			t.Errorf("final line %q is wider than 24", l)
		}
		joined += l
	}
	if joined != shown {
		t.Errorf("final frame shows %q, sample 1 is %q", joined, shown)
	}
}

// sampleText is the text of SAMPLE i in the results on stdout.
func sampleText(t *testing.T, stdout string, i int) string {
	t.Helper()
	_, rest, ok := strings.Cut(stdout, "SAMPLE "+strconv.Itoa(i)+"/")
	if !ok {
		t.Fatalf("stdout lacks SAMPLE %d:\n%s", i, stdout)
	}
	_, rest, _ = strings.Cut(rest, sampleRule+"\n")
	parts := strings.Split(rest, "\n"+sampleRule+"\n")
	text := parts[0]
	if j := strings.Index(text, "\n\nPERFORMANCE SUMMARY"); j >= 0 {
		text = text[:j]
	}
	return text
}

func TestSampleLiveForcedNoColorAndPlain(t *testing.T) {
	base := []string{"--model", lmFull, "--backend", "cpu", "--num-samples", "1", "--sequence-length", "24", "--iterations", "3", "--seed", "4"}

	// --live on into a pipe, NO_COLOR: redrawn, no colour.
	var pipe bytes.Buffer
	code, _, errOut := runSampleOn(t, &pipe, map[string]string{"NO_COLOR": "1", "COLUMNS": "60"}, append(base, "--live", "on", "--heatmap")...)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "\x1b[3A") || hasColourParam(errOut) || !strings.Contains(errOut, "NO_COLOR is set") {
		t.Errorf("--live on with NO_COLOR: want redraws without colour:\n%q", errOut)
	}

	// --live auto into a pipe: not one escape byte, plain progress lines.
	pipe.Reset()
	code, out, errOut := runSampleOn(t, &pipe, nil, append(base, "--heatmap")...)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if strings.ContainsRune(out+errOut, 0x1b) {
		t.Errorf("piped output holds escape bytes:\nstdout %q\nstderr %q", out, errOut)
	}
	for _, want := range []string{"Iteration 1/3: ", "Iteration 3/3: ", "warning: --heatmap shows only in the live view (stderr is not a terminal; --live on forces the live view)"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("piped stderr lacks %q:\n%s", want, errOut)
		}
	}

	// A terminal, but --json or --no-progress or TERM=dumb: no escapes.
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"json", nil, []string{"--json"}},
		{"no-progress", nil, []string{"--no-progress"}},
		{"live off", nil, []string{"--live", "off"}},
		{"TERM=dumb", map[string]string{"TERM": "dumb"}, nil},
	} {
		term := &fakeTerminal{cols: 80, rows: 24}
		code, out, errOut := runSampleOn(t, term, tc.env, append(base, tc.args...)...)
		if code != exitOK {
			t.Fatalf("%s: exit %d; stderr:\n%s", tc.name, code, errOut)
		}
		if strings.ContainsRune(out+errOut, 0x1b) {
			t.Errorf("%s: escape bytes on a terminal:\nstdout %q\nstderr %q", tc.name, out, errOut)
		}
		if tc.name == "json" {
			var res sampleJSON
			decodeOne(t, out, &res)
		}
	}
}

func TestSampleLiveFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{args("--live", "always"), `--live: "always" is not a mode; allowed: auto, on, off`},
		{args("--live", "on", "--no-progress"), "--live: on draws progress on stderr, which --no-progress turns off"},
		{args("--live", "on", "--json"), "--live: on draws progress on stderr, which --json turns off"},
		{args("--live-rows", "0"), "--live-rows: 0 is out of range; allowed: 1 to 1000"},
		{args("--live-rows", "1001"), "--live-rows: 1001 is out of range"},
	}
	for _, tc := range cases {
		code, out, errOut := runCLI(t, "", tc.args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestSampleHelpListsLiveFlags(t *testing.T) {
	_, out, _ := runCLI(t, "", "sample", "--help")
	for _, want := range []string{
		"--live MODE\n        live view of sample 1 redrawn on stderr each iteration: auto (when stderr is a terminal",
		"| on (always, even into a pipe) | off (the plain progress lines) (default: auto)",
		"--live-rows N\n        most lines of text in the live view (also capped by the terminal's height); 1 to 1000 (default: 12)",
		"--heatmap\n        colour each cell of the live view by its wrongness",
		"needs colour (NO_COLOR unset) (default: false)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sample --help lacks %q:\n%s", want, out)
		}
	}
}

func TestLiveViewDoneAfterFailure(t *testing.T) {
	var out bytes.Buffer
	lv := newLiveView(&out, tinyVocab(), &sampler.Options{NumSamples: 1}, &sampleArgs{liveRows: 2}, true,
		func() (int, int) { return 80, 0 }, fakeClock(time.Second), nil)
	lv.done(nil) // nothing drawn yet: nothing to undo
	if out.Len() != 0 {
		t.Fatalf("done before any frame wrote %q", out.String())
	}
	lv = newLiveView(&out, tinyVocab(), &sampler.Options{NumSamples: 1}, &sampleArgs{liveRows: 2}, true,
		func() (int, int) { return 80, 0 }, fakeClock(time.Second), nil)
	lv.observe(event0())
	lv.done(nil) // the generation failed: the frame stays, the cursor comes back
	if !strings.HasPrefix(out.String(), "\x1b[?25l") || !strings.HasSuffix(out.String(), "\x1b[J\x1b[?25h") {
		t.Errorf("failed run: %q; want the cursor hidden, then shown after the frame", out.String())
	}
}

func TestTermSizeOfFiles(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, _, ok := termSize(w); ok {
		t.Error("a pipe is taken for a terminal")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, ok := termSize(f); ok {
		t.Error("a file is taken for a terminal")
	}
	if _, _, ok := termSize(&bytes.Buffer{}); ok {
		t.Error("a buffer is taken for a terminal")
	}
	if c, r, ok := termSize(&fakeTerminal{cols: 100, rows: 40}); !ok || c != 100 || r != 40 {
		t.Errorf("fake terminal: %d x %d, %v", c, r, ok)
	}
}
