//! `derived_stats`: a day's figures per symbol from the stored bars and snapshots.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::{id_col, ny_date};
use crate::lake::columns::{BatchBuilder, BatchReader};
use crate::queue::params::DerivedStatsParams;
use crate::queue::Request;
use crate::worker::errors::WorkError;
use crate::worker::results::*;

#[derive(Default)]
struct DayStats {
    open: Option<(DateTime<Utc>, f64)>,
    close: Option<(DateTime<Utc>, f64)>,
    high: Option<f64>,
    low: Option<f64>,
    atm_iv: Option<f64>,
    put_volume: f64,
    call_volume: f64,
}

/// Computes a `derived_stats` request from the result tables and replaces its date's rows.
pub async fn derived_stats(
    results: &ResultTables,
    req: &Request,
    p: &DerivedStatsParams,
    now: DateTime<Utc>,
) -> Result<Written, WorkError> {
    let date = p.date.unwrap_or_else(|| ny_date(now));
    // The request's symbol, or every symbol for `ALL` (what the scheduler puts on jobs
    // that name no symbol).
    let only = Some(req.symbol.trim()).filter(|s| !s.is_empty() && *s != "ALL");
    let wanted = |s: &str| only.is_none_or(|o| o == s);
    let mut stats: BTreeMap<String, DayStats> = BTreeMap::new();
    let lake = |m: String| WorkError::Lake(m);

    // Daily range and return from the day's bars (daily bars carry the date at 00:00 UTC,
    // intraday bars their New York trading day): only that day's partitions are read.
    let day = BTreeSet::from([date]);
    let (bar_batches, mut files_read) = results.read_days(MARKET_BARS, &day).await?;
    for batch in bar_batches {
        let r = BatchReader::new(&batch);
        let (sym, at) = (
            r.utf8("symbol").map_err(lake)?,
            r.timestamp("bar_time").map_err(lake)?,
        );
        let size = r.utf8("bar_size").map_err(lake)?;
        let (o, h, l, c) = (
            r.f64("open").map_err(lake)?,
            r.f64("high").map_err(lake)?,
            r.f64("low").map_err(lake)?,
            r.f64("close").map_err(lake)?,
        );
        for i in 0..r.len() {
            let (Some(s), Some(t)) = (&sym[i], at[i]) else {
                continue;
            };
            if !wanted(s) {
                continue;
            }
            if bar_day(size[i].as_deref().unwrap_or(""), t) != date {
                continue;
            }
            let e = stats.entry(s.clone()).or_default();
            if let Some(v) = o[i] {
                if e.open.is_none_or(|(t0, _)| t < t0) {
                    e.open = Some((t, v));
                }
            }
            if let Some(v) = c[i] {
                if e.close.is_none_or(|(t0, _)| t >= t0) {
                    e.close = Some((t, v));
                }
            }
            e.high = h[i].map(|v| e.high.map_or(v, |x| x.max(v)));
            e.low = l[i].map(|v| e.low.map_or(v, |x| x.min(v)));
        }
    }

    // ATM implied volatility and put/call volume from the day's last option snapshot per
    // underlying.
    let mut latest: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut rows = Vec::new();
    let (option_batches, n) = results.read_days(OPTION_SNAPSHOTS, &day).await?;
    files_read += n;
    for batch in option_batches {
        let r = BatchReader::new(&batch);
        let und = r.utf8("underlying").map_err(lake)?;
        let at = r.timestamp("snapshot_at").map_err(lake)?;
        let price = r.f64("underlying_price").map_err(lake)?;
        let strike = r.f64("strike").map_err(lake)?;
        let right = r.utf8("right").map_err(lake)?;
        let vol = r.f64("volume").map_err(lake)?;
        let iv = r.f64("implied_vol").map_err(lake)?;
        for i in 0..r.len() {
            let (Some(u), Some(t)) = (&und[i], at[i]) else {
                continue;
            };
            if !wanted(u) {
                continue;
            }
            if ny_date(t) != date {
                continue;
            }
            let l = latest.entry(u.clone()).or_insert(t);
            *l = (*l).max(t);
            rows.push((
                u.clone(),
                t,
                price[i],
                strike[i],
                right[i].clone(),
                vol[i],
                iv[i],
            ));
        }
    }
    for (u, t) in &latest {
        let snap: Vec<_> = rows.iter().filter(|r| &r.0 == u && r.1 == *t).collect();
        let e = stats.entry(u.clone()).or_default();
        let atm = snap
            .iter()
            .filter_map(|r| Some(((r.3? - r.2?).abs(), r.6?)))
            .fold(None::<(f64, Vec<f64>)>, |best, (d, iv)| match best {
                Some((bd, mut ivs)) if (d - bd).abs() < 1e-9 => {
                    ivs.push(iv);
                    Some((bd, ivs))
                }
                Some((bd, ivs)) if bd < d => Some((bd, ivs)),
                _ => Some((d, vec![iv])),
            });
        e.atm_iv = atm.map(|(_, ivs)| ivs.iter().sum::<f64>() / ivs.len() as f64);
        for r in &snap {
            match r.4.as_deref() {
                Some("P") => e.put_volume += r.5.unwrap_or(0.0),
                Some("C") => e.call_volume += r.5.unwrap_or(0.0),
                _ => {}
            }
        }
    }

    let n = stats.len();
    let s: Vec<(&String, &DayStats)> = stats.iter().collect();
    let batch = BatchBuilder::new(DERIVED_STATS_COLUMNS)
        .utf8(id_col(req, n))
        .date(vec![Some(date); n])
        .utf8(s.iter().map(|(k, _)| Some(k.as_str())))
        .f64(s.iter().map(|(_, d)| d.open.map(|x| x.1)))
        .f64(s.iter().map(|(_, d)| d.high))
        .f64(s.iter().map(|(_, d)| d.low))
        .f64(s.iter().map(|(_, d)| d.close.map(|x| x.1)))
        .f64(s.iter().map(|(_, d)| Some(d.high? - d.low?)))
        .f64(s.iter().map(|(_, d)| Some(d.close?.1 / d.open?.1 - 1.0)))
        .f64(s.iter().map(|(_, d)| d.atm_iv))
        .f64(
            s.iter()
                .map(|(_, d)| (d.call_volume > 0.0).then(|| d.put_volume / d.call_volume)),
        )
        .timestamp(vec![Some(now); n])
        .finish();
    let mut written = results
        .replace_derived_stats(req.request_id, date, only, batch)
        .await?;
    written.files_read = Some(files_read as u64);
    Ok(written)
}
