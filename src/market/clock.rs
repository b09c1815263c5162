//! Injectable time: the wall clock in production, a fast clock for tests, demos and `ibq sim`.
//!
//! Everything that schedules work asks a [`Clock`] instead of calling `Utc::now()` so that a
//! trading day can be replayed in minutes and tests never depend on the real time of day.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A source of "now" and of how fast it runs compared with real time.
pub trait Clock: Send + Sync {
    /// The current (possibly simulated) time.
    fn now(&self) -> DateTime<Utc>;

    /// Simulated seconds per real second; sleepers divide simulated waits by it.
    fn speed(&self) -> f64 {
        1.0
    }

    /// The real time to wait until `sim` simulated time has passed.
    fn real_duration(&self, sim: chrono::Duration) -> Duration {
        let secs = sim.num_nanoseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e9;
        Duration::from_secs_f64(secs / self.speed())
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that starts at `start` and runs `speed` times faster than real time:
/// sim time = start + elapsed real time × speed.
#[derive(Debug, Clone)]
pub struct FastClock {
    start: DateTime<Utc>,
    origin: Instant,
    speed: f64,
}

impl FastClock {
    /// Starts now (real) at `start` (simulated).
    ///
    /// # Panics
    /// If `speed` is not a finite positive number: a stopped or backwards clock would make
    /// every sleeper wait forever.
    pub fn new(start: DateTime<Utc>, speed: f64) -> Self {
        assert!(
            speed.is_finite() && speed > 0.0,
            "clock speed must be finite and positive, got {speed}"
        );
        Self {
            start,
            origin: Instant::now(),
            speed,
        }
    }
}

impl Clock for FastClock {
    fn now(&self) -> DateTime<Utc> {
        let real = self.origin.elapsed().as_secs_f64();
        let sim_nanos = (real * self.speed * 1e9) as i64;
        self.start + chrono::Duration::nanoseconds(sim_nanos)
    }

    fn speed(&self) -> f64 {
        self.speed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_clock_starts_at_start_and_moves_forward() {
        let start = DateTime::parse_from_rfc3339("2026-11-23T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = FastClock::new(start, 1000.0);
        let a = clock.now();
        let b = clock.now();
        assert!(a >= start && b >= a);
    }

    #[test]
    fn real_duration_divides_by_speed() {
        let clock = FastClock::new(Utc::now(), 60.0);
        assert_eq!(
            clock.real_duration(chrono::Duration::minutes(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            SystemClock.real_duration(chrono::Duration::seconds(-5)),
            Duration::ZERO
        );
    }

    #[test]
    #[should_panic(expected = "clock speed")]
    fn a_zero_speed_is_refused() {
        FastClock::new(Utc::now(), 0.0);
    }
}
