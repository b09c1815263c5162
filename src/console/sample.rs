//! Deterministic sample pictures for the render tests and the render benchmark: pure data,
//! no engine behind them.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::engine::{
    ActionEntry, ActionOutcome, GatewayState, JobView, LegState, LegView, LineBudgetView,
    MarketView, Snapshot, WorkerStats,
};
use crate::queue::{Actor, Event, Priority, Request, RequestType, Status, StatusCounts};

/// A fixed instant, so pictures and ages are the same on every run.
pub fn t0() -> DateTime<Utc> {
    "2026-11-23T15:30:00Z".parse().unwrap()
}

const SYMBOLS: [&str; 8] = ["SPY", "QQQ", "IWM", "AAPL", "MSFT", "ES", "NQ", "TSLA"];

/// Request number `i` with the given status, deterministic.
pub fn request(i: usize, status: Status, now: DateTime<Utc>) -> Request {
    let ty = RequestType::ALL[i % RequestType::ALL.len()];
    let symbol = SYMBOLS[i % SYMBOLS.len()].to_string();
    let parameters = match ty {
        RequestType::OptionChain => {
            json!({"target_dte": 30 + (i % 4) as i64 * 15, "strikes": 5, "rights": "both"})
        }
        RequestType::FuturesSnapshot => json!({"month": "202612"}),
        RequestType::MarketBars => json!({"duration": "5 D", "bar_size": "1 hour"}),
        RequestType::PositionUpdate => json!({}),
        RequestType::DerivedStats | RequestType::Unknown => json!({}),
    };
    let created = now - Duration::seconds(30 + (i as i64 * 7) % 7200);
    let priority = Priority::try_from(1 + (i % 3) as i64).unwrap();
    let failed = status == Status::Failed;
    let attempts = match status {
        Status::Failed => 3,
        Status::Pending => (i % 5 == 4) as u32,
        _ => 1,
    };
    Request {
        request_id: Uuid::from_u128(0x1b9d_0000_0000_4000_8000_0000_0000_0000 + i as u128),
        request_type: ty,
        symbol,
        priority,
        status,
        parameters,
        result_table: ty.result_table().into(),
        created_at: created,
        updated_at: created + Duration::seconds(20),
        result_data: None,
        error_message: failed.then(|| match i % 3 {
            0 => "IB 200: No security definition has been found for the request".to_string(),
            1 => {
                "IB 162: Historical Market Data Service error message: HMDS query returned no data"
                    .to_string()
            }
            _ => "IB 354: Requested market data is not subscribed".to_string(),
        }),
        attempts,
        failures: attempts,
        next_attempt_at: (status == Status::Pending && i % 5 == 4)
            .then(|| now + Duration::seconds(42)),
        changed_by: if failed {
            Actor::Worker
        } else {
            Actor::Scheduler
        },
        event: match status {
            Status::Failed => Event::Failed,
            Status::Processing => Event::Claimed,
            _ => Event::Enqueued,
        },
        seq: Some(i as i64),
        lease_owner: (status == Status::Processing).then(|| "ibq-worker-1".into()),
        lease_expires_at: (status == Status::Processing).then(|| now + Duration::seconds(90)),
        schedule_key: None,
        during: Default::default(),
    }
}

fn rows(n: usize, start: usize, status: Status, now: DateTime<Utc>) -> Arc<[Arc<Request>]> {
    let mut v: Vec<Arc<Request>> = (start..start + n)
        .map(|i| Arc::new(request(i, status, now)))
        .collect();
    if status == Status::Pending {
        v.sort_by_key(|r| (r.priority, r.created_at, r.request_id));
    }
    Arc::from(v)
}

/// `n` SUCCESS requests, the most recently finished first, each with what it wrote.
pub fn done(n: usize, now: DateTime<Utc>) -> Arc<[Arc<Request>]> {
    let mut v: Vec<Request> = (0..n)
        .map(|k| {
            let i = 3_000_000 + k;
            let mut r = request(i, Status::Success, now);
            r.event = Event::Succeeded;
            r.changed_by = Actor::Worker;
            r.updated_at = now - Duration::seconds(5 + 37 * k as i64);
            r.created_at = r.updated_at - Duration::seconds(12 + (k as i64 % 5) * 20);
            let rows = match r.request_type {
                RequestType::OptionChain => 22 + (k % 3) as i64 * 20,
                RequestType::MarketBars => 5 + k as i64 % 7,
                RequestType::PositionUpdate => 9,
                _ => 1,
            };
            r.result_data = Some(json!({
                "table": r.request_type.result_table(),
                "rows": rows,
                "version": 40 + 3 * (n - k) as i64,
                "duration_ms": 350 + (k as i64 * 911) % 9000,
            }));
            r
        })
        .collect();
    v.sort_by_key(|r| std::cmp::Reverse(r.updated_at));
    v.into_iter().map(Arc::new).collect()
}

/// What operators did, newest first: this console, the command line and an observer.
pub fn actions(now: DateTime<Utc>) -> Vec<ActionEntry> {
    let id = |i: u128| Uuid::from_u128(0x1b9d_0000_0000_4000_8000_0000_0000_0000 + i);
    let entry = |k: u128,
                 secs: i64,
                 action: &str,
                 ids: Vec<Uuid>,
                 argument: serde_json::Value,
                 by: &str,
                 outcome: ActionOutcome| ActionEntry {
        action_id: Uuid::from_u128(0xac00 + k),
        action: action.into(),
        request_ids: ids,
        argument,
        requested_by: by.into(),
        asked_at: now - Duration::seconds(secs),
        outcome,
    };
    let applied = |secs: i64, m: &str| ActionOutcome::Applied {
        at: now - Duration::seconds(secs),
        message: m.into(),
    };
    vec![
        entry(
            1,
            4,
            "pause_worker",
            vec![],
            json!(null),
            "observer pid 7719",
            ActionOutcome::Waiting,
        ),
        entry(
            2,
            65,
            "retry",
            vec![id(2_000_000), id(2_000_001)],
            json!(null),
            "console pid 4242",
            applied(65, "retried 2 requests"),
        ),
        entry(
            3,
            300,
            "dismiss",
            vec![id(2_000_003)],
            json!({"reason": "IB 200: no such contract"}),
            "ibq cli pid 9031",
            ActionOutcome::Refused {
                at: now - Duration::seconds(299),
                message: format!("request {} is PENDING; dismiss needs FAILED", id(2_000_003)),
            },
        ),
        entry(
            4,
            1800,
            "promote",
            vec![],
            json!({"conid": 756733, "strategy": "SPY iron condor Dec"}),
            "console pid 4242",
            applied(
                1799,
                "promoted 756733 SPY 20261218 600 C (SPY iron condor Dec)",
            ),
        ),
        entry(
            5,
            7200,
            "set_priority",
            vec![id(7)],
            json!({"priority": 1}),
            "console pid 4242",
            applied(7200, "reprioritized 1 request"),
        ),
    ]
}

pub fn legs(now: DateTime<Utc>) -> Vec<LegView> {
    let leg = |conid: i32,
               symbol: &str,
               expiry: Option<&str>,
               strike: Option<f64>,
               right: Option<&str>,
               strategy: Option<&str>,
               qty: f64,
               tick_secs: Option<i64>,
               state| LegView {
        conid,
        symbol: symbol.into(),
        sec_type: if expiry.is_some() && strike.is_none() {
            "FUT".into()
        } else if expiry.is_some() {
            "OPT".into()
        } else {
            "STK".into()
        },
        expiry: expiry.map(Into::into),
        strike,
        right: right.map(Into::into),
        strategy: strategy.map(Into::into),
        quantity: qty,
        bid: Some(4.15),
        ask: Some(4.25),
        last: Some(4.2),
        bid_size: Some(12.0),
        ask_size: Some(9.0),
        volume: Some(1520.0),
        last_tick_at: tick_secs.map(|s| now - Duration::seconds(s)),
        state,
    };
    vec![
        leg(
            756733,
            "SPY",
            Some("20261218"),
            Some(600.0),
            Some("C"),
            Some("SPY iron condor Dec"),
            -2.0,
            Some(1),
            LegState::Streaming,
        ),
        leg(
            756734,
            "SPY",
            Some("20261218"),
            Some(560.0),
            Some("P"),
            Some("SPY iron condor Dec"),
            -2.0,
            Some(3),
            LegState::Streaming,
        ),
        leg(
            495512563,
            "ES",
            Some("20261218"),
            None,
            None,
            Some("hedge"),
            1.0,
            Some(75),
            LegState::Streaming,
        ),
        leg(
            265598,
            "AAPL",
            None,
            None,
            None,
            None,
            100.0,
            None,
            LegState::Subscribing,
        ),
        leg(
            272093,
            "MSFT",
            None,
            None,
            None,
            Some("pairs"),
            -50.0,
            Some(400),
            LegState::Stalled {
                reason: "IB 10197: competing live session".into(),
            },
        ),
    ]
}

/// The default jobs at `now`: earlier slots done, a few failed or missed (the engine was
/// down from 09:50 to 10:00), the latest pending.
pub fn jobs(now: DateTime<Utc>) -> Vec<JobView> {
    let config = crate::scheduler::config::SchedulerConfig::default();
    let schedule = crate::scheduler::schedule::Schedule::from_config(&config).unwrap();
    let calendar = crate::scheduler::calendar::MarketCalendar::from_config(&config);
    crate::scheduler::view::job_views(&schedule, &calendar, now, |key| {
        let slot: DateTime<Utc> = key.split(['@', '#']).nth(1)?.parse().ok()?;
        let ago = (now - slot).num_seconds();
        // 09:50 to 09:59:59 at 10:30.
        let down = (1801..=2400).contains(&ago);
        match ago {
            _ if ago < 0 || down => None,
            0..=299 if key.contains("#QQQ") => Some(Status::Processing),
            0..=299 => Some(Status::Pending),
            _ if key.ends_with("#IWM") && ago % 1200 == 0 => Some(Status::Failed),
            _ => Some(Status::Success),
        }
    })
}

/// `snap` with request ids that differ in their first characters (the sample's differ only
/// in their last), for tests of ids given by a prefix: list `k` (pending, processing,
/// failed, done) starts `k`, then the row's number.
pub fn with_distinct_ids(mut snap: Snapshot) -> Snapshot {
    let renumber = |k: u128, rows: &Arc<[Arc<Request>]>| -> Arc<[Arc<Request>]> {
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let mut r = (**r).clone();
                r.request_id =
                    Uuid::from_u128((k << 124) | ((i as u128) << 96) | 0x4000_8000_0000_0000_0000);
                Arc::new(r)
            })
            .collect()
    };
    snap.pending = renumber(1, &snap.pending);
    snap.processing = renumber(2, &snap.processing);
    snap.failed = renumber(3, &snap.failed);
    snap.done = renumber(4, &snap.done);
    snap
}

/// A busy, healthy picture: `pending` requests waiting, a few in flight and failed.
pub fn snapshot(pending: usize) -> Snapshot {
    let now = t0();
    let processing = 3;
    let failed = 4;
    let processing_rows = rows(processing, 1_000_000, Status::Processing, now);
    // Runs of 20 s, 75 s and 150 s against a 120 s timeout: fine, past half, past it.
    let started = processing_rows
        .iter()
        .zip([20, 75, 150])
        .map(|(r, secs)| (r.request_id, now - Duration::seconds(secs)))
        .collect();
    Snapshot {
        taken_at: now,
        clock: crate::engine::ClockView::wall(now),
        lake: PathBuf::from("./data/lake"),
        observer: false,
        gateway: GatewayState::Connected {
            address: "127.0.0.1:4002".into(),
            server_version: 176,
            account: "DU1234567".into(),
            since: now - Duration::seconds(2 * 3600 + 300),
        },
        market: MarketView {
            phase: "regular".into(),
            next_phase: "post-market".into(),
            next_change_at: Some(now + Duration::seconds(30 * 60)),
        },
        worker: WorkerStats {
            running: true,
            paused: false,
            processed: 1290,
            succeeded: 1240,
            failed: 12,
            retried: 38,
            released: 2,
            last_batch_at: Some(now - Duration::seconds(4)),
            last_batch_size: 5,
            last_batch_ms: 840,
            completed_per_minute: (0..60u64).map(|m| (m * 7 + 3) % 23).collect(),
            delayed_exchanges: Vec::new(),
            started,
            request_timeout_secs: 120,
        },
        counts: StatusCounts {
            pending,
            processing,
            success: 1240,
            failed,
            cancelled: 7,
        },
        pending: rows(pending, 0, Status::Pending, now),
        processing: processing_rows,
        failed: rows(failed, 2_000_000, Status::Failed, now),
        done: done(25, now),
        actions: Arc::from(actions(now)),
        lines: LineBudgetView {
            limit: 100,
            margin: 2,
            streams: 42,
            snapshots: 13,
        },
        legs: Arc::from(legs(now)),
        jobs: Arc::from(jobs(now)),
        alert: None,
        farms: Default::default(),
    }
}
