//! A command line split into words as a shell would: spaces separate, `"…"` and `'…'`
//! keep spaces in a word, and a backslash takes the next character as it is (not inside
//! single quotes). Each word keeps where it starts, so completion can replace it.

/// One word of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word with its quotes and escapes taken away.
    pub text: String,
    /// Byte offset in the line where the word (its opening quote included) starts.
    pub start: usize,
}

/// The words of a line, and whether it ends inside a quote (which one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub words: Vec<Word>,
    pub open_quote: Option<char>,
    /// True when the line ends in a space outside quotes: the next word has not begun.
    pub ends_in_space: bool,
}

pub fn split(line: &str) -> Split {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            current
                .get_or_insert_with(|| Word {
                    text: String::new(),
                    start: i,
                })
                .text
                .push(c);
            continue;
        }
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => current.as_mut().expect("inside a word").text.push(c),
            (_, '\\') => {
                escaped = true;
                current.get_or_insert_with(|| Word {
                    text: String::new(),
                    start: i,
                });
            }
            (Some(_), c) => current.as_mut().expect("inside a word").text.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                current.get_or_insert_with(|| Word {
                    text: String::new(),
                    start: i,
                });
            }
            (None, c) if c.is_whitespace() => {
                if let Some(w) = current.take() {
                    words.push(w);
                }
            }
            (None, c) => current
                .get_or_insert_with(|| Word {
                    text: String::new(),
                    start: i,
                })
                .text
                .push(c),
        }
    }
    let ends_in_space = current.is_none() && quote.is_none() && !line.is_empty();
    if let Some(w) = current {
        words.push(w);
    }
    Split {
        words,
        open_quote: quote,
        ends_in_space,
    }
}

/// The words of a complete line, or why it is not one.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let s = split(line);
    if let Some(q) = s.open_quote {
        return Err(format!("the quote {q} is not closed"));
    }
    Ok(s.words.into_iter().map(|w| w.text).collect())
}

/// `text` as one word of a line: quoted when it holds a space, a quote or a backslash.
pub fn quote(text: &str) -> String {
    if !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        return text.to_string();
    }
    let mut out = String::from("\"");
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        words(line).unwrap()
    }

    #[test]
    fn words_split_on_spaces_and_keep_quoted_spaces() {
        assert_eq!(
            texts("enqueue option_chain SPY --param dte=30"),
            ["enqueue", "option_chain", "SPY", "--param", "dte=30"]
        );
        assert_eq!(
            texts(r#"promote 756733 --strategy "SPY iron condor""#),
            ["promote", "756733", "--strategy", "SPY iron condor"]
        );
        assert_eq!(
            texts(r#"dismiss --all-failed --reason 'no "such" symbol'"#),
            ["dismiss", "--all-failed", "--reason", r#"no "such" symbol"#]
        );
        assert_eq!(texts(r"x a\ b"), ["x", "a b"]);
        assert_eq!(texts("  retry   --all-failed  "), ["retry", "--all-failed"]);
        assert_eq!(texts(r#"x "" y"#), ["x", "", "y"]);
        assert!(words(r#"promote 1 --strategy "open"#)
            .unwrap_err()
            .contains("not closed"));
    }

    #[test]
    fn a_split_says_where_each_word_starts_and_whether_one_is_open() {
        let s = split(r#"promote 756733 --strategy "SPY ir"#);
        assert_eq!(s.open_quote, Some('"'));
        assert!(!s.ends_in_space);
        let last = s.words.last().unwrap();
        assert_eq!(last.text, "SPY ir");
        assert_eq!(last.start, 26);
        let s = split("retry ");
        assert!(s.ends_in_space);
        assert_eq!(s.words.len(), 1);
        assert!(!split("").ends_in_space);
    }

    #[test]
    fn quoting_round_trips() {
        for t in ["SPY", "SPY iron condor", r#"a "b" \c"#, ""] {
            assert_eq!(texts(&format!("x {}", quote(t))), ["x", t]);
        }
        assert_eq!(quote("SPY"), "SPY");
        assert_eq!(quote("SPY iron condor"), "\"SPY iron condor\"");
    }
}
