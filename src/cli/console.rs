//! `ibq` with no subcommand (console + engine), `ibq demo` (simulator + demo lake + console
//! on a fast clock) and `ibq --observe` (console on a lake whose engine runs elsewhere).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveTime, TimeZone, Utc};
use chrono_tz::America::New_York;

use crate::config::Config;
use crate::console::keymap::KeyMap;
use crate::console::{run_console, ConsoleOptions, LogBuffer};
use crate::engine::observer::Observer;
use crate::engine::runtime::{Engine, EngineOptions};
use crate::engine::Command;
use crate::scheduler::clock::{Clock, FastClock};
use crate::sim::{RequestKind, SimConfig, Simulator};

fn keymap(path: Option<&Path>) -> anyhow::Result<KeyMap> {
    Ok(KeyMap::load(path)?)
}

fn console_logging(config: &Config) -> anyhow::Result<(LogBuffer, crate::logging::LogGuard)> {
    let logs = LogBuffer::new(10_000);
    let guard = crate::logging::init(&config.logging, false, Some(Box::new(logs.layer())))?;
    Ok((logs, guard))
}

/// The console with the engine in this process.
pub async fn console(
    config: &Config,
    keymap_path: Option<&Path>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let keys = keymap(keymap_path)?;
    let (logs, _guard) = console_logging(config)?;
    let engine = Engine::start(config, EngineOptions { clock }).await?;
    let result = run_console(
        engine.console_handle(),
        keys,
        ConsoleOptions::from_config(config, logs),
    )
    .await;
    engine.shutdown().await;
    result
}

/// The console on a lake whose engine runs in another process.
pub async fn observe(config: &Config, keymap_path: Option<&Path>) -> anyhow::Result<()> {
    let keys = keymap(keymap_path)?;
    let (logs, _guard) = console_logging(config)?;
    let observer = Observer::start(config.clone()).await?;
    run_console(
        observer.handle(),
        keys,
        ConsoleOptions::from_config(config, logs),
    )
    .await
}

/// Where the demo's clock starts and how fast it runs; `None` takes the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoClock {
    /// Default: 09:25 New York on the latest trading day.
    pub start: Option<chrono::DateTime<Utc>>,
    /// Default: sixty times real time.
    pub speed: Option<f64>,
}

/// The demo: a simulator on a free loopback port, a fresh demo lake, a demo portfolio with
/// its SPY iron condor streaming, and the scheduler on a clock sixty times real time
/// starting just before the open, so the queue moves within seconds.
pub async fn demo(
    config: &Config,
    keymap_path: Option<&Path>,
    demo_clock: DemoClock,
) -> anyhow::Result<()> {
    let keys = keymap(keymap_path)?;
    let lake = std::env::temp_dir().join("ibq-demo").join("lake");
    if lake.exists() {
        std::fs::remove_dir_all(&lake)
            .map_err(|e| anyhow::anyhow!("cannot reset the demo lake {}: {e}", lake.display()))?;
    }
    let start = demo_clock.start.unwrap_or_else(|| {
        demo_start(&crate::scheduler::calendar::MarketCalendar::from_config(
            &config.scheduler,
        ))
    });
    let speed = demo_clock.speed.unwrap_or(60.0);
    let sim = Simulator::start(SimConfig {
        port: 0,
        clock_start: Some(start.fixed_offset()),
        speed,
        ..SimConfig::default()
    })
    .await?;
    // A little weather so the failed pane has something to retry.
    sim.set_error_rate(RequestKind::HistoricalData, 0.1);

    let mut config = config.clone();
    config.lake.root = lake.clone();
    config.gateway.address = sim.address();
    config.logging.dir = lake.parent().unwrap_or(&lake).join("logs");
    config.worker.poll_secs = 1;
    config.worker.backoff_base_secs = 2;
    config.queue.poll_external_secs = 1;
    let (logs, _guard) = console_logging(&config)?;
    tracing::info!(lake = %lake.display(), gateway = %sim.address(), "demo: simulator and lake ready");
    let clock: Arc<dyn Clock> = Arc::new(FastClock::new(start, speed));
    let engine = Engine::start(&config, EngineOptions { clock }).await?;

    // Stream the iron condor once connected (the four SPY option legs of the demo
    // portfolio: 5-lot options; the QQQ calls are 10-lot).
    let handle = engine.handle();
    let condor: Vec<i32> = sim
        .portfolio()
        .iter()
        .filter(|p| p.conid >= 1_000_000_000 && p.quantity.abs() == 5.0)
        .map(|p| p.conid)
        .collect();
    tokio::spawn(async move {
        for conid in condor {
            for _ in 0..50 {
                let r = handle
                    .send(Command::Promote {
                        conid,
                        strategy: Some("SPY iron condor".into()),
                    })
                    .await;
                match r {
                    Err(e) if e.contains("not connected") => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                    Err(e) => {
                        tracing::warn!(conid, error = %e, "demo: promoting a condor leg failed");
                        break;
                    }
                    Ok(_) => break,
                }
            }
        }
    });
    let result = run_console(
        engine.console_handle(),
        keys,
        ConsoleOptions::from_config(&config, logs),
    )
    .await;
    engine.shutdown().await;
    sim.shutdown().await;
    eprintln!("ibq demo: the demo lake is in {}", lake.display());
    result
}

/// 09:25 New York on the latest trading day (today when it is one).
fn demo_start(calendar: &crate::scheduler::calendar::MarketCalendar) -> chrono::DateTime<Utc> {
    let mut day = Utc::now().with_timezone(&New_York).date_naive();
    for _ in 0..10 {
        if calendar.day(day).is_trading_day() {
            break;
        }
        day = day.pred_opt().unwrap_or(day);
    }
    let at = day.and_time(NaiveTime::from_hms_opt(9, 25, 0).unwrap_or_default());
    New_York
        .from_local_datetime(&at)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now)
}
