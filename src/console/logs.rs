//! Live tracing events for the logs pane: a `tracing_subscriber::Layer` that writes every
//! event into a bounded ring buffer the pane reads. The oldest lines fall off the front.
//!
//! The engine installs it next to its file writer:
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! let logs = ibq::console::logs::LogBuffer::new(10_000);
//! tracing_subscriber::registry()
//!     .with(logs.layer())
//!     .init();
//! // ... ConsoleOptions { logs, .. }
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// One tracing event as the pane shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Increases by one per event; lets the pane stay put while new lines arrive.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub level: Level,
    pub target: String,
    pub message: String,
    /// Structured fields in the order written (`request_id`, `request_type`, `symbol`, `code`…).
    pub fields: Vec<(&'static str, String)>,
}

impl LogLine {
    /// Fields shown first, in this order, when present.
    pub const KEY_FIELDS: [&'static str; 4] = ["request_id", "request_type", "symbol", "code"];

    /// `k=v` pairs, the key fields first.
    pub fn fields_text(&self) -> String {
        let mut out = String::new();
        let mut push = |k: &str, v: &str| {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "{k}={v}");
        };
        for key in Self::KEY_FIELDS {
            if let Some((_, v)) = self.fields.iter().find(|(k, _)| *k == key) {
                push(key, v);
            }
        }
        for (k, v) in &self.fields {
            if !Self::KEY_FIELDS.contains(k) {
                push(k, v);
            }
        }
        out
    }
}

struct Inner {
    lines: Mutex<VecDeque<LogLine>>,
    capacity: usize,
    next_seq: AtomicU64,
    notify: Notify,
}

/// The ring buffer shared by the layer (writer) and the logs pane (reader). Cheap to clone.
#[derive(Clone)]
pub struct LogBuffer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBuffer")
            .field("capacity", &self.inner.capacity)
            .field("len", &self.lock().len())
            .finish()
    }
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl LogBuffer {
    /// Keeps the newest `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Arc::new(Inner {
                lines: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
                capacity,
                next_seq: AtomicU64::new(1),
                notify: Notify::new(),
            }),
        }
    }

    /// The layer feeding this buffer; install it on the engine's `tracing_subscriber::registry()`.
    pub fn layer(&self) -> ConsoleLogLayer {
        ConsoleLogLayer {
            buffer: self.clone(),
        }
    }

    /// Appends a line (the layer does this; tests and the benchmark too). The message and
    /// the field values often quote outside text (a symbol, IB's message): they are stored
    /// cleaned of control characters, so the pane and the detail view draw them safely.
    pub fn push(
        &self,
        at: DateTime<Utc>,
        level: Level,
        target: &str,
        message: String,
        mut fields: Vec<(&'static str, String)>,
    ) {
        let message = cleaned(message);
        for (_, v) in &mut fields {
            *v = cleaned(std::mem::take(v));
        }
        let target = crate::text::clean(target);
        let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
        {
            let mut lines = self.lock();
            if lines.len() >= self.inner.capacity {
                lines.pop_front();
            }
            lines.push_back(LogLine {
                seq,
                at,
                level,
                target: target.to_string(),
                message,
                fields,
            });
        }
        self.inner.notify.notify_one();
    }

    /// The lines, oldest first. Held only while drawing: never across an await.
    pub fn lock(&self) -> MutexGuard<'_, VecDeque<LogLine>> {
        // A panic while holding the lock leaves complete lines behind: keep going.
        self.inner.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves when a line was pushed since the last wake-up (bursts coalesce into one).
    pub async fn changed(&self) {
        self.inner.notify.notified().await
    }

    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }
}

/// `s` cleaned, without a copy when it is clean already.
fn cleaned(s: String) -> String {
    if s.contains(crate::text::is_unsafe) {
        crate::text::clean(&s).into_owned()
    } else {
        s
    }
}

/// Writes each tracing event into a [`LogBuffer`].
pub struct ConsoleLogLayer {
    buffer: LogBuffer,
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.push((field.name(), text));
        }
    }
}

impl<S: Subscriber> Layer<S> for ConsoleLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        self.buffer.push(
            Utc::now(),
            *meta.level(),
            meta.target(),
            visitor.message,
            visitor.fields,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn layer_captures_message_and_structured_fields() {
        let buf = LogBuffer::new(3);
        let subscriber = tracing_subscriber::registry().with(buf.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(request_id = "abc", symbol = "SPY", code = 200, "claimed");
            tracing::warn!("second");
            tracing::error!("third");
            tracing::debug!(request_type = "option_chain", "fourth");
        });
        let lines = buf.lock();
        assert_eq!(lines.len(), 3, "bounded to its capacity");
        assert_eq!(lines[0].message, "second");
        assert_eq!(lines[2].level, Level::DEBUG);
        assert_eq!(lines[2].fields_text(), "request_type=option_chain");
        assert_eq!(lines[2].seq, 4);
    }

    #[test]
    fn key_fields_come_first() {
        let buf = LogBuffer::new(10);
        buf.push(
            Utc::now(),
            Level::INFO,
            "t",
            "m".into(),
            vec![
                ("extra", "1".into()),
                ("code", "200".into()),
                ("symbol", "SPY".into()),
            ],
        );
        assert_eq!(buf.lock()[0].fields_text(), "symbol=SPY code=200 extra=1");
    }
}
