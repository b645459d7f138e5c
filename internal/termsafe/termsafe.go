// Package termsafe makes strings from files (a model's card, vocabulary and
// source, a checkpoint's strings, file names) safe to print on a terminal or
// in a log: every character that a terminal would act on instead of showing
// is replaced by a visible escape.
//
// Escaped: the C0 controls (U+0000-U+001F, ESC among them, which starts
// colour, cursor and window-title sequences), DEL (U+007F), the C1 controls
// (U+0080-U+009F, CSI U+009B among them), the Unicode direction controls
// (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069, which reorder what
// follows), the line and paragraph separators (U+2028, U+2029), and bytes
// that are not UTF-8. They are shown as \n, \r, \t, \xNN (a byte or a
// control below U+0100) or \uNNNN. JSON output never goes through here: it
// is exact, and its encoder escapes controls itself.
package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Escape returns s with every unsafe character escaped, newlines and tabs
// included: for one-line fields (a name, a token, a source string).
func Escape(s string) string { return escape(s, false) }

// EscapeText is Escape for multi-line text (a model card, a generated
// sample): newlines and tabs stay as they are.
func EscapeText(s string) string { return escape(s, true) }

// Needs reports whether Escape would change s.
func Needs(s string) bool {
	for i, c := range s {
		if c == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return true
			}
		}
		if unsafeRune(c) {
			return true
		}
	}
	return false
}

func escape(s string, text bool) string {
	if !Needs(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case text && (c == '\n' || c == '\t'):
			b.WriteRune(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case unsafeRune(c) && c < 0x100:
			fmt.Fprintf(&b, `\x%02x`, c)
		case unsafeRune(c):
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// unsafeRune reports whether a terminal would act on c instead of showing it.
func unsafeRune(c rune) bool {
	switch {
	case c < 0x20, c == 0x7f, c >= 0x80 && c <= 0x9f:
		return true
	case c == 0x061c, c == 0x200e, c == 0x200f, c >= 0x202a && c <= 0x202e, c >= 0x2066 && c <= 0x2069:
		return true
	case c == 0x2028, c == 0x2029:
		return true
	}
	return false
}
