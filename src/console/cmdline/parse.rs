//! What a `:` line asks for. The line is read by the command line's own clap definitions
//! (`crate::cli::Command`), so the console takes exactly the CLI's grammar and refuses with
//! the CLI's words; it then becomes the engine `Command` the keys would send.

use clap::{FromArgMatches, Subcommand};
use uuid::Uuid;

use super::words;
use crate::cli::Command as Cli;
use crate::engine::{Command, Snapshot};
use crate::queue::{Priority, Request};

/// The CLI's subcommands the console takes, in the order completion offers them.
pub const VERBS: [&str; 10] = [
    "enqueue",
    "retry",
    "dismiss",
    "cancel",
    "reprioritize",
    "show",
    "promote",
    "demote",
    "pause",
    "resume",
];

/// What a line asks for.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// Send at once; `label` names it in the status line.
    Send { command: Command, label: String },
    /// Destructive: the confirm popup asks first.
    Confirm {
        title: String,
        message: String,
        command: Command,
        label: String,
    },
    /// Open the detail view of a request.
    Show(Uuid),
    /// Nothing to do, and why (`no FAILED requests`).
    Nothing(String),
}

/// The CLI's subcommands as clap knows them, without the global options (the console's
/// lake, gateway and key map are set) and without colours.
pub fn grammar() -> clap::Command {
    let root = clap::Command::new("ibq")
        .bin_name("ibq")
        .no_binary_name(true)
        .subcommand_required(true)
        .disable_help_subcommand(true)
        .disable_version_flag(true)
        .styles(clap::builder::Styles::plain());
    Cli::augment_subcommands(root)
}

/// A clap error in one line, as the CLI prints it: the error (without the `error: ` the
/// status line's ✖ says), its tips, and the usage.
fn clap_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let mut parts: Vec<String> = Vec::new();
    let mut usage = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("For more information") {
            continue;
        }
        if line.starts_with("Usage:") {
            usage = Some(line.to_string());
            continue;
        }
        match parts.last_mut() {
            // The lines under `error: … not provided:` belong to it.
            Some(last) if !line.starts_with("tip:") && last.ends_with(':') => {
                last.push(' ');
                last.push_str(line);
            }
            _ => parts.push(line.to_string()),
        }
    }
    parts.extend(usage);
    crate::text::clean(&parts.join(" · ")).into_owned()
}

/// Every request the console holds, for ids given by a prefix.
fn known(snap: &Snapshot) -> impl Iterator<Item = &std::sync::Arc<Request>> + '_ {
    snap.pending
        .iter()
        .chain(snap.processing.iter())
        .chain(snap.failed.iter())
        .chain(snap.done.iter())
}

/// The request an id or prefix names, as the CLI resolves it; a prefix only among the
/// requests the console holds (the live queue and the latest successes).
fn resolve(snap: &Snapshot, text: &str) -> Result<Uuid, String> {
    crate::queue::ids::resolve(known(snap).map(|r| r.request_id), text).map_err(|e| {
        if e.starts_with("no request id") {
            format!("{e} among the requests on screen (give the whole id for an older one)")
        } else {
            e
        }
    })
}

/// ` (market_bars SPY)` for a request the console holds.
fn what(snap: &Snapshot, id: Uuid) -> String {
    known(snap)
        .find(|r| r.request_id == id)
        .map(|r| format!(" ({} {})", r.request_type, crate::text::Clean(&r.symbol)))
        .unwrap_or_default()
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Reads `line` (without its `:`) against the picture the console shows.
pub fn parse(line: &str, snap: &Snapshot) -> Result<Parsed, String> {
    let words = words::words(line)?;
    let Some(verb) = words.first() else {
        return Err(format!(
            "type a command: {} (tab completes)",
            VERBS.join(", ")
        ));
    };
    let grammar = grammar();
    if grammar.find_subcommand(verb).is_some() && !VERBS.contains(&verb.as_str()) {
        return Err(format!(
            "`{}` is for the command line (`ibq {}`); the console takes {}",
            crate::text::Clean(verb),
            crate::text::Clean(verb),
            VERBS.join(", ")
        ));
    }
    let matches = match grammar.try_get_matches_from(&words) {
        Ok(m) => m,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let text = e.render().to_string();
            let usage = text
                .lines()
                .find(|l| l.starts_with("Usage:"))
                .unwrap_or("")
                .to_string();
            return Ok(Parsed::Nothing(crate::text::clean(&usage).into_owned()));
        }
        Err(e) => return Err(clap_line(&e)),
    };
    let command = Cli::from_arg_matches(&matches).map_err(|e| clap_line(&e))?;
    let json_refused = |json: bool| {
        if json {
            Err("--json is for the command line; the console answers in its status line")
        } else {
            Ok(())
        }
    };
    Ok(match command {
        Cli::Enqueue(args) => {
            json_refused(args.json)?;
            let (new, taken) = args.request().map_err(|e| format!("enqueue: {e}"))?;
            let mut label = format!(
                "enqueue {} {}",
                new.request_type,
                crate::text::Clean(&new.symbol)
            );
            if !taken.is_empty() {
                label.push_str(&format!(" (taken as {})", taken.join(", ")));
            }
            Parsed::Send {
                command: Command::Enqueue(new),
                label,
            }
        }
        Cli::Retry(args) => match args.id {
            Some(text) => {
                let id = resolve(snap, &text).map_err(|e| format!("retry: {e}"))?;
                Parsed::Send {
                    command: Command::Retry(vec![id]),
                    label: format!("retry 1 request{}", what(snap, id)),
                }
            }
            None => {
                let n = snap.counts.failed.max(snap.failed.len());
                if n == 0 {
                    return Ok(Parsed::Nothing("retry: no FAILED requests".into()));
                }
                let all = plural(n, "failed request");
                Parsed::Confirm {
                    title: "Retry all failed".into(),
                    message: format!("Put all {all} back to PENDING?"),
                    command: Command::RetryAllFailed,
                    label: format!("retry all {all}"),
                }
            }
        },
        Cli::Dismiss(args) => {
            let reason = args.reason().map_err(|e| format!("dismiss: {e}"))?;
            match &args.id {
                Some(text) => {
                    let id = resolve(snap, text).map_err(|e| format!("dismiss: {e}"))?;
                    Parsed::Confirm {
                        title: "Dismiss".into(),
                        message: format!(
                            "Dismiss 1 failed request{}? It becomes CANCELLED (reason: {reason}) and leaves the failed pane; history keeps it.",
                            what(snap, id)
                        ),
                        command: Command::Dismiss(vec![id], reason),
                        label: "dismiss 1 request".into(),
                    }
                }
                None => {
                    let n = snap.counts.failed.max(snap.failed.len());
                    if n == 0 {
                        return Ok(Parsed::Nothing("dismiss: no FAILED requests".into()));
                    }
                    let all = plural(n, "failed request");
                    Parsed::Confirm {
                        title: "Dismiss all failed".into(),
                        message: format!(
                            "Dismiss all {all}? They become CANCELLED (reason: {reason}) and leave the failed pane; history keeps them."
                        ),
                        command: Command::DismissAllFailed(reason),
                        label: format!("dismiss all {all}"),
                    }
                }
            }
        }
        Cli::Cancel(args) => {
            let id = resolve(snap, &args.id).map_err(|e| format!("cancel: {e}"))?;
            Parsed::Confirm {
                title: "Cancel".into(),
                message: format!(
                    "Cancel 1 pending request{}? This cannot be undone.",
                    what(snap, id)
                ),
                command: Command::Cancel(vec![id]),
                label: "cancel 1 request".into(),
            }
        }
        Cli::Reprioritize(args) => {
            let id = resolve(snap, &args.id).map_err(|e| format!("reprioritize: {e}"))?;
            let p: Priority = args
                .priority
                .parse()
                .map_err(|e| format!("reprioritize: {e}"))?;
            Parsed::Send {
                command: Command::SetPriority(vec![id], p),
                label: format!("set priority {p} on 1 request{}", what(snap, id)),
            }
        }
        Cli::Show(args) => {
            json_refused(args.json)?;
            Parsed::Show(resolve(snap, &args.id).map_err(|e| format!("show: {e}"))?)
        }
        Cli::Promote(args) => Parsed::Send {
            label: match &args.strategy {
                Some(s) => format!("promote {} ({})", args.conid, crate::text::Clean(s)),
                None => format!("promote {}", args.conid),
            },
            command: Command::Promote {
                conid: args.conid,
                strategy: args.strategy,
            },
        },
        Cli::Demote(args) => Parsed::Confirm {
            title: "Demote".into(),
            message: format!("Stop streaming 1 leg ({}) and free the lines?", args.conid),
            command: Command::Demote(vec![args.conid]),
            label: "demote 1 leg".into(),
        },
        Cli::Pause => Parsed::Send {
            command: Command::PauseWorker,
            label: "pause worker".into(),
        },
        Cli::Resume => Parsed::Send {
            command: Command::ResumeWorker,
            label: "resume worker".into(),
        },
        other => {
            return Err(format!(
                "`{other:?}` is for the command line; the console takes {}",
                VERBS.join(", ")
            ))
        }
    })
}

/// The short description clap gives a verb (its doc comment's first line).
pub fn about(verb: &str) -> String {
    grammar()
        .find_subcommand(verb)
        .and_then(|c| c.get_about().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// The whole CLI, for a check that every console verb is one of its subcommands.
#[cfg(test)]
fn cli_verbs() -> Vec<String> {
    use clap::CommandFactory;
    crate::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    fn snap() -> Snapshot {
        sample::with_distinct_ids(sample::snapshot(5))
    }

    fn ok(line: &str) -> Parsed {
        parse(line, &snap()).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn err(line: &str) -> String {
        match parse(line, &snap()) {
            Err(e) => e,
            Ok(p) => panic!("{line}: parsed as {p:?}"),
        }
    }

    #[test]
    fn every_console_verb_is_a_cli_subcommand() {
        let cli = cli_verbs();
        for v in VERBS {
            assert!(cli.contains(&v.to_string()), "{v} is not in the CLI");
            assert!(!about(v).is_empty(), "{v} has no description");
        }
    }

    #[test]
    fn enqueue_takes_the_cli_grammar_and_old_names() {
        match ok("enqueue option_chain SPY --priority 1 --param dte=30") {
            Parsed::Send {
                command: Command::Enqueue(new),
                label,
            } => {
                assert_eq!(new.request_type, crate::queue::RequestType::OptionChain);
                assert_eq!(new.symbol, "SPY");
                assert_eq!(new.priority, Priority::IMMEDIATE);
                assert_eq!(new.parameters["dte"], 30);
                assert_eq!(new.changed_by, crate::queue::Actor::Operator);
                assert!(label.contains("dte=30 → target_dte=30"), "{label}");
            }
            other => panic!("{other:?}"),
        }
        // The CLI's own words for what it refuses.
        assert_eq!(
            err("enqueue option_chain SPY --priority 7"),
            "enqueue: priority must be 1 (immediate), 2 (normal) or 3 (background), got 7"
        );
        assert!(
            err("enqueue chains SPY").starts_with("enqueue: unknown request type `chains`"),
            "{}",
            err("enqueue chains SPY")
        );
        let e = err("enqueue option_chain");
        assert!(
            e.starts_with("the following required arguments were not provided: <SYMBOL>")
                && e.ends_with("Usage: ibq enqueue <REQUEST_TYPE> <SYMBOL>"),
            "{e}"
        );
        assert!(err("enqueue option_chain SPY --json").contains("--json is for the command line"));
    }

    #[test]
    fn retry_and_dismiss_all_ask_first_and_single_ids_take_prefixes() {
        let s = snap();
        match ok("retry --all-failed") {
            Parsed::Confirm {
                command: Command::RetryAllFailed,
                message,
                ..
            } => assert_eq!(message, "Put all 4 failed requests back to PENDING?"),
            other => panic!("{other:?}"),
        }
        let failed = s.failed[1].request_id;
        let prefix = &failed.to_string()[..8];
        assert!(err("retry 3000").contains("matches 4 requests"));
        match ok(&format!("retry {prefix}")) {
            Parsed::Send {
                command: Command::Retry(ids),
                ..
            } => assert_eq!(ids, vec![failed]),
            other => panic!("{other:?}"),
        }
        match ok(&format!("dismiss {failed} --reason 'never listed'")) {
            Parsed::Confirm {
                command: Command::Dismiss(ids, reason),
                message,
                ..
            } => {
                assert_eq!((ids, reason.as_str()), (vec![failed], "never listed"));
                let r = &s.failed[1];
                let what = format!("({} {})", r.request_type, r.symbol);
                assert!(message.contains(&what), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match ok("dismiss --all-failed") {
            Parsed::Confirm {
                command: Command::DismissAllFailed(reason),
                ..
            } => assert_eq!(reason, crate::cli::queue::DEFAULT_DISMISS_REASON),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err("dismiss --all-failed --reason ' '"),
            "dismiss: --reason is empty; say why the failure is dismissed, or leave --reason out"
        );
        let e = err("retry");
        assert!(
            e.contains("required arguments were not provided") && e.contains("Usage: ibq retry"),
            "{e}"
        );
        let e = err("retry abc --all-failed");
        assert!(e.contains("cannot be used with"), "{e}");
        assert!(err("retry ffff").contains("no request id starts with `ffff`"));
        assert!(err("retry xyz").contains("is not a request id"));
    }

    #[test]
    fn cancel_demote_ask_first_the_others_go_at_once() {
        let s = snap();
        let pending = s.pending[0].request_id;
        assert!(matches!(
            ok(&format!("cancel {pending}")),
            Parsed::Confirm { command: Command::Cancel(ids), .. } if ids == vec![pending]
        ));
        assert!(matches!(
            ok("demote 756733"),
            Parsed::Confirm { command: Command::Demote(c), .. } if c == vec![756733]
        ));
        assert!(matches!(
            ok(&format!("reprioritize {pending} 1")),
            Parsed::Send { command: Command::SetPriority(ids, p), .. }
                if ids == vec![pending] && p == Priority::IMMEDIATE
        ));
        match ok("promote 756733 --strategy ic") {
            Parsed::Send {
                command: Command::Promote { conid, strategy },
                label,
            } => {
                assert_eq!((conid, strategy.as_deref()), (756733, Some("ic")));
                assert_eq!(label, "promote 756733 (ic)");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ok("pause"),
            Parsed::Send {
                command: Command::PauseWorker,
                ..
            }
        ));
        assert!(matches!(
            ok("resume"),
            Parsed::Send {
                command: Command::ResumeWorker,
                ..
            }
        ));
        assert!(matches!(ok(&format!("show {pending}")), Parsed::Show(id) if id == pending));
        let done = s.done[3].request_id;
        assert!(matches!(ok(&format!("show {done}")), Parsed::Show(id) if id == done));
        assert!(
            err("promote 0").contains("0 is not in 1.."),
            "{}",
            err("promote 0")
        );
        assert!(
            err(&format!("reprioritize {pending} 9")).starts_with("reprioritize: priority must be")
        );
    }

    #[test]
    fn other_words_get_the_cli_answer() {
        let e = err("retyr --all-failed");
        assert!(e.contains("unrecognized subcommand 'retyr'"), "{e}");
        assert!(
            e.contains("tip: a similar subcommand exists: 'retry'"),
            "{e}"
        );
        assert!(err("list").contains("`list` is for the command line (`ibq list`)"));
        assert!(err("sim").contains("is for the command line"));
        assert!(err("").contains("type a command"));
        assert!(err("retry --lake /tmp/x").contains("unexpected argument '--lake'"));
        assert!(err("promote 1 --strategy \"open").contains("not closed"));
        match ok("retry --help") {
            Parsed::Nothing(usage) => assert!(usage.starts_with("Usage: ibq retry"), "{usage}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn with_nothing_failed_retry_all_says_so() {
        let mut s = snap();
        s.failed = std::sync::Arc::from(Vec::new());
        s.counts.failed = 0;
        assert!(matches!(
            parse("retry --all-failed", &s),
            Ok(Parsed::Nothing(m)) if m == "retry: no FAILED requests"
        ));
    }
}
