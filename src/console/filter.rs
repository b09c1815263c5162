//! The queue panes' filter language. Terms are separated by spaces and all must hold:
//! plain text matches any column (type, symbol, id, status, error, parameters);
//! `type:`, `symbol:`, `code:`, `status:` and `param.NAME:` match one field; `!` negates.

use crate::queue::Request;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Any,
    Type,
    Symbol,
    Code,
    Status,
    Param(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    negated: bool,
    field: Field,
    /// Lower case.
    text: String,
}

/// A parsed filter; the empty filter matches every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    terms: Vec<Term>,
}

impl Filter {
    pub fn parse(text: &str) -> Self {
        let terms = text
            .split_whitespace()
            .filter_map(|word| {
                let (negated, word) = match word.strip_prefix('!') {
                    Some(w) => (true, w),
                    None => (false, word),
                };
                let word = word.to_lowercase();
                let (field, text) = match word.split_once(':') {
                    Some(("type", t)) => (Field::Type, t),
                    Some(("symbol", t)) => (Field::Symbol, t),
                    Some(("code", t)) => (Field::Code, t),
                    Some(("status", t)) => (Field::Status, t),
                    Some((k, t)) if k.starts_with("param.") && k.len() > 6 => {
                        (Field::Param(k["param.".len()..].to_string()), t)
                    }
                    _ => (Field::Any, word.as_str()),
                };
                (!text.is_empty() || matches!(field, Field::Param(_))).then(|| Term {
                    negated,
                    field,
                    text: text.to_string(),
                })
            })
            .collect();
        Filter { terms }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, r: &Request) -> bool {
        self.terms.iter().all(|t| t.holds(r) != t.negated)
    }
}

/// The IB code an error begins with (`IB 354: …`, or `IB error 354: …` as the worker words
/// a gateway's error → `354`).
fn code(error: &str) -> Option<&str> {
    let s = error.trim_start();
    let s = s.strip_prefix("IB").map(str::trim_start).unwrap_or(s);
    let s = s.strip_prefix("error ").map(str::trim_start).unwrap_or(s);
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    (n > 0).then(|| &s[..n])
}

impl Term {
    fn holds(&self, r: &Request) -> bool {
        let has = |s: &str| s.to_lowercase().contains(&self.text);
        match &self.field {
            Field::Type => has(r.request_type.as_str()),
            Field::Symbol => has(&r.symbol),
            Field::Status => has(r.status.as_str()),
            Field::Code => r
                .error_message
                .as_deref()
                .and_then(code)
                .is_some_and(|c| c == self.text),
            Field::Param(name) => r
                .parameters
                .as_object()
                .and_then(|m| m.iter().find(|(k, _)| k.to_lowercase() == *name))
                .is_some_and(|(_, v)| match v {
                    serde_json::Value::String(s) => has(s),
                    other => has(&other.to_string()),
                }),
            Field::Any => {
                has(r.request_type.as_str())
                    || has(&r.symbol)
                    || r.request_id.to_string().contains(&self.text)
                    || has(r.status.as_str())
                    || r.error_message.as_deref().is_some_and(has)
                    || has(&r.parameters.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    fn req(ty: &str, sym: &str, params: serde_json::Value, error: Option<&str>) -> Request {
        let mut r = (*sample::snapshot(1).pending[0]).clone();
        r.request_type = ty.parse().unwrap();
        r.symbol = sym.into();
        r.parameters = params;
        r.error_message = error.map(str::to_string);
        r
    }

    #[test]
    fn terms_match_one_field_any_column_and_negate() {
        let spy = req(
            "option_chain",
            "SPY",
            serde_json::json!({"target_dte": 30, "right": "both"}),
            Some("IB 354: Requested market data is not subscribed"),
        );
        let qqq = req(
            "market_bars",
            "QQQ",
            serde_json::json!({"bar_size": "1 hour"}),
            Some("IB 200: No security definition"),
        );
        let m = |f: &str, r: &Request| Filter::parse(f).matches(r);
        assert!(m("", &spy) && Filter::parse("  ").is_empty());
        // Plain text: any column, parameters included.
        assert!(m("spy", &spy) && !m("spy", &qqq));
        assert!(m("hour", &qqq) && !m("hour", &spy));
        assert!(m("subscribed", &spy));
        // One field.
        assert!(m("type:option", &spy) && !m("type:option", &qqq));
        assert!(m("symbol:qqq", &qqq) && !m("symbol:qqq", &spy));
        assert!(m("code:354", &spy) && !m("code:35", &spy) && !m("code:354", &qqq));
        assert!(m("status:pend", &spy));
        assert!(m("param.target_dte:30", &spy) && !m("param.target_dte:30", &qqq));
        assert!(m("param.bar_size:hour", &qqq));
        // Negation and conjunction.
        assert!(!m("!code:354", &spy) && m("!code:354", &qqq));
        assert!(m("type:option !symbol:qqq", &spy));
        assert!(!m("type:option symbol:qqq", &spy));
        // Text with a colon that names no field is plain text.
        assert!(m("ib 354:", &spy));
    }

    #[test]
    fn code_reads_the_workers_own_wording_of_a_gateway_error() {
        let r = req(
            "market_bars",
            "FOO",
            serde_json::json!({}),
            Some("IB error 200: No security definition has been found for the request"),
        );
        let m = |f: &str| Filter::parse(f).matches(&r);
        assert!(m("code:200") && !m("code:354") && !m("!code:200"));
    }
}
