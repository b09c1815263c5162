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
