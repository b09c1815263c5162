//! The `:` command line: the CLI's grammar typed in the console (`parse`), tab completion
//! (`complete`), a history walked with up and down and kept across sessions (`history`).
//! This module holds the line being edited and draws it in the status row, with the
//! completion menu above it.

pub mod complete;
pub mod history;
pub mod parse;
pub mod words;
