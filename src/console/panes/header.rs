//! The header (gateway and its data farms, market, worker, counts, completed-per-minute sparkline) and the
//! line-budget gauge.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};
use ratatui::Frame;

use super::View;
use crate::console::fmt;
use crate::engine::GatewayState;

/// The gateway line: a symbol readable without colour, the state, and its details.
pub fn gateway_line<'a>(view: &View) -> Line<'a> {
    let theme = view.theme;
    let now = view.now;
    let (mark, style, text) = match &view.snap.gateway {
        GatewayState::Connecting { address } => {
            ("…", theme.warn(), format!("connecting to {address}"))
        }
        GatewayState::Connected {
            address,
            server_version,
            account,
            since,
        } => {
            // The farms right after the version: the cut at 80 columns keeps them.
            let farms = view
                .snap
                .farms
                .summary()
                .map(|f| format!(" · {f}"))
                .unwrap_or_default();
            let (mark, style) = if view.snap.farms.down().next().is_some() {
                ("▲", theme.warn())
            } else {
                ("●", theme.ok())
            };
            (
                mark,
                style,
                format!(
                    "connected {account} · v{server_version}{farms} · up {} · {address}",
                    fmt::age(now, *since)
                ),
            )
        }
        GatewayState::Degraded {
            address,
            code,
            message,
            since,
        } => (
            "▲",
            theme.warn(),
            format!(
                "DEGRADED IB {code}: {message} · for {} · {address}",
                fmt::age(now, *since)
            ),
        ),
        GatewayState::Reconnecting {
            address,
            attempt,
            next_try_at,
            reason,
        } => (
            "↻",
            theme.warn(),
            format!(
                "RECONNECTING {reason} · attempt {attempt} {} · {address}",
                next_try_at
                    .map(|t| fmt::until(now, t))
                    .unwrap_or_else(|| "now".into())
            ),
        ),
        GatewayState::Disconnected { address, reason } => (
            "✖",
            theme.error(),
            format!("DISCONNECTED {reason} · {address}"),
        ),
    };
    // The address, the account and IB's messages come from outside.
    Line::from(vec![
        Span::styled("ibq ", theme.title()),
        Span::styled(format!("{mark} "), style),
        Span::styled(fmt::ext(&text), style),
    ])
}

/// The clock (New York time on the engine's clock, with seconds when `width` leaves room),
/// the market phase and the next, the worker.
fn market_line<'a>(view: &View, width: usize) -> Line<'a> {
    let theme = view.theme;
    let snap = view.snap;
    let m = &snap.market;
    // Market phases are times on the engine's clock (fast in the demo).
    let clock_now = view.clock_now();
    let next = match m.next_change_at {
        Some(t) => format!("{} {}", m.next_phase, fmt::until(clock_now, t)),
        None => m.next_phase.clone(),
    };
    // Narrow: minutes only, and the phase without the word "market", so the worker's
    // state still fits in 80 columns.
    let wide = width >= 72;
    let clock = if wide {
        crate::market::et::clock(clock_now)
    } else {
        crate::market::et::clock_short(clock_now)
    };
    let worker = &snap.worker;
    let (wtext, wstyle) = if snap.observer {
        ("observer (worker runs elsewhere)", theme.warn())
    } else if worker.paused {
        (
            "worker PAUSED",
            theme.warn().add_modifier(ratatui::style::Modifier::BOLD),
        )
    } else if worker.running {
        ("worker running", theme.ok())
    } else {
        ("worker stopped", theme.error())
    };
    let mut spans = vec![
        Span::styled(clock, theme.title()),
        Span::raw(if wide { " market " } else { " " }),
        Span::styled(m.phase.clone(), theme.title()),
        Span::raw(format!(" → {next} · ")),
        Span::styled(wtext, wstyle),
    ];
    if !worker.delayed_exchanges.is_empty() {
        spans.push(Span::styled(
            format!(" · DELAYED data: {}", worker.delayed_exchanges.join(",")),
            theme.warn(),
        ));
    }
    if let Some(t) = worker.last_batch_at {
        spans.push(Span::styled(
            format!(
                " · batch {} in {}ms {} ago",
                worker.last_batch_size,
                worker.last_batch_ms,
                fmt::age(view.now, t)
            ),
            theme.dim(),
        ));
    }
    Line::from(spans)
}

fn counts_line<'a>(view: &View) -> Line<'a> {
    let theme = view.theme;
    let c = &view.snap.counts;
    let failed_style = if c.failed > 0 {
        theme.error()
    } else {
        Style::default()
    };
    Line::from(vec![
        Span::raw(format!("pend {} · ", fmt::count(c.pending))),
        Span::raw(format!("proc {} · ", fmt::count(c.processing))),
        Span::styled(format!("failed {}", fmt::count(c.failed)), failed_style),
        Span::raw(format!(
            " · done {} · canc {}",
            fmt::count(c.success),
            fmt::count(c.cancelled)
        )),
    ])
}

/// The line cut to `width` at a word boundary, ending in `…` when cut; a short stub after
/// the last separator (`·`) goes with the cut part.
pub fn fit(line: Line<'_>, width: usize) -> Line<'_> {
    let text: Vec<char> = line.spans.iter().flat_map(|s| s.content.chars()).collect();
    if text.len() <= width {
        return line;
    }
    let mut keep = width.saturating_sub(1);
    if text.get(keep) != Some(&' ') {
        if let Some(p) = text[..keep].iter().rposition(|c| *c == ' ') {
            keep = p;
        }
    }
    // A stub of a last part ("· batch") says nothing: cut at its separator instead.
    let sep = text[..keep].windows(3).rposition(|w| w == [' ', '·', ' ']);
    if let Some(p) = sep.filter(|p| keep - p <= 10) {
        keep = p;
    }
    while keep > 0 && matches!(text[keep - 1], ' ' | '·') {
        keep -= 1;
    }
    let mut spans = Vec::new();
    let mut left = keep;
    let mut last_style = Style::default();
    for s in line.spans {
        if left == 0 {
            break;
        }
        let part: String = s.content.chars().take(left).collect();
        left -= part.chars().count();
        last_style = s.style;
        spans.push(Span::styled(part, s.style));
    }
    spans.push(Span::styled("…", last_style));
    Line::from(spans)
}

/// Three lines of text on the left, the sparkline on the right.
pub fn draw_header(frame: &mut Frame, area: Rect, view: &View) {
    let spark_w = if area.width >= 160 {
        62
    } else if area.width >= 120 {
        40
    } else {
        16
    };
    let [left, right] =
        Layout::horizontal([Constraint::Min(20), Constraint::Length(spark_w)]).areas(area);
    let w = left.width as usize;
    frame.render_widget(
        Paragraph::new(vec![
            fit(gateway_line(view), w),
            fit(market_line(view, w), w),
            fit(counts_line(view), w),
        ]),
        left,
    );
    let per_min = &view.snap.worker.completed_per_minute;
    let inner_w = spark_w.saturating_sub(2) as usize;
    let data = &per_min[per_min.len().saturating_sub(inner_w)..];
    let max = data.iter().copied().max().unwrap_or(0);
    let last = data.last().copied().unwrap_or(0);
    let block = Block::default()
        .borders(Borders::LEFT | Borders::TOP)
        .border_style(view.theme.border())
        .title(if inner_w >= 24 {
            format!("done/min {last} (max {max})")
        } else {
            format!("{last}/min ^{max}")
        });
    frame.render_widget(
        Sparkline::default()
            .block(block)
            .data(data)
            .style(view.theme.ok()),
        right,
    );
}

/// Lines held by streams and snapshots, and free, against the limit; coloured by fill.
pub fn draw_gauge(frame: &mut Frame, area: Rect, view: &View) {
    let theme = view.theme;
    let l = view.snap.lines;
    let held = l.streams + l.snapshots;
    if l.limit == 0 {
        frame.render_widget(
            Paragraph::new(Line::styled(
                "lines: no budget known yet (waiting for the engine)",
                theme.dim(),
            )),
            area,
        );
        return;
    }
    let ratio = held as f64 / l.limit as f64;
    let style = theme.fill(ratio);
    let label = format!(
        "lines {held}/{} ({:>3.0}%) streams {} snapshots {} free {} ",
        l.limit,
        ratio * 100.0,
        l.streams,
        l.snapshots,
        l.free()
    );
    let bar_w = (area.width as usize).saturating_sub(label.chars().count() + 2);
    let cells = |n: u32| {
        if l.limit == 0 {
            0
        } else {
            ((n as f64 / l.limit as f64) * bar_w as f64).round() as usize
        }
    };
    let s = cells(l.streams).min(bar_w);
    let p = cells(l.snapshots).min(bar_w - s);
    let m = cells(l.margin).min(bar_w - s - p);
    let f = bar_w - s - p - m;
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(label, style),
            Span::raw("["),
            Span::styled("█".repeat(s), style),
            Span::styled("▒".repeat(p), style),
            Span::styled("·".repeat(f), theme.dim()),
            Span::styled("×".repeat(m), theme.dim()),
            Span::raw("]"),
        ])),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(l: &Line) -> String {
        l.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn fit_cuts_at_a_word_with_an_ellipsis() {
        let l = Line::from("DEGRADED IB 1100: Connectivity between IB and TWS has been lost");
        assert_eq!(text(&fit(l, 31)), "DEGRADED IB 1100: Connectivity…");
        let l = Line::from("DEGRADED IB 1100: Connectivity between");
        assert_eq!(text(&fit(l, 30)), "DEGRADED IB 1100:…");
        let whole = Line::from("short");
        assert_eq!(text(&fit(whole, 30)), "short");
    }

    #[test]
    fn fit_drops_a_stub_after_the_last_separator() {
        let l = Line::from(vec![
            Span::raw("worker running"),
            Span::raw(" · batch 5 in 840ms"),
        ]);
        assert_eq!(text(&fit(l, 23)), "worker running…");
    }
}
