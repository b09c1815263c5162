//! console

pub mod keymap;
