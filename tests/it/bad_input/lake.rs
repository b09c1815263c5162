//! A damaged lake: at rest (a file as lake or table, a truncated commit, garbage parquet, a
//! read-only log, a full disk) and under a running engine (a disk that fills, a log that
//! turns read-only).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{
    assert_all_listed, config_file, copy_dir, fill, judge, queue_log, run_ibq, s, seeded_lake,
    Case, Exit, Mounts,
};
use crate::common::{ibq, ibq_bin, stderr};

#[test]
fn a_damaged_lake_is_named_and_loses_no_acknowledged_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seed = d.join("seed");
    let ids = seeded_lake(&seed);
    let quiet = config_file(d, "quiet.toml", "[scheduler]\nenabled = false\n");
    let fresh = |name: &str| {
        let lake = d.join(name);
        copy_dir(&seed, &lake);
        lake
    };
    let cmd = |lake: &Path, args: &[&str]| {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--lake".into(),
            s(lake),
            "--config".into(),
            quiet.clone(),
            "--gateway".into(),
            "127.0.0.1:9".into(),
        ]);
        v
    };
    let mut failures = Vec::new();
    let mut check = |c: Case| {
        if let Some(f) = judge(&c, &run_ibq(d, &c.args, Duration::from_secs(60))) {
            failures.push(f);
        }
    };

    // A file where the lake should be.
    let file = d.join("lake-file");
    std::fs::write(&file, "not a lake").unwrap();
    for sub in ["list", "run", "enqueue"] {
        let mut args = vec![sub];
        if sub == "enqueue" {
            args.extend(["option_chain", "SPY"]);
        }
        check(Case {
            name: "a file as lake",
            args: cmd(&file, &args),
            exit: Exit::Refused,
            names: vec![s(&file), "is a file, not a folder".into()],
        });
    }
    // A file where the queue table should be.
    let table_file = d.join("table-file");
    std::fs::create_dir_all(&table_file).unwrap();
    std::fs::write(table_file.join("ib_request_queue"), "not a table").unwrap();
    check(Case {
        name: "a file as the queue table",
        args: cmd(&table_file, &["list"]),
        exit: Exit::Refused,
        names: vec!["ib_request_queue".into(), "is a file".into()],
    });

    // A truncated last commit: named, and nothing is lost once it is put back.
    let truncated = fresh("truncated");
    let mut commits: Vec<PathBuf> = std::fs::read_dir(queue_log(&truncated))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    commits.sort();
    let last = commits.last().unwrap().clone();
    let whole = std::fs::read(&last).unwrap();
    std::fs::write(&last, &whole[..whole.len() / 2]).unwrap();
    for sub in ["list", "run"] {
        check(Case {
            name: "a truncated commit",
            args: cmd(&truncated, &[sub]),
            exit: Exit::Refused,
            names: vec!["ib_request_queue".into(), "_delta_log".into()],
        });
    }
    std::fs::write(&last, &whole).unwrap();
    assert_all_listed(&truncated, &ids, "after the truncated commit was put back");

    // A data file overwritten with garbage: the file is named.
    let garbage = fresh("garbage");
    let table = garbage.join("ib_request_queue");
    let data: Vec<PathBuf> = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(!data.is_empty(), "the seeded queue has data files");
    let victim = data[0].clone();
    let victim_name = victim.file_name().unwrap().to_string_lossy().to_string();
    let original = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, b"this is not parquet at all, just garbage").unwrap();
    for sub in ["list", "run"] {
        check(Case {
            name: "garbage parquet",
            args: cmd(&garbage, &[sub]),
            exit: Exit::Refused,
            names: vec!["ib_request_queue".into(), victim_name.clone()],
        });
    }
    std::fs::write(&victim, &original).unwrap();
    assert_all_listed(&garbage, &ids, "after the data file was put back");

    let mut mounts = Mounts(Vec::new());

    // A read-only log (a read-only bind mount: root writes through chmod).
    let ro = fresh("read-only");
    let log = queue_log(&ro);
    mounts.mount(&["--bind", &s(&log)], &log);
    mounts.mount(&["-o", "remount,bind,ro"], &log);
    check(Case {
        name: "enqueue on a read-only log",
        args: cmd(&ro, &["enqueue", "option_chain", "IWM"]),
        exit: Exit::Refused,
        names: vec!["ib_request_queue".into(), "read-only".into()],
    });
    check(Case {
        name: "run on a read-only log",
        args: cmd(&ro, &["run"]),
        exit: Exit::Refused,
        names: vec![
            "ib_request_queue".into(),
            "_delta_log".into(),
            "read-only".into(),
        ],
    });
    assert_all_listed(&ro, &ids, "on the read-only log");

    // A full disk: a small tmpfs filled to the last byte.
    let full = d.join("full");
    std::fs::create_dir_all(&full).unwrap();
    mounts.mount(&["-t", "tmpfs", "-o", "size=4m", "tmpfs"], &full);
    copy_dir(&seed, &full);
    fill(&full.join("filler"));
    check(Case {
        name: "enqueue on a full disk",
        args: cmd(&full, &["enqueue", "option_chain", "IWM"]),
        exit: Exit::Refused,
        names: vec!["ib_request_queue".into(), "no space left on device".into()],
    });
    check(Case {
        name: "compact on a full disk",
        args: cmd(&full, &["compact"]),
        exit: Exit::Refused,
        names: vec!["no space left on device".into()],
    });
    check(Case {
        name: "run on a full disk",
        args: cmd(&full, &["run"]),
        exit: Exit::Refused,
        names: vec!["ib_request_queue".into(), "no space left on device".into()],
    });
    assert_all_listed(&full, &ids, "on the full disk");
    // Space again: the queue takes requests again and still has every earlier one.
    std::fs::remove_file(full.join("filler")).unwrap();
    let out = ibq(&full, &["enqueue", "option_chain", "IWM"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_all_listed(&full, &ids, "after space was freed");

    assert!(
        failures.is_empty(),
        "{} lake damage cases were not handled as they must be:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The lake damage an engine meets while it runs.
#[derive(Clone, Copy, PartialEq)]
enum MidRun {
    /// The lake is on a small tmpfs that fills up.
    FullDisk,
    /// The queue's `_delta_log` becomes a read-only bind mount.
    ReadOnlyLog,
}

/// Starts `ibq run` against a slow simulator with three acknowledged requests, damages the
/// lake while requests are in flight, and checks the engine stops by itself with one line
/// naming `names`, without a panic, and that every acknowledged request is still listed,
/// and still there (and the queue working) once the damage is repaired.
async fn engine_meets(damage: MidRun, names: &[&str]) {
    use ibq::sim::{RequestKind, SimConfig, Simulator};
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    // Slow snapshots: the requests are still in flight when the damage happens.
    sim.set_latency(RequestKind::MarketData, Duration::from_millis(1500));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let disk = d.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mut mounts = Mounts(Vec::new());
    if damage == MidRun::FullDisk {
        mounts.mount(&["-t", "tmpfs", "-o", "size=8m", "tmpfs"], &disk);
    }
    let lake = disk.join("lake");
    let ids = seeded_lake(&lake);
    let cfg = crate::common::test_config(d, "");
    let (out_path, err_path) = (d.join("run.out"), d.join("run.err"));
    let mut run = Command::new(ibq_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--lake")
        .arg(&lake)
        .args(["--gateway", &sim.address()])
        .env_remove("IBQ_LAKE")
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    crate::common::wait_until("a request in flight", Duration::from_secs(60), async || {
        ibq::queue::store::read_state(&lake)
            .await
            .is_ok_and(|s| s.counts().processing > 0)
    })
    .await;
    let log = queue_log(&lake);
    match damage {
        MidRun::FullDisk => fill(&disk.join("filler")),
        MidRun::ReadOnlyLog => {
            mounts.mount(&["--bind", &s(&log)], &log);
            mounts.mount(&["-o", "remount,bind,ro"], &log);
        }
    }

    // The engine stops by itself, saying why.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = run.kill();
            let _ = run.wait();
            panic!(
                "ibq run kept running on a damaged lake: {}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = std::fs::read_to_string(&out_path).unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert_eq!(status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err}");
    for name in names.iter().chain(&["ib_request_queue", "engine stopped"]) {
        assert!(lines[0].contains(name), "the line names `{name}`: {err}");
    }
    for bad in ["panicked", "RUST_BACKTRACE", "Already shut down"] {
        assert!(
            !out.contains(bad) && !err.contains(bad),
            "`{bad}` in {out}\n{err}"
        );
    }
    // Nothing acknowledged is lost, and once repaired the queue works again.
    assert_all_listed(&lake, &ids, "after the engine stopped");
    match damage {
        MidRun::FullDisk => std::fs::remove_file(disk.join("filler")).unwrap(),
        MidRun::ReadOnlyLog => drop(mounts),
    }
    let out = ibq(&lake, &["enqueue", "futures_snapshot", "NQ"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_all_listed(&lake, &ids, "after the repair");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_whose_disk_fills_stops_naming_it_and_keeps_every_request() {
    engine_meets(MidRun::FullDisk, &["no space left on device"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_whose_log_turns_read_only_stops_naming_it_and_keeps_every_request() {
    engine_meets(MidRun::ReadOnlyLog, &["read-only"]).await;
}
