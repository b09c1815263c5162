//! Copy by OSC 52: the terminal puts the text on the trader's clipboard, also over SSH.
//! Inside tmux the sequence is wrapped in tmux's passthrough (`ESC P tmux; … ESC \`, every
//! ESC inside doubled) so it reaches the outer terminal.

use base64::Engine;

/// The bytes that ask the terminal to put `text` on the clipboard; `in_tmux` when `$TMUX`
/// is set.
pub fn sequence(text: &str, in_tmux: bool) -> String {
    let osc = format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(text)
    );
    if in_tmux {
        format!("\x1bPtmux;{}\x1b\\", osc.replace('\x1b', "\x1b\x1b"))
    } else {
        osc
    }
}

/// True when the console runs inside tmux.
pub fn in_tmux() -> bool {
    std::env::var_os("TMUX").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_holds_the_text_base64_encoded() {
        assert_eq!(
            sequence("2f6d8e38-9d0e", false),
            "\x1b]52;c;MmY2ZDhlMzgtOWQwZQ==\x07"
        );
        // Several ids, one per line.
        assert_eq!(sequence("a\nb", false), "\x1b]52;c;YQpi\x07");
    }

    #[test]
    fn inside_tmux_it_goes_through_passthrough_with_esc_doubled() {
        assert_eq!(
            sequence("hi", true),
            "\x1bPtmux;\x1b\x1b]52;c;aGk=\x07\x1b\\"
        );
    }
}
