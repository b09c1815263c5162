//! Failures grouped by cause: the IB code and message with numbers and ids masked, so
//! twelve option chains refused with "IB 354 ... not subscribed" are one line `×12`.

/// The cause of a failure: `IB <code> <message>` with every other number, conid and id
/// masked as `#`, spacing folded. An error that names no IB code keeps its text, masked.
pub fn cause(error: &str) -> String {
    cause_for(error, "")
}

/// The cause of a request's failure: [`cause`], with the request's own symbol masked in the
/// message too (`No security definition has been found for <symbol>`), so one refusal of
/// many symbols is one group. The IB code before the message is never taken for a symbol.
pub fn cause_of(r: &crate::queue::Request) -> String {
    cause_for(r.error_message.as_deref().unwrap_or_default(), &r.symbol)
}

fn cause_for(error: &str, symbol: &str) -> String {
    let text = error.trim();
    let (code, rest) = ib_code(text).unwrap_or((None, text));
    let masked = mask(&mask_symbol(rest, symbol));
    match code {
        Some(c) if masked.is_empty() => format!("IB {c}"),
        Some(c) => format!("IB {c} {masked}"),
        None if masked.is_empty() => "(no error text)".into(),
        None => masked,
    }
}

/// `IB 354: rest` / `IB error 354: rest` (the worker's own words) / `IB 354 rest` /
/// `354: rest` → the code and the rest.
fn ib_code(text: &str) -> Option<(Option<&str>, &str)> {
    let after_ib = text
        .strip_prefix("IB ")
        .or_else(|| text.strip_prefix("IB"))
        .map(str::trim_start)
        .map(|s| s.strip_prefix("error ").map(str::trim_start).unwrap_or(s));
    let s = after_ib.unwrap_or(text);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let rest = &s[digits..];
    let rest = match rest.strip_prefix(':') {
        Some(r) => r,
        None if after_ib.is_some() && (rest.is_empty() || rest.starts_with(' ')) => rest,
        None => return None,
    };
    Some((Some(&s[..digits]), rest.trim_start()))
}

/// Replaces each whole-word `symbol` in `text` by `<symbol>`.
fn mask_symbol(text: &str, symbol: &str) -> String {
    if symbol.is_empty() {
        return text.to_string();
    }
    let word = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(symbol) {
        let (before, after) = (&rest[..i], &rest[i + symbol.len()..]);
        let alone = !before.chars().next_back().is_some_and(word)
            && !after.chars().next().is_some_and(|c| word(c) && c != '.');
        out.push_str(before);
        out.push_str(if alone { "<symbol>" } else { symbol });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Replaces each word holding a digit (a number, a conid, a UUID, a time) by `#`, and folds
/// runs of white space into one space.
fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        let core = word.trim_end_matches([',', '.', ';', ':', ')']);
        let tail = &word[core.len()..];
        let lead = core
            .chars()
            .take_while(|c| matches!(c, '(' | '[' | '\'' | '"' | '='))
            .map(char::len_utf8)
            .sum::<usize>();
        let (open, body) = core.split_at(lead);
        if body.chars().any(|c| c.is_ascii_digit()) {
            // Keep a `key=` or `key:` prefix, mask the value.
            match body.find(['=', ':']) {
                Some(i) if !body[..i].chars().any(|c| c.is_ascii_digit()) => {
                    out.push_str(open);
                    out.push_str(&body[..=i]);
                    out.push('#');
                }
                _ => {
                    out.push_str(open);
                    out.push('#');
                }
            }
        } else {
            out.push_str(open);
            out.push_str(body);
        }
        out.push_str(tail);
    }
    out
}

/// One cause and the rows that failed with it, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<T> {
    pub cause: String,
    pub members: Vec<T>,
}

/// Groups `(item, request)` pairs by the request's cause ([`cause_of`]): the largest group
/// first, ties in the order each cause first appears. Members keep the order given.
pub fn group<'a, T>(
    items: impl IntoIterator<Item = (T, &'a crate::queue::Request)>,
) -> Vec<Group<T>> {
    let mut groups: Vec<Group<T>> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (item, request) in items {
        let c = cause_of(request);
        match index.get(&c) {
            Some(&i) => groups[i].members.push(item),
            None => {
                index.insert(c.clone(), groups.len());
                groups.push(Group {
                    cause: c,
                    members: vec![item],
                });
            }
        }
    }
    // Stable: equal sizes keep first-seen order.
    groups.sort_by_key(|g| std::cmp::Reverse(g.members.len()));
    groups
}

/// The line a group shows: `IB 354 Requested market data is not subscribed ×12`.
pub fn label<T>(g: &Group<T>) -> String {
    format!("{} ×{}", g.cause, g.members.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ib_code_and_message_are_kept_numbers_and_ids_masked() {
        assert_eq!(
            cause("IB 354: Requested market data is not subscribed"),
            "IB 354 Requested market data is not subscribed"
        );
        assert_eq!(
            cause("IB 200: No security definition has been found for the request"),
            "IB 200 No security definition has been found for the request"
        );
        // A conid, a request id and a count differ per row; the cause does not.
        assert_eq!(
            cause("IB 10197: No market data during competing live session for conid 756733"),
            "IB 10197 No market data during competing live session for conid #"
        );
        assert_eq!(
            cause("IB 10197: No market data during competing live session for conid 1021060123"),
            cause("IB 10197: No market data during competing live session for conid 756733"),
        );
        assert_eq!(
            cause("timed out after 30s waiting for request 2f6d8e38-9d0e-4c1b-8a7e-0c3f2b1a9d11"),
            "timed out after # waiting for request #"
        );
        assert_eq!(
            cause("IB 162 pacing violation (60 in 600s)"),
            "IB 162 pacing violation (# in #)"
        );
        assert_eq!(cause("  IB  162:   no  data  "), "IB 162 no data");
        assert_eq!(cause("162: no data, reqId=17."), "IB 162 no data, reqId=#.");
        assert_eq!(cause("IB 504"), "IB 504");
        // As the worker words a gateway's error.
        assert_eq!(
            cause("IB error 200: No security definition has been found for the request"),
            "IB 200 No security definition has been found for the request"
        );
        assert_eq!(cause(""), "(no error text)");
        // Words without digits stay: symbols and exchange names are part of the message.
        assert_eq!(
            cause("IB 162: HMDS query returned no data: SPY@SMART Trades"),
            "IB 162 HMDS query returned no data: SPY@SMART Trades"
        );
        // A number that is not a code is not taken for one.
        assert_eq!(cause("3 legs stale"), "# legs stale");
        assert_eq!(cause("IBM 5 refused"), "IBM # refused");
    }

    fn failed(symbol: &str, error: &str) -> crate::queue::Request {
        let mut r = crate::console::sample::request(
            0,
            crate::queue::Status::Failed,
            crate::console::sample::t0(),
        );
        r.symbol = symbol.into();
        r.error_message = Some(error.into());
        r
    }

    #[test]
    fn groups_count_their_rows_largest_first_in_order() {
        let errors = [
            "IB 200: No security definition has been found for the request",
            "IB 354: Requested market data is not subscribed",
            "IB 162: no data for conid 1",
            "IB 354: Requested market data is not subscribed",
            "IB 162: no data for conid 2",
            "IB 354: Requested market data is not subscribed",
        ];
        let rows: Vec<_> = errors.iter().map(|e| failed("SPY", e)).collect();
        let groups = group(rows.iter().enumerate());
        let shown: Vec<(String, Vec<usize>)> = groups
            .iter()
            .map(|g| (label(g), g.members.clone()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "IB 354 Requested market data is not subscribed ×3".to_string(),
                    vec![1, 3, 5]
                ),
                ("IB 162 no data for conid # ×2".to_string(), vec![2, 4]),
                (
                    "IB 200 No security definition has been found for the request ×1".to_string(),
                    vec![0]
                ),
            ]
        );
        assert!(group(Vec::<(usize, &crate::queue::Request)>::new()).is_empty());
    }

    #[test]
    fn the_same_refusal_of_several_symbols_is_one_cause() {
        let rows = [
            failed(
                "TSLA",
                "IB error 200: No security definition has been found for TSLA",
            ),
            failed(
                "BRK.B",
                "IB error 200: No security definition has been found for BRK.B",
            ),
            failed(
                "IB",
                "IB error 200: No security definition has been found for IB.",
            ),
            // Not a whole word: another symbol's name inside a word stays.
            failed(
                "ES",
                "IB error 200: No security definition has been found for ESTC",
            ),
        ];
        let causes: Vec<String> = rows.iter().map(cause_of).collect();
        let want = "IB 200 No security definition has been found for <symbol>";
        assert_eq!(causes[0], want);
        assert_eq!(causes[1], want);
        assert_eq!(causes[2], format!("{want}."));
        assert_eq!(
            causes[3],
            "IB 200 No security definition has been found for ESTC"
        );
        let groups = group(rows[..2].iter().enumerate());
        assert_eq!(groups.len(), 1);
        assert_eq!(label(&groups[0]), format!("{want} ×2"));
    }
}
