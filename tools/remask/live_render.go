package main

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
)

// This file is the live view's renderer: it turns one sampler.Event into the
// lines of a frame (a progress bar, row 0 of the batch wrapped to a width,
// a key line), as strings that hold SGR attributes but no cursor movement.
// It keeps row 0 as the previous event left it, to tell changed cells from
// kept ones. Drawing the frame on a terminal (cursor movement, timing,
// terminal size) is live.go's business; this file never looks at a terminal.

// cellKind is what a cell of the frame shows.
type cellKind uint8

const (
	cellKept      cellKind = iota // a token from an earlier iteration, unchanged
	cellFresh                     // filled this iteration (or resampled to a new token) and kept
	cellMasked                    // [MASK] going into the next iteration, masked before too
	cellWithdrawn                 // remasked after this iteration although it held a kept token
)

// The glyphs of the cells that hold no token.
const (
	glyphMasked    = "░" // U+2591 light shade
	glyphWithdrawn = "▒" // U+2592 medium shade
	glyphMore      = "…" // the text goes on past --live-rows lines
)

// heatRamp is the heatmap's background colours, from low to high wrongness:
// xterm-256 colour-cube entries 16+36r+6g+b going from green (0,3,0) through
// yellow (3,3,0) to red (4,0,0); r-g rises by one per step, so the scale is
// monotone in "redness" and reads the same on dark and light themes.
var heatRamp = [...]int{34, 70, 106, 142, 178, 172, 166, 160}

// heatBucket maps a wrongness in [0, 1] to an index of heatRamp; -1 for NaN
// (no heat). Values outside [0, 1] are clamped.
func heatBucket(w float64) int {
	if math.IsNaN(w) {
		return -1
	}
	b := int(w * float64(len(heatRamp)))
	return min(max(b, 0), len(heatRamp)-1)
}

// glyph is how one vocabulary id is drawn: text that takes cols terminal
// columns (1, or 2 for an East Asian wide character).
type glyph struct {
	text string
	cols int
	dim  bool // a special id ([PAD], unknown) rather than text
}

// liveRenderer builds the frames of the live view.
type liveRenderer struct {
	width   int  // terminal columns a line may use; at least 8
	rows    int  // most lines of text; at least 1
	color   bool // colours allowed (false under NO_COLOR: attributes only)
	heatmap bool // --heatmap: background colour from Event.Wrongness, when color
	batch   int  // B: Event.Tokens holds B rows

	mask   int32   // the vocabulary's [MASK] id; -1 if none
	glyphs []glyph // by id
	prev   []int32 // row 0 as the last event left it (the next input), nil before the first
}

func newLiveRenderer(v *model.Vocab, batch, width, rows int, color, heatmap bool) *liveRenderer {
	r := &liveRenderer{batch: max(batch, 1), color: color, heatmap: heatmap, mask: -1}
	r.resize(width, rows)
	if v.MaskTokenID != nil {
		r.mask = int32(*v.MaskTokenID)
	}
	r.glyphs = make([]glyph, len(v.Tokens))
	for id, tok := range v.Tokens {
		switch {
		case v.MaskTokenID != nil && id == *v.MaskTokenID:
			r.glyphs[id] = glyph{text: glyphMasked, cols: 1}
		case v.PadTokenID != nil && id == *v.PadTokenID:
			r.glyphs[id] = glyph{text: "·", cols: 1, dim: true}
		default:
			r.glyphs[id] = tokenGlyph(tok)
		}
	}
	return r
}

// resize sets the columns and the most text lines of the next frames.
func (r *liveRenderer) resize(width, rows int) {
	r.width, r.rows = max(width, 8), max(rows, 1)
}

// tokenGlyph is how a vocabulary entry is drawn in one cell: characters that
// would move the cursor or vanish get a visible stand-in, so that every token
// keeps its place in the grid from one frame to the next. A newline is '⏎':
// keeping it as a line break would shift every later cell whenever a masked
// cell becomes a newline.
func tokenGlyph(tok string) glyph {
	var b strings.Builder
	cols := 0
	for _, c := range tok {
		switch {
		case c == '\n':
			b.WriteString("⏎")
		case c == '\t':
			b.WriteString("⇥")
		case c == '\r':
			b.WriteString("␍")
		case c < 0x20:
			b.WriteRune(0x2400 + c) // the Control Pictures block: ␀ ␁ ...
		case c == 0x7f:
			b.WriteString("␡")
		case unicode.Is(unicode.Mn, c) || unicode.Is(unicode.Me, c):
			b.WriteString("◌") // a combining mark alone would join the previous cell
			b.WriteRune(c)
		case unicode.Is(unicode.Cc, c) || unicode.Is(unicode.Cf, c) || unicode.Is(unicode.Zl, c) || unicode.Is(unicode.Zp, c):
			b.WriteString("·") // C1 controls, zero-width and direction marks
		default:
			b.WriteRune(c)
			cols += runeCols(c) - 1
		}
		cols++
	}
	if cols == 0 {
		return glyph{text: "·", cols: 1, dim: true} // an empty token
	}
	return glyph{text: b.String(), cols: cols}
}

// runeCols is the columns a printable rune takes: 2 for the East Asian wide
// and fullwidth ranges (CJK, Hangul, fullwidth forms, most emoji), else 1.
func runeCols(c rune) int {
	switch {
	case c >= 0x1100 && c <= 0x115f, c >= 0x2e80 && c <= 0x303e, c >= 0x3041 && c <= 0x33ff,
		c >= 0x3400 && c <= 0x4dbf, c >= 0x4e00 && c <= 0x9fff, c >= 0xa000 && c <= 0xa4cf,
		c >= 0xac00 && c <= 0xd7a3, c >= 0xf900 && c <= 0xfaff, c >= 0xfe30 && c <= 0xfe4f,
		c >= 0xff00 && c <= 0xff60, c >= 0xffe0 && c <= 0xffe6, c >= 0x1f300 && c <= 0x1f64f,
		c >= 0x1f900 && c <= 0x1f9ff, c >= 0x20000 && c <= 0x3fffd:
		return 2
	}
	return 1
}

func (r *liveRenderer) glyphOf(id int32) glyph {
	if id >= 0 && int(id) < len(r.glyphs) {
		return r.glyphs[id]
	}
	return glyph{text: "�", cols: 1, dim: true}
}

// sgr is the SGR parameter list of a cell ("" = plain). heat is a heatRamp
// index, or -1 for none. Without colour (NO_COLOR, or a heat background that
// leaves no foreground colour to spend) the kinds are told apart by
// attributes and glyphs only: bold underlined = new, dim = masked, bold =
// remasked.
func (r *liveRenderer) sgr(kind cellKind, dim bool, heat int) string {
	var p []string
	fg := r.color
	if r.color && r.heatmap && heat >= 0 {
		p = append(p, fmt.Sprintf("38;5;16;48;5;%d", heatRamp[heat])) // black on the heat colour
		fg = false
	}
	switch kind {
	case cellFresh:
		if fg {
			p = append(p, "1;32") // bold green
		} else {
			p = append(p, "1;4")
		}
	case cellMasked:
		p = append(p, "2")
	case cellWithdrawn:
		if fg {
			p = append(p, "1;31") // bold red
		} else {
			p = append(p, "1")
		}
	case cellKept:
		if dim {
			p = append(p, "2")
		}
	}
	return strings.Join(p, ";")
}

// cell is one laid-out unit of a line: a glyph and its SGR parameters.
type cell struct {
	g   glyph
	sgr string
}

// textCells splits plain text into one cell per rune, all with sgr.
func textCells(s, sgr string) []cell {
	var out []cell
	for _, c := range s {
		out = append(out, cell{g: glyph{text: string(c), cols: runeCols(c)}, sgr: sgr})
	}
	return out
}

// frame renders the event's row 0: the progress bar, the text wrapped to
// r.width in at most r.rows lines, and the key line. elapsed is the time
// since the generation started. A cell is drawn as the sequence stands
// after the iteration (the next iteration's input): fresh cells are the
// ones filled this iteration and kept, masked cells the ones still [MASK],
// remasked cells the kept tokens that this iteration's remasking withdrew.
func (r *liveRenderer) frame(e *sampler.Event, elapsed time.Duration) []string {
	T := len(e.Tokens) / r.batch
	row := e.Tokens[:T]
	isRemasked := make([]bool, T)
	if len(e.Remasked) > 0 {
		for _, p := range e.Remasked[0] {
			if p >= 0 && p < T {
				isRemasked[p] = true
			}
		}
	}
	maskedAfter := 0 // in the whole batch, for the bar
	for _, ps := range e.Remasked {
		maskedAfter += len(ps)
	}

	cells := make([]cell, T)
	next := make([]int32, T) // row 0 going into the next iteration
	for t, id := range row {
		filled := t < len(e.Filled) && e.Filled[t]
		kind := cellKept
		switch {
		case isRemasked[t] && filled:
			kind = cellMasked
		case isRemasked[t]:
			kind = cellWithdrawn
		case filled, len(r.prev) == T && r.prev[t] != id:
			kind = cellFresh // multinomial reports no Filled after iteration 0: compare
		}
		heat := -1
		if t < len(e.Wrongness) {
			heat = heatBucket(e.Wrongness[t])
		}
		g := r.glyphOf(id)
		switch kind {
		case cellMasked:
			g = glyph{text: glyphMasked, cols: 1}
		case cellWithdrawn:
			g = glyph{text: glyphWithdrawn, cols: 1}
		}
		cells[t] = cell{g: g, sgr: r.sgr(kind, g.dim, heat)}
		next[t] = id
		if isRemasked[t] {
			next[t] = r.mask
		}
	}
	r.prev = next

	lines := []string{r.bar(e, maskedAfter, elapsed)}
	lines = append(lines, r.wrap(cells, r.rows)...)
	return append(lines, r.key(e))
}

// final renders the clean last frame: a summary bar and row 0 as the last
// event left it, with no SGR sequence at all.
func (r *liveRenderer) final(res *sampler.Result) []string {
	cells := make([]cell, len(r.prev))
	for t, id := range r.prev {
		cells[t] = cell{g: r.glyphOf(id)}
	}
	tokens := 0
	for _, s := range res.Samples {
		tokens += len(s.Tokens)
	}
	bar := fmt.Sprintf("Done: %d iterations, %d tokens in %s, %s tokens/s", res.IterationsRun, tokens,
		formatDuration(time.Duration(sampler.FiniteOrZero(res.Seconds)*float64(time.Second))), formatRate(res.TokensPerSecond))
	return append(r.wrap(textCells(bar, ""), 1), r.wrap(cells, r.rows)...)
}

// wrap lays cells out in lines of at most r.width columns, at most
// maxLines lines; when they need more, the last line ends in '…'.
func (r *liveRenderer) wrap(cells []cell, maxLines int) []string {
	var rows [][]cell
	var cur []cell
	cols := 0
	for _, c := range cells {
		if cols+c.g.cols > r.width && len(cur) > 0 {
			rows = append(rows, cur)
			cur, cols = nil, 0
		}
		cur = append(cur, c)
		cols += c.g.cols
	}
	rows = append(rows, cur)
	if len(rows) > maxLines {
		rows = rows[:maxLines]
		last := rows[maxLines-1]
		cols := 0
		for _, c := range last {
			cols += c.g.cols
		}
		for cols+1 > r.width && len(last) > 0 {
			cols -= last[len(last)-1].g.cols
			last = last[:len(last)-1]
		}
		rows[maxLines-1] = append(last[:len(last):len(last)], cell{g: glyph{text: glyphMore, cols: 1}})
	}
	out := make([]string, len(rows))
	for i, cs := range rows {
		out[i] = renderCells(cs)
	}
	return out
}

// renderCells writes cells with an SGR sequence wherever the parameters
// change, and a reset at the end if any were set.
func renderCells(cells []cell) string {
	var b strings.Builder
	sgr := ""
	for _, c := range cells {
		if c.sgr != sgr {
			if c.sgr == "" {
				b.WriteString("\x1b[0m")
			} else {
				b.WriteString("\x1b[0;" + c.sgr + "m")
			}
			sgr = c.sgr
		}
		b.WriteString(c.g.text)
	}
	if sgr != "" {
		b.WriteString("\x1b[0m")
	}
	return b.String()
}

// bar is the progress line: iteration i/N, a bar, masked %, elapsed,
// tokens/s and ETA. Masked is the share of [MASK] going into the next
// iteration (what the frame shows); tokens/s counts the unmasked tokens of
// the batch per second of generation, so that on the last iteration it
// matches the summary's throughput.
func (r *liveRenderer) bar(e *sampler.Event, maskedAfter int, elapsed time.Duration) string {
	done := e.Iteration + 1
	pct := 0.0
	if e.Total > 0 {
		pct = 100 * float64(maskedAfter) / float64(e.Total)
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(e.Total-maskedAfter) / s
	}
	eta := "ETA " + formatDuration(elapsed/time.Duration(done)*time.Duration(max(e.Iterations-done, 0)))
	switch {
	case e.EarlyStop:
		eta = "early stop: nothing left above the threshold"
	case done >= e.Iterations:
		eta = "done"
	}
	head := fmt.Sprintf("Iteration %d/%d", done, e.Iterations)
	masked := fmt.Sprintf("%.1f%% masked", pct)
	// The longest tail that fits: on a narrow terminal the rate goes first,
	// then the elapsed time, then the ETA.
	tails := []string{
		fmt.Sprintf("%s | %s | %s tok/s | %s", masked, formatDuration(elapsed), formatRate(rate), eta),
		fmt.Sprintf("%s | %s | %s", masked, formatDuration(elapsed), eta),
		fmt.Sprintf("%s | %s", masked, eta),
		masked,
	}
	tail := tails[len(tails)-1]
	for _, t := range tails {
		if runeLen(head)+1+runeLen(t) <= r.width {
			tail = t
			break
		}
	}
	// The bar takes what is left, 5 to 20 columns, or is left out.
	if n := min(r.width-runeLen(head)-runeLen(tail)-2, 20); n >= 5 {
		k := 0
		if e.Iterations > 0 {
			k = min(n*done/e.Iterations, n)
		}
		head += " " + strings.Repeat("━", k) + strings.Repeat("─", n-k)
	}
	return r.wrap(textCells(head+" "+tail, ""), 1)[0]
}

// key is the line under the text: with --heatmap the colour scale first,
// then what the cell marks mean (a narrow terminal cuts the line short).
func (r *liveRenderer) key(e *sampler.Event) string {
	var cs []cell
	add := func(s, sgr string) { cs = append(cs, textCells(s, sgr)...) }
	switch {
	case !r.heatmap:
	case !r.color:
		add("(no heatmap: NO_COLOR is set)  ", "")
	case e.Wrongness != nil:
		add("wrongness 0 ", "")
		for _, c := range heatRamp {
			add(" ", fmt.Sprintf("48;5;%d", c))
		}
		add(" 1  ", "")
	case e.Iteration+1 >= e.Iterations || e.EarlyStop:
		add("(no heatmap on the last iteration)  ", "")
	default:
		add("(no heatmap: random remasking has no wrongness)  ", "")
	}
	add(glyphMasked, r.sgr(cellMasked, false, -1))
	add(" masked  ", "")
	add(glyphWithdrawn, r.sgr(cellWithdrawn, false, -1))
	add(" remasked  ", "")
	add("new", r.sgr(cellFresh, false, -1))
	add("  ⏎ newline", "")
	if r.batch > 1 {
		add(fmt.Sprintf("  (sample 1 of %d)", r.batch), "")
	}
	return r.wrap(cs, 1)[0]
}

func runeLen(s string) int { return len([]rune(s)) }

// formatDuration is a short duration: 0.4s, 12s, 3m05s.
func formatDuration(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s < 10:
		return fmt.Sprintf("%.1fs", s)
	case s < 60:
		return fmt.Sprintf("%.0fs", s)
	}
	m := int(s) / 60
	return fmt.Sprintf("%dm%02ds", m, int(s)-60*m)
}

// formatRate is a tokens/s figure: one decimal below 100, whole above.
func formatRate(x float64) string {
	x = sampler.FiniteOrZero(x)
	if x < 100 {
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.0f", x)
}
