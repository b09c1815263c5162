//! Checks every rendered picture passes: no text the fixture holds is cut mid-word without
//! an ellipsis, and no conid is ever cut.

use ratatui::buffer::Buffer;

use super::*;
use crate::console::panes::legs::{describe, describe_compact, state_text};
use crate::console::panes::schedule::tally_text;
use crate::queue::params::Params;

fn word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every text from outside the console's own words that the fixture may show, cleaned as
/// the panes clean it.
fn known_texts(app: &App) -> Vec<String> {
    let s = &app.snap;
    let mut out: Vec<String> = Vec::new();
    for l in s.legs.iter() {
        out.push(describe(l));
        out.push(describe_compact(l));
        out.extend(l.strategy.clone());
        out.push(state_text(&l.state));
        out.push(l.conid.to_string());
    }
    for r in s
        .pending
        .iter()
        .chain(s.processing.iter())
        .chain(s.failed.iter())
    {
        out.push(r.symbol.clone());
        out.push(r.request_type.as_str().to_string());
        if let Ok(p) = Params::parse(r.request_type, &r.parameters) {
            out.push(p.summary());
        }
        out.extend(r.error_message.clone());
    }
    for j in s.jobs.iter() {
        out.push(j.name.clone());
        out.push(j.timing.clone());
        out.push(crate::console::panes::schedule::timing_short(&j.timing));
        out.push(tally_text(j));
    }
    for l in app.logs.buffer.lock().iter() {
        out.push(l.message.clone());
        out.push(l.fields_text());
    }
    out.extend(s.alert.clone());
    out.into_iter()
        .map(|t| crate::text::clean(&t).into_owned())
        .collect()
}

/// Panics naming the line when a known text shows cut mid-word with no `…` after it, or
/// a conid of the fixture shows cut at all.
pub fn check_cuts(app: &App, buf: &Buffer) {
    let screen = text(buf);
    let known = known_texts(app);
    let lines: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    for t in &known {
        let chars: Vec<char> = t.chars().collect();
        if chars.len() < 6 {
            continue;
        }
        for line in &lines {
            for at in 0..line.len() {
                if line[at] != chars[0] || (at > 0 && word(line[at - 1])) {
                    continue;
                }
                // How much of the text shows here.
                let k = line[at..]
                    .iter()
                    .zip(&chars)
                    .take_while(|(a, b)| a == b)
                    .count();
                // Only cuts between two letters: a text cut between words may be a
                // shorter text, and numbers are checked whole below.
                if k < 5
                    || k == chars.len()
                    || !(chars[k - 1].is_alphabetic() && chars[k].is_alphabetic())
                {
                    continue;
                }
                let shown: String = chars[..k].iter().collect();
                if known.contains(&shown) {
                    continue;
                }
                match line.get(at + k) {
                    Some(c) if word(*c) || *c == '…' => {}
                    next => panic!(
                        "`{t}` is cut to `{shown}` without an ellipsis (next: {next:?}):\n{}\n\n{screen}",
                        line.iter().collect::<String>()
                    ),
                }
            }
        }
    }
    // A conid is a number: shown whole or not at all.
    for l in app.snap.legs.iter() {
        let conid = l.conid.to_string();
        for line in &lines {
            let s: String = line.iter().collect();
            let mut rest = s.as_str();
            while let Some(i) = rest.find(|c: char| c.is_ascii_digit()) {
                let run: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                assert!(
                    !(run.len() >= 4 && run.len() < conid.len() && conid.starts_with(&run)),
                    "conid {conid} is cut to {run}:\n{s}\n\n{screen}"
                );
                rest = &rest[i + run.len()..];
            }
        }
    }
    // Where the legs table shows, every leg it has room for shows its whole conid.
    let header = |l: &str| l.contains("CONID") && l.contains("CONTRACT");
    if screen.lines().any(header) {
        let rows = screen
            .lines()
            .skip_while(|l| !header(l))
            .skip(1)
            .take_while(|l| !l.contains('└'))
            .count();
        for l in app.snap.legs.iter().take(rows) {
            assert!(
                screen.contains(&format!(" {} ", l.conid)),
                "conid {} is not shown whole:\n{screen}",
                l.conid
            );
        }
    }
}

#[test]
fn the_check_catches_a_silent_cut_and_a_cut_conid() {
    let app = app(3);
    let mut buf = Buffer::empty(ratatui::layout::Rect::new(0, 0, 40, 3));
    buf.set_string(
        0,
        0,
        "│ 756733 SPY iron condor Dec streamin │",
        ratatui::style::Style::default(),
    );
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_cuts(&app, &buf)));
    assert!(caught.is_err(), "`streamin` passed the check");

    let mut buf = Buffer::empty(ratatui::layout::Rect::new(0, 0, 40, 3));
    buf.set_string(
        0,
        0,
        "│ 4955125 ES hedge streaming │",
        ratatui::style::Style::default(),
    );
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_cuts(&app, &buf)));
    assert!(caught.is_err(), "a cut conid passed the check");

    let mut buf = Buffer::empty(ratatui::layout::Rect::new(0, 0, 40, 3));
    buf.set_string(
        0,
        0,
        "│ 495512563 ES hedge stream… │",
        ratatui::style::Style::default(),
    );
    check_cuts(&app, &buf);
}
