//! A corpus of bad inputs to the real binary: configuration files, key maps, command lines
//! and a damaged lake (a file as lake, a truncated log, garbage parquet, a read-only log, a
//! full disk on a small tmpfs). Each must end with one clear line naming the problem, a
//! nonzero exit where ibq cannot go on, no panic, and every request acknowledged before the
//! damage still listed (or, where the damage hides them, the damage named and nothing lost
//! once it is repaired).
//!
//! The read-only log and the full disk need mounts, so this module needs root (as CI runs);
//! without it those cases fail with a message saying so, they are never skipped.

mod inputs;
mod lake;
mod output;

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
