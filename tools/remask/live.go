package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
)

// This file draws the live view of `remask sample` on a terminal: each
// iteration's frame (live_render.go) replaces the previous one in place,
// by moving the cursor up over it. It also decides whether the live view is
// on (--live, the terminal, NO_COLOR, TERM=dumb) and asks the terminal its
// size (live_term_*.go).

// Live view modes (--live).
const (
	liveAuto = "auto" // on when stderr is a terminal and progress is printed
	liveOn   = "on"   // always, even into a pipe (like --color=always)
	liveOff  = "off"
)

// Defaults when the terminal does not say its size.
const (
	defaultLiveRows = 12 // --live-rows
	maxLiveRows     = 1000
	fallbackCols    = 80
)

// terminalSizer is a writer that knows it is a terminal: the tests' fake
// terminal. *os.File is asked through the system (fileTermSize).
type terminalSizer interface {
	terminalSize() (cols, rows int, ok bool)
}

// termSize reports whether w is a terminal and, if so, its size (0 where
// the terminal does not say).
func termSize(w io.Writer) (cols, rows int, ok bool) {
	switch t := w.(type) {
	case terminalSizer:
		return t.terminalSize()
	case *os.File:
		return fileTermSize(t)
	}
	return 0, 0, false
}

// useLive decides whether `remask sample` draws the live view on stderr.
// quiet is --no-progress or --json; tty whether stderr is a terminal.
func useLive(mode string, quiet, tty bool, getenv func(string) string) bool {
	switch mode {
	case liveOn:
		return true // options() refused --live on with --no-progress or --json
	case liveAuto:
		return tty && !quiet && getenv("TERM") != "dumb"
	}
	return false
}

// noColor reports whether the user asked for no colour: NO_COLOR set and
// not empty (no-color.org).
func noColor(getenv func(string) string) bool { return getenv("NO_COLOR") != "" }

// liveView draws one frame per event on w and, at the end, a clean final
// frame. The header is printed as plain text before the first frame.
type liveView struct {
	w       io.Writer
	r       *liveRenderer
	size    func() (cols, rows int) // the terminal's size now; 0 = unknown
	maxRows int                     // --live-rows
	now     func() time.Time
	start   time.Time
	header  func(T int) // nil once printed
	drawn   int         // lines of the frame on the screen
	shown   bool        // the cursor was hidden and the first frame drawn
	closed  bool
}

func newLiveView(w io.Writer, v *model.Vocab, o *sampler.Options, a *sampleArgs, color bool,
	size func() (int, int), now func() time.Time, header func(T int)) *liveView {
	lv := &liveView{w: w, size: size, maxRows: a.liveRows, now: now, header: header}
	lv.r = newLiveRenderer(v, o.NumSamples, fallbackCols-1, a.liveRows, color, a.heatmap)
	lv.start = now()
	return lv
}

// fitTerminal sizes the renderer to the terminal: one column short of its
// width, so that the cursor never waits in the last column (terminals
// disagree on what a write there does), and three lines short of its
// height (bar, key, and the line the cursor rests on), so that the cursor
// can always climb back over the whole frame.
func (lv *liveView) fitTerminal() {
	cols, rows := lv.size()
	if cols <= 0 {
		cols = fallbackCols
	}
	textRows := lv.maxRows
	if rows > 0 {
		textRows = min(textRows, rows-3)
	}
	lv.r.resize(cols-1, textRows)
}

func (lv *liveView) observe(e *sampler.Event) {
	if lv.header != nil {
		if b := lv.r.batch; b > 0 {
			lv.header(e.Total / b)
		}
		lv.header = nil
	}
	lv.fitTerminal()
	lv.draw(lv.r.frame(e, lv.now().Sub(lv.start)), "")
}

// done draws the final frame when res is not nil (a finished generation)
// and shows the cursor again. It is safe to call more than once: runSample
// defers done(nil) for the paths that fail.
func (lv *liveView) done(res *sampler.Result) {
	if lv.closed || !lv.shown {
		lv.closed = true
		return
	}
	lv.closed = true
	if res != nil {
		lv.fitTerminal()
		lv.draw(lv.r.final(res), "\x1b[?25h")
		return
	}
	io.WriteString(lv.w, "\x1b[?25h")
}

// draw replaces the frame on the screen by lines, in one write: cursor up
// over the old frame, each line cleared and written, anything below the
// new frame erased (the final frame is shorter), then suffix.
func (lv *liveView) draw(lines []string, suffix string) {
	var b strings.Builder
	if !lv.shown {
		b.WriteString("\x1b[?25l") // hide the cursor while frames are drawn
		lv.shown = true
	}
	if lv.drawn > 0 {
		b.WriteString("\x1b[" + strconv.Itoa(lv.drawn) + "A")
	}
	for _, l := range lines {
		b.WriteString("\r\x1b[2K")
		b.WriteString(l)
		b.WriteString("\n")
	}
	b.WriteString("\x1b[J")
	b.WriteString(suffix)
	lv.drawn = len(lines)
	io.WriteString(lv.w, b.String())
}

// liveWidth is the terminal width to use when --live on draws into
// something that is not a terminal: $COLUMNS if it is a number, else 80.
func liveWidth(getenv func(string) string) int {
	if n, err := strconv.Atoi(getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return fallbackCols
}

// checkLive checks --live and --live-rows.
func (a *sampleArgs) checkLive() error {
	switch a.live {
	case liveAuto, liveOn, liveOff:
	default:
		return flagError("live", "%q is not a mode; allowed: auto, on, off", a.live)
	}
	if a.live == liveOn && (a.noProgress || a.jsonOut) {
		other := "--no-progress"
		if a.jsonOut {
			other = "--json"
		}
		return flagError("live", "on draws progress on stderr, which %s turns off; drop one of them", other)
	}
	if a.liveRows < 1 || a.liveRows > maxLiveRows {
		return flagError("live-rows", "%d is out of range; allowed: 1 to %d", a.liveRows, maxLiveRows)
	}
	return nil
}

// liveNote says why --heatmap shows nothing, when it does not.
func liveNote(a *sampleArgs, tty bool) string {
	why := "stderr is not a terminal; --live on forces the live view"
	switch {
	case a.live == liveOff:
		why = "--live off"
	case a.noProgress || a.jsonOut:
		why = "--no-progress or --json turn it off"
	case tty:
		why = "TERM=dumb; --live on forces the live view"
	}
	return fmt.Sprintf("--heatmap shows only in the live view (%s)", why)
}
