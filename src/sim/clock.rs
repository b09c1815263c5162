//! The simulator's own clock: real time, or a chosen start replayed at a chosen speed.

use std::time::Instant;

use chrono::{DateTime, FixedOffset, Utc};

/// Sim time = `origin_sim + speed × (real time elapsed since origin_real)`.
#[derive(Debug, Clone)]
pub struct SimClock {
    origin_real: Instant,
    origin_sim: DateTime<Utc>,
    speed: f64,
}

impl SimClock {
    /// A clock starting at `start` (now when `None`) running `speed` times real time.
    pub fn new(start: Option<DateTime<FixedOffset>>, speed: f64) -> Self {
        Self {
            origin_real: Instant::now(),
            origin_sim: start.map_or_else(Utc::now, |s| s.with_timezone(&Utc)),
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }

    /// The current sim time.
    pub fn now(&self) -> DateTime<Utc> {
        let real = self.origin_real.elapsed().as_secs_f64() * self.speed;
        self.origin_sim + chrono::Duration::microseconds((real * 1e6) as i64)
    }

    /// The sim time the clock started at.
    pub fn start(&self) -> DateTime<Utc> {
        self.origin_sim
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_start_is_kept() {
        let start = DateTime::parse_from_rfc3339("2026-11-23T09:25:00-05:00").ok();
        let clock = SimClock::new(start, 60.0);
        assert_eq!(clock.start().to_rfc3339(), "2026-11-23T14:25:00+00:00");
        assert!(clock.now() >= clock.start());
    }
}
