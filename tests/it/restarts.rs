//! The engine against a gateway that restarts every few seconds (`ibq sim`'s restart fault,
//! driven here by the messages the engine sends so the windows do not depend on the
//! machine's speed): requests complete between restarts, every one ends SUCCESS exactly
//! once, a release counts no attempt, and nothing is left PROCESSING.

use std::collections::HashSet;
use std::time::Duration;

use ibq::lake::columns::BatchReader;
use ibq::lake::LakeTable;
use ibq::queue::{Event, NewRequest, RequestType, Status};
use ibq::sim::RequestKind;
use ibq::worker::results::columns_of;
use serde_json::json;
use uuid::Uuid;

use crate::worker::{enqueue, new, rig, settle};

/// Messages of one of the mix's option chains: the underlying lookup, its quote, the chain
/// definition, the options lookup and 22 option quotes, a quote being two messages (its
/// streaming request and its cancel: IB counts every message a client sends against the 50 a
/// second, cancels included).
const CHAIN_MESSAGES: u64 = 3 + 2 * 23;
/// Messages the engine sends between two restarts: six option chains' work, as before quotes
/// took a cancel (6 × 26 messages then, 6 × 49 now), about seven seconds at 42 a second.
/// Started all at once, the mix's option chains (16 quotes of each at a time) would not
/// finish one in that.
const WINDOW_MESSAGES: u64 = 6 * CHAIN_MESSAGES;
/// How long each restart refuses connections.
const DOWN: Duration = Duration::from_millis(300);

/// Option chains of five strikes each side (calls and puts: 22 options, 49 messages), the
/// first in the order of service, then futures, bars and a position poll.
fn mix() -> Vec<NewRequest> {
    let mut out: Vec<NewRequest> = (0..18)
        .map(|i| {
            new(
                RequestType::OptionChain,
                ["SPY", "QQQ", "IWM"][i % 3],
                json!({"target_dte": 7 + 7 * (i / 3)}),
            )
        })
        .collect();
    for root in ["ES", "NQ", "RTY"] {
        out.push(new(RequestType::FuturesSnapshot, root, json!({})));
    }
    out.push(new(
        RequestType::MarketBars,
        "SPY",
        json!({"duration": "1 D", "bar_size": "30 mins"}),
    ));
    out.push(new(
        RequestType::MarketBars,
        "QQQ",
        json!({"duration": "2 D", "bar_size": "1 hour"}),
    ));
    out.push(new(RequestType::PositionUpdate, "ALL", json!({})));
    out
}

/// The keys (`key` column) of the rows of `table` written for `id`.
async fn keys_for(root: &std::path::Path, table: &str, key: &str, id: Uuid) -> Vec<String> {
    let Some(t) = LakeTable::open_existing(root, table, columns_of(table))
        .await
        .unwrap()
    else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for b in t.read_all().await.unwrap() {
        let r = BatchReader::new(&b);
        let ids = r.utf8("request_id").unwrap();
        let values: Vec<String> = if key == "bar_time" {
            r.timestamp(key)
                .unwrap()
                .iter()
                .map(|t| format!("{t:?}"))
                .collect()
        } else {
            r.i64(key)
                .unwrap()
                .iter()
                .map(|c| format!("{c:?}"))
                .collect()
        };
        for (i, v) in ids.iter().zip(values) {
            if i.as_deref() == Some(id.to_string().as_str()) {
                keys.push(v);
            }
        }
    }
    keys
}

/// Rows of a snapshot table without a bid or an ask.
async fn rows_without_prices(root: &std::path::Path, table: &str) -> usize {
    let Some(t) = LakeTable::open_existing(root, table, columns_of(table))
        .await
        .unwrap()
    else {
        return 0;
    };
    let mut n = 0;
    for b in t.read_all().await.unwrap() {
        let r = BatchReader::new(&b);
        let (bid, ask) = (r.f64("bid").unwrap(), r.f64("ask").unwrap());
        n += bid
            .iter()
            .zip(&ask)
            .filter(|(b, a)| b.is_none() || a.is_none())
            .count();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_complete_between_frequent_gateway_restarts() {
    let rig = rig(100).await;
    let news = mix();
    let chains = news
        .iter()
        .filter(|n| n.request_type == RequestType::OptionChain)
        .count();
    let ids = enqueue(&rig.engine, news).await;
    let view = rig.engine.queue().view();
    let succeeded = || view.borrow().counts.success;

    // Restart the gateway each time the engine has sent WINDOW_MESSAGES since it connected,
    // counting what completed in between.
    let mut windows: Vec<(usize, usize)> = Vec::new(); // (open at the start, completed)
    let mut in_flight_at_restart = Vec::new();
    loop {
        crate::common::wait_until(
            "the engine to connect",
            Duration::from_secs(30),
            async || rig.sim.stats().connections_open == 1,
        )
        .await;
        let (m0, s0) = (rig.sim.stats().messages_received, succeeded());
        if s0 == ids.len() {
            break;
        }
        while succeeded() < ids.len() && rig.sim.stats().messages_received - m0 < WINDOW_MESSAGES {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s1 = succeeded();
        if s1 == ids.len() {
            windows.push((ids.len() - s0, s1 - s0));
            break;
        }
        in_flight_at_restart.push(view.borrow().counts.processing);
        rig.sim.restart(DOWN);
        windows.push((ids.len() - s0, s1 - s0));
        assert!(
            windows.len() <= 12,
            "no end in sight after {} restarts: {windows:?}",
            windows.len()
        );
        crate::common::wait_until(
            "the restart to close the connection",
            Duration::from_secs(10),
            async || rig.sim.stats().connections_open == 0,
        )
        .await;
    }

    // Progress in every window the gateway stayed up through, not all at the end.
    let restarts = windows.len() - 1;
    assert!(
        restarts >= 2,
        "the work outlasted too few restarts: {windows:?}"
    );
    for (i, (open, completed)) in windows[..restarts].iter().enumerate() {
        assert!(
            *completed > 0,
            "nothing of {open} open requests completed in window {i} of {WINDOW_MESSAGES} messages: {windows:?}"
        );
    }

    // Only what the rate finishes soon is in flight, in order, so a restart throws back
    // little work: the messages spent are at most 1/0.6 of what the work needs without
    // restarts (time is messages at the rate limit: the 60 % rate, counted in messages).
    // A quote is two messages: its streaming request and its cancel.
    let needed =
        chains as u64 * CHAIN_MESSAGES + 3 * 3 + 2 * 2 + 1 + 2 * rig.sim.portfolio().len() as u64;
    let spent = rig.sim.stats().messages_received;
    assert!(
        spent as f64 <= needed as f64 / 0.6,
        "{spent} messages spent for work of {needed}; in flight at each restart: {in_flight_at_restart:?}"
    );

    let done = settle(&rig.engine, &ids, Duration::from_secs(60)).await;
    let (mut released, mut retried) = (0u32, 0u32);
    for r in &done {
        assert_eq!(
            r.status,
            Status::Success,
            "{} {}: {:?}",
            r.request_type,
            r.symbol,
            r.error_message
        );
        // A release on a lost connection counts no attempt: attempts are the claims that
        // ended otherwise. A lost connection is never a failure.
        let history = rig.engine.queue().history(r.request_id).await.unwrap();
        let count = |e: Event| history.iter().filter(|h| h.event == e).count() as u32;
        let events: Vec<_> = history
            .iter()
            .map(|h| (h.event, h.error_message.clone()))
            .collect();
        assert_eq!(
            r.attempts,
            count(Event::Claimed) - count(Event::Released),
            "{} {}: {events:?}",
            r.request_type,
            r.symbol
        );
        assert_eq!(r.failures, count(Event::RetryScheduled), "{events:?}");
        assert!(
            !history.iter().any(|h| h.event == Event::RetryScheduled
                && h.error_message
                    .as_deref()
                    .is_some_and(|m| m.contains("connection"))),
            "{events:?}"
        );
        released += count(Event::Released);
        retried += count(Event::RetryScheduled);

        // Written once: as many rows as reported, no contract (or bar) twice.
        let table = r.request_type.result_table();
        let key = if r.request_type == RequestType::MarketBars {
            "bar_time"
        } else {
            "conid"
        };
        let keys = keys_for(&rig.root, table, key, r.request_id).await;
        let distinct: HashSet<&String> = keys.iter().collect();
        assert_eq!(
            distinct.len(),
            keys.len(),
            "{} {} wrote a row twice",
            r.request_type,
            r.symbol
        );
        assert_eq!(
            keys.len() as u64,
            r.result_data.as_ref().unwrap()["rows"].as_u64().unwrap(),
            "{} {}",
            r.request_type,
            r.symbol
        );
        if r.request_type == RequestType::OptionChain {
            assert_eq!(keys.len(), 22, "{} chain rows", r.symbol);
        }
    }
    // A snapshot cut short by a restart is not a quote.
    for table in ["option_snapshots", "futures_snapshots"] {
        assert_eq!(rows_without_prices(&rig.root, table).await, 0, "{table}");
    }
    assert!(
        released > 0,
        "no restart caught a request in flight: {windows:?}"
    );
    // A request thrown back keeps its lookups: each chain looks up its underlying and its
    // options once, each futures month and bars symbol once, plus at most the one lookup
    // in flight when an attempt was cut short.
    let lookups = rig.sim.stats().requests[&RequestKind::ContractDetails];
    let bound = 2 * chains as u64 + 3 + 2 + u64::from(released + retried);
    assert!(
        lookups <= bound,
        "{lookups} contract lookups, at most {bound}"
    );
    let counts = rig.engine.queue().view().borrow().counts;
    assert_eq!((counts.processing, counts.pending), (0, 0));
    eprintln!(
        "{chains} chains and {} others through {restarts} restarts; windows (open, completed): {windows:?}; {released} releases; {spent} messages for work of {needed}; in flight at each restart {in_flight_at_restart:?}",
        ids.len() - chains
    );
    rig.engine.shutdown().await;
}
