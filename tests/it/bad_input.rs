//! A corpus of bad inputs to the real binary: configuration files, key maps, command lines
//! and a damaged lake (a file as lake, a truncated log, garbage parquet, a read-only log, a
//! full disk on a small tmpfs). Each must end with one clear line naming the problem, a
//! nonzero exit where ibq cannot go on, no panic, and every request acknowledged before the
//! damage still listed (or, where the damage hides them, the damage named and nothing lost
//! once it is repaired).
//!
//! The read-only log and the full disk need mounts, so this module needs root (as CI runs);
//! without it those cases fail with a message saying so, they are never skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{ibq, ibq_bin, stderr, stdout};

/// How a case must end.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Exit {
    /// ibq's own refusal: exit code 1 and exactly one line on stderr.
    Refused,
    /// The argument parser's refusal: exit code 2, the first line names the argument.
    Usage,
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    exit: Exit,
    /// Every one of these must be in the first line of stderr (the key, file or value).
    names: Vec<String>,
}

fn case(name: &'static str, args: &[&str], exit: Exit, names: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        exit,
        names: names.iter().map(|s| s.to_string()).collect(),
    }
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `ibq args` in `cwd` isolated from any user configuration, stopping it (and
/// reporting that it kept running) after `limit`.
fn run_ibq(cwd: &Path, args: &[String], limit: Duration) -> Ran {
    let out_path = cwd.join(format!("out-{}.txt", rand_suffix()));
    let err_path = cwd.join(format!("err-{}.txt", rand_suffix()));
    let mut child = Command::new(ibq_bin())
        .args(args)
        .env_remove("IBQ_LAKE")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("HOME", cwd)
        .env("XDG_CONFIG_HOME", cwd.join("no-config"))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("the ibq binary runs");
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// What is wrong with how a case ended, if anything.
fn judge(c: &Case, r: &Ran) -> Option<String> {
    let mut wrong = Vec::new();
    let both = format!("{}{}", r.stdout, r.stderr);
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        if both.contains(bad) {
            wrong.push(format!("output holds `{bad}`"));
        }
    }
    if both.contains('\u{1b}') {
        wrong.push("output holds terminal escape codes".into());
    }
    let expected = match c.exit {
        Exit::Refused => 1,
        Exit::Usage => 2,
    };
    match r.code {
        None => wrong.push("did not end by itself (killed after the time limit)".into()),
        Some(code) if code != expected => wrong.push(format!("exit code {code}, not {expected}")),
        _ => {}
    }
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let first = lines.first().copied().unwrap_or("");
    match c.exit {
        Exit::Refused => {
            if lines.len() != 1 {
                wrong.push(format!("{} lines on stderr, not one", lines.len()));
            }
            if !first.starts_with("ibq: ") {
                wrong.push("stderr does not start with `ibq: `".into());
            }
        }
        Exit::Usage => {
            if !first.starts_with("error: ") {
                wrong.push("stderr does not start with `error: `".into());
            }
        }
    }
    for name in &c.names {
        if !first.contains(name.as_str()) {
            wrong.push(format!("the first line does not name `{name}`"));
        }
    }
    // A cause printed twice ("… (os error 2): … (os error 2)") is not one clear line.
    if first.matches("(os error").count() > 1 {
        wrong.push("the line repeats its cause".into());
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "case `{}` ({}):\n    {}\n    stderr: {:?}\n    stdout: {:?}",
            c.name,
            c.args.join(" "),
            wrong.join("; "),
            r.stderr,
            truncate(&r.stdout, 400)
        )
    })
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Runs every case and fails once with all that went wrong.
fn run_cases(cwd: &Path, cases: &[Case]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| judge(c, &run_ibq(cwd, &c.args, Duration::from_secs(60))))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not handled as they must be:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A lake with three requests enqueued (and so acknowledged) through the command line.
fn seeded_lake(lake: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (ty, sym) in [
        ("option_chain", "SPY"),
        ("market_bars", "QQQ"),
        ("futures_snapshot", "ES"),
    ] {
        let out = ibq(lake, &["enqueue", ty, sym, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        ids.insert(v["request_id"].as_str().unwrap().to_string());
    }
    ids
}

/// The ids `ibq list` shows, or its error.
fn listed(lake: &Path) -> Result<BTreeSet<String>, String> {
    let out = ibq(lake, &["list", "--json", "--limit", "0"]);
    if !out.status.success() {
        return Err(stderr(&out));
    }
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).map_err(|e| e.to_string())?;
    Ok(v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect())
}

fn assert_all_listed(lake: &Path, ids: &BTreeSet<String>, when: &str) {
    let now = listed(lake).unwrap_or_else(|e| panic!("{when}: `ibq list` failed: {e}"));
    let missing: Vec<_> = ids.difference(&now).collect();
    assert!(
        missing.is_empty(),
        "{when}: acknowledged requests missing: {missing:?}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A config file `dir/name` with `text`, logs kept in the test folder; returns its path.
fn config_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    // Cases that set [logging] themselves are written as given.
    let text = if text.contains("[logging]") {
        text.to_string()
    } else {
        format!(
            "{text}\n[logging]\ndir = \"{}\"\n",
            dir.join("logs").display()
        )
    };
    std::fs::write(&path, text).unwrap();
    s(&path)
}

#[test]
fn bad_configuration_key_maps_and_command_lines_get_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lake = d.join("lake");
    let ids = seeded_lake(&lake);
    let l = s(&lake);
    let cfg = |name: &str, text: &str| config_file(d, name, text);
    let keymap = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        s(&p)
    };
    let no_scheduler = "[scheduler]\nenabled = false\n";
    let job = |body: &str| {
        format!("[scheduler]\nenabled = true\n[[scheduler.jobs]]\nname = \"job_one\"\n{body}\n")
    };

    let mut cases = Vec::new();
    // The configuration: every number is range-checked, naming the key and the range.
    for (name, text, key, detail) in [
        (
            "lease past the end of time",
            "[queue]\nlease_secs = 10000000000000",
            "queue.lease_secs",
            "allowed: 1 to 604800",
        ),
        (
            "backoff of i64::MAX seconds",
            "[worker]\nbackoff_base_secs = 9223372036854775807",
            "worker.backoff_base_secs",
            "allowed: 1 to 86400",
        ),
        (
            "margin above the line limit",
            "[lines]\nlimit = 1\nmargin = 5",
            "lines.margin",
            "lines.limit (1)",
        ),
        (
            "zero messages per second",
            "[worker]\nmax_messages_per_sec = 0",
            "worker.max_messages_per_sec",
            "allowed: 1 to 50",
        ),
        (
            "more messages than the gateway takes",
            "[worker]\nmax_messages_per_sec = 51",
            "worker.max_messages_per_sec",
            "allowed: 1 to 50",
        ),
        (
            "zero batch size",
            "[worker]\nbatch_size = 0",
            "worker.batch_size",
            "allowed: 1 to",
        ),
        (
            "zero max batch",
            "[queue]\nmax_batch = 0",
            "queue.max_batch",
            "allowed: 1 to",
        ),
        (
            "compaction at zero files",
            "[queue]\ncompact_at_files = 0",
            "queue.compact_at_files",
            "allowed: 2 to",
        ),
        (
            "checkpoint every zero commits",
            "[queue]\ncheckpoint_every = 0",
            "queue.checkpoint_every",
            "allowed: 1 to",
        ),
        (
            "backoff cap below its base",
            "[worker]\nbackoff_base_secs = 60\nbackoff_max_secs = 5",
            "worker.backoff_max_secs",
            "worker.backoff_base_secs (60)",
        ),
        (
            "empty lake root",
            "[lake]\nroot = \"\"",
            "lake.root",
            "empty",
        ),
        (
            "gateway address without a port",
            "[gateway]\naddress = \"localhost\"",
            "gateway.address",
            "HOST:PORT",
        ),
        (
            "unknown key",
            "[queue]\nlease_seconds = 5",
            "lease_seconds",
            "line 2",
        ),
        ("wrong type", "[lines]\nlimit = \"many\"", "limit", "line 2"),
        (
            "negative number",
            "[queue]\nlease_secs = -5",
            "lease_secs",
            "line 2",
        ),
        (
            "bad closure date",
            "[scheduler]\nextra_closures = [\"2025-13-01\"]",
            "extra_closures",
            "line 2",
        ),
        (
            "broken TOML",
            "[queue\nlease_secs = 5",
            "line 1",
            "invalid table header; expected",
        ),
    ] {
        let file = format!("{}.toml", name.replace(' ', "_"));
        let path = cfg(&file, text);
        cases.push(Case {
            name,
            args: vec![
                "list".into(),
                "--config".into(),
                path,
                "--lake".into(),
                l.clone(),
            ],
            exit: Exit::Refused,
            names: vec![key.to_string(), detail.to_string(), file],
        });
    }
    let level = cfg(
        "level.toml",
        "[logging]\ndir = \"logs\"\nlevel = \"ibq=loudest\"",
    );
    cases.push(case(
        "bad log level",
        &["list", "--config", &level, "--lake", &l],
        Exit::Refused,
        &["logging.level", "ibq=loudest"],
    ));
    let empty_logs = cfg("empty-logs.toml", "[logging]\ndir = \"\"");
    cases.push(case(
        "empty log folder",
        &["list", "--config", &empty_logs, "--lake", &l],
        Exit::Refused,
        &["logging.dir"],
    ));
    let missing = s(&d.join("missing.toml"));
    cases.push(case(
        "missing config file",
        &["list", "--config", &missing, "--lake", &l],
        Exit::Refused,
        &["missing.toml", "No such file or directory"],
    ));
    cases.push(case(
        "config file is a folder",
        &["list", "--config", &s(d), "--lake", &l],
        Exit::Refused,
        &["cannot read config file"],
    ));
    // Scheduler jobs are checked at start like the queue checks a request.
    for (name, body, names) in [
        (
            "job with a parameter out of range",
            "type = \"option_chain\"\nsymbols = [\"SPY\"]\nparameters = { target_dte = 0 }\nat = \"08:30\"",
            &["job_one", "target_dte"][..],
        ),
        (
            "job with a misspelt parameter",
            "type = \"market_bars\"\nsymbols = [\"SPY\"]\nparameters = { barsize = \"1 day\" }\nat = \"08:30\"",
            &["job_one", "barsize"][..],
        ),
        (
            "job with an invalid symbol",
            "type = \"market_bars\"\nsymbols = [\"SP Y\"]\nat = \"08:30\"",
            &["job_one", "SP Y"][..],
        ),
        (
            "job with an unknown type",
            "type = \"quotes\"\nsymbols = [\"SPY\"]\nat = \"08:30\"",
            &["job_one", "quotes"][..],
        ),
        (
            "job with a bad interval",
            "type = \"market_bars\"\nsymbols = [\"SPY\"]\nevery = \"5 minutes\"\nduring = \"regular\"",
            &["job_one", "5 minutes"][..],
        ),
    ] {
        let path = cfg(&format!("{}.toml", name.replace(' ', "_")), &job(body));
        cases.push(Case {
            name,
            args: vec![
                "run".into(),
                "--config".into(),
                path,
                "--lake".into(),
                l.clone(),
                "--gateway".into(),
                "127.0.0.1:9".into(),
            ],
            exit: Exit::Refused,
            names: names.iter().map(|s| s.to_string()).collect(),
        });
    }
    let quiet = cfg("quiet.toml", no_scheduler);

    // Key maps.
    for (name, text, names) in [
        (
            "key map with an unknown action",
            "[global]\nfly_away = [\"x\"]\n",
            &["fly_away", "line 2"][..],
        ),
        (
            "key map with an unknown context",
            "[nowhere]\nmove_up = [\"k\"]\n",
            &["nowhere", "line 1"][..],
        ),
        (
            "key map with a key that does not parse",
            "[global]\nmove_up = [\"ctrl-nokey\"]\n",
            &["ctrl-nokey", "line 2"][..],
        ),
        (
            "key map giving one key two actions",
            "[global]\nmove_up = [\"j\"]\n",
            &["`j`", "line 2"][..],
        ),
        (
            "key map that is not TOML",
            "[global\nmove_up = [\"k\"]\n",
            &["keys.toml", "line 1", "expected"][..],
        ),
    ] {
        let path = keymap("keys.toml", text);
        let renamed = d.join(format!("{}.keys.toml", name.replace(' ', "_")));
        std::fs::rename(&path, &renamed).unwrap();
        let names: Vec<String> = names
            .iter()
            .map(|n| n.replace("keys.toml", &renamed.file_name().unwrap().to_string_lossy()))
            .collect();
        cases.push(Case {
            name,
            args: vec!["keys".into(), "--keymap".into(), s(&renamed)],
            exit: Exit::Refused,
            names,
        });
    }
    cases.push(case(
        "missing key map file",
        &["keys", "--keymap", &s(&d.join("nokeys.toml"))],
        Exit::Refused,
        &["nokeys.toml", "No such file or directory"],
    ));

    // The command line.
    let id0 = ids.iter().next().unwrap().clone();
    for (name, args, exit, names) in [
        (
            "negative limit",
            vec!["list", "--limit", "-1"],
            Exit::Usage,
            vec!["-1"],
        ),
        (
            "limit that is not a number",
            vec!["list", "--limit", "all"],
            Exit::Usage,
            vec!["--limit", "all"],
        ),
        (
            "unknown status",
            vec!["list", "--status", "DONE"],
            Exit::Refused,
            vec!["DONE"],
        ),
        (
            "unknown request type",
            vec!["enqueue", "quotes", "SPY"],
            Exit::Refused,
            vec!["quotes"],
        ),
        (
            "invalid symbol",
            vec!["enqueue", "option_chain", "SP Y"],
            Exit::Refused,
            vec!["SP Y"],
        ),
        (
            "priority out of range",
            vec!["enqueue", "option_chain", "SPY", "--priority", "9"],
            Exit::Refused,
            vec!["9"],
        ),
        (
            "the same parameter twice",
            vec![
                "enqueue",
                "option_chain",
                "SPY",
                "--param",
                "target_dte=30",
                "--param",
                "target_dte=60",
            ],
            Exit::Refused,
            vec!["target_dte", "twice"],
        ),
        (
            "parameter without a value",
            vec!["enqueue", "option_chain", "SPY", "--param", "target_dte"],
            Exit::Refused,
            vec!["target_dte", "KEY=VALUE"],
        ),
        (
            "parameter out of range",
            vec!["enqueue", "option_chain", "SPY", "--param", "target_dte=0"],
            Exit::Refused,
            vec!["target_dte"],
        ),
        (
            "id that is not an id",
            vec!["show", "zz"],
            Exit::Refused,
            vec!["zz"],
        ),
        (
            "id prefix that matches nothing",
            vec!["show", "ffffffff"],
            Exit::Refused,
            vec!["ffffffff"],
        ),
        (
            "cancel an unknown request",
            vec!["cancel", "00000000-0000-4000-8000-000000000000"],
            Exit::Refused,
            vec!["00000000-0000-4000-8000-000000000000"],
        ),
        (
            "clock that is not a time",
            vec!["--clock", "yesterday", "list"],
            Exit::Usage,
            vec!["--clock", "yesterday"],
        ),
        (
            "speed of zero",
            vec!["--speed", "0", "list"],
            Exit::Refused,
            vec!["--speed"],
        ),
        (
            "gateway without a port",
            vec!["list", "--gateway", "localhost"],
            Exit::Refused,
            vec!["--gateway", "localhost"],
        ),
        (
            "contract id of zero",
            vec!["promote", "0"],
            Exit::Usage,
            vec!["'0'", "<CONID>"],
        ),
        (
            "negative contract id",
            vec!["demote", "-5"],
            Exit::Usage,
            vec!["'-5'"],
        ),
        (
            "config with nothing to do",
            vec!["config"],
            Exit::Refused,
            vec!["--print-default"],
        ),
    ] {
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        args.extend(["--config".into(), quiet.clone(), "--lake".into(), l.clone()]);
        cases.push(Case {
            name,
            args,
            exit,
            names: names.into_iter().map(String::from).collect(),
        });
    }
    cases.push(case(
        "empty --lake",
        &["list", "--lake", ""],
        Exit::Usage,
        &["--lake"],
    ));
    cases.push(case(
        "retry a request that is not FAILED",
        &["retry", &id0, "--lake", &l, "--config", &quiet],
        Exit::Refused,
        &["refused", &id0[..8]],
    ));

    run_cases(d, &cases);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    assert_all_listed(&lake, &ids, "after the bad inputs");
}

/// Sets up mounts for a test and takes them down when dropped.
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn mount(&mut self, args: &[&str], target: &Path) {
        let out = Command::new("mount")
            .args(args)
            .arg(target)
            .output()
            .expect("the mount command runs");
        assert!(
            out.status.success(),
            "this test needs root and mount(8) to build a read-only log or a full disk \
             (mount {} {}): {}",
            args.join(" "),
            target.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        self.0.push(target.to_path_buf());
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for target in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(target).status();
        }
    }
}

fn queue_log(lake: &Path) -> PathBuf {
    lake.join("ib_request_queue").join("_delta_log")
}

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

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // The last partial pages too.
    loop {
        match f.write(&[0u8; 512]) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = f.sync_all();
}

#[test]
fn a_reader_that_stops_early_ends_the_listing_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    seeded_lake(&lake);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // `| head -0`: nobody reads, the first write meets a closed pipe.
    let out = Command::new(ibq_bin())
        .args(["list", "--limit", "0", "--lake"])
        .arg(&lake)
        .env_remove("IBQ_LAKE")
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "ended by {:?}: {err}",
        out.status
    );
}

#[test]
fn the_engine_writes_no_colour_codes_into_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config_file(d, "quiet.toml", "[scheduler]\nenabled = false\n");
    let log = d.join("run.out");
    let mut child = Command::new(ibq_bin())
        .args([
            "run",
            "--config",
            &cfg,
            "--gateway",
            "127.0.0.1:9",
            "--lake",
        ])
        .arg(d.join("lake"))
        .env_remove("IBQ_LAKE")
        .env_remove("NO_COLOR")
        .current_dir(d)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("engine running")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60) && child.try_wait().unwrap().is_none(),
            "the engine did not report running: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in the file: {text:?}"
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
