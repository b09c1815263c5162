//! Market time, below every subsystem: the NYSE calendar, the injectable clock and the
//! market-hours windows a request may wait for. The queue and the scheduler both use it.
//!
//! - [`calendar`]: holidays and early closes by rule, session hours in New York time.
//! - [`clock`]: the injectable clock (system or fast).
//! - [`et`]: times as the console and the CLI print them, New York time marked `ET`.
//! - [`window`]: `regular` / `extended` / `any` and when a window next opens.
pub mod calendar;
pub mod clock;
pub mod et;
pub mod window;

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// The calendar and the clock market-hours windows are checked against: the wall clock in
/// production, the engine's fast clock under `ibq run --clock T --speed N`.
#[derive(Clone)]
pub struct Market {
    pub calendar: calendar::MarketCalendar,
    pub clock: Arc<dyn clock::Clock>,
}

impl Market {
    pub fn new(calendar: calendar::MarketCalendar, clock: Arc<dyn clock::Clock>) -> Self {
        Self { calendar, clock }
    }

    /// Now on the market's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

impl Default for Market {
    /// The rule calendar and the wall clock.
    fn default() -> Self {
        Self::new(Default::default(), Arc::new(clock::SystemClock))
    }
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market")
            .field("calendar", &self.calendar)
            .field("now", &self.now())
            .finish()
    }
}
