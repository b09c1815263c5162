//! The console's key map: which key does which action in which context.
//!
//! The defaults live in the top-level `keymap.toml` (embedded); a user file overrides only
//! the actions it names. Any problem in either file is an error naming the file and line.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crossterm::event::{KeyEvent, KeyEventKind};
use serde::{Deserialize, Serialize};
use toml::Spanned;

mod key;

pub use key::Key;

/// The built-in bindings, also the documentation of every default.
pub const DEFAULT_KEYMAP: &str = include_str!("../../../keymap.toml");

/// How the built-in file is named in errors.
const BUILTIN_NAME: &str = "<built-in keymap.toml>";

macro_rules! actions {
    ($($variant:ident => $name:literal, $desc:literal;)*) => {
        /// Something the operator can ask the console to do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Action {
            $(#[doc = $desc] #[serde(rename = $name)] $variant,)*
        }

        impl Action {
            /// Every action, in help-screen order.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The snake_case name used in `keymap.toml`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }

            /// One line for the help screen.
            pub fn description(self) -> &'static str {
                match self {
                    $(Action::$variant => $desc,)*
                }
            }

            /// The action named `name` in `keymap.toml`, if any.
            pub fn from_name(name: &str) -> Option<Action> {
                Self::ALL.iter().copied().find(|a| a.name() == name)
            }
        }
    };
}

actions! {
    MoveUp => "move_up", "Select the previous row";
    MoveDown => "move_down", "Select the next row";
    PageUp => "page_up", "Scroll one screen up";
    PageDown => "page_down", "Scroll one screen down";
    Top => "top", "Select the first row";
    Bottom => "bottom", "Select the last row";
    NextPane => "next_pane", "Focus the next pane";
    PrevPane => "prev_pane", "Focus the previous pane";
    FocusPending => "focus_pending", "Focus the pending requests pane";
    FocusProcessing => "focus_processing", "Focus the processing requests pane";
    FocusFailed => "focus_failed", "Focus the failed requests pane";
    FocusLegs => "focus_legs", "Focus the legs pane";
    FocusLogs => "focus_logs", "Focus the logs pane";
    FocusSchedule => "focus_schedule", "Focus the schedule pane";
    FocusDone => "focus_done", "Focus the done pane (latest successes)";
    FocusActions => "focus_actions", "Focus the operator actions pane";
    Details => "details", "Open the selected row's details";
    Retry => "retry", "Put the selected failed request back to pending";
    RetryAllFailed => "retry_all_failed", "Put every failed request shown back to pending";
    DismissAllFailed => "dismiss_all_failed", "Dismiss every failed request shown: CANCELLED";
    PriorityUp => "priority_up", "Raise the selected request's priority";
    PriorityDown => "priority_down", "Lower the selected request's priority";
    Priority1 => "priority_1", "Set the selected request's priority to 1";
    Priority2 => "priority_2", "Set the selected request's priority to 2";
    Priority3 => "priority_3", "Set the selected request's priority to 3";
    Cancel => "cancel", "Cancel the selected (or marked) pending requests";
    CancelAllPending => "cancel_all_pending", "Cancel every pending request shown";
    Release => "release", "Abandon the selected (or marked) runs: back to pending";
    Mark => "mark", "Mark or unmark the selected request";
    SelectAll => "select_all", "Mark every row shown";
    InvertMarks => "invert_marks", "Mark the unmarked rows shown and unmark the marked ones";
    RangeSelect => "range_select", "Mark a range from here to the cursor; again to keep it";
    Filter => "filter", "Type a filter for the focused pane";
    SortNext => "sort_next", "Sort by the next column, then the order of service";
    SortReverse => "sort_reverse", "Reverse the sort";
    Promote => "promote", "Promote a contract to a streaming leg";
    Demote => "demote", "Demote the selected (or marked) legs";
    NewRequest => "new_request", "Enqueue a new request";
    TogglePause => "toggle_pause", "Pause or resume the worker";
    Reconnect => "reconnect", "Drop and re-open the gateway connection";
    CommandLine => "command_line", "Type a CLI command (:retry --all-failed)";
    Complete => "complete", "Complete the word; again: next candidate";
    CompleteBack => "complete_back", "The previous candidate";
    HistoryPrev => "history_prev", "Older command starting with what is typed";
    HistoryNext => "history_next", "Newer command, back to what was typed";
    Help => "help", "Show the key map";
    Quit => "quit", "Leave the console";
    Confirm => "confirm", "Answer yes to the dialog";
    Dismiss => "dismiss", "Close the dialog, details view or filter";
    Submit => "submit", "Accept the prompt's text or the dialog's default";
    CycleLogLevel => "cycle_log_level", "Cycle the lowest log level shown";
    ToggleFollow => "toggle_follow", "Follow the newest log line, or stay put";
    RunJobNow => "run_job_now", "Run the selected scheduler job now, at priority 1";
    Copy => "copy", "Copy the selected (or marked) ids, conids or log line";
    CopyShow => "copy_show", "Copy `ibq show ID` for the selected (or marked) requests";
    ToggleGroups => "toggle_groups", "Group the failed pane by cause, or list each request";
    DismissFailure => "dismiss_failure", "Dismiss the selected (or marked) failures as CANCELLED";
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a binding applies. A pane context wins over `Global` while that pane is focused;
/// `Prompt` and `CommandLine` are modal: `Global` does not apply there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    Global,
    Queue,
    Legs,
    Logs,
    Schedule,
    CommandLine,
    Prompt,
}

impl Context {
    /// Every context, in the order of `keymap.toml`.
    pub const ALL: &'static [Context] = &[
        Context::Global,
        Context::Queue,
        Context::Legs,
        Context::Logs,
        Context::Schedule,
        Context::CommandLine,
        Context::Prompt,
    ];

    /// The table name used in `keymap.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Context::Global => "global",
            Context::Queue => "queue",
            Context::Legs => "legs",
            Context::Logs => "logs",
            Context::Schedule => "schedule",
            Context::CommandLine => "cmdline",
            Context::Prompt => "prompt",
        }
    }

    /// The context named `name` in `keymap.toml`, if any.
    pub fn from_name(name: &str) -> Option<Context> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key map file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyMapError {
    #[error("cannot read key map file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key map file {path}, line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One parsed binding with the place it came from, for error messages.
#[derive(Debug, Clone)]
struct Origin {
    path: PathBuf,
    line: usize,
}

/// A parsed file: per context, per action, the keys and where each was written.
type FileMap = BTreeMap<Context, BTreeMap<Action, Vec<(Key, Origin)>>>;

/// The raw shape of `keymap.toml`, with spans for the error messages.
type RawFile = BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Vec<Spanned<String>>>>;

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn parse_file(text: &str, path: &Path) -> Result<FileMap, KeyMapError> {
    let invalid = |offset: usize, message: String| KeyMapError::Invalid {
        path: path.to_path_buf(),
        line: line_of(text, offset),
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        invalid(
            e.span().map(|s| s.start).unwrap_or(0),
            e.message().trim().to_string(),
        )
    })?;
    let mut map = FileMap::new();
    for (context_name, actions) in raw {
        let context = Context::from_name(context_name.get_ref()).ok_or_else(|| {
            invalid(
                context_name.span().start,
                format!(
                    "unknown context `[{}]` (known: {})",
                    context_name.get_ref(),
                    Context::ALL
                        .iter()
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let table = map.entry(context).or_default();
        for (action_name, keys) in actions {
            let action = Action::from_name(action_name.get_ref()).ok_or_else(|| {
                invalid(
                    action_name.span().start,
                    format!(
                        "unknown action `{}` in [{context}] (`ibq keys` lists them)",
                        action_name.get_ref()
                    ),
                )
            })?;
            let mut parsed: Vec<(Key, Origin)> = Vec::with_capacity(keys.len());
            for key in keys {
                let start = key.span().start;
                let k: Key = key.get_ref().parse().map_err(|m| invalid(start, m))?;
                if parsed.iter().any(|(p, _)| *p == k) {
                    return Err(invalid(
                        start,
                        format!("key `{k}` is listed twice for `{action}` in [{context}]"),
                    ));
                }
                let origin = Origin {
                    path: path.to_path_buf(),
                    line: line_of(text, start),
                };
                parsed.push((k, origin));
            }
            table.insert(action, parsed);
        }
    }
    Ok(map)
}

/// The effective key map: the defaults, overridden by the user's file.
#[derive(Debug, Clone)]
pub struct KeyMap {
    /// Per context, per action, the keys in the order written.
    bindings: BTreeMap<Context, BTreeMap<Action, Vec<Key>>>,
    /// Per context, which action each key triggers.
    lookup: BTreeMap<Context, HashMap<Key, Action>>,
    /// The user file that was merged in, if any.
    user_file: Option<PathBuf>,
}

impl KeyMap {
    /// Loads the defaults and `user`, else `<config dir>/ibq/keymap.toml` if it exists.
    /// An explicit path that does not exist is an error; the implicit one is optional.
    pub fn load(user: Option<&Path>) -> Result<KeyMap, KeyMapError> {
        let path = match user {
            Some(p) => Some(p.to_path_buf()),
            None => Self::implicit_path(),
        };
        match path {
            None => Self::from_texts(None),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| KeyMapError::Read {
                    path: path.clone(),
                    source,
                })?;
                Self::from_texts(Some((&text, &path)))
            }
        }
    }

    /// The built-in defaults alone.
    pub fn defaults() -> Result<KeyMap, KeyMapError> {
        Self::from_texts(None)
    }

    /// The defaults overridden by `user` (its text and the path naming it in errors).
    pub fn from_texts(user: Option<(&str, &Path)>) -> Result<KeyMap, KeyMapError> {
        let mut merged = parse_file(DEFAULT_KEYMAP, Path::new(BUILTIN_NAME))?;
        let mut user_file = None;
        if let Some((text, path)) = user {
            for (context, actions) in parse_file(text, path)? {
                let table = merged.entry(context).or_default();
                for (action, keys) in actions {
                    table.insert(action, keys);
                }
            }
            user_file = Some(path.to_path_buf());
        }
        Self::build(merged, user_file)
    }

    fn implicit_path() -> Option<PathBuf> {
        let path = dirs::config_dir()?.join("ibq").join("keymap.toml");
        path.is_file().then_some(path)
    }

    fn build(merged: FileMap, user_file: Option<PathBuf>) -> Result<KeyMap, KeyMapError> {
        let mut bindings = BTreeMap::new();
        let mut lookup = BTreeMap::new();
        for (context, actions) in merged {
            let mut keys_of: BTreeMap<Action, Vec<Key>> = BTreeMap::new();
            let mut by_key: HashMap<Key, (Action, Origin)> = HashMap::new();
            // Built-in bindings first, so that a clash is reported at the user's line.
            let mut all: Vec<(Action, Key, Origin)> = actions
                .iter()
                .flat_map(|(a, ks)| ks.iter().map(move |(k, o)| (*a, *k, o.clone())))
                .collect();
            all.sort_by_key(|(_, _, o)| (o.path != Path::new(BUILTIN_NAME), o.line));
            for (action, key, origin) in all {
                if let Some((other, other_origin)) = by_key.get(&key) {
                    let place = if other_origin.path == origin.path {
                        format!("line {}", other_origin.line)
                    } else {
                        format!(
                            "{}, line {}",
                            other_origin.path.display(),
                            other_origin.line
                        )
                    };
                    return Err(KeyMapError::Invalid {
                        path: origin.path,
                        line: origin.line,
                        message: format!(
                            "key `{key}` in [{context}] is bound to `{action}` here and to \
                             `{other}` at {place}; a key can do only one thing per context"
                        ),
                    });
                }
                by_key.insert(key, (action, origin));
            }
            for (action, ks) in actions {
                keys_of.insert(action, ks.into_iter().map(|(k, _)| k).collect());
            }
            lookup.insert(
                context,
                by_key.into_iter().map(|(k, (a, _))| (k, a)).collect(),
            );
            bindings.insert(context, keys_of);
        }
        Ok(KeyMap {
            bindings,
            lookup,
            user_file,
        })
    }

    /// The action for a key press while `context` is active: the context's own binding first,
    /// then `Global` (except in the modal `Prompt`). Key releases never trigger anything.
    pub fn action_for(&self, context: Context, event: &KeyEvent) -> Option<Action> {
        if event.kind == KeyEventKind::Release {
            return None;
        }
        let key = Key::from_event(event);
        let find = |c: Context| self.lookup.get(&c).and_then(|m| m.get(&key)).copied();
        match context {
            Context::Prompt | Context::CommandLine | Context::Global => find(context),
            pane => find(pane).or_else(|| find(Context::Global)),
        }
    }

    /// Every (context, action, keys) the map names, in file order of contexts and help order of
    /// actions; an action unbound with `[]` is listed with no keys.
    pub fn bindings(&self) -> impl Iterator<Item = (Context, Action, Vec<Key>)> + '_ {
        self.bindings.iter().flat_map(|(context, actions)| {
            Action::ALL
                .iter()
                .filter_map(move |a| actions.get(a).map(|ks| (*context, *a, ks.clone())))
        })
    }

    /// The user file merged over the defaults, if any.
    pub fn user_file(&self) -> Option<&Path> {
        self.user_file.as_deref()
    }

    /// The table `ibq keys` prints: context, keys, action, description.
    pub fn render_table(&self) -> String {
        let rows: Vec<[String; 4]> = self
            .bindings()
            .map(|(c, a, ks)| {
                let keys = if ks.is_empty() {
                    "(unbound)".to_string()
                } else {
                    ks.iter().map(Key::to_string).collect::<Vec<_>>().join(" ")
                };
                [
                    c.to_string(),
                    keys,
                    a.to_string(),
                    a.description().to_string(),
                ]
            })
            .collect();
        let header = ["CONTEXT", "KEYS", "ACTION", "DESCRIPTION"].map(String::from);
        let mut widths = [0usize; 3];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        match &self.user_file {
            Some(p) => out.push_str(&format!(
                "# built-in defaults overridden by {}\n",
                p.display()
            )),
            None => out.push_str("# built-in defaults\n"),
        }
        for row in std::iter::once(&header).chain(&rows) {
            let line = format!(
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyModifiers};

    fn key(s: &str) -> Key {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn press(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    fn user(text: &str) -> Result<KeyMap, KeyMapError> {
        KeyMap::from_texts(Some((text, Path::new("my-keys.toml"))))
    }

    fn user_err(text: &str) -> String {
        user(text).expect_err("should be rejected").to_string()
    }

    fn keys_of(map: &KeyMap, context: Context, action: Action) -> Option<Vec<String>> {
        map.bindings()
            .find(|(c, a, _)| *c == context && *a == action)
            .map(|(_, _, ks)| ks.iter().map(Key::to_string).collect())
    }

    #[test]
    fn defaults_parse_without_conflicts() {
        let map = KeyMap::defaults().unwrap();
        assert!(map.user_file().is_none());
        assert_eq!(
            keys_of(&map, Context::Global, Action::Quit),
            Some(vec!["q".to_string()])
        );
    }

    #[test]
    fn defaults_bind_every_action_somewhere() {
        let map = KeyMap::defaults().unwrap();
        for action in Action::ALL {
            assert!(
                map.bindings()
                    .any(|(_, a, ks)| a == *action && !ks.is_empty()),
                "{action} has no default key"
            );
        }
    }

    #[test]
    fn defaults_have_no_ctrl_shift_chords() {
        let map = KeyMap::defaults().unwrap();
        for (context, action, keys) in map.bindings() {
            for k in keys {
                assert!(!k.is_ctrl_shift(), "[{context}] {action} uses {k}");
            }
        }
        assert!(key("ctrl-shift-r").is_ctrl_shift());
        assert!(key("ctrl-R").is_ctrl_shift());
        assert!(!key("ctrl-r").is_ctrl_shift());
        assert!(!key("R").is_ctrl_shift());
    }

    #[test]
    fn defaults_never_shadow_a_global_key_in_a_pane() {
        // Not an error for user files, but the defaults keep every key meaning one thing.
        let map = KeyMap::defaults().unwrap();
        let global = &map.lookup[&Context::Global];
        for context in [
            Context::Queue,
            Context::Legs,
            Context::Logs,
            Context::Schedule,
        ] {
            for (k, a) in map.lookup.get(&context).into_iter().flatten() {
                if let Some(g) = global.get(k) {
                    assert_eq!(a, g, "[{context}] {k} is {a} but global {g}");
                }
            }
        }
    }

    #[test]
    fn action_names_match_serde() {
        for action in Action::ALL {
            let json = serde_json::to_string(action).unwrap();
            assert_eq!(json, format!("\"{}\"", action.name()));
            assert_eq!(Action::from_name(action.name()), Some(*action));
            assert!(!action.description().is_empty());
        }
    }

    #[test]
    fn terminal_events_match_file_keys() {
        let map = KeyMap::defaults().unwrap();
        // Terminals report uppercase letters and `?` with or without SHIFT.
        for mods in [KeyModifiers::NONE, KeyModifiers::SHIFT] {
            let ev = press(KeyCode::Char('R'), mods);
            assert_eq!(
                map.action_for(Context::Queue, &ev),
                Some(Action::RetryAllFailed)
            );
            let ev = press(KeyCode::Char('?'), mods);
            assert_eq!(map.action_for(Context::Queue, &ev), Some(Action::Help));
        }
        let ev = press(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(map.action_for(Context::Global, &ev), Some(Action::PrevPane));
        let ev = press(KeyCode::Char('r'), KeyModifiers::CONTROL);
        assert_eq!(map.action_for(Context::Logs, &ev), Some(Action::Reconnect));
        let mut release = press(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(map.action_for(Context::Global, &release), None);
    }

    #[test]
    fn pane_context_wins_over_global() {
        let map = user("[global]\nmark = [\"m\"]\n[queue]\nretry = [\"m\"]\n").unwrap();
        let m = press(KeyCode::Char('m'), KeyModifiers::NONE);
        assert_eq!(map.action_for(Context::Queue, &m), Some(Action::Retry));
        assert_eq!(map.action_for(Context::Logs, &m), Some(Action::Mark));
        assert_eq!(map.action_for(Context::Global, &m), Some(Action::Mark));
        // Queue falls back to global for what it does not bind.
        let q = press(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(map.action_for(Context::Queue, &q), Some(Action::Quit));
    }

    #[test]
    fn prompt_is_modal() {
        let map = KeyMap::defaults().unwrap();
        let q = press(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(map.action_for(Context::Prompt, &q), None);
        let esc = press(KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(map.action_for(Context::Prompt, &esc), Some(Action::Dismiss));
    }

    #[test]
    fn user_override_replaces_only_what_it_names() {
        let map = user("[queue]\nretry = [\"t\", \"ctrl-t\"]\n").unwrap();
        assert_eq!(
            keys_of(&map, Context::Queue, Action::Retry),
            Some(vec!["t".to_string(), "ctrl-t".to_string()])
        );
        let r = press(KeyCode::Char('r'), KeyModifiers::NONE);
        assert_eq!(map.action_for(Context::Queue, &r), None);
        let t = press(KeyCode::Char('t'), KeyModifiers::NONE);
        assert_eq!(map.action_for(Context::Queue, &t), Some(Action::Retry));
        // Everything else is still the default.
        let defaults = KeyMap::defaults().unwrap();
        let others = |m: &KeyMap| {
            m.bindings()
                .filter(|(c, a, _)| !(*c == Context::Queue && *a == Action::Retry))
                .collect::<Vec<_>>()
        };
        assert_eq!(others(&map), others(&defaults));
        assert_eq!(map.user_file(), Some(Path::new("my-keys.toml")));
    }

    #[test]
    fn empty_list_unbinds() {
        let map = user("[global]\nquit = []\n").unwrap();
        let q = press(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(map.action_for(Context::Global, &q), None);
        assert_eq!(keys_of(&map, Context::Global, Action::Quit), Some(vec![]));
        assert!(map.render_table().contains("(unbound)"));
    }

    #[test]
    fn unbinding_frees_the_key_for_another_action() {
        let map = user("[global]\nquit = []\nnew_request = [\"q\"]\n").unwrap();
        let q = press(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(
            map.action_for(Context::Global, &q),
            Some(Action::NewRequest)
        );
    }

    #[test]
    fn unknown_action_names_file_and_line() {
        let err = user_err("[global]\nquit = [\"q\"]\n\nfly = [\"z\"]\n");
        assert!(err.contains("my-keys.toml"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("unknown action `fly`"), "{err}");
    }

    #[test]
    fn bad_key_names_file_and_line() {
        let err = user_err("# mine\n[queue]\nretry = [\n  \"r\",\n  \"hyper-r\",\n]\n");
        assert!(err.contains("my-keys.toml"), "{err}");
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("hyper-r"), "{err}");
    }

    #[test]
    fn unknown_context_names_file_and_line() {
        let err = user_err("[global]\nquit = [\"q\"]\n[charts]\nzoom = [\"z\"]\n");
        assert!(err.contains("my-keys.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("charts"), "{err}");
    }

    #[test]
    fn conflict_with_a_default_is_reported_at_the_user_line() {
        // `x` is cancel in the default [queue]; the user gives it to retry too.
        let err = user_err("[queue]\n\nretry = [\"x\"]\n");
        assert!(err.contains("my-keys.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("`retry`") && err.contains("`cancel`"), "{err}");
    }

    #[test]
    fn conflict_within_the_user_file_is_reported_at_the_later_line() {
        let err = user_err("[logs]\ntoggle_follow = [\"z\"]\ncycle_log_level = [\"z\"]\n");
        assert!(err.contains("my-keys.toml"), "{err}");
        assert!(err.contains("line 3") && err.contains("at line 2"), "{err}");
        assert!(
            err.contains("`toggle_follow`") && err.contains("`cycle_log_level`"),
            "{err}"
        );
    }

    #[test]
    fn toml_syntax_and_type_errors_name_the_line() {
        let err = user_err("[global]\nquit = [\"q\"]\nhelp = \"?\"\n");
        assert!(
            err.contains("my-keys.toml") && err.contains("line 3"),
            "{err}"
        );
        let err = user_err("[global]\n\nquit = q\nhelp = [\"?\"]\n");
        assert!(
            err.contains("my-keys.toml") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_key_in_one_list_is_an_error() {
        let err = user_err("[global]\nquit = [\"q\", \"q\"]\n");
        assert!(err.contains("line 2") && err.contains("twice"), "{err}");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = KeyMap::load(Some(Path::new("/nonexistent/ibq-keys.toml"))).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/ibq-keys.toml"),
            "{err}"
        );
    }

    #[test]
    fn load_reads_the_user_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(&path, "[global]\nquit = [\"Q\"]\n").unwrap();
        let map = KeyMap::load(Some(&path)).unwrap();
        assert_eq!(map.user_file(), Some(path.as_path()));
        assert_eq!(
            keys_of(&map, Context::Global, Action::Quit),
            Some(vec!["Q".to_string()])
        );
    }

    #[test]
    fn names_and_descriptions_fit_the_help_line() {
        // The help is 96 wide: borders, a 2-space indent, 16 for the keys, 20 for the name.
        for action in Action::ALL {
            assert!(action.name().len() < 20, "{action}: name too long for help");
            let n = action.description().chars().count();
            assert!(
                n <= 56,
                "{action}: description of {n} characters is cut in help"
            );
        }
    }

    #[test]
    fn printed_table_lists_every_action() {
        let table = KeyMap::defaults().unwrap().render_table();
        assert!(table.contains("CONTEXT"), "{table}");
        for action in Action::ALL {
            let line = table
                .lines()
                .find(|l| l.split_whitespace().any(|w| w == action.name()))
                .unwrap_or_else(|| panic!("{action} missing from\n{table}"));
            assert!(line.contains(action.description()), "{line}");
        }
        assert!(table
            .lines()
            .any(|l| l.starts_with("queue") && l.contains("alt-1")));
        assert!(table.contains("shift-tab"));
    }
}
