//! The new-request form: type, symbol, priority and `k=v` parameters, checked with the
//! queue's own rules before anything is sent; a refusal names the field.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{centered, frame_popup, TextInput};
use crate::console::theme::Theme;
use crate::queue::params::{params_from_pairs, Params};
use crate::queue::state::normalize_symbol;
use crate::queue::{Actor, NewRequest, Priority, RequestType};

pub const FIELDS: [&str; 4] = ["type", "symbol", "priority", "parameters"];

#[derive(Debug, Clone)]
pub struct NewRequestForm {
    pub inputs: [TextInput; 4],
    pub focus: usize,
    /// The field refused and why.
    pub error: Option<(usize, String)>,
}

impl Default for NewRequestForm {
    fn default() -> Self {
        Self {
            inputs: [
                TextInput::new("option_chain"),
                TextInput::default(),
                TextInput::new("2"),
                TextInput::default(),
            ],
            focus: 1,
            error: None,
        }
    }
}

/// Splits `k=v k2="a b"` on spaces and commas outside quotes.
fn pairs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' | ',' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl NewRequestForm {
    /// Moves between fields (tab, shift-tab, up, down); false for any other key.
    pub fn navigate(&mut self, key: &KeyEvent) -> bool {
        match key.code {
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1) % FIELDS.len(),
            KeyCode::BackTab | KeyCode::Up => {
                self.focus = (self.focus + FIELDS.len() - 1) % FIELDS.len()
            }
            _ => return false,
        }
        true
    }

    pub fn edit(&mut self, key: &KeyEvent) -> bool {
        let changed = self.inputs[self.focus].edit(key);
        if changed && self.error.as_ref().is_some_and(|(f, _)| *f == self.focus) {
            self.error = None;
        }
        changed
    }

    /// The request the form describes, or the first field in error.
    pub fn validate(&self) -> Result<NewRequest, (usize, String)> {
        let ty: RequestType = self.inputs[0].value.trim().parse().map_err(|e| (0, e))?;
        let symbol = normalize_symbol(&self.inputs[1].value).map_err(|e| (1, e.to_string()))?;
        let priority: Priority = self.inputs[2].value.parse().map_err(|e| (2, e))?;
        let raw = params_from_pairs(&pairs(&self.inputs[3].value))
            .map_err(|e| (3, e.replace("--param ", "")))?;
        let params = Params::parse(ty, &raw).map_err(|e| (3, e.message))?;
        Ok(NewRequest {
            request_type: ty,
            symbol,
            priority,
            parameters: params.to_json(),
            changed_by: Actor::Operator,
            schedule_key: None,
            during: Default::default(),
        })
    }

    pub fn draw(&self, frame: &mut Frame, area: Rect, theme: Theme, hint: &str) {
        let popup = centered(area, 72, 11);
        let inner = frame_popup(frame, popup, theme, "New request", hint);
        let help = [
            RequestType::ALL.map(|t| t.as_str()).join(" "),
            "1-12 letters, digits, . / -".to_string(),
            "1 immediate · 2 normal · 3 background".to_string(),
            "k=v separated by spaces: target_dte=30 strikes=5 rights=C".to_string(),
        ];
        let mut lines = Vec::new();
        for (i, name) in FIELDS.iter().enumerate() {
            let focused = i == self.focus;
            let in_error = self.error.as_ref().is_some_and(|(f, _)| *f == i);
            let label_style = if in_error {
                theme.error()
            } else if focused {
                theme.key()
            } else {
                theme.title()
            };
            let mut spans = vec![
                Span::styled(if focused { "▶ " } else { "  " }, theme.key()),
                Span::styled(format!("{name:<11}"), label_style),
                Span::raw(crate::text::clean(&self.inputs[i].value).into_owned()),
            ];
            if focused {
                spans.push(Span::styled("█", theme.key()));
            }
            lines.push(Line::from(spans));
        }
        lines.push(Line::from(""));
        lines.push(Line::styled(
            format!("{}: {}", FIELDS[self.focus], help[self.focus]),
            theme.dim(),
        ));
        if let Some((f, e)) = &self.error {
            lines.push(Line::styled(
                format!("✖ {}: {}", FIELDS[*f], crate::text::Clean(e)),
                theme.error(),
            ));
        }
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(ty: &str, sym: &str, prio: &str, params: &str) -> NewRequestForm {
        NewRequestForm {
            inputs: [
                TextInput::new(ty),
                TextInput::new(sym),
                TextInput::new(prio),
                TextInput::new(params),
            ],
            focus: 0,
            error: None,
        }
    }

    #[test]
    fn a_valid_form_becomes_an_operator_request() {
        let r = form("option_chain", " spy ", "1", "target_dte=30 rights=C")
            .validate()
            .unwrap();
        assert_eq!(r.symbol, "SPY");
        assert_eq!(r.priority, Priority::IMMEDIATE);
        assert_eq!(r.changed_by, Actor::Operator);
        assert_eq!(r.parameters["target_dte"], 30);
    }

    #[test]
    fn each_field_error_names_its_field() {
        assert_eq!(form("chain", "SPY", "2", "").validate().unwrap_err().0, 0);
        assert_eq!(
            form("option_chain", "S P Y", "2", "")
                .validate()
                .unwrap_err()
                .0,
            1
        );
        assert_eq!(
            form("option_chain", "SPY", "7", "")
                .validate()
                .unwrap_err()
                .0,
            2
        );
        let (f, e) = form("option_chain", "SPY", "2", "target_dte=soon")
            .validate()
            .unwrap_err();
        assert_eq!(f, 3);
        assert!(e.contains("target_dte"), "{e}");
        assert_eq!(
            form("market_bars", "SPY", "2", "oops")
                .validate()
                .unwrap_err()
                .0,
            3
        );
    }
}
