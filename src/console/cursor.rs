//! Selection and scrolling over a list of `len` rows, of which only a window is drawn.
//! The window is computed at draw time (from `&self`, hence the cells) so that the selected
//! row is always visible and only the rows of the window are ever formatted.

use std::cell::Cell;
use std::ops::Range;

use super::keymap::Action;

#[derive(Debug, Default, Clone)]
pub struct Cursor {
    pub selected: usize,
    offset: Cell<usize>,
    /// Rows the last draw had room for; a page up/down moves by this much.
    page: Cell<usize>,
}

impl Cursor {
    /// Applies a movement action; false when `action` is not a movement.
    pub fn handle(&mut self, action: Action, len: usize) -> bool {
        let page = self.page.get().max(1);
        let last = len.saturating_sub(1);
        self.selected = match action {
            Action::MoveUp => self.selected.saturating_sub(1),
            Action::MoveDown => (self.selected + 1).min(last),
            Action::PageUp => self.selected.saturating_sub(page),
            Action::PageDown => (self.selected + page).min(last),
            Action::Top => 0,
            Action::Bottom => last,
            _ => return false,
        };
        true
    }

    pub fn clamp(&mut self, len: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
    }

    /// The rows to draw in `height` lines: scrolls as little as possible to keep the selected
    /// row in view.
    pub fn window(&self, len: usize, height: usize) -> Range<usize> {
        self.page.set(height);
        if len == 0 || height == 0 {
            return 0..0;
        }
        let selected = self.selected.min(len - 1);
        let mut offset = self.offset.get().min(len.saturating_sub(height));
        if selected < offset {
            offset = selected;
        } else if selected >= offset + height {
            offset = selected + 1 - height;
        }
        self.offset.set(offset);
        offset..(offset + height).min(len)
    }

    pub fn page(&self) -> usize {
        self.page.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_follows_the_selection_and_never_exceeds_height() {
        let mut c = Cursor::default();
        assert_eq!(c.window(100_000, 10), 0..10);
        c.handle(Action::PageDown, 100_000);
        assert_eq!(c.selected, 10);
        assert_eq!(c.window(100_000, 10), 1..11);
        c.handle(Action::Bottom, 100_000);
        assert_eq!(c.window(100_000, 10), 99_990..100_000);
        c.handle(Action::MoveUp, 100_000);
        assert_eq!(
            c.window(100_000, 10),
            99_990..100_000,
            "no scroll while in view"
        );
        c.handle(Action::Top, 100_000);
        assert_eq!(c.window(100_000, 10), 0..10);
        assert_eq!(c.window(3, 10), 0..3);
        assert_eq!(c.window(0, 10), 0..0);
    }
}
