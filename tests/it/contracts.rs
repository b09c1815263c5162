//! One symbol, several contracts: the simulator lists `ES` both as Eversource Energy (NYSE
//! stock) and as the CME E-mini future, as a gateway does; the engine takes the contract
//! `[contracts]` names, and a symbol it does not name that matches several contracts fails
//! at once with the candidates and the line that settles it.

use std::time::Duration;

use ibapi::contracts::{Contract, SecurityType};
use ibapi::Client;
use ibq::engine::runtime::Engine;
use ibq::lake::columns::BatchReader;
use ibq::lake::LakeTable;
use ibq::queue::{RequestType, Status};
use ibq::sim::{SimConfig, SimHandle, Simulator};
use ibq::worker::contracts::{ContractSpec, SecType};
use ibq::worker::results::columns_of;
use serde_json::json;
use uuid::Uuid;

use crate::worker::{config, enqueue, new, options, settle};

async fn sim() -> SimHandle {
    Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_lists_es_as_a_nyse_stock_and_as_cme_futures() {
    let s = sim().await;
    let client = Client::connect(&s.address(), 7).await.expect("connects");
    let stock = client
        .contract_details(&Contract::stock("ES").build())
        .await
        .expect("ES as a stock is listed");
    assert_eq!(stock.len(), 1);
    assert_eq!(stock[0].contract.primary_exchange.0, "NYSE");
    assert_eq!(stock[0].long_name, "EVERSOURCE ENERGY");
    assert_eq!(stock[0].contract.security_type, SecurityType::Stock);
    // Asked on its listing exchange it is found; on another it is not.
    let mut on_arca = Contract::stock("ES").build();
    on_arca.primary_exchange = ibapi::contracts::Exchange("ARCA".into());
    assert!(client
        .contract_details(&on_arca)
        .await
        .map(|d| d.is_empty())
        .unwrap_or(true));
    let futures = client
        .contract_details(&Contract {
            symbol: ibapi::contracts::Symbol("ES".into()),
            security_type: SecurityType::Future,
            // No exchange: every exchange's listings (ibapi's default would be SMART).
            exchange: ibapi::contracts::Exchange(String::new()),
            ..Default::default()
        })
        .await
        .expect("ES futures are listed");
    assert!(futures.len() >= 4, "{}", futures.len());
    assert!(futures.iter().all(|d| d.contract.exchange.0 == "CME"));
    assert!(futures
        .iter()
        .all(|d| d.contract.contract_id != stock[0].contract.contract_id));
    drop(client);
    s.shutdown().await;
}

async fn conids(root: &std::path::Path, id: Uuid) -> Vec<i64> {
    let t = LakeTable::open_existing(root, "market_bars", columns_of("market_bars"))
        .await
        .unwrap()
        .expect("market_bars exists");
    let mut out = Vec::new();
    for b in t.read_all().await.unwrap() {
        let r = BatchReader::new(&b);
        let ids = r.utf8("request_id").unwrap();
        let c = r.i64("conid").unwrap();
        for (i, cid) in ids.iter().zip(c) {
            if i.as_deref() == Some(id.to_string().as_str()) {
                out.push(cid.expect("conid set"));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn bars() -> serde_json::Value {
    json!({"duration": "2 D", "bar_size": "1 hour"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbol_takes_its_configured_contract_and_an_unlisted_collision_fails_at_once() {
    let s = sim().await;

    // Defaults: ES is the CME future, whatever the stock lookup would find first.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let engine = Engine::start(&config(&root, &s), options())
        .await
        .expect("the engine starts");
    let ids = enqueue(&engine, vec![new(RequestType::MarketBars, "ES", bars())]).await;
    let done = settle(&engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    let ids_es = conids(&root, ids[0]).await;
    assert_eq!(ids_es.len(), 1, "{ids_es:?}");
    assert!(
        (500_000_000..500_100_000).contains(&ids_es[0]),
        "an ES future's id, not Eversource's: {ids_es:?}"
    );
    engine.shutdown().await;

    // ES configured as the stock: Eversource's bars.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut c = config(&root, &s);
    c.contracts.0.insert(
        "ES".into(),
        ContractSpec {
            sec_type: SecType::Stock,
            exchange: "SMART".into(),
            primary_exchange: Some("NYSE".into()),
            currency: "USD".into(),
            root: None,
        },
    );
    let engine = Engine::start(&c, options())
        .await
        .expect("the engine starts");
    let ids = enqueue(&engine, vec![new(RequestType::MarketBars, "ES", bars())]).await;
    let done = settle(&engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    let stock = conids(&root, ids[0]).await;
    assert_eq!(stock.len(), 1);
    assert!(!(500_000_000..500_100_000).contains(&stock[0]), "{stock:?}");
    engine.shutdown().await;

    // ES not configured: bars could mean either, so the request fails at once, naming both
    // and the line for each; a futures snapshot can only mean the future, so it runs.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut c = config(&root, &s);
    c.contracts.0.remove("ES");
    let engine = Engine::start(&c, options())
        .await
        .expect("the engine starts");
    let ids = enqueue(
        &engine,
        vec![
            new(RequestType::MarketBars, "ES", bars()),
            new(RequestType::FuturesSnapshot, "ES", json!({})),
        ],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(done[0].status, Status::Failed);
    assert_eq!(
        done[0].attempts, 1,
        "no retry can settle which contract is meant"
    );
    let message = done[0].error_message.clone().unwrap_or_default();
    for part in [
        "ES names 2 contracts",
        "[contracts] in ibq.toml",
        "`ES = { type = \"STK\", exchange = \"SMART\", primary_exchange = \"NYSE\", currency = \"USD\" }` (EVERSOURCE ENERGY, STK on NYSE)",
        "`ES = { type = \"FUT\", exchange = \"CME\", currency = \"USD\" }`",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert_eq!(
        done[1].status,
        Status::Success,
        "{:?}",
        done[1].error_message
    );
    engine.shutdown().await;
    s.shutdown().await;
}

#[test]
fn the_defaults_are_printed_and_a_bad_entry_is_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = crate::common::ibq(&lake, &["config", "--print-default"]);
    assert!(out.status.success());
    let text = crate::common::stdout(&out);
    let section = text
        .split("\n[contracts]\n")
        .nth(1)
        .expect("a [contracts] section");
    for line in [
        "SPY = { type = \"STK\", exchange = \"SMART\", primary_exchange = \"ARCA\", currency = \"USD\" }",
        "QQQ = { type = \"STK\", exchange = \"SMART\", primary_exchange = \"NASDAQ\", currency = \"USD\" }",
        "IWM = { type = \"STK\", exchange = \"SMART\", primary_exchange = \"ARCA\", currency = \"USD\" }",
        "VIX = { type = \"IND\", exchange = \"CBOE\", currency = \"USD\" }",
        "ES = { type = \"FUT\", exchange = \"CME\", currency = \"USD\" }",
        "NQ = { type = \"FUT\", exchange = \"CME\", currency = \"USD\" }",
        "RTY = { type = \"FUT\", exchange = \"CME\", currency = \"USD\" }",
    ] {
        assert!(section.contains(line), "{line}");
    }

    let cfg = dir.path().join("ibq.toml");
    std::fs::write(
        &cfg,
        "[contracts]\nSPY = { type = \"STK\", exchange = \"SMART\" }\nES = { type = \"FUT\", exchang = \"CME\" }\n",
    )
    .unwrap();
    let out = crate::common::ibq(&lake, &["list", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = crate::common::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("ibq.toml") && err.contains("line 3") && err.contains("exchang"),
        "{err}"
    );
}
