//! The `:` line's history: up and down walk it (only the lines that start with what is
//! typed, when something is), and it persists across sessions in a file of one line per
//! command, appended to as commands run (so two consoles add to it without losing each
//! other's lines) and trimmed to the newest lines when it has grown to twice that.

use std::io::Write;
use std::path::{Path, PathBuf};

/// How many lines the history keeps.
pub const HISTORY_KEPT: usize = 1000;

#[derive(Debug, Default, Clone)]
pub struct History {
    /// Oldest first.
    entries: Vec<String>,
    path: Option<PathBuf>,
    /// While walking: the line as typed before the walk, and the entry shown.
    walk: Option<(String, usize)>,
}

/// A line fit for the history: one line, no control characters.
fn clean(line: &str) -> String {
    line.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

impl History {
    /// A history kept in memory only.
    pub fn in_memory(entries: Vec<String>) -> Self {
        Self {
            entries,
            path: None,
            walk: None,
        }
    }

    /// The history in `path` (none yet when the file does not exist). A file that cannot
    /// be read gives an empty history that is not saved, and the reason.
    pub fn load(path: &Path) -> (Self, Option<String>) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return (
                    Self::default(),
                    Some(format!(
                        "command history {} cannot be read ({e}); this session's is not kept",
                        path.display()
                    )),
                )
            }
        };
        let mut entries: Vec<String> = text.lines().map(clean).filter(|l| !l.is_empty()).collect();
        let grown = entries.len() > 2 * HISTORY_KEPT;
        if entries.len() > HISTORY_KEPT {
            entries.drain(..entries.len() - HISTORY_KEPT);
        }
        let history = Self {
            entries,
            path: Some(path.to_path_buf()),
            walk: None,
        };
        let warning = if grown { history.rewrite().err() } else { None };
        (history, warning)
    }

    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes the whole history anew (atomically), after trimming.
    fn rewrite(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        let mut text = self.entries.join("\n");
        text.push('\n');
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("command history {} not saved: {e}", path.display()))
    }

    /// Adds a line that ran (not when it repeats the last one) and appends it to the
    /// file. The error says why the file was not written; the line is kept in memory.
    pub fn push(&mut self, line: &str) -> Result<(), String> {
        self.walk = None;
        let line = clean(line);
        if line.is_empty() || self.entries.last() == Some(&line) {
            return Ok(());
        }
        self.entries.push(line.clone());
        if self.entries.len() > HISTORY_KEPT {
            self.entries.remove(0);
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        let append = || -> std::io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            f.write_all(format!("{line}\n").as_bytes())
        };
        append().map_err(|e| format!("command history {} not saved: {e}", path.display()))
    }

    /// The line before the one shown (older), among those starting with what was typed
    /// when the walk began; `None` when there is none.
    pub fn older(&mut self, typed: &str) -> Option<String> {
        let (prefix, at) = self
            .walk
            .clone()
            .unwrap_or_else(|| (typed.to_string(), self.entries.len()));
        let found = (0..at)
            .rev()
            .find(|&i| self.entries[i].starts_with(&prefix) && self.entries[i] != typed)?;
        self.walk = Some((prefix, found));
        Some(self.entries[found].clone())
    }

    /// The line after the one shown (newer); past the newest, the line as typed before the
    /// walk, which ends it. `None` when not walking.
    pub fn newer(&mut self) -> Option<String> {
        let (prefix, at) = self.walk.clone()?;
        match (at + 1..self.entries.len()).find(|&i| self.entries[i].starts_with(&prefix)) {
            Some(i) => {
                self.walk = Some((prefix, i));
                Some(self.entries[i].clone())
            }
            None => {
                self.walk = None;
                Some(prefix)
            }
        }
    }

    /// Ends a walk (the line was edited or closed).
    pub fn stop(&mut self) {
        self.walk = None;
    }
}

/// Where the history lives unless `[console] history_file` says: `<data dir>/ibq/history`.
pub fn default_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("ibq").join("history"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(lines: &[&str]) -> History {
        History::in_memory(lines.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn up_walks_back_and_down_comes_back_to_what_was_typed() {
        let mut h = h(&["pause", "retry --all-failed", "resume"]);
        assert_eq!(h.older("").as_deref(), Some("resume"));
        assert_eq!(h.older("resume").as_deref(), Some("retry --all-failed"));
        assert_eq!(h.older("retry --all-failed").as_deref(), Some("pause"));
        assert_eq!(h.older("pause"), None, "nothing older");
        assert_eq!(h.newer().as_deref(), Some("retry --all-failed"));
        assert_eq!(h.newer().as_deref(), Some("resume"));
        assert_eq!(h.newer().as_deref(), Some(""), "back to the empty line");
        assert_eq!(h.newer(), None, "the walk is over");
    }

    #[test]
    fn what_is_typed_narrows_the_walk() {
        let mut h = h(&[
            "retry 1b9d",
            "pause",
            "reprioritize 1b9d 1",
            "retry --all-failed",
        ]);
        assert_eq!(h.older("ret").as_deref(), Some("retry --all-failed"));
        assert_eq!(h.older("retry --all-failed").as_deref(), Some("retry 1b9d"));
        assert_eq!(h.newer().as_deref(), Some("retry --all-failed"));
        assert_eq!(h.newer().as_deref(), Some("ret"));
        let mut h2 = h.clone();
        assert_eq!(h2.older("zzz"), None);
    }

    #[test]
    fn lines_persist_across_sessions_and_repeats_are_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("history");
        let (mut a, warn) = History::load(&path);
        assert!(warn.is_none() && a.entries().is_empty());
        a.push("retry --all-failed").unwrap();
        a.push("retry --all-failed").unwrap();
        a.push("  pause  ").unwrap();
        a.push("").unwrap();
        let (mut b, _) = History::load(&path);
        assert_eq!(b.entries(), ["retry --all-failed", "pause"]);
        assert_eq!(b.older("").as_deref(), Some("pause"));
        // A second console appending at the same time loses nothing.
        a.push("resume").unwrap();
        b.push("show 1b9d").unwrap();
        let (c, _) = History::load(&path);
        assert_eq!(
            c.entries(),
            ["retry --all-failed", "pause", "resume", "show 1b9d"]
        );
    }

    #[test]
    fn a_long_file_is_trimmed_to_the_newest_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history");
        let lines: Vec<String> = (0..2 * HISTORY_KEPT + 5)
            .map(|i| format!("show {i}"))
            .collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        let (h, warn) = History::load(&path);
        assert!(warn.is_none(), "{warn:?}");
        assert_eq!(h.entries().len(), HISTORY_KEPT);
        assert_eq!(
            h.entries().last().unwrap(),
            &format!("show {}", 2 * HISTORY_KEPT + 4)
        );
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(on_disk.lines().count(), HISTORY_KEPT);
    }

    #[test]
    fn an_unreadable_or_unwritable_file_is_named_and_nothing_is_lost_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the file should be: cannot be read as text nor appended to.
        let path = dir.path().join("history");
        std::fs::create_dir(&path).unwrap();
        let (mut h, warn) = History::load(&path);
        let warn = warn.expect("a warning");
        assert!(warn.contains(&path.display().to_string()), "{warn}");
        assert!(h.path().is_none(), "not saved after a failed read");
        h.push("pause").unwrap();
        assert_eq!(h.entries(), ["pause"]);
        let mut h = History {
            path: Some(path.clone()),
            ..History::default()
        };
        let e = h.push("pause").unwrap_err();
        assert!(e.contains("not saved"), "{e}");
        assert_eq!(h.entries(), ["pause"]);
    }
}
