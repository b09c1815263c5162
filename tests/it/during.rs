//! Market-hours windows end to end: `ibq run` on a fast clock against `ibq sim`. A
//! `regular` request made at 08:00 New York waits PENDING for the 09:30 open, then runs.

use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ibq::queue::{Event, Status};
use ibq::sim::{SimConfig, Simulator};

use crate::common::{ibq, ibq_bin, stderr, stdout, test_config, wait_until};

fn enqueue(lake: &std::path::Path, symbol: &str, during: &str) -> uuid::Uuid {
    let out = ibq(
        lake,
        &[
            "enqueue",
            "futures_snapshot",
            symbol,
            "--during",
            during,
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["during"], during, "{v}");
    uuid::Uuid::parse_str(v["request_id"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regular_request_made_at_eight_waits_for_the_open_then_runs() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let cfg = test_config(dir.path(), "");
    let held = enqueue(&lake, "ES", "regular");
    let free = enqueue(&lake, "NQ", "any");

    // Tuesday 2026-11-24, 08:00 New York (EST): 90 market minutes before the open, nine
    // real seconds at 600 times real time.
    let open: DateTime<Utc> = "2026-11-24T14:30:00Z".parse().unwrap();
    let mut run = Command::new(ibq_bin())
        .args([
            "--clock",
            "2026-11-24T08:00:00-05:00",
            "--speed",
            "600",
            "run",
        ])
        .arg("--config")
        .arg(&cfg)
        .arg("--lake")
        .arg(&lake)
        .args(["--gateway", &sim.address()])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ibq run starts");

    // The request without a window runs at once; the regular one is held for 09:30 ET on
    // the engine's clock, whatever the wall clock says.
    wait_until(
        "the request without a window done",
        Duration::from_secs(60),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            s.get(&free).is_some_and(|r| r.status == Status::Success)
        },
    )
    .await;
    wait_until(
        "the regular request held for the open",
        Duration::from_secs(60),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            s.get(&held).is_some_and(|r| r.event == Event::Held)
        },
    )
    .await;
    let s = ibq::queue::store::read_state(&lake).await.unwrap();
    let r = s.get(&held).unwrap();
    let seen_held = s.get(&held).unwrap().status;
    assert_eq!(r.attempts, 0, "never tried before the open: {r:?}");
    assert_eq!(r.next_attempt_at, Some(open), "{r:?}");
    // The CLI says what it waits for.
    let list = stdout(&ibq(&lake, &["list"]));
    let show = stdout(&ibq(&lake, &["show", &held.to_string()]));
    let history = ibq::queue::store::history(&lake, held).await.unwrap();

    wait_until(
        "the regular request done after the open",
        Duration::from_secs(60),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            s.get(&held).is_some_and(|r| r.status == Status::Success)
        },
    )
    .await;
    run.kill().unwrap();
    run.wait().unwrap();

    assert_eq!(seen_held, Status::Pending);
    let line = list
        .lines()
        .find(|l| l.starts_with(&held.to_string()[..8]))
        .unwrap_or_else(|| panic!("no line for {held} in:\n{list}"));
    assert!(
        line.contains("PENDING") && line.contains("waits for") && line.contains("09:30 ET"),
        "{line}"
    );
    assert!(show.contains("during         regular"), "{show}");
    assert!(
        show.contains("next_attempt   2026-11-24 14:30:00 UTC · 09:30:00 ET (waits for ")
            && show.contains("09:30 ET)"),
        "{show}"
    );
    // Held before any claim, and claimed only after: nothing ran it early.
    let events: Vec<Event> = history.iter().map(|h| h.event).collect();
    assert!(
        events.contains(&Event::Held) && !events.contains(&Event::Claimed),
        "{events:?}"
    );
    let s = ibq::queue::store::read_state(&lake).await.unwrap();
    assert_eq!(s.get(&held).unwrap().attempts, 1);
}

#[test]
fn enqueue_says_what_a_request_waits_for_and_refuses_an_unknown_window() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let at = |clock: &str, symbol: &str, during: &str| {
        ibq(
            &lake,
            &[
                "--clock",
                clock,
                "enqueue",
                "market_bars",
                symbol,
                "--during",
                during,
            ],
        )
    };
    // 08:00 New York on a trading day: the regular session opens at 09:30.
    let out = at("2026-11-24T08:00:00-05:00", "SPY", "regular");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("waits for 09:30 ET (during regular"),
        "{}",
        stdout(&out)
    );
    // Inside the window, or with no window, it does not wait.
    for (clock, symbol, during) in [
        ("2026-11-24T10:00:00-05:00", "QQQ", "regular"),
        ("2026-11-24T08:00:00-05:00", "IWM", "extended"),
        ("2026-11-24T02:00:00-05:00", "DIA", "any"),
    ] {
        let out = at(clock, symbol, during);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            !stdout(&out).contains("waits for"),
            "{during}: {}",
            stdout(&out)
        );
    }
    // Thanksgiving evening: the next regular session is Friday's (an early close).
    let out = at("2026-11-26T18:00:00-05:00", "AAPL", "regular");
    assert!(
        stdout(&out).contains("waits for Fri 09:30 ET"),
        "{}",
        stdout(&out)
    );

    let out = at("2026-11-24T08:00:00-05:00", "MSFT", "lunch");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("unknown market-hours window `lunch`")
            && err.contains("regular, extended or any"),
        "{err}"
    );
    let list = stdout(&ibq(&lake, &["list"]));
    assert!(list.contains("5 requests"), "{list}");
    assert!(!list.contains("MSFT"), "{list}");
}

#[test]
fn another_writers_window_is_taken_in_and_an_unknown_one_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = ibq(&lake, &["enqueue", "futures_snapshot", "ES"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (good, bad) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    crate::common::python(&format!(
        r#"
import datetime, json, pyarrow as pa
from deltalake import write_deltalake
now = datetime.datetime.now(datetime.timezone.utc)
ts = pa.timestamp("us", tz="UTC")
t = pa.table({{
  "request_id": ["{good}", "{bad}"],
  "request_type": ["market_bars", "market_bars"],
  "symbol": ["SPY", "QQQ"],
  "priority": pa.array([2, 2], pa.int64()),
  "status": ["PENDING", "PENDING"],
  "parameters": [json.dumps({{}}), json.dumps({{}})],
  "created_at": pa.array([now, now], ts),
  "updated_at": pa.array([now, now], ts),
  "during": ["regular", "lunch"],
}})
write_deltalake("{}", t, mode="append", schema_mode="merge")
"#,
        lake.join("ib_request_queue").display()
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = rt.block_on(ibq::queue::store::read_state(&lake)).unwrap();
    let r = state
        .get(&good)
        .expect("the row with a window is a request");
    assert_eq!(r.during, ibq::queue::model::During::Regular);
    // An unknown window makes the row a rejection naming it, never a request that runs.
    let rejected = state.get(&bad).expect("the bad row is visible");
    assert_eq!(rejected.status, Status::Failed, "{rejected:?}");
    assert!(
        rejected
            .error_message
            .as_deref()
            .is_some_and(|e| e.contains("unknown during \"lunch\"")),
        "{rejected:?}"
    );
    let show = stdout(&ibq(&lake, &["show", &good.to_string()]));
    assert!(show.contains("during         regular"), "{show}");
}
