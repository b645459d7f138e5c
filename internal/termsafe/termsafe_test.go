package termsafe

import "testing"

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, line, text string }{
		{"plain text, é ü 漢字", "plain text, é ü 漢字", "plain text, é ü 漢字"},
		{"\x1b[2J\x1b]0;pwned\x07", `\x1b[2J\x1b]0;pwned\x07`, `\x1b[2J\x1b]0;pwned\x07`},
		{"a\nb\tc\rd", `a\nb\tc\rd`, "a\nb\tc\\rd"},
		{"csi\u009b31m del\x7f", `csi\x9b31m del\x7f`, `csi\x9b31m del\x7f`},
		{"rtl\u202eevil\u2066", `rtl\u202eevil\u2066`, `rtl\u202eevil\u2066`},
		{"bad\xffutf8", `bad\xffutf8`, `bad\xffutf8`},
		{"nul\x00", `nul\x00`, `nul\x00`},
		{"literal \ufffd stays", "literal \ufffd stays", "literal \ufffd stays"},
	} {
		if got := Escape(tc.in); got != tc.line {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.line)
		}
		if got := EscapeText(tc.in); got != tc.text {
			t.Errorf("EscapeText(%q) = %q, want %q", tc.in, got, tc.text)
		}
		if Needs(tc.in) != (tc.in != tc.line) {
			t.Errorf("Needs(%q) = %v", tc.in, Needs(tc.in))
		}
	}
}
