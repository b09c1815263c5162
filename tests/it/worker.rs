//! The engine against `ibq sim` through the real `ibapi` client: every request type ends in
//! its result table; faults (restart, pacing, unknown contract) are survived.

use std::sync::Arc;
use std::time::Duration;

use ibq::config::Config;
use ibq::engine::runtime::{Engine, EngineOptions};
use ibq::lake::columns::BatchReader;
use ibq::lake::LakeTable;
use ibq::queue::{Actor, NewRequest, Priority, Request, RequestType, Status};
use ibq::scheduler::clock::SystemClock;
use ibq::sim::{RequestKind, SimConfig, SimHandle, Simulator};
use ibq::worker::results::columns_of;
use serde_json::json;
use uuid::Uuid;

pub struct Rig {
    pub sim: SimHandle,
    pub engine: Engine,
    pub root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

pub async fn rig(lines: u32) -> Rig {
    let sim = Simulator::start(SimConfig {
        port: 0,
        lines,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let engine = Engine::start(&config(&root, &sim), options())
        .await
        .expect("the engine starts");
    Rig {
        sim,
        engine,
        root,
        _dir: dir,
    }
}

pub fn config(root: &std::path::Path, sim: &SimHandle) -> Config {
    let mut c = Config::default();
    c.lake.root = root.to_path_buf();
    c.gateway.address = sim.address();
    c.worker.poll_secs = 1;
    c.worker.backoff_base_secs = 1;
    c.worker.request_timeout_secs = 30;
    c.queue.poll_external_secs = 1;
    c.scheduler.enabled = false;
    c.streaming.write_interval_secs = 1;
    c
}

pub fn options() -> EngineOptions {
    EngineOptions {
        clock: Arc::new(SystemClock),
    }
}

pub fn new(ty: RequestType, symbol: &str, params: serde_json::Value) -> NewRequest {
    NewRequest {
        request_type: ty,
        symbol: symbol.into(),
        priority: Priority::NORMAL,
        parameters: params,
        changed_by: Actor::Operator,
        schedule_key: None,
        during: Default::default(),
    }
}

pub async fn enqueue(engine: &Engine, news: Vec<NewRequest>) -> Vec<Uuid> {
    engine
        .queue()
        .enqueue(news)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.unwrap().request().request_id)
        .collect()
}

/// Waits (bounded) until every request is done (SUCCESS, FAILED or CANCELLED), reading the
/// queue table as any other reader would.
pub async fn settle(engine: &Engine, ids: &[Uuid], within: Duration) -> Vec<Arc<Request>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let state = ibq::queue::store::read_state(engine.queue().root())
            .await
            .unwrap();
        let rows: Vec<Arc<Request>> = ids.iter().filter_map(|id| state.get(id).cloned()).collect();
        if rows.len() == ids.len() && rows.iter().all(|r| !r.status.is_open()) {
            return rows;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "requests still open after {within:?}: {:?}",
                rows.iter()
                    .map(|r| (r.request_type, &r.symbol, r.status, &r.error_message))
                    .collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Rows of a result table written for `id`.
pub async fn rows_for(root: &std::path::Path, table: &str, id: Uuid) -> usize {
    let Some(t) = LakeTable::open_existing(root, table, columns_of(table))
        .await
        .unwrap()
    else {
        return 0;
    };
    let mut n = 0;
    for b in t.read_all().await.unwrap() {
        n += BatchReader::new(&b)
            .utf8("request_id")
            .unwrap()
            .iter()
            .filter(|v| v.as_deref() == Some(id.to_string().as_str()))
            .count();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_type_lands_in_its_table() {
    let rig = rig(100).await;
    let ids = enqueue(
        &rig.engine,
        vec![
            new(
                RequestType::OptionChain,
                "SPY",
                json!({"target_dte": 30, "strikes": 2}),
            ),
            new(RequestType::FuturesSnapshot, "ES", json!({})),
            new(
                RequestType::MarketBars,
                "QQQ",
                json!({"duration": "5 D", "bar_size": "1 day"}),
            ),
            new(
                RequestType::MarketBars,
                "IWM",
                json!({"duration": "1 D", "bar_size": "30 mins"}),
            ),
            new(RequestType::PositionUpdate, "ALL", json!({})),
        ],
    )
    .await;
    let done = settle(&rig.engine, &ids, Duration::from_secs(90)).await;
    for r in &done {
        assert_eq!(
            r.status,
            Status::Success,
            "{} {}: {:?}",
            r.request_type,
            r.symbol,
            r.error_message
        );
        let data = r.result_data.as_ref().unwrap();
        assert_eq!(data["table"], r.request_type.result_table());
        assert!(data["version"].as_i64().unwrap() >= 0);
        let rows = rows_for(&rig.root, r.request_type.result_table(), r.request_id).await;
        assert_eq!(
            rows as u64,
            data["rows"].as_u64().unwrap(),
            "{}",
            r.request_type
        );
        assert!(rows > 0, "{} wrote no rows", r.request_type);
    }
    // 2 strikes each side of the money, calls and puts.
    assert_eq!(done[0].result_data.as_ref().unwrap()["rows"], 10);
    // Daily bars over 5 days: one per trading day in the window (weekends have none).
    let daily = done[2].result_data.as_ref().unwrap()["rows"]
        .as_u64()
        .unwrap();
    assert!((3..=5).contains(&daily), "{daily} daily bars");

    // Bars already stored are not written again.
    let again = enqueue(
        &rig.engine,
        vec![new(
            RequestType::MarketBars,
            "QQQ",
            json!({"duration": "5 D", "bar_size": "1 day"}),
        )],
    )
    .await;
    let again = settle(&rig.engine, &again, Duration::from_secs(60)).await;
    assert_eq!(again[0].status, Status::Success);
    assert_eq!(
        again[0].result_data.as_ref().unwrap()["rows"],
        0,
        "stored bars are not written twice"
    );

    // Derived statistics from the day's rows.
    let stats = enqueue(
        &rig.engine,
        vec![new(RequestType::DerivedStats, "ALL", json!({}))],
    )
    .await;
    let stats = settle(&rig.engine, &stats, Duration::from_secs(60)).await;
    assert_eq!(
        stats[0].status,
        Status::Success,
        "{:?}",
        stats[0].error_message
    );
    assert!(
        !rig.sim.stats().errors.contains_key(&101),
        "no line was ever refused"
    );
    rig.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_contracts_fail_at_once_with_code_200_and_pacing_is_retried() {
    let rig = rig(100).await;
    rig.sim.fail_next(RequestKind::HistoricalData, 1, 162);
    let ids = enqueue(
        &rig.engine,
        vec![
            new(RequestType::FuturesSnapshot, "ZZ", json!({})),
            new(
                RequestType::MarketBars,
                "SPY",
                json!({"duration": "2 D", "bar_size": "1 hour"}),
            ),
        ],
    )
    .await;
    let done = settle(&rig.engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(done[0].status, Status::Failed);
    assert_eq!(done[0].attempts, 1, "a permanent error is not retried");
    assert!(
        done[0].error_message.as_deref().unwrap().contains("200"),
        "{:?}",
        done[0].error_message
    );
    assert_eq!(
        done[1].status,
        Status::Success,
        "{:?}",
        done[1].error_message
    );
    assert_eq!(done[1].attempts, 2, "the pacing violation was retried once");
    let history = rig
        .engine
        .queue()
        .history(done[1].request_id)
        .await
        .unwrap();
    assert!(history
        .iter()
        .any(|h| h.event == ibq::queue::Event::RetryScheduled));
    rig.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restart_mid_batch_loses_and_doubles_nothing() {
    let rig = rig(100).await;
    rig.sim
        .set_latency(RequestKind::MarketData, Duration::from_millis(300));
    let news: Vec<_> = (0..12)
        .map(|i| {
            new(
                RequestType::OptionChain,
                ["SPY", "QQQ", "IWM"][i % 3],
                json!({"target_dte": 10 + i, "strikes": 1}),
            )
        })
        .collect();
    let ids = enqueue(&rig.engine, news).await;
    // Restart while requests are in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rig.engine.queue().view().borrow().counts.processing == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was claimed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.sim.restart(Duration::from_millis(1500));
    let done = settle(&rig.engine, &ids, Duration::from_secs(120)).await;
    for r in &done {
        assert_eq!(
            r.status,
            Status::Success,
            "{}: {:?}",
            r.symbol,
            r.error_message
        );
        let rows = rows_for(&rig.root, "option_snapshots", r.request_id).await;
        assert_eq!(
            rows, 6,
            "request {} written once, with its 6 rows",
            r.request_id
        );
    }
    rig.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_gateway_port_is_a_clear_state_and_keeps_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    // A port nothing listens on: bind then drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = Config::default();
    c.lake.root = root.clone();
    c.gateway.address = format!("127.0.0.1:{port}");
    c.scheduler.enabled = false;
    let engine = Engine::start(&c, options()).await.unwrap();
    let mut state = engine.handle().snapshot();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let g = state.borrow_and_update().gateway.clone();
        if let ibq::engine::GatewayState::Reconnecting {
            reason, attempt, ..
        } = &g
        {
            if *attempt >= 2 {
                assert!(reason.contains(&port.to_string()), "{reason}");
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "still {g:?}");
        let _ = tokio::time::timeout(Duration::from_secs(1), state.changed()).await;
    }
    // Requests wait, unclaimed, while there is no connection.
    let ids = enqueue(
        &engine,
        vec![new(RequestType::FuturesSnapshot, "ES", json!({}))],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(engine.queue().view().borrow().counts.pending, 1);
    assert!(engine
        .queue()
        .view()
        .borrow()
        .pending
        .iter()
        .any(|r| r.request_id == ids[0]));
    engine.shutdown().await;
}

/// A console on a lake owned by another engine: its snapshot comes from the tables and its
/// actions are applied by the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_sees_the_queue_and_its_retry_is_applied_by_the_owner() {
    let rig = rig(100).await;
    rig.sim.fail_next(RequestKind::ContractDetails, 1, 200);
    let ids = enqueue(
        &rig.engine,
        vec![new(RequestType::FuturesSnapshot, "NQ", json!({}))],
    )
    .await;
    let done = settle(&rig.engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(done[0].status, Status::Failed);

    // Wait for the owner's status file, which the observer reads for the gateway state.
    let status = ibq::engine::runtime::status_path(&rig.root);
    crate::common::wait_until("the status file", Duration::from_secs(10), async || {
        status.exists()
    })
    .await;
    let observer = ibq::engine::observer::Observer::start(config(&rig.root, &rig.sim))
        .await
        .unwrap();
    let mut snap = observer.handle().snapshot();
    crate::common::wait_until(
        "the observer's picture",
        Duration::from_secs(10),
        async || {
            let s = snap.borrow_and_update().clone();
            s.observer && s.counts.failed == 1 && s.gateway.is_connected()
        },
    )
    .await;
    match observer
        .handle()
        .send(ibq::engine::Command::Retry(vec![ids[0]]))
        .await
    {
        Ok(ibq::engine::Reply::Done(m)) => assert!(m.contains("retried"), "{m}"),
        other => panic!("{other:?}"),
    }
    let done = settle(&rig.engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    // An illegal action is refused with the owner's reason.
    let err = observer
        .handle()
        .send(ibq::engine::Command::Cancel(vec![ids[0]]))
        .await
        .unwrap_err();
    assert!(err.contains("it is SUCCESS"), "{err}");
    rig.engine.shutdown().await;
}

/// (date, symbol) of every row of `derived_stats`, with the request that wrote it.
pub async fn stats_rows(root: &std::path::Path) -> Vec<(i32, String, String)> {
    use deltalake::arrow::array::{Array, Date32Array};
    let t = LakeTable::open_existing(root, "derived_stats", columns_of("derived_stats"))
        .await
        .unwrap()
        .expect("derived_stats exists");
    let mut out = Vec::new();
    for b in t.read_all().await.unwrap() {
        let r = BatchReader::new(&b);
        let (ids, syms) = (r.utf8("request_id").unwrap(), r.utf8("symbol").unwrap());
        let dates = b
            .column_by_name("date")
            .unwrap()
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap()
            .clone();
        for i in 0..b.num_rows() {
            out.push((
                dates.value(i),
                syms[i].clone().unwrap(),
                ids[i].clone().unwrap(),
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_stats_computes_the_asked_symbol_and_a_rerun_replaces_its_row() {
    let rig = rig(100).await;
    let bars = enqueue(
        &rig.engine,
        ["SPY", "QQQ"]
            .iter()
            .map(|s| {
                new(
                    RequestType::MarketBars,
                    s,
                    json!({"duration": "5 D", "bar_size": "1 day"}),
                )
            })
            .collect(),
    )
    .await;
    for r in settle(&rig.engine, &bars, Duration::from_secs(60)).await {
        assert_eq!(r.status, Status::Success, "{:?}", r.error_message);
    }
    // A day with both symbols' bars.
    let t = LakeTable::open_existing(&rig.root, "market_bars", columns_of("market_bars"))
        .await
        .unwrap()
        .unwrap();
    let mut days: std::collections::HashMap<String, Vec<String>> = Default::default();
    for b in t.read_all().await.unwrap() {
        let r = BatchReader::new(&b);
        let (syms, at) = (r.utf8("symbol").unwrap(), r.timestamp("bar_time").unwrap());
        for i in 0..b.num_rows() {
            let day = at[i].unwrap().date_naive().to_string();
            days.entry(day).or_default().push(syms[i].clone().unwrap());
        }
    }
    let day = days
        .iter()
        .filter(|(_, s)| s.iter().any(|x| x == "SPY") && s.iter().any(|x| x == "QQQ"))
        .map(|(d, _)| d.clone())
        .max()
        .expect("a day with bars of both symbols");

    let mut last = None;
    for _ in 0..2 {
        let id = enqueue(
            &rig.engine,
            vec![new(
                RequestType::DerivedStats,
                "SPY",
                json!({ "date": day }),
            )],
        )
        .await;
        let done = settle(&rig.engine, &id, Duration::from_secs(60)).await;
        assert_eq!(
            done[0].status,
            Status::Success,
            "{:?}",
            done[0].error_message
        );
        last = Some(id[0]);
    }
    let rows = stats_rows(&rig.root).await;
    assert_eq!(
        rows.len(),
        1,
        "one (date, SPY) row after two runs: {rows:?}"
    );
    assert_eq!(rows[0].1, "SPY", "only the asked symbol: {rows:?}");
    assert_eq!(rows[0].2, last.unwrap().to_string(), "the second run's row");

    // ALL computes every symbol and replaces the day's SPY row too.
    let all = enqueue(
        &rig.engine,
        vec![new(
            RequestType::DerivedStats,
            "ALL",
            json!({ "date": day }),
        )],
    )
    .await;
    let done = settle(&rig.engine, &all, Duration::from_secs(60)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    let rows = stats_rows(&rig.root).await;
    let syms: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(syms, ["QQQ", "SPY"], "{rows:?}");
    assert!(rows.iter().all(|r| r.2 == all[0].to_string()), "{rows:?}");
    // A rerun changes data: readers that follow changes must see its removes and adds.
    let log = rig.root.join("derived_stats/_delta_log");
    let mut commits: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    commits.sort();
    let last_commit = std::fs::read_to_string(commits.last().unwrap()).unwrap();
    let actions: Vec<serde_json::Value> = last_commit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let changes: Vec<&serde_json::Value> = actions
        .iter()
        .filter_map(|a| a.get("add").or_else(|| a.get("remove")))
        .collect();
    assert!(
        changes.iter().any(|c| c.get("path").is_some())
            && actions.iter().any(|a| a.get("remove").is_some()),
        "the rerun removes the day's file: {last_commit}"
    );
    assert!(
        changes.iter().all(|c| c["dataChange"] == json!(true)),
        "a rerun's adds and removes are a data change: {last_commit}"
    );
    rig.engine.shutdown().await;
}
