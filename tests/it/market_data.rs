//! Market-data permissions and the snapshot end, as a gateway does them (docs/SIM.md): the
//! simulator through the real `ibapi` client, and the engine's quotes against it.

use std::time::Duration;

use futures::StreamExt;
use ibapi::contracts::tick_types::TickType;
use ibapi::contracts::Contract;
use ibapi::market_data::realtime::TickTypes;
use ibapi::market_data::MarketDataType;
use ibapi::subscriptions::SubscriptionItem;
use ibapi::Client;
use ibq::engine::runtime::Engine;
use ibq::queue::{RequestType, Status};
use ibq::sim::{Permissions, SimConfig, SimHandle, Simulator};
use ibq::worker::market_data::MarketDataMode;
use serde_json::json;

use crate::worker::{config, enqueue, new, options, settle};

const WAIT: Duration = Duration::from_secs(15);

async fn sim(permissions: Permissions, competing_session: bool) -> SimHandle {
    Simulator::start(SimConfig {
        port: 0,
        permissions,
        competing_session,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

/// What the gateway answers one streaming request: ticks until the bid, ask and last are in,
/// or the error or notice that refused it.
enum Answer {
    Data(Vec<TickTypes>, Vec<i32>),
    Refused(i32, String),
}

async fn ask(client: &Client) -> Answer {
    let mut sub = client
        .market_data(&Contract::stock("SPY").build())
        .subscribe()
        .await
        .expect("request");
    let mut ticks = Vec::new();
    let mut notices = Vec::new();
    loop {
        let have = |t: TickType| {
            ticks
                .iter()
                .any(|x: &TickTypes| matches!(x, TickTypes::Price(p) if p.tick_type == t))
        };
        if have(TickType::DelayedLast) && have(TickType::DelayedBid)
            || have(TickType::Last) && have(TickType::Bid)
        {
            return Answer::Data(ticks, notices);
        }
        match tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("an answer in time")
        {
            Some(Ok(SubscriptionItem::Data(t))) => ticks.push(t),
            Some(Ok(SubscriptionItem::Notice(n))) if n.code == 10089 => {
                return Answer::Refused(n.code, n.message)
            }
            Some(Ok(SubscriptionItem::Notice(n))) => notices.push(n.code),
            Some(Err(ibapi::Error::Notice(n))) => return Answer::Refused(n.code, n.message),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_permissions_refuse_or_serve_delayed_with_ibs_codes() {
    // No live subscription, delayed data available.
    let s = sim(Permissions::Delayed, false).await;
    let client = Client::connect(&s.address(), 1).await.expect("connect");
    match ask(&client).await {
        Answer::Refused(code, text) => {
            assert_eq!(code, 10089);
            assert!(
                text.contains("requires additional subscription for API"),
                "{text}"
            );
            assert!(text.contains("Delayed market data is available"), "{text}");
        }
        Answer::Data(..) => panic!("live data without a subscription"),
    }
    client
        .switch_market_data_type(MarketDataType::Delayed)
        .await
        .unwrap();
    match ask(&client).await {
        Answer::Data(ticks, notices) => {
            assert!(
                notices.contains(&10167),
                "delayed data is announced: {notices:?}"
            );
            assert!(ticks
                .iter()
                .any(|t| matches!(t, TickTypes::MarketDataType(MarketDataType::Delayed))));
            assert!(
                !ticks
                    .iter()
                    .any(|t| matches!(t, TickTypes::Price(p) if p.tick_type == TickType::Bid)),
                "delayed tick types only"
            );
        }
        Answer::Refused(code, text) => panic!("refused delayed data: {code} {text}"),
    }
    s.shutdown().await;

    // Neither live nor delayed data.
    let s = sim(Permissions::None, false).await;
    let client = Client::connect(&s.address(), 1).await.expect("connect");
    assert!(matches!(ask(&client).await, Answer::Refused(354, _)));
    client
        .switch_market_data_type(MarketDataType::Delayed)
        .await
        .unwrap();
    match ask(&client).await {
        Answer::Refused(code, text) => {
            assert_eq!(code, 10168);
            assert!(
                text.contains("Delayed market data is not enabled"),
                "{text}"
            );
        }
        Answer::Data(..) => panic!("delayed data that is not enabled"),
    }
    assert_eq!(s.stats().lines_in_use, 0, "a refusal holds no line");
    s.shutdown().await;

    // A competing live session.
    let s = sim(Permissions::Live, true).await;
    let client = Client::connect(&s.address(), 1).await.expect("connect");
    match ask(&client).await {
        Answer::Refused(code, text) => {
            assert_eq!(code, 10197);
            assert_eq!(text, "No market data during competing live session");
        }
        Answer::Data(..) => panic!("data during a competing session"),
    }
    s.shutdown().await;
}

async fn start_engine(s: &SimHandle, mode: MarketDataMode) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("lake"), s);
    c.market_data.kind = mode;
    let engine = Engine::start(&c, options())
        .await
        .expect("the engine starts");
    (engine, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_switches_an_exchange_to_delayed_once_and_live_fails_at_once() {
    let s = sim(Permissions::Delayed, false).await;
    let (engine, _dir) = start_engine(&s, MarketDataMode::Auto).await;
    let ids = enqueue(
        &engine,
        vec![
            new(
                RequestType::OptionChain,
                "SPY",
                json!({"target_dte": 30, "strikes": 1}),
            ),
            new(RequestType::FuturesSnapshot, "ES", json!({})),
        ],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(60)).await;
    for r in &done {
        assert_eq!(
            r.status,
            Status::Success,
            "{}: {:?}",
            r.request_type,
            r.error_message
        );
    }
    let mut delayed = engine
        .handle()
        .snapshot()
        .borrow()
        .worker
        .delayed_exchanges
        .clone();
    delayed.sort();
    assert_eq!(delayed, vec!["CME".to_string(), "SMART".to_string()]);
    engine.shutdown().await;
    s.shutdown().await;

    // Live only: the refusal fails the request at once, naming what is missing.
    let s = sim(Permissions::Delayed, false).await;
    let (engine, _dir) = start_engine(&s, MarketDataMode::Live).await;
    let ids = enqueue(
        &engine,
        vec![new(RequestType::FuturesSnapshot, "ES", json!({}))],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(done[0].status, Status::Failed);
    assert_eq!(done[0].attempts, 1, "no retry can help");
    let message = done[0].error_message.clone().unwrap_or_default();
    assert!(
        message.contains("10089") && message.contains("no live market-data subscription for CME"),
        "{message}"
    );
    assert!(engine
        .handle()
        .snapshot()
        .borrow()
        .worker
        .delayed_exchanges
        .is_empty());
    engine.shutdown().await;
    s.shutdown().await;

    // Auto without delayed data enabled: 354, then 10168 on the switch.
    let s = sim(Permissions::None, false).await;
    let (engine, _dir) = start_engine(&s, MarketDataMode::Auto).await;
    let ids = enqueue(
        &engine,
        vec![new(RequestType::FuturesSnapshot, "ES", json!({}))],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(done[0].status, Status::Failed);
    assert_eq!(done[0].attempts, 1);
    let message = done[0].error_message.clone().unwrap_or_default();
    assert!(
        message.contains("10168") && message.contains("delayed market data is not enabled"),
        "{message}"
    );
    engine.shutdown().await;
    s.shutdown().await;
}

/// With the gateway's 11 s snapshot end, the engine's quotes hold no line for it: the lines
/// are free as soon as the request is done, and no snapshot was asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_hold_no_line_for_the_snapshot_end() {
    let s = sim(Permissions::Live, false).await;
    assert_eq!(SimConfig::default().snapshot_end, Duration::from_secs(11));
    let (engine, _dir) = start_engine(&s, MarketDataMode::Auto).await;
    let ids = enqueue(
        &engine,
        vec![new(
            RequestType::OptionChain,
            "QQQ",
            json!({"target_dte": 14, "strikes": 3}),
        )],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    assert_eq!(done[0].result_data.as_ref().unwrap()["rows"], 14);
    assert!(done[0].result_data.as_ref().unwrap()["quote_spread_ms"].is_u64());
    crate::common::wait_until(
        "the quotes' lines to be free",
        Duration::from_secs(5),
        async || s.stats().lines_in_use == 0,
    )
    .await;
    engine.shutdown().await;
    s.shutdown().await;
}

/// The market data type of every row of `table` (IB's number: 1 live ... 4 delayed frozen).
async fn data_types(root: &std::path::Path, table: &str) -> Vec<Option<i64>> {
    use ibq::lake::columns::BatchReader;
    use ibq::lake::LakeTable;
    use ibq::worker::results::columns_of;
    let t = LakeTable::open_existing(root, table, columns_of(table))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{table} exists"));
    let mut out = Vec::new();
    for b in t.read_all().await.unwrap() {
        out.extend(BatchReader::new(&b).i64("market_data_type").unwrap());
    }
    out
}

/// Every snapshot row says which data it holds: live (1) against a subscribed account,
/// delayed (3) where the session switched to delayed data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snapshot_row_records_its_market_data_type() {
    for (permissions, expected) in [(Permissions::Live, 1), (Permissions::Delayed, 3)] {
        let s = sim(permissions, false).await;
        let (engine, dir) = start_engine(&s, MarketDataMode::Auto).await;
        let ids = enqueue(
            &engine,
            vec![
                new(
                    RequestType::OptionChain,
                    "IWM",
                    json!({"target_dte": 30, "strikes": 1, "rights": "C"}),
                ),
                new(RequestType::FuturesSnapshot, "NQ", json!({})),
                new(RequestType::PositionUpdate, "ALL", json!({})),
            ],
        )
        .await;
        let done = settle(&engine, &ids, Duration::from_secs(60)).await;
        for r in &done {
            assert_eq!(
                r.status,
                Status::Success,
                "{}: {:?}",
                r.request_type,
                r.error_message
            );
        }
        engine.shutdown().await;
        let root = dir.path().join("lake");
        for table in ["option_snapshots", "futures_snapshots", "position_updates"] {
            let types = data_types(&root, table).await;
            assert!(!types.is_empty(), "{table} has rows");
            assert!(
                types.iter().all(|t| *t == Some(expected)),
                "{permissions:?}: {table} holds types {types:?}"
            );
        }
        s.shutdown().await;
    }
}

/// Without a market-data subscription a gateway refuses bars with 162 "No market data
/// permissions for …" (docs/SIM.md); the worker fails the request at once, with no retry
/// spending the historical budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_without_permissions_are_refused_with_162_and_fail_at_once() {
    use ibapi::market_data::historical::{BarSize, Duration as IbDuration, WhatToShow};
    use ibq::sim::RequestKind;
    let s = sim(Permissions::None, false).await;
    let client = Client::connect(&s.address(), 1).await.expect("connect");
    let answer = client
        .historical_data(&Contract::stock("SPY").build(), BarSize::Hour)
        .what_to_show(WhatToShow::Trades)
        .duration(IbDuration::days(1))
        .fetch()
        .await;
    match answer {
        Err(ibapi::Error::Notice(n)) => {
            assert_eq!(n.code, 162);
            assert_eq!(
                n.message,
                "Historical Market Data Service error message:No market data permissions for ARCA STK"
            );
        }
        other => panic!("bars without a subscription: {other:?}"),
    }
    drop(client);
    let asked = || {
        s.stats()
            .requests
            .get(&RequestKind::HistoricalData)
            .copied()
            .unwrap_or(0)
    };
    let before = asked();
    let (engine, _dir) = start_engine(&s, MarketDataMode::Auto).await;
    let ids = enqueue(
        &engine,
        vec![new(
            RequestType::MarketBars,
            "QQQ",
            json!({"duration": "1 D", "bar_size": "30 mins"}),
        )],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(done[0].status, Status::Failed);
    assert_eq!(done[0].attempts, 1, "no retry can help");
    let message = done[0].error_message.clone().unwrap_or_default();
    assert!(
        message.contains("162") && message.contains("No market data permissions for NASDAQ STK"),
        "{message}"
    );
    assert_eq!(asked() - before, 1, "asked once");
    engine.shutdown().await;
    s.shutdown().await;
}

/// A streamed leg whose market data the gateway refuses says why (IB's code and words) and
/// writes no row: a leg without a price is never written as a row of nulls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_refused_market_data_says_why_and_writes_no_row() {
    use ibq::engine::LegState;
    let s = sim(Permissions::None, false).await;
    let (engine, dir) = start_engine(&s, MarketDataMode::Auto).await;
    let conid = s.universe().conid_of("SPY").unwrap();
    crate::streaming::promote_when_connected(&engine, conid).await;
    let mut snap = engine.handle().snapshot();
    let reason = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let legs = snap.borrow_and_update().legs.clone();
            if let Some(LegState::Stalled { reason }) = legs
                .iter()
                .find(|l| l.conid == conid)
                .map(|l| l.state.clone())
            {
                return reason;
            }
            snap.changed().await.unwrap();
        }
    })
    .await
    .expect("the leg says its data was refused");
    // Under auto the 354 switches SMART to delayed data, which the account has not
    // enabled either: the leg says so with IB's 10168.
    assert!(
        reason.contains("10168") && reason.contains("Delayed market data is not enabled"),
        "{reason}"
    );
    assert_eq!(s.stats().errors.get(&354), Some(&1), "live data asked once");
    // Two write intervals pass: no row for the leg.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    engine.shutdown().await;
    let root = dir.path().join("lake");
    if root.join("position_updates").exists() {
        let types = data_types(&root, "position_updates").await;
        assert!(
            types.is_empty(),
            "rows written for a leg without data: {types:?}"
        );
    }
    s.shutdown().await;
}

/// Under auto, a leg refused live data (10089) switches its exchange to delayed data for the
/// session, as the worker's quotes do, with the same one choice: the leg streams delayed
/// data, its rows record market data type 3, the header lists the exchange, and a later
/// quote on that exchange asks for delayed data at once (no second 10089).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_refused_live_data_streams_delayed_data_under_auto() {
    use ibq::engine::LegState;
    let s = sim(Permissions::Delayed, false).await;
    let (engine, dir) = start_engine(&s, MarketDataMode::Auto).await;
    let conid = s.universe().conid_of("SPY").unwrap();
    crate::streaming::promote_when_connected(&engine, conid).await;
    let mut snap = engine.handle().snapshot();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let legs = snap.borrow_and_update().legs.clone();
            if let Some(l) = legs.iter().find(|l| l.conid == conid) {
                if l.state == LegState::Streaming && l.bid.is_some() && l.ask.is_some() {
                    return;
                }
            }
            snap.changed().await.unwrap();
        }
    })
    .await
    .expect("the leg streams delayed data");
    let delayed = engine
        .handle()
        .snapshot()
        .borrow()
        .worker
        .delayed_exchanges
        .clone();
    assert_eq!(delayed.len(), 1, "one exchange switched: {delayed:?}");
    assert_eq!(s.stats().errors.get(&10089), Some(&1));
    // The worker's quotes on the leg's exchange take delayed data at once.
    let ids = enqueue(
        &engine,
        vec![new(
            RequestType::PositionUpdate,
            "ALL",
            json!({"conid": s.portfolio()[0].conid}),
        )],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    // Two write intervals for the leg's rows.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    engine.shutdown().await;
    let stats = s.stats();
    assert_eq!(
        stats.errors.get(&10089),
        Some(&1),
        "one refusal of live data for the session: {stats}"
    );
    let asked = s.arrivals().iter().filter(|a| a.message == 59).count();
    assert_eq!(asked, 1, "reqMarketDataType(3) once on the connection");
    let types = data_types(&dir.path().join("lake"), "position_updates").await;
    assert!(types.len() >= 2, "the leg's rows and the poll's: {types:?}");
    assert!(types.iter().all(|t| *t == Some(3)), "{types:?}");
    s.shutdown().await;
}
