//! `ibq run` (the engine without a console) and `ibq status`.

use std::sync::Arc;

use crate::config::Config;
use crate::engine::runtime::{status_path, Engine, EngineOptions};
use crate::scheduler::clock::Clock;
use crate::text::Clean;

/// Runs the engine until SIGINT/SIGTERM (or a `Shutdown` command), then stops gracefully.
/// When the queue can no longer commit (full disk, read-only lake) it stops too, with an
/// error naming the cause, rather than run on while every change is refused.
pub async fn run(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let _log = crate::logging::init(&config.logging, true, None)?;
    let engine = Engine::start(config, EngineOptions { clock }).await?;
    tracing::info!(gateway = %config.gateway.address, lake = %config.lake.root.display(), "ibq engine running (Ctrl-C to stop)");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let broken = tokio::select! {
        _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT received"); None }
        _ = term.recv() => { tracing::info!("SIGTERM received"); None }
        _ = engine.shutdown_requested() => None,
        reason = engine.queue_broken() => Some(reason),
    };
    if let Some(reason) = &broken {
        tracing::error!(error = %reason, "stopping: the queue cannot commit");
    }
    engine.shutdown().await;
    match broken {
        None => Ok(()),
        Some(reason) => anyhow::bail!(
            "engine stopped: {reason} (requests acknowledged before are kept; fix the lake and start again)"
        ),
    }
}

/// Prints what the running engine last reported, or the queue counts when none runs.
pub async fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    let root = &config.lake.root;
    let running = crate::queue::store::OwnerLock::acquire(root).is_err();
    let status: Option<serde_json::Value> = std::fs::read_to_string(status_path(root))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|_| running);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"running": running, "status": status})
            )?
        );
        return Ok(());
    }
    match status {
        None => {
            let state = crate::queue::store::read_state(root).await?;
            let c = state.counts();
            println!("no engine is running on {}", root.display());
            println!(
                "queue: {} pending, {} processing, {} success, {} failed, {} cancelled",
                c.pending, c.processing, c.success, c.failed, c.cancelled
            );
        }
        Some(s) => {
            let w = &s["worker"];
            // Times as a trader reads them: New York time (JSON keeps UTC).
            let at = |v: &serde_json::Value| {
                serde_json::from_value::<chrono::DateTime<chrono::Utc>>(v.clone())
                    .map(|t| crate::market::et::near(t, chrono::Utc::now()))
                    .unwrap_or_else(|_| "-".into())
            };
            println!(
                "engine pid {} (status written {})",
                s["pid"],
                at(&s["written_at"])
            );
            // The gateway state quotes IB's messages: cleaned of control characters.
            println!(
                "gateway: {}",
                Clean(&gateway_text(&s["gateway"], chrono::Utc::now()))
            );
            if let Ok(farms) =
                serde_json::from_value::<crate::gateway::FarmsView>(s["farms"].clone())
            {
                let line = farms
                    .summary()
                    .unwrap_or_else(|| "none reported yet".into());
                println!("data farms: {}", Clean(&line));
            }
            println!(
                "market: {} (next: {} at {})",
                Clean(s["market"]["phase"].as_str().unwrap_or("?")),
                Clean(s["market"]["next_phase"].as_str().unwrap_or("?")),
                at(&s["market"]["next_change_at"])
            );
            println!(
                "worker: {}{}, processed {}, succeeded {}, failed {}, retried {}, released {}",
                if w["running"].as_bool().unwrap_or(false) {
                    "running"
                } else {
                    "stopped"
                },
                if w["paused"].as_bool().unwrap_or(false) {
                    " (paused)"
                } else {
                    ""
                },
                w["processed"],
                w["succeeded"],
                w["failed"],
                w["retried"],
                w["released"]
            );
            let per_min: Vec<u64> = w["completed_per_minute"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
                .unwrap_or_default();
            let last5: u64 = per_min.iter().rev().take(5).sum();
            println!(
                "last batch: {} requests in {} ms at {}; {:.1} requests/minute over the last 5 minutes",
                w["last_batch_size"], w["last_batch_ms"], at(&w["last_batch_at"]), last5 as f64 / 5.0
            );
            let c = &s["counts"];
            println!(
                "queue: {} pending, {} processing, {} success, {} failed, {} cancelled",
                c["pending"], c["processing"], c["success"], c["failed"], c["cancelled"]
            );
            let l = &s["lines"];
            println!(
                "lines: {} streams + {} snapshots of {} (margin {}); {} legs",
                l["streams"],
                l["snapshots"],
                l["limit"],
                l["margin"],
                s["legs"].as_array().map_or(0, Vec::len)
            );
        }
    }
    Ok(())
}

/// The gateway state as `ibq status` prints it, times in New York time.
fn gateway_text(v: &serde_json::Value, now: chrono::DateTime<chrono::Utc>) -> String {
    use crate::engine::GatewayState as G;
    use crate::market::et::near;
    match serde_json::from_value::<G>(v.clone()) {
        Ok(G::Connecting { address }) => format!("connecting to {address}"),
        Ok(G::Connected {
            address,
            server_version,
            account,
            since,
        }) => format!(
            "connected {account} (server version {server_version}) since {} · {address}",
            near(since, now)
        ),
        Ok(G::Degraded {
            address,
            code,
            message,
            since,
        }) => format!(
            "degraded since {}: IB {code} {message} · {address}",
            near(since, now)
        ),
        Ok(G::Reconnecting {
            address,
            attempt,
            next_try_at,
            reason,
        }) => format!(
            "reconnecting (attempt {attempt}{}): {reason} · {address}",
            next_try_at
                .map(|t| format!(", next try {}", near(t, now)))
                .unwrap_or_default()
        ),
        Ok(G::Disconnected { address, reason }) => format!("disconnected: {reason} · {address}"),
        Err(_) => v.to_string(),
    }
}
