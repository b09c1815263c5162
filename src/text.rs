//! Text that did not come from ibq, made safe to draw or print on a terminal.
//!
//! Symbols, parameters, error messages, result data and log fields come from the lake, the
//! gateway or other programs. A terminal obeys control characters in them: ESC starts
//! sequences that retitle the window (OSC 0/2), write the clipboard (OSC 52), clear the
//! screen or leave the alternate screen; a bare CR moves the cursor; bidi overrides reorder
//! what follows. Every such string goes through [`clean`] (or [`Clean`] in a format string)
//! before it is drawn or printed: each control becomes a visible escape (`\x1b`, `\r`,
//! `\u{9b}`, `\u{202e}`) and everything else is left as it is. Cut text only after cleaning
//! it ([`cut`]), so a sequence is never cut before its terminator.

use std::borrow::Cow;
use std::fmt;

/// True for the characters a terminal may act on instead of showing: C0 controls
/// (U+0000–U+001F, with ESC, CR, LF and TAB), DEL, C1 controls (U+0080–U+009F, with CSI
/// U+009B and OSC U+009D) and the bidi embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069).
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes the visible escape of one character [`is_unsafe`] holds for.
fn escape(c: char, out: &mut impl fmt::Write) -> fmt::Result {
    match c {
        '\t' => out.write_str("\\t"),
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\0'..='\x7f' => write!(out, "\\x{:02x}", c as u32),
        _ => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// `s` with every unsafe character replaced by its visible escape; borrowed when there is
/// none. One line stays one line: newlines and tabs are escaped too.
pub fn clean(s: &str) -> Cow<'_, str> {
    clean_where(s, is_unsafe)
}

/// Like [`clean`], but keeps newlines, for text printed as several lines (an error
/// message with its context).
pub fn clean_lines(s: &str) -> Cow<'_, str> {
    clean_where(s, |c| c != '\n' && is_unsafe(c))
}

fn clean_where(s: &str, unsafe_char: impl Fn(char) -> bool) -> Cow<'_, str> {
    let Some(first) = s.find(&unsafe_char) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        if unsafe_char(c) {
            let _ = escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The cleaned text cut to at most `max` characters, the last one an ellipsis when cut.
/// Cleaning comes first, so the cut never splits an escape sequence from its terminator.
pub fn cut(s: &str, max: usize) -> String {
    let s = clean(s);
    if s.chars().count() <= max {
        s.into_owned()
    } else if max == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// Formats as [`clean`] would, honouring width and alignment (`{:<8}`), for `format!` and
/// `println!`: `println!("{}", Clean(&r.symbol))`.
#[derive(Debug, Clone, Copy)]
pub struct Clean<'a>(pub &'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&clean(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c0_controls_esc_cr_and_del_become_visible_escapes() {
        assert_eq!(clean("a\x1bb"), "a\\x1bb");
        assert_eq!(
            clean("\x00\x07\x08\x0b\x0c\x1f"),
            "\\x00\\x07\\x08\\x0b\\x0c\\x1f"
        );
        assert_eq!(clean("A\rB"), "A\\rB");
        assert_eq!(clean("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(clean("x\x7fy"), "x\\x7fy");
    }

    #[test]
    fn c1_controls_become_visible_escapes() {
        // CSI and OSC as single code points act like ESC [ and ESC ] on some terminals.
        assert_eq!(clean("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(clean("\u{9d}2;t\u{9c}"), "\\u{9d}2;t\\u{9c}");
        assert_eq!(clean("\u{80}\u{85}\u{9f}"), "\\u{80}\\u{85}\\u{9f}");
    }

    #[test]
    fn bidi_overrides_and_isolates_become_visible_escapes() {
        for c in ('\u{202a}'..='\u{202e}').chain('\u{2066}'..='\u{2069}') {
            let cleaned = clean(&format!("a{c}b")).into_owned();
            assert_eq!(cleaned, format!("a\\u{{{:x}}}b", c as u32));
            assert!(!cleaned.contains(c));
        }
        // Neighbours of the ranges are ordinary text.
        assert_eq!(
            clean("\u{2029}\u{202f}\u{2065}\u{206a}"),
            "\u{2029}\u{202f}\u{2065}\u{206a}"
        );
    }

    #[test]
    fn the_reported_symbol_leaves_no_byte_a_terminal_acts_on() {
        let hostile = "X\x1b]2;PWNED\x07\x1b[2J\x1b]52;c;aGk=\x07A\rB";
        let cleaned = clean(hostile);
        assert_eq!(
            cleaned,
            "X\\x1b]2;PWNED\\x07\\x1b[2J\\x1b]52;c;aGk=\\x07A\\rB"
        );
        assert!(cleaned.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }

    #[test]
    fn ordinary_text_is_left_alone_and_borrowed() {
        for s in [
            "SPY",
            "BRK.B",
            "ES 202612 → 5,012.25 …",
            "ET",
            "09:30 ET · 15:04",
            "naïve café 日本 🤷",
            "",
        ] {
            assert!(matches!(clean(s), Cow::Borrowed(t) if t == s), "{s}");
        }
    }

    #[test]
    fn clean_lines_keeps_newlines_only() {
        assert_eq!(
            clean_lines("line 1\nline 2\x1b[2J\r"),
            "line 1\nline 2\\x1b[2J\\r"
        );
    }

    #[test]
    fn cleaning_twice_changes_nothing_more() {
        let once = clean("a\x1b\u{9b}\u{202e}\r").into_owned();
        assert_eq!(clean(&once), once);
    }

    #[test]
    fn cut_cleans_before_it_cuts() {
        // Cut raw, the first 4 characters would end inside the OSC sequence and leave an
        // ESC with no terminator; cut after cleaning, the escape is visible text.
        let s = "X\x1b]2;PWNED\x07rest";
        let out = cut(s, 6);
        assert_eq!(out, "X\\x1b…");
        assert!(!out.contains('\x1b'));
        assert_eq!(cut(s, 100), clean(s));
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 0), "");
    }

    #[test]
    fn clean_in_a_format_string_pads_the_cleaned_text() {
        assert_eq!(format!("[{:<8}]", Clean("A\rB")), "[A\\rB    ]");
        assert_eq!(format!("[{:>4}]", Clean("SPY")), "[ SPY]");
        assert_eq!(format!("{}", Clean("\u{202e}")), "\\u{202e}");
    }
}
