//! The terminal and the event loop. Raw mode and the alternate screen are restored on every
//! way out: quit, SIGTERM/SIGHUP, an error, and a panic in the UI (the panic hook restores
//! the terminal before the message is printed). A panic in any other task does not touch
//! the terminal: it becomes an alert line in the console.

use std::cell::Cell;
use std::io::{stdout, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::Utc;
use crossterm::event::{Event, EventStream, KeyEventKind};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{cursor, execute};
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::alerts::{self, AlertOptions, Alerts};
use super::app::App;
use super::cmdline::history::History as CommandHistory;
use super::keymap::KeyMap;
use super::logs::LogBuffer;
use super::theme::Theme;
use crate::engine::{Command, CommandResult, EngineHandle};

/// How the console looks and behaves, apart from the key map.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// The buffer the engine's tracing layer writes into (`logs.layer()`).
    pub logs: LogBuffer,
    /// A leg without a tick for longer than this is shown as stale (`[streaming]
    /// stale_after_secs`).
    pub stale_after: Duration,
    /// No colours at all (default: the `NO_COLOR` environment variable).
    pub no_color: bool,
    /// Redraws per second at most while things change.
    pub max_fps: u32,
    /// The bell and the terminal title (`[console]`).
    pub bell: bool,
    pub title: bool,
    /// Ring once the worker has stayed paused this long.
    pub paused_alert: Duration,
    /// The `:` line's history file (`None`: kept for this session only).
    pub history_file: Option<std::path::PathBuf>,
    /// The `[contracts]` symbols, for the `:` line's completion.
    pub symbols: Vec<String>,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self {
            logs: LogBuffer::default(),
            stale_after: Duration::from_secs(30),
            no_color: !Theme::from_env().color,
            max_fps: 20,
            bell: true,
            title: true,
            paused_alert: Duration::from_secs(300),
            history_file: None,
            symbols: Vec::new(),
        }
    }
}

impl ConsoleOptions {
    /// The options `ibq.toml` decides, with the buffer the engine's log layer fills.
    pub fn from_config(config: &crate::config::Config, logs: LogBuffer) -> Self {
        Self {
            logs,
            stale_after: Duration::from_secs(config.streaming.stale_after_secs),
            bell: config.console.bell,
            title: config.console.title,
            paused_alert: Duration::from_secs(config.console.paused_alert_secs),
            history_file: config.console.history_path(),
            symbols: config.contracts.0.keys().cloned().collect(),
            ..Self::default()
        }
    }
}

/// True while the console owns the terminal.
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// True while the terminal's own title is saved on its title stack (ours is shown).
static TITLE_PUSHED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// True while this thread runs the console's own code (key handling, drawing).
    static IN_UI: Cell<bool> = const { Cell::new(false) };
}

/// Panics of other tasks, for the console to show.
struct PanicInbox {
    messages: Mutex<Vec<String>>,
    notify: Notify,
}

fn inbox() -> &'static PanicInbox {
    static INBOX: OnceLock<PanicInbox> = OnceLock::new();
    INBOX.get_or_init(|| PanicInbox {
        messages: Mutex::new(Vec::new()),
        notify: Notify::new(),
    })
}

/// Puts the terminal back as the shell expects it. Safe to call more than once.
pub fn restore_terminal() {
    if TERMINAL_ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(stdout(), LeaveAlternateScreen, cursor::Show);
    }
    if TITLE_PUSHED.swap(false, Ordering::SeqCst) {
        let mut out = stdout();
        let _ = out.write_all(alerts::POP_TITLE);
        let _ = out.flush();
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_ui = IN_UI.with(|c| c.get());
            if TERMINAL_ACTIVE.load(Ordering::SeqCst) && !in_ui {
                // Another task: printing now would scribble over the screen. Show it instead.
                let thread = std::thread::current();
                let msg = format!(
                    "a background task panicked on {}: {info}",
                    thread.name().unwrap_or("a worker thread")
                )
                .replace('\n', " ");
                tracing::error!(target: "ibq::panic", "{msg}");
                inbox()
                    .messages
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(msg);
                inbox().notify.notify_one();
                return;
            }
            restore_terminal();
            previous(info);
        }));
    });
}

/// Marks the current thread as running console code until dropped.
struct UiScope;

impl UiScope {
    fn enter() -> Self {
        IN_UI.with(|c| c.set(true));
        UiScope
    }
}

impl Drop for UiScope {
    fn drop(&mut self) {
        IN_UI.with(|c| c.set(false));
    }
}

/// Owns raw mode and the alternate screen; dropping it restores both.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    fn enter(title: bool) -> anyhow::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        TERMINAL_ACTIVE.store(true, Ordering::SeqCst);
        if title {
            // The terminal's own title is saved and comes back in `restore_terminal`.
            let mut out = stdout();
            if out
                .write_all(alerts::PUSH_TITLE)
                .and_then(|_| out.flush())
                .is_ok()
            {
                TITLE_PUSHED.store(true, Ordering::SeqCst);
            }
        }
        // Mouse capture stays off: tmux selection and scrolling keep working.
        if let Err(e) = execute!(stdout(), EnterAlternateScreen, cursor::Hide) {
            restore_terminal();
            return Err(e.into());
        }
        let terminal = match Terminal::new(CrosstermBackend::new(stdout())) {
            Ok(t) => t,
            Err(e) => {
                restore_terminal();
                return Err(e.into());
            }
        };
        Ok(Self { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Why the loop ended.
enum Exit {
    /// The operator quit and the engine answered the shutdown.
    Quit,
    /// SIGTERM or SIGHUP: the engine still has to be told.
    Signal(&'static str),
    /// The terminal's input ended.
    InputClosed,
}

/// Runs the console until the operator quits (after `Command::Shutdown` was answered) or a
/// signal arrives. The terminal is restored in every case, a panic included.
pub async fn run_console(
    handle: EngineHandle,
    keymap: KeyMap,
    options: ConsoleOptions,
) -> anyhow::Result<()> {
    let mut guard = TerminalGuard::enter(options.title)?;
    let result = event_loop(&mut guard.terminal, &handle, keymap, options).await;
    drop(guard);
    match result? {
        Exit::Quit => Ok(()),
        Exit::Signal(name) => {
            eprintln!("ibq: {name}: shutting down the engine");
            shutdown(&handle).await
        }
        Exit::InputClosed => {
            eprintln!("ibq: the terminal closed: shutting down the engine");
            shutdown(&handle).await
        }
    }
}

async fn shutdown(handle: &EngineHandle) -> anyhow::Result<()> {
    match tokio::time::timeout(Duration::from_secs(60), handle.send(Command::Shutdown)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(reason)) => anyhow::bail!("shutdown: {reason}"),
        Err(_) => anyhow::bail!("shutdown: the engine did not answer within 60 s"),
    }
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    handle: &EngineHandle,
    keymap: KeyMap,
    options: ConsoleOptions,
) -> anyhow::Result<Exit> {
    let mut snapshots = handle.snapshot();
    let first = snapshots.borrow_and_update().clone();
    let logs = options.logs.clone();
    let mut app = App::new(
        keymap,
        Theme::new(!options.no_color),
        chrono::Duration::from_std(options.stale_after).unwrap_or(chrono::Duration::seconds(30)),
        first,
        options.logs,
    );
    let history = match &options.history_file {
        Some(path) => {
            let (history, warning) = CommandHistory::load(path);
            app.alerts.extend(warning);
            history
        }
        None => CommandHistory::default(),
    };
    app.set_command_line(options.symbols.clone(), history);
    let mut watch = Alerts::new(AlertOptions {
        bell: options.bell,
        title: options.title,
        paused_after: chrono::Duration::from_std(options.paused_alert)
            .unwrap_or(chrono::Duration::seconds(300)),
        stale_after: app.stale_after,
    });
    let (reply_tx, mut replies) = mpsc::unbounded_channel::<(u64, CommandResult)>();
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let frame = Duration::from_millis(1000 / options.max_fps.max(1) as u64);
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    let mut engine_open = true;
    // Whether the alerts should look at the picture again (a new snapshot, the clock).
    let mut look = true;

    loop {
        if app.exit {
            return Ok(Exit::Quit);
        }
        for out in app.take_outbox() {
            let handle = handle.clone();
            let tx = reply_tx.clone();
            tokio::spawn(async move {
                let result = handle.send(out.command).await;
                let _ = tx.send((out.ticket, result));
            });
        }
        if look {
            look = false;
            tell(terminal, watch.observe(&app.snap, Utc::now()))?;
        }
        if dirty && last_draw.is_none_or(|t| t.elapsed() >= frame) {
            let _ui = UiScope::enter();
            app.now = Utc::now();
            terminal.draw(|f| app.draw(f))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        let redraw_at = dirty.then(|| last_draw.map(|t| t + frame).unwrap_or_else(Instant::now));
        tokio::select! {
            changed = snapshots.changed(), if engine_open => {
                match changed {
                    Ok(()) => {
                        let snap = snapshots.borrow_and_update().clone();
                        let _ui = UiScope::enter();
                        app.set_snapshot(snap);
                        look = true;
                    }
                    Err(_) => {
                        engine_open = false;
                        app.alerts.push("the engine stopped publishing: the screen is frozen (q quits)".into());
                    }
                }
                dirty = true;
            }
            event = events.next() => {
                match event {
                    Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                        let _ui = UiScope::enter();
                        app.on_key(&key);
                        if let Some(text) = app.take_clipboard() {
                            use std::io::Write;
                            let seq = super::clipboard::sequence(&text, super::clipboard::in_tmux());
                            let mut out = stdout();
                            let _ = out.write_all(seq.as_bytes()).and_then(|()| out.flush());
                        }
                        dirty = true;
                    }
                    Some(Ok(Event::Resize(..))) => {
                        terminal.autoresize()?;
                        dirty = true;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Ok(Exit::InputClosed),
                }
            }
            Some((ticket, result)) = replies.recv() => {
                let _ui = UiScope::enter();
                app.on_reply(ticket, result);
                dirty = true;
            }
            _ = logs.changed() => dirty = true,
            _ = inbox().notify.notified() => {
                let mut messages = inbox().messages.lock().unwrap_or_else(|e| e.into_inner());
                app.alerts.append(&mut messages);
                dirty = true;
            }
            _ = tick.tick() => {
                dirty = true;
                look = true;
            }
            _ = sigterm.recv() => return Ok(Exit::Signal("SIGTERM")),
            _ = sighup.recv() => return Ok(Exit::Signal("SIGHUP")),
            _ = tokio::time::sleep_until(redraw_at.unwrap_or_else(Instant::now)), if redraw_at.is_some() => {}
        }
    }
}

/// Rings the bell and sets the title through the terminal's backend, between frames.
fn tell(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    out: alerts::Outcome,
) -> std::io::Result<()> {
    if out.ring.is_empty() && out.title.is_none() {
        return Ok(());
    }
    let backend = terminal.backend_mut();
    if !out.ring.is_empty() {
        tracing::debug!(reasons = %out.ring.join("; "), "terminal bell");
        backend.write_all(alerts::BELL)?;
    }
    if let Some(title) = out.title {
        backend.write_all(&alerts::title_bytes(&title))?;
    }
    std::io::Write::flush(backend)
}
