//! The connection's life against `ibq sim` through the real `ibapi` client: data farms that
//! break and come back mid-session, a nightly reset that answers nothing until 1101/1102,
//! and a gateway that accepts the socket but never finishes the handshake.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use ibq::engine::runtime::Engine;
use ibq::engine::{Command, GatewayState, LegState, Reply, Snapshot};
use ibq::queue::{Event, RequestType, Status};
use ibq::sim::{Farm, FarmStatus, RequestKind, SimConfig, SimHandle, Simulator};
use serde_json::json;
use uuid::Uuid;

use crate::common::{ibq, stdout, wait_until};
use crate::worker::{config, enqueue, new, options, settle};

/// A Monday morning with futures trading, and snapshots that end at once.
pub fn sim_config() -> SimConfig {
    SimConfig {
        port: 0,
        clock_start: DateTime::parse_from_rfc3339("2026-11-23T10:00:00-05:00").ok(),
        snapshot_end: Duration::from_millis(200),
        ..SimConfig::default()
    }
}

async fn rig(sim: SimConfig, tune: impl FnOnce(&mut ibq::config::Config)) -> Rig {
    let sim = Simulator::start(sim).await.expect("the simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut cfg = config(&root, &sim);
    tune(&mut cfg);
    let engine = Engine::start(&cfg, options())
        .await
        .expect("the engine starts");
    Rig {
        sim,
        engine,
        root,
        _dir: dir,
    }
}

struct Rig {
    sim: SimHandle,
    engine: Engine,
    root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn snap(&self) -> Arc<Snapshot> {
        self.engine.handle().snapshot().borrow().clone()
    }

    async fn wait_snap(&self, what: &str, mut f: impl FnMut(&Snapshot) -> bool) {
        wait_until(what, Duration::from_secs(30), async || f(&self.snap())).await;
    }

    async fn row(&self, id: Uuid) -> Arc<ibq::queue::Request> {
        let state = ibq::queue::store::read_state(&self.root).await.unwrap();
        state.get(&id).cloned().expect("the request exists")
    }

    /// `ibq status` of the running engine, once its output says `needle`.
    async fn status_saying(&self, needle: &str) -> String {
        let mut last = String::new();
        wait_until(
            &format!("`ibq status` saying {needle:?}"),
            Duration::from_secs(15),
            async || {
                last = stdout(&ibq(&self.root, &["status"]));
                last.contains(needle)
            },
        )
        .await;
        last
    }
}

fn market_data_requests(sim: &SimHandle) -> u64 {
    sim.stats()
        .requests
        .get(&RequestKind::MarketData)
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn farm_notices_come_at_connect_and_when_a_farm_breaks_and_market_data_waits_for_it() {
    use futures::StreamExt;
    use ibapi::subscriptions::SubscriptionItem;

    let sim = Simulator::start(sim_config()).await.unwrap();
    let (client, mut notices) = tokio::time::timeout(
        Duration::from_secs(15),
        ibapi::Client::builder()
            .address(sim.address().as_str())
            .client_id(11)
            .connect_with_notice_stream(),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    let mut next_notice = async || {
        tokio::time::timeout(Duration::from_secs(5), notices.next())
            .await
            .expect("a notice in time")
            .expect("the notice stream goes on")
    };
    let mut at_connect = Vec::new();
    for _ in 0..6 {
        let n = next_notice().await;
        at_connect.push((n.code, n.message));
    }
    assert_eq!(
        at_connect,
        vec![
            (2104, "Market data farm connection is OK:usfarm".to_string()),
            (2104, "Market data farm connection is OK:usopt".to_string()),
            (
                2104,
                "Market data farm connection is OK:usfuture".to_string()
            ),
            (2104, "Market data farm connection is OK:eufarm".to_string()),
            (2106, "HMDS data farm connection is OK:ushmds".to_string()),
            (
                2158,
                "Sec-def data farm connection is OK:secdefnj".to_string()
            ),
        ]
    );

    assert_eq!(sim.set_farm(Farm::MarketData, FarmStatus::Broken), Ok(2103));
    let n = next_notice().await;
    assert_eq!(
        (n.code, n.message.as_str()),
        (2103, "Market data farm connection is broken:usfarm")
    );
    // Market data waits for the farm: nothing comes while it is broken.
    let mut sub = client
        .market_data(&ibq::worker::ib::stock("SPY"))
        .subscribe()
        .await
        .expect("market data request");
    assert!(
        tokio::time::timeout(Duration::from_millis(800), sub.next())
            .await
            .is_err(),
        "no data while the market-data farm is broken"
    );
    // Other farms' answers still come.
    let details = client
        .contract_details(&ibq::worker::ib::stock("SPY"))
        .await
        .expect("contract details while the market-data farm is broken");
    assert_eq!(details.len(), 1);

    assert_eq!(
        sim.set_farm(Farm::MarketData, FarmStatus::Connecting),
        Ok(2119)
    );
    assert_eq!(next_notice().await.code, 2119);
    assert_eq!(sim.set_farm(Farm::MarketData, FarmStatus::Ok), Ok(2104));
    assert_eq!(next_notice().await.code, 2104);
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match sub.next().await {
                Some(Ok(SubscriptionItem::Data(tick))) => return tick,
                Some(Ok(SubscriptionItem::Notice(_))) => {}
                other => panic!("the subscription ended: {other:?}"),
            }
        }
    })
    .await
    .expect("data once the farm is back");
    drop(first);
    for (farm, status, code) in [
        (Farm::Historical, FarmStatus::Broken, 2105),
        (Farm::Historical, FarmStatus::Inactive, 2107),
        (Farm::MarketData, FarmStatus::Inactive, 2108),
        (Farm::SecDef, FarmStatus::Broken, 2157),
        (Farm::SecDef, FarmStatus::Ok, 2158),
    ] {
        assert_eq!(sim.set_farm(farm, status), Ok(code));
        loop {
            // Market-data ticks do not come on the notice stream; only notices do.
            let n = next_notice().await;
            if n.code == code {
                break;
            }
        }
    }
    assert!(sim.set_farm(Farm::SecDef, FarmStatus::Inactive).is_err());
    drop(sub);
    client.disconnect().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_waits_for_a_broken_market_data_farm_and_the_state_is_shown() {
    let r = rig(sim_config(), |_| {}).await;
    r.wait_snap("farms reported ok", |s| {
        s.gateway.is_connected() && s.farms.summary().as_deref() == Some("farms ok")
    })
    .await;
    // The farm of US futures: a future's quote waits for it.
    r.sim.set_farm(Farm::Futures, FarmStatus::Broken).unwrap();
    r.wait_snap("the broken farm in the snapshot", |s| {
        s.farms.market_data_down()
    })
    .await;
    let status = r.status_saying("md farm usfuture BROKEN").await;
    assert!(
        status.contains("data farms: md farm usfuture BROKEN"),
        "{status}"
    );

    let ids = enqueue(
        &r.engine,
        vec![new(RequestType::FuturesSnapshot, "ES", json!({}))],
    )
    .await;
    wait_until("the request runs", Duration::from_secs(15), async || {
        r.row(ids[0]).await.status == Status::Processing
    })
    .await;
    // The quote waits for the farm: no market-data request goes out, nothing fails.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let row = r.row(ids[0]).await;
    assert_eq!((row.status, row.failures), (Status::Processing, 0));
    assert_eq!(market_data_requests(&r.sim), 0);

    r.sim.set_farm(Farm::Futures, FarmStatus::Ok).unwrap();
    let done = settle(&r.engine, &ids, Duration::from_secs(30)).await;
    assert_eq!(
        (done[0].status, done[0].attempts, done[0].failures),
        (Status::Success, 1, 0),
        "{:?}",
        done[0].error_message
    );
    assert!(market_data_requests(&r.sim) >= 1);
    r.wait_snap("the farm ok again", |s| {
        s.farms.summary().as_deref() == Some("farms ok")
    })
    .await;
    r.engine.shutdown().await;
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_nightly_reset_answers_nothing_until_the_restore_notice() {
    let sim = Simulator::start(sim_config()).await.unwrap();
    let client = tokio::time::timeout(
        Duration::from_secs(15),
        ibapi::Client::connect(&sim.address(), 12),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    let client = Arc::new(client);

    // 1102 (data maintained): the held answer comes after the restore.
    sim.nightly_reset_with(1102, Duration::from_millis(1000), true);
    let asking = Arc::clone(&client);
    let held = tokio::spawn(async move { asking.server_time().await });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!held.is_finished(), "answered during the reset");
    let answered = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("answered after 1102")
        .unwrap();
    assert!(answered.is_ok(), "{answered:?}");

    // 1101 (data lost): the held answer never comes; later requests are answered.
    sim.nightly_reset_with(1101, Duration::from_millis(500), true);
    let asking = Arc::clone(&client);
    let lost = tokio::spawn(async move { asking.server_time().await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !lost.is_finished(),
        "an answer held across a 1101 is never sent"
    );
    lost.abort();
    let after = tokio::time::timeout(Duration::from_secs(5), client.server_time())
        .await
        .expect("answered after the reset");
    assert!(after.is_ok(), "{after:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_a_nightly_reset_is_released_and_finishes_after_it() {
    let r = rig(sim_config(), |_| {}).await;
    r.wait_snap("connected", |s| s.gateway.is_connected()).await;
    // The quote's answer is slow, so the reset finds the request in flight.
    r.sim
        .set_latency(RequestKind::MarketData, Duration::from_millis(1500));
    let ids = enqueue(
        &r.engine,
        vec![new(RequestType::FuturesSnapshot, "ES", json!({}))],
    )
    .await;
    wait_until("the quote is asked", Duration::from_secs(15), async || {
        market_data_requests(&r.sim) >= 1
    })
    .await;
    r.sim
        .nightly_reset_with(1102, Duration::from_millis(1500), true);
    r.wait_snap("degraded on 1100", |s| {
        matches!(s.gateway, GatewayState::Degraded { code: 1100, .. })
    })
    .await;
    wait_until(
        "the request released",
        Duration::from_secs(10),
        async || r.row(ids[0]).await.status == Status::Pending,
    )
    .await;
    let row = r.row(ids[0]).await;
    assert_eq!((row.attempts, row.failures), (0, 0), "no attempt counted");
    assert!(
        row.error_message.as_deref().unwrap_or("").contains("1100"),
        "{:?}",
        row.error_message
    );
    r.sim.set_latency(RequestKind::MarketData, Duration::ZERO);
    let done = settle(&r.engine, &ids, Duration::from_secs(30)).await;
    assert_eq!(
        (done[0].status, done[0].attempts, done[0].failures),
        (Status::Success, 1, 0),
        "{:?}",
        done[0].error_message
    );
    let history = ibq::queue::store::history(&r.root, ids[0]).await.unwrap();
    assert!(history.iter().any(|h| h.event == Event::Released));
    assert!(!history.iter().any(|h| h.event == Event::RetryScheduled));
    assert_eq!(r.snap().worker.released, 1);
    r.engine.shutdown().await;
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_leg_resubscribes_after_a_silent_reset_that_lost_data() {
    let r = rig(sim_config(), |_| {}).await;
    r.wait_snap("connected", |s| s.gateway.is_connected()).await;
    let conid = r.sim.universe().conid_of("SPY").unwrap();
    match r
        .engine
        .handle()
        .send(Command::Promote {
            conid,
            strategy: Some("test".into()),
        })
        .await
    {
        Ok(Reply::Done(_)) => {}
        other => panic!("promote failed: {other:?}"),
    }
    let streaming_since = |since: chrono::DateTime<chrono::Utc>| {
        move |s: &Snapshot| {
            s.legs.len() == 1
                && s.legs[0].state == LegState::Streaming
                && s.legs[0].last_tick_at.is_some_and(|t| t > since)
        }
    };
    r.wait_snap("the leg streams", streaming_since(chrono::Utc::now()))
        .await;
    r.sim
        .nightly_reset_with(1101, Duration::from_millis(800), true);
    r.wait_snap("degraded on 1100", |s| {
        matches!(s.gateway, GatewayState::Degraded { .. })
    })
    .await;
    // The sim dropped the subscription with the 1101: ticks after it come from a new one.
    let restored = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    r.wait_snap(
        "the leg streams again after 1101",
        streaming_since(restored),
    )
    .await;
    assert!(r.snap().gateway.is_connected());
    r.engine.shutdown().await;
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_never_answers_the_handshake_times_out_says_so_and_is_retried() {
    let r = rig(
        SimConfig {
            stall_handshake: true,
            ..sim_config()
        },
        |c| c.gateway.connect_timeout_secs = 1,
    )
    .await;
    r.wait_snap("the connect timeout in the state", |s| {
        matches!(&s.gateway, GatewayState::Reconnecting { reason, attempt, .. }
            if reason.contains("no API handshake within 1 s") && *attempt >= 1)
    })
    .await;
    let status = r.status_saying("no API handshake within 1 s").await;
    assert!(status.contains("reconnecting"), "{status}");
    // It keeps trying.
    r.wait_snap(
        "a second attempt",
        |s| matches!(&s.gateway, GatewayState::Reconnecting { attempt, .. } if *attempt >= 2),
    )
    .await;
    assert!(r.sim.stats().connections_total >= 2);

    // The gateway comes up: the next attempt connects and requests run.
    r.sim.set_stall_handshake(false);
    r.wait_snap("connected once the gateway answers", |s| {
        s.gateway.is_connected()
    })
    .await;
    let ids = enqueue(
        &r.engine,
        vec![new(RequestType::FuturesSnapshot, "ES", json!({}))],
    )
    .await;
    let done = settle(&r.engine, &ids, Duration::from_secs(30)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    r.engine.shutdown().await;
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_channel_breaks_farms_stalls_handshakes_and_silences_resets() {
    use tokio::io::AsyncWriteExt;

    let sim = Simulator::start(SimConfig {
        control_port: Some(0),
        ..sim_config()
    })
    .await
    .unwrap();
    let stream = tokio::net::TcpStream::connect(sim.control_address().unwrap())
        .await
        .expect("control connect");
    let (rd, mut wr) = stream.into_split();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(rd));
    let mut say = async |cmd: &str| {
        wr.write_all(format!("{cmd}\n").as_bytes()).await.unwrap();
        lines.next_line().await.unwrap().unwrap_or_default()
    };
    let reply = say("farm market_data broken").await;
    assert!(
        reply.starts_with("ok ") && reply.contains("2103"),
        "{reply}"
    );
    for bad in [
        "farm sec_def inactive",
        "farm jfarm ok",
        "farm market_data down",
        "handshake maybe",
        "nightly_reset 1102 300 loud",
    ] {
        let reply = say(bad).await;
        assert!(reply.starts_with("error "), "{bad}: {reply}");
    }

    // A client connecting now hears of the broken farm at connect.
    let (client, mut notices) = ibapi::Client::builder()
        .address(sim.address().as_str())
        .client_id(21)
        .connect_with_notice_stream()
        .await
        .expect("connect");
    let mut codes = Vec::new();
    for _ in 0..6 {
        let n = tokio::time::timeout(Duration::from_secs(5), notices.next())
            .await
            .expect("a notice in time")
            .expect("a notice");
        codes.push(n.code);
    }
    // usfarm broken; usopt, usfuture, eufarm, ushmds and secdefnj fine.
    assert_eq!(codes, vec![2103, 2104, 2104, 2104, 2106, 2158]);
    client.disconnect().await;

    assert!(say("handshake stall").await.starts_with("ok "));
    let stalled = tokio::time::timeout(
        Duration::from_millis(800),
        ibapi::Client::connect(&sim.address(), 22),
    )
    .await;
    assert!(stalled.is_err(), "the handshake is never answered");
    assert!(say("handshake answer").await.starts_with("ok "));
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        ibapi::Client::connect(&sim.address(), 23),
    )
    .await
    .expect("answered again")
    .expect("connect");

    let reply = say("nightly_reset 1102 400 silent").await;
    assert!(reply.contains("nothing answered"), "{reply}");
    let held = tokio::time::timeout(Duration::from_millis(250), client.server_time()).await;
    assert!(held.is_err(), "silent during the reset");
    let after = tokio::time::timeout(Duration::from_secs(5), client.server_time())
        .await
        .expect("answered after 1102");
    assert!(after.is_ok(), "{after:?}");
    client.disconnect().await;
    sim.shutdown().await;
}

/// A market-data farm that serves none of the contracts asked for holds nothing: with the
/// European farm and the futures farm down, an option chain of a US stock runs at once; a
/// future waits for its own farm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_farm_holds_only_the_quotes_it_serves() {
    let r = rig(sim_config(), |_| {}).await;
    r.wait_snap("farms reported ok", |s| {
        s.gateway.is_connected() && s.farms.summary().as_deref() == Some("farms ok")
    })
    .await;
    r.sim.set_farm(Farm::Europe, FarmStatus::Broken).unwrap();
    r.sim.set_farm(Farm::Futures, FarmStatus::Broken).unwrap();
    r.wait_snap("both farms down in the snapshot", |s| {
        s.farms.down().count() == 2
    })
    .await;
    let chain = enqueue(
        &r.engine,
        vec![new(
            RequestType::OptionChain,
            "SPY",
            json!({"target_dte": 30, "strikes": 1, "rights": "C"}),
        )],
    )
    .await;
    let done = settle(&r.engine, &chain, Duration::from_secs(30)).await;
    assert_eq!(
        (done[0].status, done[0].failures),
        (Status::Success, 0),
        "{:?}",
        done[0].error_message
    );
    let future = enqueue(
        &r.engine,
        vec![new(RequestType::FuturesSnapshot, "NQ", json!({}))],
    )
    .await;
    wait_until("the future runs", Duration::from_secs(15), async || {
        r.row(future[0]).await.status == Status::Processing
    })
    .await;
    let before = market_data_requests(&r.sim);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.row(future[0]).await.status, Status::Processing);
    assert_eq!(
        market_data_requests(&r.sim),
        before,
        "the future's quote waits"
    );
    r.sim.set_farm(Farm::Futures, FarmStatus::Ok).unwrap();
    let done = settle(&r.engine, &future, Duration::from_secs(30)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    r.engine.shutdown().await;
    r.sim.shutdown().await;
}
