//! Tab completion of a `:` line: the verbs and each verb's options as the CLI's clap
//! definitions list them, and their values from what the console shows: request types,
//! symbols (the `[contracts]` table and the queue), the legs' conids and strategies, and
//! request ids (by prefix, among the requests the verb applies to).

use clap::Arg;

use super::parse::{about, grammar, VERBS};
use super::words::{quote, split};
use crate::console::panes::legs::describe;
use crate::engine::Snapshot;
use crate::queue::{Request, RequestType};

/// One way to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// What replaces the word being typed (quoted when needed).
    pub text: String,
    /// What it is, for the menu: `FAILED market_bars SPY · IB 162: …`.
    pub note: String,
}

/// The candidates for the word at the end of a line, and where that word starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completions {
    /// Byte offset of the word being completed (the line's end when none is begun).
    pub start: usize,
    pub candidates: Vec<Candidate>,
}

/// What values come from besides the snapshot.
pub struct Catalog<'a> {
    pub snap: &'a Snapshot,
    /// The symbols of the `[contracts]` table.
    pub symbols: &'a [String],
}

/// Most candidates offered at once.
const MOST: usize = 200;

fn cand(text: impl Into<String>, note: impl Into<String>) -> Candidate {
    Candidate {
        text: text.into(),
        note: note.into(),
    }
}

/// The options of a verb, as `--name`, with their help.
fn options(verb: &clap::Command) -> Vec<&Arg> {
    verb.get_arguments()
        .filter(|a| a.get_long().is_some() && !a.is_hide_set())
        .filter(|a| !matches!(a.get_long(), Some("json" | "help")))
        .collect()
}

/// Whether `--name` of `verb` takes a value (the next word).
fn takes_value(verb: &clap::Command, long: &str) -> bool {
    verb.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .is_some_and(|a| a.get_action().takes_values())
}

fn request_note(r: &Request) -> String {
    let mut note = format!(
        "{} {} {}",
        r.status,
        r.request_type,
        crate::text::Clean(&r.symbol)
    );
    if let Some(e) = &r.error_message {
        note.push_str(&format!(" · {}", crate::text::Clean(e)));
    }
    note
}

/// The requests whose ids `verb` takes.
fn ids_for<'a>(verb: &str, snap: &'a Snapshot) -> Vec<&'a Request> {
    let lists: Vec<&'a [std::sync::Arc<Request>]> = match verb {
        "retry" | "dismiss" => vec![&snap.failed],
        "cancel" => vec![&snap.pending],
        "reprioritize" => vec![&snap.pending, &snap.failed],
        _ => vec![&snap.pending, &snap.processing, &snap.failed, &snap.done],
    };
    lists
        .into_iter()
        .flat_map(|l| l.iter().map(|r| r.as_ref()))
        .collect()
}

/// Symbols from `[contracts]` and from every request shown, each once, sorted.
fn symbols(c: &Catalog) -> Vec<Candidate> {
    let snap = c.snap;
    let mut all: Vec<(String, &str)> = c
        .symbols
        .iter()
        .map(|s| (s.to_ascii_uppercase(), "[contracts]"))
        .collect();
    for r in snap
        .pending
        .iter()
        .chain(snap.processing.iter())
        .chain(snap.failed.iter())
        .chain(snap.done.iter())
    {
        if !all.iter().any(|(s, _)| *s == r.symbol) && !r.symbol.chars().any(char::is_control) {
            all.push((r.symbol.clone(), "in the queue"));
        }
    }
    all.sort();
    all.into_iter()
        .map(|(s, from)| cand(quote(&s), from))
        .collect()
}

/// The values of a positional argument (`id`, `symbol`, …) or of an option's value.
fn values(verb: &str, arg: &str, words: &[String], c: &Catalog) -> Vec<Candidate> {
    let snap = c.snap;
    match arg {
        "request_type" => RequestType::ALL
            .iter()
            .map(|t| cand(t.as_str(), format!("→ {}", t.result_table())))
            .collect(),
        "symbol" => symbols(c),
        "id" => ids_for(verb, snap)
            .into_iter()
            .map(|r| cand(r.request_id.to_string(), request_note(r)))
            .collect(),
        "priority" => [("1", "immediate"), ("2", "normal"), ("3", "background")]
            .into_iter()
            .map(|(p, n)| cand(p, n))
            .collect(),
        "during" => [
            ("any", "any time"),
            ("regular", "09:30–16:00 ET"),
            ("extended", "04:00–20:00 ET"),
        ]
        .into_iter()
        .map(|(p, n)| cand(p, n))
        .collect(),
        "conid" => snap
            .legs
            .iter()
            .map(|l| cand(l.conid.to_string(), describe(l)))
            .collect(),
        "strategy" => {
            let mut s: Vec<String> = snap
                .legs
                .iter()
                .filter_map(|l| l.strategy.clone())
                .collect();
            s.sort();
            s.dedup();
            s.into_iter()
                .map(|s| cand(quote(&s), "a leg's strategy"))
                .collect()
        }
        "params" => {
            // The names the request type takes, as `NAME=`.
            let ty = words.get(1).and_then(|t| t.parse::<RequestType>().ok());
            ty.map(|t| {
                crate::queue::params::names(t)
                    .iter()
                    .map(|(n, help)| cand(format!("{n}="), *help))
                    .collect()
            })
            .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// The candidates for the word at the end of `line`.
pub fn complete(line: &str, c: &Catalog) -> Completions {
    let s = split(line);
    let begun = !s.ends_in_space && !s.words.is_empty();
    let (done, current): (Vec<String>, String) = if begun {
        let (last, rest) = s.words.split_last().expect("a word");
        (
            rest.iter().map(|w| w.text.clone()).collect(),
            last.text.clone(),
        )
    } else {
        (
            s.words.iter().map(|w| w.text.clone()).collect(),
            String::new(),
        )
    };
    let start = if begun {
        s.words.last().expect("a word").start
    } else {
        line.len()
    };
    let mut candidates = if done.is_empty() {
        VERBS.iter().map(|v| cand(*v, about(v))).collect()
    } else {
        after_verb(&done, &current, c)
    };
    let typed = current.to_ascii_lowercase();
    candidates.retain(|k| {
        let bare = super::words::words(&k.text)
            .ok()
            .and_then(|w| w.into_iter().next())
            .unwrap_or_default();
        bare.to_ascii_lowercase().starts_with(&typed)
    });
    candidates.truncate(MOST);
    Completions { start, candidates }
}

/// Candidates for a word after the verb: an option, an option's value, or a positional.
fn after_verb(done: &[String], current: &str, c: &Catalog) -> Vec<Candidate> {
    let grammar = grammar();
    let verb = done[0].as_str();
    let Some(sub) = grammar
        .find_subcommand(verb)
        .filter(|_| VERBS.contains(&verb))
    else {
        return Vec::new();
    };
    // The option whose value this word is.
    if let Some(prev) = done.last().and_then(|w| w.strip_prefix("--")) {
        if done.len() > 1 && takes_value(sub, prev) {
            let id = sub
                .get_arguments()
                .find(|a| a.get_long() == Some(prev))
                .map(|a| a.get_id().to_string())
                .unwrap_or_default();
            return values(verb, &id, done, c);
        }
    }
    if current.starts_with('-') {
        return options(sub)
            .into_iter()
            .filter(|a| {
                // An option given already is not offered again, unless it repeats.
                let long = format!("--{}", a.get_long().unwrap_or_default());
                matches!(a.get_action(), clap::ArgAction::Append) || !done.contains(&long)
            })
            .map(|a| {
                cand(
                    format!("--{}", a.get_long().unwrap_or_default()),
                    a.get_help().map(|h| h.to_string()).unwrap_or_default(),
                )
            })
            .collect();
    }
    // Which positional this word is: the words so far that are neither options nor their
    // values.
    let mut n = 0;
    let mut skip = false;
    for w in &done[1..] {
        if skip {
            skip = false;
            continue;
        }
        match w.strip_prefix("--") {
            Some(long) => skip = takes_value(sub, long),
            None => n += 1,
        }
    }
    let positional = sub.get_positionals().nth(n).map(|p| p.get_id().to_string());
    match positional {
        Some(id) => values(verb, &id, done, c),
        None => Vec::new(),
    }
}

/// The longest start all candidates share (compared without case for letters).
pub fn common_prefix(candidates: &[Candidate]) -> String {
    let Some(first) = candidates.first() else {
        return String::new();
    };
    let mut len = first.text.len();
    for c in &candidates[1..] {
        len = first
            .text
            .char_indices()
            .zip(c.text.chars())
            .take_while(|((_, a), b)| a == b)
            .map(|((i, a), _)| i + a.len_utf8())
            .last()
            .unwrap_or(0)
            .min(len);
    }
    first.text[..len].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    fn texts(line: &str, snap: &Snapshot) -> Vec<String> {
        let symbols = vec!["ES".to_string(), "SPX".to_string(), "NQ".to_string()];
        let c = Catalog {
            snap,
            symbols: &symbols,
        };
        complete(line, &c)
            .candidates
            .into_iter()
            .map(|c| c.text)
            .collect()
    }

    #[test]
    fn verbs_then_types_then_symbols_from_contracts_and_the_queue() {
        let s = sample::snapshot(5);
        assert_eq!(texts("", &s).len(), VERBS.len());
        assert_eq!(texts("re", &s), ["retry", "reprioritize", "resume"]);
        assert_eq!(texts("enqueue ", &s).len(), RequestType::ALL.len());
        assert_eq!(texts("enqueue opt", &s), ["option_chain"]);
        let syms = texts("enqueue option_chain ", &s);
        for want in ["ES", "SPX", "NQ", "SPY", "QQQ", "AAPL"] {
            assert!(syms.contains(&want.to_string()), "{want} in {syms:?}");
        }
        assert_eq!(texts("enqueue option_chain sp", &s), ["SPX", "SPY"]);
    }

    #[test]
    fn options_and_their_values_come_from_the_cli() {
        let s = sample::snapshot(5);
        assert_eq!(
            texts("enqueue option_chain SPY --", &s),
            ["--priority", "--param", "--during"]
        );
        assert_eq!(
            texts("enqueue option_chain SPY --priority ", &s),
            ["1", "2", "3"]
        );
        assert_eq!(
            texts("enqueue option_chain SPY --during re", &s),
            ["regular"]
        );
        assert_eq!(
            texts("enqueue option_chain SPY --param target", &s),
            ["target_dte="]
        );
        // After an option's value the positionals go on where they were.
        assert_eq!(texts("enqueue --priority 1 option_", &s), ["option_chain"]);
        assert_eq!(texts("retry --", &s), ["--all-failed"]);
        assert_eq!(texts("dismiss --all-failed --", &s), ["--reason"]);
        assert!(texts("pause ", &s).is_empty());
    }

    #[test]
    fn ids_by_prefix_among_the_requests_the_verb_applies_to() {
        let s = sample::with_distinct_ids(sample::snapshot(5));
        let failed: Vec<String> = s.failed.iter().map(|r| r.request_id.to_string()).collect();
        let mut got = texts("retry ", &s);
        got.sort();
        let mut want = failed.clone();
        want.sort();
        assert_eq!(got, want);
        let one = &failed[2];
        assert_eq!(
            texts(&format!("dismiss {}", &one[..8]), &s),
            vec![one.to_string()]
        );
        assert_eq!(texts("cancel ", &s).len(), s.pending.len());
        assert_eq!(
            texts("reprioritize ", &s).len(),
            s.pending.len() + s.failed.len()
        );
        let all = s.pending.len() + s.processing.len() + s.failed.len() + s.done.len();
        assert_eq!(texts("show ", &s).len(), all);
        // The second positional of reprioritize is the priority.
        assert_eq!(texts(&format!("reprioritize {one} "), &s), ["1", "2", "3"]);
    }

    #[test]
    fn conids_and_strategies_of_the_legs() {
        let s = sample::snapshot(5);
        assert_eq!(texts("demote 7567", &s), ["756733", "756734"]);
        assert_eq!(texts("promote ", &s).len(), s.legs.len());
        assert_eq!(
            texts("promote 756733 --strategy \"SPY", &s),
            ["\"SPY iron condor Dec\""]
        );
        assert_eq!(texts("promote 756733 --strategy p", &s), ["pairs"]);
    }

    #[test]
    fn the_word_being_completed_is_found_and_the_common_start_of_candidates() {
        let s = sample::snapshot(5);
        let symbols: Vec<String> = vec![];
        let c = Catalog {
            snap: &s,
            symbols: &symbols,
        };
        assert_eq!(complete("retry --al", &c).start, 6);
        assert_eq!(complete("retry ", &c).start, 6);
        assert_eq!(complete("", &c).start, 0);
        let ks = complete("re", &c).candidates;
        assert_eq!(common_prefix(&ks), "re");
        let ks = complete("enqueue market_bars SPY --param ", &c).candidates;
        assert!(ks.iter().all(|k| k.text.ends_with('=')), "{ks:?}");
        assert_eq!(
            common_prefix(&[cand("retry", ""), cand("reprioritize", "")]),
            "re"
        );
        assert_eq!(
            common_prefix(&[cand("756733", ""), cand("756734", "")]),
            "75673"
        );
        assert!(texts("unknown ", &s).is_empty());
        assert!(texts("list ", &s).is_empty(), "not a console verb");
    }
}
