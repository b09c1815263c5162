//! Numbers a gateway sends that are not values: after the close an option has no bid or ask
//! (-1) and no computed Greeks (-1 / -2). ibq stores null for them, never the number.

use std::time::Duration;

use futures::StreamExt;
use ibapi::contracts::tick_types::TickType;
use ibapi::contracts::{Contract, SecurityType};
use ibapi::market_data::realtime::TickTypes;
use ibapi::subscriptions::SubscriptionItem;
use ibapi::Client;
use ibq::lake::columns::BatchReader;
use ibq::lake::LakeTable;
use ibq::queue::{RequestType, Status};
use ibq::sim::{SimConfig, Simulator};
use ibq::worker::results::columns_of;
use serde_json::json;

use crate::worker::{config, enqueue, new, options, settle};

/// Every option row of the table: conid and the columns that must be null or not.
struct OptionRow {
    conid: i64,
    bid: Option<f64>,
    ask: Option<f64>,
    last: Option<f64>,
    greeks: [Option<f64>; 6],
    market_data_type: Option<i64>,
}

async fn option_rows(root: &std::path::Path) -> Vec<OptionRow> {
    let t = LakeTable::open_existing(root, "option_snapshots", columns_of("option_snapshots"))
        .await
        .unwrap()
        .expect("option_snapshots exists");
    let mut out = Vec::new();
    for b in t.read_all().await.unwrap() {
        let r = BatchReader::new(&b);
        let col = |name: &str| r.f64(name).unwrap();
        let (conid, bid, ask, last) =
            (r.i64("conid").unwrap(), col("bid"), col("ask"), col("last"));
        let greeks = [
            "implied_vol",
            "delta",
            "gamma",
            "vega",
            "theta",
            "model_price",
        ]
        .map(col);
        let types = r.i64("market_data_type").unwrap();
        for i in 0..conid.len() {
            out.push(OptionRow {
                conid: conid[i].unwrap(),
                bid: bid[i],
                ask: ask[i],
                last: last[i],
                greeks: std::array::from_fn(|g| greeks[g][i]),
                market_data_type: types[i],
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_close_an_options_missing_quote_and_greeks_are_stored_as_null() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        market_closed: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let engine = ibq::engine::runtime::Engine::start(&config(&root, &sim), options())
        .await
        .unwrap();
    let ids = enqueue(
        &engine,
        vec![new(
            RequestType::OptionChain,
            "SPY",
            json!({"target_dte": 30, "strikes": 1}),
        )],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(90)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    engine.shutdown().await;
    let rows = option_rows(&root).await;
    assert_eq!(rows.len(), 6, "three strikes, calls and puts");
    for r in &rows {
        assert_eq!((r.bid, r.ask), (None, None), "conid {}", r.conid);
        assert!(
            r.last.is_some_and(|l| l > 0.0),
            "the day's last trade is kept"
        );
        assert_eq!(r.greeks, [None; 6], "conid {}", r.conid);
        assert_eq!(r.market_data_type, Some(2), "frozen");
    }

    // What the gateway sent for one of them, read through ibapi: -1 for the bid and the
    // ask (ibapi passes the number on), and the computations without values (ibapi turns
    // TWS's -1 and -2 into none).
    let client = Client::connect(&sim.address(), 7).await.unwrap();
    let contract = Contract {
        contract_id: rows[0].conid as i32,
        security_type: SecurityType::Option,
        exchange: "SMART".into(),
        ..Default::default()
    };
    let mut sub = client.market_data(&contract).subscribe().await.unwrap();
    let mut ticks = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(item) = sub.next().await {
            if let Ok(SubscriptionItem::Data(t)) = item {
                ticks.push(t);
            }
        }
    })
    .await;
    let price = |kind: TickType| {
        ticks.iter().find_map(|t| match t {
            TickTypes::Price(p) if p.tick_type == kind => Some(p.price),
            _ => None,
        })
    };
    assert_eq!(price(TickType::Bid), Some(-1.0), "{ticks:?}");
    assert_eq!(price(TickType::Ask), Some(-1.0), "{ticks:?}");
    let computations: Vec<_> = ticks
        .iter()
        .filter_map(|t| match t {
            TickTypes::OptionComputation(c) => Some(c),
            _ => None,
        })
        .collect();
    assert!(!computations.is_empty(), "{ticks:?}");
    for c in computations {
        assert_eq!(
            (c.delta, c.gamma, c.vega, c.theta, c.implied_volatility),
            (None, None, None, None, None),
            "{c:?}"
        );
    }
    drop(sub);
    sim.shutdown().await;
}
