//! Times as a trader reads them: New York (exchange) time marked `ET`. The console and the
//! CLI's tables print every time through these; JSON output keeps UTC, and the detail views
//! show UTC alongside ET.

use chrono::{DateTime, Timelike, Utc};

use super::calendar::NEW_YORK;

/// `09:35:07 ET`.
pub fn clock(t: DateTime<Utc>) -> String {
    format!("{} ET", t.with_timezone(&NEW_YORK).format("%H:%M:%S"))
}

/// `09:35 ET`.
pub fn clock_short(t: DateTime<Utc>) -> String {
    format!("{} ET", t.with_timezone(&NEW_YORK).format("%H:%M"))
}

/// `09:35:07`: the New York wall time without the zone, for a column whose header says ET.
pub fn hms(t: DateTime<Utc>) -> String {
    t.with_timezone(&NEW_YORK).format("%H:%M:%S").to_string()
}

/// `2026-11-23 09:35:07 ET`.
pub fn stamp(t: DateTime<Utc>) -> String {
    format!(
        "{} ET",
        t.with_timezone(&NEW_YORK).format("%Y-%m-%d %H:%M:%S")
    )
}

/// `2026-11-23 14:35:07 UTC · 09:35:07 ET`, the New York date added when it is not the UTC
/// date (`2026-11-24 01:00:00 UTC · 11-23 20:00:00 ET`): how detail views show a time.
pub fn utc_and_et(t: DateTime<Utc>) -> String {
    let ny = t.with_timezone(&NEW_YORK);
    let et = if ny.date_naive() == t.date_naive() {
        ny.format("%H:%M:%S")
    } else {
        ny.format("%m-%d %H:%M:%S")
    };
    format!("{} UTC · {et} ET", t.format("%Y-%m-%d %H:%M:%S"))
}

/// `09:35:07 ET` when `t` is on the New York date of `now`, `Mon 09:35 ET` within the
/// week around it, else `2026-11-20 09:35 ET`.
pub fn near(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let ny = t.with_timezone(&NEW_YORK);
    let days = (ny.date_naive() - now.with_timezone(&NEW_YORK).date_naive())
        .num_days()
        .abs();
    if days == 0 {
        format!("{} ET", ny.format("%H:%M:%S"))
    } else if days < 7 {
        format!("{} ET", ny.format("%a %H:%M"))
    } else {
        format!("{} ET", ny.format("%Y-%m-%d %H:%M"))
    }
}

/// `09:30 ET`, with seconds only when it has them (`12:59:30 ET`): a scheduled slot's time.
pub fn clock_slot(t: DateTime<Utc>) -> String {
    if t.second() == 0 {
        clock_short(t)
    } else {
        clock(t)
    }
}

/// A scheduled slot: `10:35 ET` on the New York date of `now`, `Tue 08:30 ET` on another
/// day, with seconds when the slot has them (`10:30:30 ET`).
pub fn slot(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let ny = t.with_timezone(&NEW_YORK);
    if ny.date_naive() == now.with_timezone(&NEW_YORK).date_naive() {
        clock_slot(t)
    } else {
        format!("{} {}", ny.format("%a"), clock_slot(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn new_york_time_follows_daylight_saving() {
        // November: EST, UTC-5. July: EDT, UTC-4.
        assert_eq!(clock(t("2026-11-23T14:35:07Z")), "09:35:07 ET");
        assert_eq!(clock(t("2026-07-06T14:35:07Z")), "10:35:07 ET");
        assert_eq!(clock_short(t("2026-11-23T14:35:07Z")), "09:35 ET");
        assert_eq!(stamp(t("2026-11-23T14:35:07Z")), "2026-11-23 09:35:07 ET");
        assert_eq!(hms(t("2026-11-23T14:35:07Z")), "09:35:07");
    }

    #[test]
    fn detail_views_keep_utc_beside_et() {
        assert_eq!(
            utc_and_et(t("2026-11-23T14:35:07Z")),
            "2026-11-23 14:35:07 UTC · 09:35:07 ET"
        );
        assert_eq!(
            utc_and_et(t("2026-11-24T01:00:00Z")),
            "2026-11-24 01:00:00 UTC · 11-23 20:00:00 ET"
        );
    }

    #[test]
    fn near_times_drop_the_date() {
        let now = t("2026-11-23T15:00:00Z");
        assert_eq!(near(t("2026-11-23T14:35:07Z"), now), "09:35:07 ET");
        assert_eq!(near(t("2026-11-20T14:35:07Z"), now), "Fri 09:35 ET");
        assert_eq!(near(t("2026-11-02T14:35:07Z"), now), "2026-11-02 09:35 ET");
    }

    #[test]
    fn slots_show_seconds_only_when_they_have_them() {
        let now = t("2026-11-23T15:00:00Z");
        assert_eq!(slot(t("2026-11-23T15:35:00Z"), now), "10:35 ET");
        assert_eq!(slot(t("2026-11-23T15:30:30Z"), now), "10:30:30 ET");
        assert_eq!(slot(t("2026-11-24T13:30:00Z"), now), "Tue 08:30 ET");
        // 00:30 UTC on the 24th is still the 23rd in New York.
        assert_eq!(slot(t("2026-11-24T00:30:00Z"), now), "19:30 ET");
        assert_eq!(clock_slot(t("2026-11-27T17:59:30Z")), "12:59:30 ET");
        assert_eq!(clock_slot(t("2026-07-06T13:30:00Z")), "09:30 ET");
    }
}
