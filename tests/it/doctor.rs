//! `ibq doctor` against `ibq sim` through the real binary (and so the real `ibapi` client):
//! ready on a full account, ready with warnings on delayed data when `[market_data] type`
//! allows it, not ready without data or during a competing session, and one clear line for a
//! closed port.

use std::process::Output;

use ibq::sim::{Permissions, SimConfig, SimHandle, Simulator};

use crate::common::{ibq_bin, stderr, stdout, test_config};

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

/// Runs `ibq doctor` with a test config (plus `extra`) against `gateway`.
async fn doctor(gateway: &str, extra: &str, json: bool) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path(), extra);
    let mut args = vec![
        "doctor".to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "--lake".into(),
        dir.path().join("lake").display().to_string(),
        "--gateway".into(),
        gateway.to_string(),
    ];
    if json {
        args.push("--json".into());
    }
    tokio::process::Command::new(ibq_bin())
        .args(&args)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("ibq doctor runs")
}

const SYMBOLS: [&str; 7] = ["ES", "IWM", "NQ", "QQQ", "RTY", "SPY", "VIX"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fully_permissioned_gateway_is_ready() {
    let s = sim(Permissions::Live, false).await;
    let out = doctor(&s.address(), "", false).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert_eq!(text.lines().last(), Some("ready"), "{text}");
    assert!(text.contains("server version  226"), "{text}");
    assert!(text.contains("accounts        DU1234567"), "{text}");
    for farm in ["market data usfarm OK", "historical ushmds OK"] {
        assert!(text.contains(farm), "{farm}: {text}");
    }
    for sym in SYMBOLS {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{sym} ")))
            .unwrap_or_else(|| panic!("a line for {sym}: {text}"));
        assert!(
            line.contains(" live ") && line.contains("historical permitted"),
            "{line}"
        );
    }
    assert!(text.contains("FUT CME ES"), "{text}");
    assert!(
        text.contains("lines           100 ([lines] limit), 2 kept free: 98 for ibq"),
        "{text}"
    );
    assert!(!text.contains("warning:"), "{text}");

    s.shutdown().await;

    // The same as JSON (on a fresh gateway: IB refuses an identical historical request
    // within 15 s as pacing).
    let s = sim(Permissions::Live, false).await;
    let out = doctor(&s.address(), "", true).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["ready"], true);
    assert_eq!(v["server_version"], 226);
    assert_eq!(v["accounts"][0], "DU1234567");
    let contracts = v["contracts"].as_array().unwrap();
    assert_eq!(contracts.len(), SYMBOLS.len());
    assert!(
        contracts
            .iter()
            .all(|c| c["market_data"] == "live" && c["historical"] == "permitted"),
        "{v}"
    );
    assert!(v["fixes"].as_array().unwrap().is_empty());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_only_is_ready_with_warnings_unless_live_is_required() {
    let s = sim(Permissions::Delayed, false).await;
    let out = doctor(&s.address(), "", false).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert_eq!(text.lines().last(), Some("ready"), "{text}");
    for sym in SYMBOLS {
        assert!(
            text.contains(&format!("warning: {sym}: delayed market data only")),
            "{sym}: {text}"
        );
        // IB serves history only with live subscriptions.
        assert!(
            text.contains(&format!("warning: {sym}: no historical data")),
            "{sym}: {text}"
        );
    }

    let out = doctor(&s.address(), "[market_data]\ntype = \"live\"\n", false).await;
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("not ready: 7 to fix"), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("  - ") && last.contains("type = \"live\""),
        "{last}"
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_or_a_competing_session_is_not_ready() {
    let s = sim(Permissions::None, false).await;
    let out = doctor(&s.address(), "", true).await;
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["ready"], false);
    let contracts = v["contracts"].as_array().unwrap();
    assert!(contracts.iter().all(|c| c["market_data"] == "none"), "{v}");
    let fixes = v["fixes"].as_array().unwrap();
    assert_eq!(fixes.len(), SYMBOLS.len(), "{v}");
    assert!(fixes[0].as_str().unwrap().contains("10168"), "{v}");
    s.shutdown().await;

    let s = sim(Permissions::Live, true).await;
    let out = doctor(&s.address(), "", false).await;
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("10197"), "{text}");
    assert!(text.contains("log it out"), "{text}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_one_clear_line() {
    // A port nothing listens on: bind one, note it, free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let out = doctor(&address, "", false).await;
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&address) && err.contains("connection refused"),
        "{err}"
    );
}
