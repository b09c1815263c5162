//! Logging: tracing events with structured fields (request id, type, symbol, IB code) go to
//! a daily rolling file and, for `ibq run`, to stdout; the console adds its own layer.
//!
//! Messages and field values often quote outside text (a symbol from the lake, IB's
//! message): both writers format them through [`CleanFields`], so a control character in
//! them reaches the file or the terminal as a visible escape (`crate::text::clean`).

use std::path::Path;

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LoggingConfig;

/// Keeps the file writer flushing; drop it last.
pub struct LogGuard {
    _file: Option<tracing_appender::non_blocking::WorkerGuard>,
}

pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber. `stdout` adds a human-readable layer on stdout; `extra`
/// is the console's layer. The file goes to `<dir>/ibq.log.YYYY-MM-DD`.
pub fn init(
    config: &LoggingConfig,
    stdout: bool,
    extra: Option<BoxedLayer>,
) -> anyhow::Result<LogGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .map_err(|e| {
            anyhow::anyhow!(
                "logging level `{}` in the config is not valid: {e}",
                config.level
            )
        })?;
    let (file_layer, guard) = file_layer(&config.dir)?;
    let mut layers: Vec<BoxedLayer> = vec![file_layer];
    if stdout {
        layers.push(
            tracing_subscriber::fmt::layer()
                .with_ansi(stdout_colours())
                .fmt_fields(CleanFields::default())
                .with_target(false)
                .boxed(),
        );
    }
    if let Some(l) = extra {
        layers.push(l);
    }
    tracing_subscriber::registry()
        .with(layers.with_filter(filter))
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    Ok(LogGuard { _file: Some(guard) })
}

fn file_layer(
    dir: &Path,
) -> anyhow::Result<(BoxedLayer, tracing_appender::non_blocking::WorkerGuard)> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create the log folder {}: {e}", dir.display()))?;
    let appender = tracing_appender::rolling::daily(dir, "ibq.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .fmt_fields(CleanFields::default())
        .with_ansi(false)
        .with_target(false)
        .boxed();
    Ok((layer, guard))
}

/// Colours only on a terminal, and never when `NO_COLOR` is set (to anything but empty).
fn stdout_colours() -> bool {
    use std::io::IsTerminal;
    colours_wanted(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

fn colours_wanted(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The default field formatting (`message k=v …`), cleaned of control characters: an
/// event stays one line and carries no sequence a terminal or a pager would act on.
#[derive(Debug, Default)]
pub struct CleanFields {
    inner: DefaultFields,
}

impl<'writer> FormatFields<'writer> for CleanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut raw = String::new();
        self.inner.format_fields(Writer::new(&mut raw), fields)?;
        writer.write_str(&crate::text::clean(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn outside_text_in_fields_and_message_is_escaped_in_the_log() {
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .fmt_fields(CleanFields::default())
            .with_ansi(false)
            .with_target(false);
        let subscriber = tracing_subscriber::registry().with(layer);
        let symbol = "X\x1b]2;PWNED\x07A\rB\u{9b}2J\u{202e}";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("claim", owner = %symbol);
            let _g = span.enter();
            tracing::warn!(symbol = %symbol, reason = ?symbol, "rejected {symbol}");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "one event, one line: {text:?}");
        assert!(
            !text.contains(|c: char| crate::text::is_unsafe(c) && c != '\n'),
            "{text:?}"
        );
        assert!(text.ends_with('\n'));
        // Display (`%`), Debug (`?`), the message and the span's fields: all visible.
        assert!(
            text.contains("rejected X\\x1b]2;PWNED\\x07A\\rB\\u{9b}2J\\u{202e}"),
            "{text}"
        );
        assert!(text.contains("symbol=X\\x1b]2;PWNED"), "{text}");
        assert!(text.contains("owner=X\\x1b]2;PWNED"), "{text}");
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours_wanted(true, None));
        assert!(colours_wanted(true, Some(OsStr::new(""))));
        assert!(!colours_wanted(true, Some(OsStr::new("1"))));
        assert!(!colours_wanted(false, None));
    }
}
