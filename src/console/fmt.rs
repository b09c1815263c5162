//! Small text helpers shared by the panes.

use chrono::{DateTime, Utc};

/// The one form of an age or a countdown in every pane: `45s`, `12m`, `3h05m`, `2d`.
/// Whole units, rounded down, so a span never reads longer than it is.
pub fn span(secs: i64) -> String {
    let s = secs.max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d", s / 86_400)
    }
}

/// Time since `t`.
pub fn age(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    span((now - t).num_seconds())
}

/// Time until `t`, or `now` when it has passed.
pub fn until(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let s = (t - now).num_seconds();
    if s <= 0 {
        "now".into()
    } else {
        format!("in {}", span(s))
    }
}

/// `2026-11-23 10:04:05 ET`: a time with its date, in New York time. Every time the
/// console shows goes through this module's time helpers (`stamp`, `et`, `slot`,
/// `hms`, `utc_and_et`), so every pane speaks exchange time.
pub fn stamp(t: DateTime<Utc>) -> String {
    crate::market::et::stamp(t)
}

/// `10:04:05 ET` on the New York date of `now`, `Mon 10:04 ET` within a week of it, else
/// with the date.
pub fn et(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    crate::market::et::near(t, now)
}

/// `10:35 ET` on the New York date of `now`, `Tue 08:30 ET` on another day, with seconds
/// when the slot has them: a scheduled slot.
pub fn slot(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    crate::market::et::slot(t, now)
}

/// `10:04:05`, New York time without the zone, for a column or pane titled `ET`.
pub fn hms(t: DateTime<Utc>) -> String {
    crate::market::et::hms(t)
}

/// `2026-11-23 15:04:05 UTC · 10:04:05 ET`: how the detail view shows a time.
pub fn utc_and_et(t: DateTime<Utc>) -> String {
    crate::market::et::utc_and_et(t)
}

pub fn price(p: Option<f64>) -> String {
    match p {
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => "-".into(),
    }
}

pub fn qty(q: f64) -> String {
    if q.fract() == 0.0 {
        format!("{q:.0}")
    } else {
        format!("{q}")
    }
}

/// Text from outside ibq, cleaned of control characters (`crate::text::clean`), ready
/// for a cell or a span.
pub fn ext(s: &str) -> String {
    crate::text::clean(s).into_owned()
}

/// Cuts `s` to `max` characters with an ellipsis, after cleaning it.
pub fn cut(s: &str, max: usize) -> String {
    crate::text::cut(s, max)
}

/// Thousands separators: 100000 → 100,000.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_counts() {
        assert_eq!(span(5), "5s");
        assert_eq!(span(-3), "0s");
        assert_eq!(span(59), "59s");
        assert_eq!(span(125), "2m");
        assert_eq!(span(3599), "59m");
        assert_eq!(span(3600), "1h00m");
        assert_eq!(span(3 * 3600 + 300), "3h05m");
        assert_eq!(span(2 * 86_400 + 4 * 3600), "2d");
        assert_eq!(count(100_000), "100,000");
        assert_eq!(count(999), "999");
        assert_eq!(cut("abcdef", 4), "abc…");
    }
}
