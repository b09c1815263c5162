//! Logging: tracing events with structured fields (request id, type, symbol, IB code) go to
//! a daily rolling file and, for `ibq run`, to stdout; the console adds its own layer.

use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::colours_wanted;
    use std::ffi::OsStr;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours_wanted(true, None));
        assert!(colours_wanted(true, Some(OsStr::new(""))));
        assert!(!colours_wanted(true, Some(OsStr::new("1"))));
        assert!(!colours_wanted(false, None));
    }
}
