//! `ibq schedule` end to end, and the scheduler's public API as the engine will use it.

use std::process::Command;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use ibq::scheduler::calendar::MarketCalendar;
use ibq::scheduler::clock::FastClock;
use ibq::scheduler::config::SchedulerConfig;
use ibq::scheduler::runner::{run, OccurrenceSink};
use ibq::scheduler::schedule::{Occurrence, Schedule};

/// Runs `ibq schedule` with the default configuration (an empty config file) in a clean folder.
fn ibq_schedule(args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ibq.toml");
    std::fs::write(&config, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ibq"))
        .current_dir(dir.path())
        .arg("--config")
        .arg(&config)
        .arg("schedule")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn schedule_prints_an_early_close_day() {
    let (ok, out, err) = ibq_schedule(&["--date", "2026-11-27"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("Friday 2026-11-27: early close at 13:00"),
        "{out}"
    );
    assert!(out.contains("last 12:55 ET -> 126 request(s)"), "{out}");
    assert!(out.contains("Total: 679 requests"), "{out}");
}

#[test]
fn schedule_prints_closed_on_a_holiday() {
    let (ok, out, err) = ibq_schedule(&["--date", "2026-11-26"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("Thursday 2026-11-26: closed: Thanksgiving Day"),
        "{out}"
    );
}

#[test]
fn schedule_refuses_a_bad_job_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ibq.toml");
    std::fs::write(
        &config,
        "[[scheduler.jobs]]\nname = \"chains\"\ntype = \"option_chain\"\nsymbols = [\"SPY\"]\nevery = \"0s\"\nduring = \"regular\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ibq"))
        .current_dir(dir.path())
        .args([
            "--config",
            config.to_str().unwrap(),
            "schedule",
            "--date",
            "2026-11-23",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("entry 1 (`chains`)") && err.contains("zero"),
        "{err}"
    );
}

/// A queue stand-in keyed like the real one.
#[derive(Default)]
struct Keys(Mutex<Vec<Occurrence>>);

impl OccurrenceSink for Keys {
    async fn has_key(&self, key: &str) -> bool {
        self.0.lock().unwrap().iter().any(|o| o.key == key)
    }

    async fn submit(&self, occ: Occurrence) -> anyhow::Result<()> {
        self.0.lock().unwrap().push(occ);
        Ok(())
    }
}

/// Runs the default schedule on a fast clock from `start` until an occurrence at or after
/// `until` has been enqueued.
async fn run_until(sink: Arc<Keys>, start: &str, until: &str) {
    let config = SchedulerConfig::default();
    let clock = Arc::new(FastClock::new(start.parse().unwrap(), 2_000.0));
    let until: DateTime<Utc> = until.parse().unwrap();
    let stop = {
        let sink = sink.clone();
        async move {
            while !sink.0.lock().unwrap().iter().any(|o| o.slot >= until) {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    };
    let runner = run(
        Schedule::from_config(&config).unwrap(),
        MarketCalendar::from_config(&config),
        clock,
        sink,
        stop,
    );
    // Guards against a hang only; nothing below depends on how long it took.
    tokio::time::timeout(std::time::Duration::from_secs(120), runner)
        .await
        .expect("the runner never reached its stop slot");
}

#[tokio::test]
async fn a_restarted_runner_catches_up_without_duplicates() {
    let sink = Arc::new(Keys::default());
    // 09:29 to 10:00 New York, then the process stops; it comes back at 10:07:10.
    run_until(sink.clone(), "2026-11-23T14:29:00Z", "2026-11-23T15:00:00Z").await;
    run_until(sink.clone(), "2026-11-23T15:07:10Z", "2026-11-23T15:10:00Z").await;
    let got = sink.0.lock().unwrap().clone();
    let mut keys: Vec<&str> = got.iter().map(|o| o.key.as_str()).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "a slot was enqueued twice");
    for key in [
        "bars_morning@2026-11-23T13:30:00Z#SPY",
        "option_chain_regular@2026-11-23T14:30:00Z#SPY",
        "option_chain_regular@2026-11-23T15:05:00Z#IWM",
        "positions_regular@2026-11-23T15:07:00Z",
        "futures_regular@2026-11-23T15:10:00Z#RTY",
    ] {
        assert!(keys.contains(&key), "{key} missing");
    }
}
