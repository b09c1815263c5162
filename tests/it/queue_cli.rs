//! The queue command line on a real lake in a temporary folder.

use serde_json::Value;

use crate::common::{ibq, stderr, stdout};

fn lake() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    (dir, lake)
}

fn list_json(lake: &std::path::Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["list", "--json", "--limit", "0"];
    args.extend_from_slice(extra);
    let out = ibq(lake, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn enqueue_list_show_reprioritize_cancel_and_compact() {
    let (_d, lake) = lake();
    let out = ibq(
        &lake,
        &[
            "enqueue",
            "option_chain",
            "spy",
            "--priority",
            "1",
            "--param",
            "target_dte=30",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let req: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = req["request_id"].as_str().unwrap().to_string();
    assert_eq!(req["symbol"], "SPY");
    assert_eq!(req["status"], "PENDING");
    assert_eq!(req["parameters"]["target_dte"], 30);
    assert_eq!(req["result_table"], "option_snapshots");

    // The same request again is a duplicate, reported as such.
    let out = ibq(
        &lake,
        &["enqueue", "option_chain", "SPY", "--param", "target_dte=30"],
    );
    assert!(out.status.success());
    assert!(stdout(&out).contains("duplicate"), "{}", stdout(&out));
    assert!(stdout(&out).contains(&id));

    let out = ibq(&lake, &["enqueue", "market_bars", "QQQ", "--priority", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let rows = list_json(&lake, &[]);
    assert_eq!(rows.len(), 2);
    for key in [
        "request_id",
        "request_type",
        "symbol",
        "priority",
        "status",
        "parameters",
        "result_table",
        "created_at",
        "updated_at",
        "result_data",
        "error_message",
    ] {
        assert!(
            rows[0].get(key).is_some(),
            "missing column {key} in {}",
            rows[0]
        );
    }

    // Prefix ids work; reprioritize then cancel.
    let out = ibq(&lake, &["reprioritize", &id[..8], "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ibq(&lake, &["cancel", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cancelled = list_json(&lake, &["--status", "cancelled"]);
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["priority"], 3);

    // An illegal transition is an error with a nonzero exit and nothing changes.
    let out = ibq(&lake, &["cancel", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("it is CANCELLED"), "{}", stderr(&out));
    let out = ibq(&lake, &["retry", &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("allowed from FAILED"),
        "{}",
        stderr(&out)
    );

    // show prints the whole history: enqueued, reprioritized, cancelled.
    let out = ibq(&lake, &["show", &id, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let events: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["enqueued", "reprioritized", "cancelled"]);

    // Compaction keeps the newest row per request and the history stays readable.
    let out = ibq(&lake, &["compact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 requests kept"), "{}", stdout(&out));
    assert_eq!(list_json(&lake, &[]).len(), 2);
    let out = ibq(&lake, &["show", &id, "--json"]);
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["history"].as_array().unwrap().len(), 3);
    assert_eq!(shown["request"]["status"], "CANCELLED");
}

#[test]
fn bad_arguments_get_one_clear_message_and_a_nonzero_exit() {
    let (_d, lake) = lake();
    for (args, expected) in [
        (
            vec!["enqueue", "option_chains", "SPY"],
            "unknown request type `option_chains`",
        ),
        (
            vec!["enqueue", "option_chain", "SPY", "--priority", "7"],
            "priority must be 1",
        ),
        (
            vec![
                "enqueue",
                "option_chain",
                "SPY",
                "--param",
                "target_dte=soon",
            ],
            "`target_dte`",
        ),
        (
            vec![
                "enqueue",
                "market_bars",
                "SPY",
                "--param",
                "bar_size=7 mins",
            ],
            "`bar_size`",
        ),
        (
            vec!["enqueue", "market_bars", "SPY", "--param", "colour=red"],
            "colour",
        ),
        (vec!["enqueue", "option_chain", "S P Y"], "invalid symbol"),
        (vec!["list", "--status", "DONE"], "unknown status `DONE`"),
        (vec!["show", "zzzz"], "not a request id"),
        (
            vec!["cancel", "00000000-0000-0000-0000-000000000000"],
            "no request with id",
        ),
    ] {
        let out = ibq(&lake, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // Nothing was half-written by the refused enqueues.
    assert!(list_json(&lake, &[]).is_empty());
}

#[test]
fn a_corrupt_log_file_is_named_and_nothing_panics() {
    let (_d, lake) = lake();
    assert!(ibq(&lake, &["enqueue", "market_bars", "SPY"])
        .status
        .success());
    let log = lake.join("ib_request_queue/_delta_log");
    let newest = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .max()
        .unwrap();
    std::fs::write(&newest, "{ this is not json").unwrap();
    let out = ibq(&lake, &["list"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("ib_request_queue"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear message: {err}");
}

#[test]
fn an_unwritable_lake_is_a_clear_error() {
    let (dir, _) = lake();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let lake = file.join("lake");
    let out = ibq(&lake, &["enqueue", "market_bars", "SPY"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("not-a-folder"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_bad_config_file_names_file_line_and_key() {
    let (dir, lake) = lake();
    let cfg = dir.path().join("ibq.toml");
    std::fs::write(&cfg, "[queue]\nlease_secs = 60\nlease_seconds = 5\n").unwrap();
    let out = ibq(&lake, &["list", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ibq.toml") && err.contains("line 3") && err.contains("lease_seconds"),
        "{err}"
    );
}

#[test]
fn print_default_config_parses_back() {
    let (dir, lake) = lake();
    let out = ibq(&lake, &["config", "--print-default"]);
    assert!(out.status.success());
    let cfg = dir.path().join("default.toml");
    std::fs::write(&cfg, stdout(&out)).unwrap();
    let out = ibq(&lake, &["list", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}
