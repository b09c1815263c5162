//! Data forms a real gateway sends that ibq must read right: futures expiries with a time
//! and zone, and code 162 for a window without data.

use std::time::Duration;

use chrono::DateTime;
use ibq::engine::runtime::Engine;
use ibq::lake::columns::BatchReader;
use ibq::lake::LakeTable;
use ibq::queue::{RequestType, Status};
use ibq::sim::{SimConfig, Simulator};
use ibq::worker::results::columns_of;
use serde_json::json;

use crate::worker::{config, enqueue, new, options, settle};

/// A simulator whose clock starts at `start` (RFC 3339) and an engine against it.
async fn rig_at(start: &str) -> (ibq::sim::SimHandle, Engine, tempfile::TempDir) {
    let sim = Simulator::start(SimConfig {
        port: 0,
        clock_start: DateTime::parse_from_rfc3339(start).ok(),
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(&config(&dir.path().join("lake"), &sim), options())
        .await
        .expect("the engine starts");
    (sim, engine, dir)
}

/// A simulator whose clock starts at `start` (RFC 3339) and runs at a thousandth of real
/// time, so the day stays put, and an `ibapi` client connected to it as `client_id`.
async fn client_at(start: &str, client_id: i32) -> (ibq::sim::SimHandle, ibapi::Client) {
    let sim = Simulator::start(SimConfig {
        port: 0,
        clock_start: DateTime::parse_from_rfc3339(start).ok(),
        speed: 0.001,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let client = connect(&sim, client_id).await;
    (sim, client)
}

/// An `ibapi` client connected to `sim` as `client_id`.
async fn connect(sim: &ibq::sim::SimHandle, client_id: i32) -> ibapi::Client {
    tokio::time::timeout(
        Duration::from_secs(15),
        ibapi::Client::connect(&sim.address(), client_id),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn futures_expiry_with_time_and_zone_gives_the_front_month_and_its_utc_last_trade() {
    // Monday 23 Nov 2026: the December contract (last trade Fri 18 Dec) is the front month.
    let (sim, engine, dir) = rig_at("2026-11-23T10:00:00-05:00").await;
    let ids = enqueue(
        &engine,
        vec![new(RequestType::FuturesSnapshot, "ES", json!({}))],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    let table = LakeTable::open_existing(
        &dir.path().join("lake"),
        "futures_snapshots",
        columns_of("futures_snapshots"),
    )
    .await
    .unwrap()
    .expect("futures_snapshots exists");
    let batches = table.read_all().await.unwrap();
    let b = BatchReader::new(&batches[0]);
    assert_eq!(
        b.utf8("contract_month").unwrap(),
        vec![Some("202612".into())]
    );
    assert_eq!(b.utf8("local_symbol").unwrap(), vec![Some("ESZ6".into())]);
    // 08:30 Chicago time on 18 Dec 2026 (CST, UTC-6) is 14:30 UTC.
    assert_eq!(
        b.timestamp("last_trade_time").unwrap(),
        vec![DateTime::parse_from_rfc3339("2026-12-18T14:30:00Z")
            .ok()
            .map(|t| t.to_utc())]
    );
    engine.shutdown().await;
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_without_data_succeeds_with_zero_rows_and_says_so() {
    // An index has no bid, so no BID history: a gateway answers 162 "HMDS query
    // returned no data".
    let (sim, engine, _dir) = rig_at("2026-11-23T12:00:00-05:00").await;
    let ids = enqueue(
        &engine,
        vec![new(
            RequestType::MarketBars,
            "VIX",
            json!({"duration": "3600 S", "bar_size": "1 min", "what_to_show": "BID"}),
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
    assert_eq!(done[0].attempts, 1, "no data is not retried");
    let data = done[0].result_data.as_ref().unwrap();
    assert_eq!(data["rows"], 0);
    assert!(
        data["note"]
            .as_str()
            .unwrap()
            .contains("HMDS query returned no data"),
        "{data}"
    );
    assert_eq!(sim.stats().errors.get(&162), Some(&1));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_and_ask_of_minus_one_read_as_no_price() {
    use futures::StreamExt;
    use ibapi::market_data::realtime::{Quote, TickTypes};
    use ibapi::subscriptions::SubscriptionItem;

    // An index has no bid or ask: a gateway sends -1 for each.
    let (sim, engine, _dir) = rig_at("2026-11-23T10:30:00-05:00").await;
    engine.shutdown().await;
    let client = connect(&sim, 7).await;
    let mut sub = client
        .market_data(&ibq::worker::ib::index("VIX"))
        .snapshot()
        .subscribe()
        .await
        .expect("snapshot request");
    let mut ticks = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(15), sub.next())
            .await
            .expect("ticks in time")
        {
            Some(Ok(SubscriptionItem::Data(TickTypes::SnapshotEnd))) => break,
            Some(Ok(SubscriptionItem::Data(t))) => ticks.push(t),
            Some(Ok(SubscriptionItem::Notice(_))) => {}
            other => panic!("snapshot failed: {other:?}"),
        }
    }
    let raw = Quote::from_ticks(&ticks);
    assert_eq!(
        (raw.bid, raw.ask),
        (Some(-1.0), Some(-1.0)),
        "the gateway's form"
    );
    assert!(raw.last.is_some_and(|p| p > 0.0));
    let q = ibq::gateway::quote::without_sentinels(raw);
    assert_eq!((q.bid, q.ask), (None, None));
    assert!(q.last.is_some_and(|p| p > 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_before_the_order_id_and_a_zoned_historical_end_are_read() {
    use ibapi::market_data::historical::{BarSize, ToDuration};

    // The simulator answers the handshake with managedAccounts first, then nextValidId,
    // and ends historical data with `YYYYMMDD HH:MM:SS US/Eastern`, as a gateway does.
    let (_sim, client) = client_at("2026-11-23T10:30:00-05:00", 3).await;
    assert_eq!(
        client.handshake_managed_accounts(),
        vec!["DU1234567".to_string()]
    );
    let spy = ibq::worker::ib::stock("SPY");
    let data = client
        .historical_data(&spy, BarSize::Hour)
        .duration(1.days())
        .fetch()
        .await
        .expect("hourly bars");
    assert!(!data.bars.is_empty());
    // Monday 10:30 New York is 15:30 UTC; 1 D is today's session, from midnight New York.
    let end = 1_795_447_800_i64;
    assert!(
        (data.end.unix_timestamp() - end).abs() < 5,
        "end {}",
        data.end
    );
    assert!(
        (data.start.unix_timestamp() - (end - 37_800)).abs() < 5,
        "start {}",
        data.start
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_count_trading_sessions_and_over_long_durations_are_refused_with_321() {
    use ibapi::market_data::historical::{BarSize, BarTimestamp, ToDuration};

    // Monday 30 Nov 2026, after Thanksgiving (Thursday 26th, NYSE closed).
    let (_sim, client) = client_at("2026-11-30T10:30:00-05:00", 4).await;
    let spy = ibq::worker::ib::stock("SPY");
    let daily = client
        .historical_data(&spy, BarSize::Day)
        .duration(5.days())
        .fetch()
        .await
        .expect("daily bars");
    let days: Vec<String> = daily
        .bars
        .iter()
        .map(|b| match b.date {
            BarTimestamp::Date(d) => format!("{}-{:02}-{:02}", d.year(), d.month() as u8, d.day()),
            BarTimestamp::DateTime(t) => panic!("a daily bar carries a date, got {t}"),
        })
        .collect();
    assert_eq!(
        days,
        [
            "2026-11-23",
            "2026-11-24",
            "2026-11-25",
            "2026-11-27",
            "2026-11-30"
        ],
        "5 D from a Monday: five sessions back into last week, Thanksgiving skipped"
    );

    // 7200 S of regular-hours bars at 10:30 on Monday: Monday's first hour, then an hour
    // of trading time from Friday's session, not a weekend of calendar time.
    let bars = client
        .historical_data(&spy, BarSize::Min30)
        .duration(7200.seconds())
        .fetch()
        .await
        .expect("30 min bars");
    let days: Vec<u32> = bars
        .bars
        .iter()
        .map(|b| match b.date {
            BarTimestamp::DateTime(t) => {
                use chrono::Datelike;
                DateTime::from_timestamp(t.unix_timestamp(), 0)
                    .unwrap()
                    .with_timezone(&chrono_tz::America::New_York)
                    .day()
            }
            BarTimestamp::Date(d) => panic!("an intraday bar carries a time, got {d}"),
        })
        .collect();
    // Friday 15:00-16:00, then Monday from 09:30 (the bar forming at 10:30 may follow).
    assert_eq!(days[..4], [27, 27, 30, 30], "{:?}", bars.bars);
    assert!(days[4..].iter().all(|d| *d == 30), "{:?}", bars.bars);

    // `1 week` and `1 month` bars: one per week or month, each dated by its first session.
    let dates = |bars: &[ibapi::market_data::historical::Bar]| -> Vec<String> {
        bars.iter()
            .map(|b| match b.date {
                BarTimestamp::Date(d) => {
                    format!("{}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
                }
                BarTimestamp::DateTime(t) => panic!("a weekly bar carries a date, got {t}"),
            })
            .collect()
    };
    let weekly = client
        .historical_data(&spy, BarSize::Week)
        .duration(3.weeks())
        .fetch()
        .await
        .expect("weekly bars");
    assert_eq!(
        dates(&weekly.bars),
        ["2026-11-09", "2026-11-16", "2026-11-23", "2026-11-30"]
    );
    let monthly = client
        .historical_data(&spy, BarSize::Month)
        .duration(2.months())
        .fetch()
        .await
        .expect("monthly bars");
    assert_eq!(
        dates(&monthly.bars),
        ["2026-09-30", "2026-10-01", "2026-11-02"]
    );

    for (what, asked) in [("86401 S", 86_401.seconds()), ("366 D", 366.days())] {
        let e = client
            .historical_data(&spy, BarSize::Day)
            .duration(asked)
            .fetch()
            .await
            .expect_err(what);
        match e {
            ibapi::Error::Notice(n) => assert_eq!(n.code, 321, "{what}: {}", n.message),
            e => panic!("{what}: {e}"),
        }
    }
}

/// The day after Thanksgiving NYSE closes at 13:00 (the crate's calendar): the simulator's
/// session, and so its bars, end there, while the days before run to 16:00.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_close_ends_the_session_and_its_bars_at_13_00() {
    use chrono::Timelike;
    use ibapi::market_data::historical::{BarSize, BarTimestamp, ToDuration};

    let (sim, client) = client_at("2026-11-27T17:00:00-05:00", 5).await;
    let spy = ibq::worker::ib::stock("SPY");
    let hourly = client
        .historical_data(&spy, BarSize::Hour)
        .duration(3.days())
        .fetch()
        .await
        .expect("hourly bars");
    // The start of the last bar of each New York day.
    let mut last_of_day: std::collections::BTreeMap<u32, (u32, u32)> = Default::default();
    for b in &hourly.bars {
        let BarTimestamp::DateTime(t) = b.date else {
            panic!("an intraday bar carries a time")
        };
        let ny = DateTime::from_timestamp(t.unix_timestamp(), 0)
            .unwrap()
            .with_timezone(&chrono_tz::America::New_York);
        use chrono::Datelike;
        last_of_day.insert(ny.day(), (ny.hour(), ny.minute()));
    }
    assert_eq!(
        last_of_day.into_iter().collect::<Vec<_>>(),
        [(24, (15, 0)), (25, (15, 0)), (27, (12, 0))],
        "{:?}",
        hourly.bars
    );
    sim.shutdown().await;
}
