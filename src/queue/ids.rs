//! Request ids as operators type them: the whole UUID, or a prefix of at least four
//! characters that only one request's id starts with. The command line and the console's
//! `:` line resolve them with the same words.

use uuid::Uuid;

/// The id `text` names among `ids`: a whole UUID is taken as it is (whether or not it is
/// among them); a prefix must match exactly one.
pub fn resolve(ids: impl IntoIterator<Item = Uuid>, text: &str) -> Result<Uuid, String> {
    if let Ok(id) = Uuid::parse_str(text) {
        return Ok(id);
    }
    let text = text.to_ascii_lowercase();
    if text.len() < 4 || !text.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(format!(
            "`{}` is not a request id (give the UUID or at least its first 4 characters)",
            crate::text::Clean(&text)
        ));
    }
    let mut matches: Vec<Uuid> = ids
        .into_iter()
        .filter(|id| id.to_string().starts_with(&text))
        .collect();
    matches.sort();
    matches.dedup();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("no request id starts with `{text}`")),
        many => Err(format!(
            "`{text}` matches {} requests; give more characters",
            many.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_id_or_a_unique_prefix_names_a_request() {
        let a = Uuid::parse_str("1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed").unwrap();
        let b = Uuid::parse_str("1b9d7000-0000-4000-8000-000000000000").unwrap();
        let ids = [a, b];
        assert_eq!(resolve(ids, "1b9d6"), Ok(a));
        assert_eq!(resolve(ids, "1B9D7"), Ok(b));
        assert_eq!(resolve(ids, &a.to_string()), Ok(a));
        let other = Uuid::from_u128(5);
        assert_eq!(resolve(ids, &other.to_string()), Ok(other));
        assert_eq!(
            resolve(ids, "1b9d"),
            Err("`1b9d` matches 2 requests; give more characters".into())
        );
        assert_eq!(
            resolve(ids, "ffff"),
            Err("no request id starts with `ffff`".into())
        );
        assert_eq!(
            resolve(ids, "1b9"),
            Err(
                "`1b9` is not a request id (give the UUID or at least its first 4 characters)"
                    .into()
            )
        );
        assert!(resolve(ids, "spy!")
            .unwrap_err()
            .contains("is not a request id"));
    }
}
