//! Market time, below every subsystem: the NYSE calendar, the injectable clock and the
//! market-hours windows a request may wait for. The queue and the scheduler both use it.
//!
//! - [`calendar`]: holidays and early closes by rule, session hours in New York time.
//! - [`clock`]: the injectable clock (system or fast).
//! - [`window`]: `regular` / `extended` / `any` and when a window next opens.
pub mod calendar;
pub mod clock;
pub mod window;
