//! Configuration files, key maps and command lines.

use super::{assert_all_listed, case, config_file, run_cases, s, seeded_lake, Case, Exit};

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
