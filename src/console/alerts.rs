//! What a trader in another tmux window should notice: the terminal bell (tmux flags the
//! window with `monitor-bell`) and the terminal title (OSC 2). Pure logic: [`Alerts`] looks at
//! each picture and says whether to ring and which title to show; the run loop writes the
//! bytes ([`BELL`], [`title_bytes`]).
//!
//! The bell rings on a change for the worse, once per change:
//! - the gateway connection is lost (disconnected, reconnecting, or IB's own 1100);
//! - a leg stalls or goes stale (no tick for `stale_after`);
//! - a request fails that was not failed before;
//! - the worker has stayed paused for `paused_after`.
//!
//! The first picture only sets what is known: failures from before the console started do
//! not ring.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::engine::{GatewayState, LegState, LegView, Snapshot};

/// Which alerts are on, from `[console]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertOptions {
    pub bell: bool,
    pub title: bool,
    /// Ring once the worker has stayed paused this long.
    pub paused_after: Duration,
    /// A leg with no tick for longer than this is stale (`[streaming] stale_after_secs`).
    pub stale_after: Duration,
}

impl Default for AlertOptions {
    fn default() -> Self {
        Self {
            bell: true,
            title: true,
            paused_after: Duration::seconds(300),
            stale_after: Duration::seconds(30),
        }
    }
}

/// What the terminal should be told after one look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Ring the bell: something got worse. The reasons, for the log and tests.
    pub ring: Vec<String>,
    /// A new terminal title (only when it changed).
    pub title: Option<String>,
}

/// The state the alerts compare against.
#[derive(Debug, Default)]
pub struct Alerts {
    options: AlertOptions,
    seen: bool,
    gateway_down: bool,
    troubled_legs: HashSet<i32>,
    failed: HashSet<Uuid>,
    paused_since: Option<DateTime<Utc>>,
    paused_rung: bool,
    title: Option<String>,
}

/// Whether the gateway connection is lost, as the bell and the title count it.
pub fn gateway_down(g: &GatewayState) -> bool {
    matches!(
        g,
        GatewayState::Disconnected { .. }
            | GatewayState::Reconnecting { .. }
            | GatewayState::Degraded { .. }
    )
}

/// The legs that are stalled, and those streaming with no tick for longer than
/// `stale_after`, as of `now`.
pub fn troubled(
    legs: &[LegView],
    now: DateTime<Utc>,
    stale_after: Duration,
) -> (Vec<i32>, Vec<i32>) {
    let mut stalled = Vec::new();
    let mut stale = Vec::new();
    for l in legs {
        match (&l.state, l.last_tick_at) {
            (LegState::Stalled { .. }, _) => stalled.push(l.conid),
            (_, Some(t)) if now - t > stale_after => stale.push(l.conid),
            (LegState::Streaming, None) => stale.push(l.conid),
            _ => {}
        }
    }
    (stalled, stale)
}

impl Alerts {
    pub fn new(options: AlertOptions) -> Self {
        Self {
            options,
            ..Default::default()
        }
    }

    pub fn options(&self) -> AlertOptions {
        self.options
    }

    /// Looks at `snap` as of wall time `now`: whether to ring and the title to show.
    pub fn observe(&mut self, snap: &Snapshot, now: DateTime<Utc>) -> Outcome {
        let mut ring = Vec::new();
        let first = !self.seen;
        self.seen = true;

        let down = gateway_down(&snap.gateway);
        if down && !self.gateway_down && !first {
            ring.push("the gateway connection is lost".to_string());
        }
        self.gateway_down = down;

        let (stalled, stale) = troubled(&snap.legs, now, self.options.stale_after);
        let troubled: HashSet<i32> = stalled.iter().chain(stale.iter()).copied().collect();
        let new_trouble = troubled.difference(&self.troubled_legs).count();
        if new_trouble > 0 && !first {
            ring.push(format!(
                "{new_trouble} leg{} stalled or stale",
                if new_trouble == 1 { "" } else { "s" }
            ));
        }
        self.troubled_legs = troubled;

        let failed: HashSet<Uuid> = snap.failed.iter().map(|r| r.request_id).collect();
        let new_failed = failed.difference(&self.failed).count();
        if new_failed > 0 && !first {
            ring.push(format!(
                "{new_failed} new failed request{}",
                if new_failed == 1 { "" } else { "s" }
            ));
        }
        self.failed = failed;

        let paused = snap.worker.paused && !snap.observer;
        match (paused, self.paused_since) {
            (false, _) => {
                self.paused_since = None;
                self.paused_rung = false;
            }
            (true, None) => self.paused_since = Some(now),
            (true, Some(since)) => {
                if !self.paused_rung && now - since >= self.options.paused_after {
                    self.paused_rung = true;
                    ring.push(format!(
                        "the worker has been paused for {}",
                        super::fmt::span((now - since).num_seconds())
                    ));
                }
            }
        }

        let mut out = Outcome::default();
        if self.options.bell {
            out.ring = ring;
        }
        if self.options.title {
            let title = title(snap, stalled.len(), stale.len());
            if self.title.as_ref() != Some(&title) {
                self.title = Some(title.clone());
                out.title = Some(title);
            }
        }
        out
    }
}

/// `ibq ✖ gateway down · 4 failed · 1 stale` when something needs the trader, else
/// `ibq ✔ 12 pending · 4 legs`. Only ibq's own words: nothing from outside reaches the
/// terminal's title.
pub fn title(snap: &Snapshot, stalled: usize, stale: usize) -> String {
    let mut problems = Vec::new();
    match &snap.gateway {
        GatewayState::Connected { .. } => {}
        GatewayState::Connecting { .. } => {}
        GatewayState::Degraded { .. } => problems.push("gateway degraded".to_string()),
        GatewayState::Reconnecting { .. } => problems.push("gateway reconnecting".to_string()),
        GatewayState::Disconnected { .. } => problems.push("gateway down".to_string()),
    }
    if snap.counts.failed > 0 {
        problems.push(format!("{} failed", snap.counts.failed));
    }
    if stalled > 0 {
        problems.push(format!("{stalled} stalled"));
    }
    if stale > 0 {
        problems.push(format!("{stale} stale"));
    }
    if snap.worker.paused && !snap.observer {
        problems.push("paused".to_string());
    }
    if problems.is_empty() && matches!(snap.gateway, GatewayState::Connecting { .. }) {
        // Starting up: nothing is wrong yet.
        format!("ibq … connecting · {} pending", snap.counts.pending)
    } else if problems.is_empty() {
        let mut fine = vec![format!("{} pending", snap.counts.pending)];
        if !snap.legs.is_empty() {
            fine.push(format!("{} legs", snap.legs.len()));
        }
        format!("ibq ✔ {}", fine.join(" · "))
    } else {
        format!("ibq ✖ {}", problems.join(" · "))
    }
}

/// The terminal bell.
pub const BELL: &[u8] = b"\x07";

/// Saves the terminal's title on its stack (xterm `CSI 22;0t`, which tmux and most
/// terminals follow).
pub const PUSH_TITLE: &[u8] = b"\x1b[22;0t";

/// Brings back the title saved by [`PUSH_TITLE`] (`CSI 23;0t`).
pub const POP_TITLE: &[u8] = b"\x1b[23;0t";

/// OSC 2 (window title) ended by ST, not BEL, so a title is never mistaken for the bell.
/// Control characters are left out.
pub fn title_bytes(title: &str) -> Vec<u8> {
    let clean: String = title
        .chars()
        .filter(|c| !crate::text::is_unsafe(*c))
        .collect();
    format!("\x1b]2;{clean}\x1b\\").into_bytes()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::console::sample;
    use crate::queue::Status;

    fn calm() -> Snapshot {
        let mut s = sample::snapshot(3);
        s.failed = Arc::from(Vec::new());
        s.counts.failed = 0;
        s.legs = Arc::from(Vec::new());
        s
    }

    fn down(s: &mut Snapshot) {
        s.gateway = GatewayState::Disconnected {
            address: "127.0.0.1:4002".into(),
            reason: "connection reset".into(),
        };
    }

    #[test]
    fn the_first_look_sets_the_title_and_rings_for_nothing_already_wrong() {
        let mut a = Alerts::new(AlertOptions::default());
        let mut s = sample::snapshot(3);
        down(&mut s);
        let out = a.observe(&s, sample::t0());
        assert!(out.ring.is_empty(), "{:?}", out.ring);
        assert_eq!(
            out.title.as_deref(),
            Some("ibq ✖ gateway down · 4 failed · 1 stalled · 1 stale")
        );
        // Nothing changed: no bell and no new title.
        assert_eq!(a.observe(&s, sample::t0()), Outcome::default());
    }

    #[test]
    fn losing_the_gateway_rings_once() {
        let mut a = Alerts::new(AlertOptions::default());
        let mut s = calm();
        assert_eq!(
            a.observe(&s, sample::t0()).title.as_deref(),
            Some("ibq ✔ 3 pending")
        );
        down(&mut s);
        let out = a.observe(&s, sample::t0());
        assert_eq!(out.ring, vec!["the gateway connection is lost"]);
        assert_eq!(out.title.as_deref(), Some("ibq ✖ gateway down"));
        assert!(a.observe(&s, sample::t0()).ring.is_empty());
        // Reconnecting is still down: no second bell.
        s.gateway = GatewayState::Reconnecting {
            address: "x".into(),
            attempt: 2,
            next_try_at: None,
            reason: "reset".into(),
        };
        assert!(a.observe(&s, sample::t0()).ring.is_empty());
        // Back up, then lost again (IB's 1100 this time): rings again.
        s.gateway = sample::snapshot(0).gateway;
        assert!(a.observe(&s, sample::t0()).ring.is_empty());
        s.gateway = GatewayState::Degraded {
            address: "x".into(),
            code: 1100,
            message: "Connectivity between IB and TWS has been lost".into(),
            since: sample::t0(),
        };
        assert_eq!(a.observe(&s, sample::t0()).ring.len(), 1);
    }

    #[test]
    fn new_failures_ring_and_old_ones_do_not() {
        let mut a = Alerts::new(AlertOptions::default());
        let mut s = calm();
        let now = sample::t0();
        a.observe(&s, now);
        let f1 = Arc::new(sample::request(7, Status::Failed, now));
        s.failed = Arc::from(vec![Arc::clone(&f1)]);
        s.counts.failed = 1;
        let out = a.observe(&s, now);
        assert_eq!(out.ring, vec!["1 new failed request"]);
        assert_eq!(out.title.as_deref(), Some("ibq ✖ 1 failed"));
        // One retried and another failed in the same picture: the count is the same, the
        // failure is new.
        let f2 = Arc::new(sample::request(8, Status::Failed, now));
        s.failed = Arc::from(vec![f2]);
        let out = a.observe(&s, now);
        assert_eq!(out.ring, vec!["1 new failed request"]);
        assert_eq!(out.title, None);
        // Retrying it away rings nothing.
        s.failed = Arc::from(Vec::new());
        s.counts.failed = 0;
        assert!(a.observe(&s, now).ring.is_empty());
    }

    #[test]
    fn a_leg_that_stalls_or_goes_stale_rings() {
        let now = sample::t0();
        let mut a = Alerts::new(AlertOptions::default());
        let mut s = calm();
        let legs = sample::legs(now);
        // The first SPY leg ticked a second ago.
        s.legs = Arc::from(vec![legs[0].clone()]);
        assert!(a.observe(&s, now).ring.is_empty());
        // 40 s later without a tick: stale (stale_after is 30 s).
        let later = now + Duration::seconds(40);
        let out = a.observe(&s, later);
        assert_eq!(out.ring, vec!["1 leg stalled or stale"]);
        assert_eq!(out.title.as_deref(), Some("ibq ✖ 1 stale"));
        // Still stale, then stalled: the same leg, no new bell.
        assert!(a.observe(&s, later).ring.is_empty());
        let mut stalled = legs[0].clone();
        stalled.state = LegState::Stalled {
            reason: "gone".into(),
        };
        s.legs = Arc::from(vec![stalled]);
        let out = a.observe(&s, later);
        assert!(out.ring.is_empty());
        assert_eq!(out.title.as_deref(), Some("ibq ✖ 1 stalled"));
        // It streams again, then stalls: rings.
        s.legs = Arc::from(vec![legs[0].clone()]);
        a.observe(&s, now);
        let mut stalled = legs[0].clone();
        stalled.state = LegState::Stalled {
            reason: "gone".into(),
        };
        s.legs = Arc::from(vec![stalled]);
        assert_eq!(a.observe(&s, now).ring.len(), 1);
    }

    #[test]
    fn a_long_pause_rings_once() {
        let now = sample::t0();
        let mut a = Alerts::new(AlertOptions {
            paused_after: Duration::seconds(60),
            ..Default::default()
        });
        let mut s = calm();
        a.observe(&s, now);
        s.worker.paused = true;
        let out = a.observe(&s, now);
        assert!(out.ring.is_empty());
        assert_eq!(out.title.as_deref(), Some("ibq ✖ paused"));
        assert!(a.observe(&s, now + Duration::seconds(59)).ring.is_empty());
        assert_eq!(
            a.observe(&s, now + Duration::seconds(60)).ring,
            vec!["the worker has been paused for 1m"]
        );
        assert!(a.observe(&s, now + Duration::seconds(600)).ring.is_empty());
        // Resumed and paused again: the clock starts over.
        s.worker.paused = false;
        a.observe(&s, now + Duration::seconds(601));
        s.worker.paused = true;
        a.observe(&s, now + Duration::seconds(602));
        assert!(a.observe(&s, now + Duration::seconds(640)).ring.is_empty());
        assert_eq!(a.observe(&s, now + Duration::seconds(662)).ring.len(), 1);
    }

    #[test]
    fn switched_off_they_say_nothing() {
        let mut a = Alerts::new(AlertOptions {
            bell: false,
            title: false,
            ..Default::default()
        });
        let mut s = calm();
        a.observe(&s, sample::t0());
        down(&mut s);
        assert_eq!(a.observe(&s, sample::t0()), Outcome::default());
    }

    #[test]
    fn the_title_is_an_osc_2_that_never_holds_a_bell() {
        let b = title_bytes("ibq ✖ gateway down\x07\x1b]0;evil");
        let text = String::from_utf8(b).unwrap();
        assert_eq!(text, "\x1b]2;ibq ✖ gateway down]0;evil\x1b\\");
        assert!(!text.contains('\x07'));
    }

    #[test]
    fn starting_up_is_not_trouble() {
        let mut s = calm();
        s.gateway = GatewayState::Connecting {
            address: "127.0.0.1:4002".into(),
        };
        assert_eq!(title(&s, 0, 0), "ibq … connecting · 3 pending");
        s.counts.failed = 2;
        assert_eq!(title(&s, 0, 0), "ibq ✖ 2 failed");
    }
}
