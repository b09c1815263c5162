//! Range checks of every configured number and the few rules between keys.
//!
//! A value the engine cannot work with (a lease past the end of time, zero requests per
//! batch, a margin as large as the line limit) is refused when the file is read, with the
//! key and the allowed range, instead of panicking later or silently doing nothing.

use super::Config;

/// One refused value: the dotted key (`queue.lease_secs`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: &'static str,
    pub message: String,
}

/// The allowed range of each numeric key: (key, min, max, unit). The text of
/// `assets/ibq.default.toml` states the same ranges; a test keeps them in step.
pub const RANGES: &[(&str, u64, u64, &str)] = &[
    ("queue.lease_secs", 1, 604_800, "seconds"),
    ("queue.compact_at_files", 2, 100_000, "files"),
    ("queue.checkpoint_every", 1, 1_000_000, "commits"),
    ("queue.poll_external_secs", 1, 3_600, "seconds"),
    ("queue.max_batch", 1, 1_000_000, "changes"),
    ("queue.keep_finished_days", 1, 3_650, "days"),
    ("worker.poll_secs", 1, 3_600, "seconds"),
    ("worker.batch_size", 1, 10_000, "requests"),
    ("worker.max_attempts", 1, 100, "attempts"),
    ("worker.max_age_secs", 1, 31_536_000, "seconds"),
    ("worker.backoff_base_secs", 1, 86_400, "seconds"),
    ("worker.backoff_max_secs", 1, 604_800, "seconds"),
    ("worker.request_timeout_secs", 1, 86_400, "seconds"),
    ("worker.max_messages_per_sec", 1, 50, "messages per second"),
    ("lines.limit", 1, 10_000, "lines"),
    ("lines.margin", 0, 9_999, "lines"),
    ("streaming.write_interval_secs", 1, 3_600, "seconds"),
    ("streaming.stale_after_secs", 1, 86_400, "seconds"),
    ("gateway.connect_timeout_secs", 1, 600, "seconds"),
    ("console.paused_alert_secs", 1, 604_800, "seconds"),
];

fn range_of(key: &str) -> (u64, u64, &'static str) {
    RANGES
        .iter()
        .find(|(k, ..)| *k == key)
        .map(|(_, lo, hi, unit)| (*lo, *hi, *unit))
        .expect("every checked key has a range")
}

fn in_range(key: &'static str, value: i128) -> Result<(), Problem> {
    let (lo, hi, unit) = range_of(key);
    if value >= lo as i128 && value <= hi as i128 {
        return Ok(());
    }
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    Err(Problem {
        key,
        message: format!("{value} is out of range (allowed: {lo} to {hi}{unit})"),
    })
}

/// Checks every key; the first problem found is returned.
pub fn check(c: &Config) -> Result<(), Problem> {
    let q = &c.queue;
    let w = &c.worker;
    in_range("queue.lease_secs", q.lease_secs.into())?;
    in_range("queue.compact_at_files", q.compact_at_files as i128)?;
    in_range("queue.checkpoint_every", q.checkpoint_every.into())?;
    in_range("queue.poll_external_secs", q.poll_external_secs.into())?;
    in_range("queue.max_batch", q.max_batch as i128)?;
    in_range("queue.keep_finished_days", q.keep_finished_days.into())?;
    check_address(&c.gateway.address)?;
    in_range(
        "gateway.connect_timeout_secs",
        c.gateway.connect_timeout_secs.into(),
    )?;
    in_range("worker.poll_secs", w.poll_secs.into())?;
    in_range("worker.batch_size", w.batch_size as i128)?;
    in_range("worker.max_attempts", w.max_attempts.into())?;
    in_range("worker.max_age_secs", w.max_age_secs.into())?;
    in_range("worker.backoff_base_secs", w.backoff_base_secs.into())?;
    in_range("worker.backoff_max_secs", w.backoff_max_secs.into())?;
    if w.backoff_max_secs < w.backoff_base_secs {
        return Err(Problem {
            key: "worker.backoff_max_secs",
            message: format!(
                "{} is less than worker.backoff_base_secs ({}); the cap must be at least the base",
                w.backoff_max_secs, w.backoff_base_secs
            ),
        });
    }
    in_range("worker.request_timeout_secs", w.request_timeout_secs.into())?;
    in_range("worker.max_messages_per_sec", w.max_messages_per_sec.into())?;
    in_range("lines.limit", c.lines.limit.into())?;
    in_range("lines.margin", c.lines.margin.into())?;
    if c.lines.margin >= c.lines.limit {
        return Err(Problem {
            key: "lines.margin",
            message: format!(
                "{} leaves no line to use: it must be less than lines.limit ({})",
                c.lines.margin, c.lines.limit
            ),
        });
    }
    in_range(
        "streaming.write_interval_secs",
        c.streaming.write_interval_secs.into(),
    )?;
    in_range(
        "streaming.stale_after_secs",
        c.streaming.stale_after_secs.into(),
    )?;
    in_range(
        "console.paused_alert_secs",
        c.console.paused_alert_secs.into(),
    )?;
    if c.lake.root.as_os_str().is_empty() {
        return Err(Problem {
            key: "lake.root",
            message: "is empty; give the folder of the Delta tables".into(),
        });
    }
    if c.logging.dir.as_os_str().is_empty() {
        return Err(Problem {
            key: "logging.dir",
            message: "is empty; give the folder of the log files".into(),
        });
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.logging.level) {
        return Err(Problem {
            key: "logging.level",
            message: format!("`{}` is not a valid level filter: {e}", c.logging.level),
        });
    }
    Ok(())
}

/// `HOST:PORT` with a port from 1 to 65535.
fn check_address(address: &str) -> Result<(), Problem> {
    let bad = |why: &str| Problem {
        key: "gateway.address",
        message: format!("`{address}` {why} (expected HOST:PORT, e.g. 127.0.0.1:4002)"),
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
    if host.trim().is_empty() {
        return Err(bad("has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad("has no valid port (1 to 65535)")),
    }
}

/// The 1-based line where `key` (`section.name`) is set in `text`, if it can be found.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let (section, name) = key.split_once('.')?;
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            current = line
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .to_string();
            continue;
        }
        let Some((k, _)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if (current == section && k == name) || (current.is_empty() && k == key) {
            return Some(i + 1);
        }
    }
    None
}
