//! One key chord as `keymap.toml` spells it and as a terminal reports it, normalised so the
//! two compare equal.

use std::fmt;
use std::str::FromStr;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// One key chord, normalised so that a terminal event and a `keymap.toml` string compare equal:
/// for characters and back-tab the shift is in the code (`Char('R')`, `BackTab`), never in
/// `mods`; `mods` holds only CONTROL, ALT and (for named keys) SHIFT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    /// A key with its modifiers, normalised.
    pub fn new(code: KeyCode, mods: KeyModifiers) -> Key {
        let mut mods = mods & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match code {
            KeyCode::Char(c) => {
                let c = if mods.contains(KeyModifiers::SHIFT) && c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c
                };
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::Char(c)
            }
            KeyCode::Tab if mods.contains(KeyModifiers::SHIFT) => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            KeyCode::BackTab => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            other => other,
        };
        Key { code, mods }
    }

    /// The key of a terminal event.
    pub fn from_event(event: &KeyEvent) -> Key {
        Key::new(event.code, event.modifiers)
    }

    /// Control together with shift: tmux and many terminals never deliver these.
    pub fn is_ctrl_shift(&self) -> bool {
        self.mods.contains(KeyModifiers::CONTROL)
            && (self.mods.contains(KeyModifiers::SHIFT)
                || self.code == KeyCode::BackTab
                || matches!(self.code, KeyCode::Char(c) if c.is_ascii_uppercase()))
    }
}

/// Named keys, in the spelling `keymap.toml` uses (the first name of a code is the printed one).
const NAMED: &[(&str, KeyCode)] = &[
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("shift-tab", KeyCode::BackTab),
    ("backtab", KeyCode::BackTab),
    ("space", KeyCode::Char(' ')),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
    ("insert", KeyCode::Insert),
];

impl FromStr for Key {
    type Err = String;

    fn from_str(s: &str) -> Result<Key, String> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s;
        loop {
            // `shift-tab` is a name of its own; `ctrl--` is control with `-`.
            let (prefix, m) = if rest.starts_with("ctrl-") {
                ("ctrl-", KeyModifiers::CONTROL)
            } else if rest.starts_with("alt-") {
                ("alt-", KeyModifiers::ALT)
            } else if rest.starts_with("shift-") && rest != "shift-tab" {
                ("shift-", KeyModifiers::SHIFT)
            } else {
                break;
            };
            if rest.len() == prefix.len() {
                break;
            }
            if mods.contains(m) {
                return Err(format!("key `{s}` repeats `{prefix}`"));
            }
            mods |= m;
            rest = &rest[prefix.len()..];
        }
        let code = if let Some((_, code)) = NAMED.iter().find(|(n, _)| *n == rest) {
            *code
        } else if let Some(n) = rest.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
            if !(1..=12).contains(&n) || rest != format!("f{n}") {
                return Err(format!("key `{s}`: function keys are f1..f12"));
            }
            KeyCode::F(n)
        } else {
            let mut chars = rest.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !c.is_whitespace() && !c.is_control() => {
                    if mods.contains(KeyModifiers::SHIFT) && !c.is_ascii_lowercase() {
                        return Err(format!(
                            "key `{s}`: shift only goes with a lowercase letter or a named key; \
                             write the character itself"
                        ));
                    }
                    KeyCode::Char(c)
                }
                _ => {
                    return Err(format!(
                        "unknown key `{s}` (a single character, or one of {}, f1..f12, \
                         with optional ctrl-, alt-, shift- prefixes)",
                        NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" ")
                    ))
                }
            }
        };
        Ok(Key::new(code, mods))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        match self.code {
            // Control with an uppercase letter is spelled out so it reads as the chord it is.
            KeyCode::Char(c)
                if c.is_ascii_uppercase() && self.mods.contains(KeyModifiers::CONTROL) =>
            {
                write!(f, "shift-{}", c.to_ascii_lowercase())
            }
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => {
                if self.mods.contains(KeyModifiers::SHIFT) {
                    f.write_str("shift-")?;
                }
                write!(f, "f{n}")
            }
            code => {
                if self.mods.contains(KeyModifiers::SHIFT) {
                    f.write_str("shift-")?;
                }
                match NAMED.iter().find(|(_, c)| *c == code) {
                    Some((name, _)) => f.write_str(name),
                    None => write!(f, "{code:?}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn keys_round_trip() {
        for s in [
            "j",
            "k",
            "up",
            "down",
            "pageup",
            "pagedown",
            "home",
            "end",
            "enter",
            "esc",
            "tab",
            "shift-tab",
            "space",
            "?",
            "+",
            "-",
            "/",
            "R",
            "G",
            "ctrl-r",
            "alt-x",
            "alt-1",
            "ctrl--",
            "f1",
            "f12",
            "shift-up",
            "ctrl-shift-r",
            "ctrl-alt-delete",
        ] {
            let k = key(s);
            assert_eq!(k.to_string(), s, "print of {s}");
            assert_eq!(key(&k.to_string()), k, "parse of print of {s}");
        }
    }

    #[test]
    fn key_spellings_normalise() {
        assert_eq!(key("shift-r"), key("R"));
        assert_eq!(key("backtab"), key("shift-tab"));
        assert_eq!(key("R"), Key::new(KeyCode::Char('R'), KeyModifiers::NONE));
        assert_eq!(key("shift-tab").code, KeyCode::BackTab);
        assert_eq!(key("ctrl-r").mods, KeyModifiers::CONTROL);
        assert_eq!(key("space").code, KeyCode::Char(' '));
    }

    #[test]
    fn bad_keys_do_not_parse() {
        for s in [
            "",
            "jj",
            "ctrl-",
            "f13",
            "f0",
            "hyper-x",
            "shift-?",
            "ctrl-ctrl-x",
            "f01",
        ] {
            assert!(s.parse::<Key>().is_err(), "`{s}` should not parse");
        }
    }
}
