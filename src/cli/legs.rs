//! `ibq promote`, `ibq demote`, `ibq legs`: the registry of active legs from the command line.

use crate::config::Config;
use crate::engine::runtime::status_path;
use crate::engine::{Command, LegView};
use crate::queue::store::OwnerLock;
use crate::streaming::manager::describe;
use crate::streaming::registry::Registry;
use crate::text::Clean;

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// IB contract id of the leg (a positive number).
    #[arg(value_parser = clap::value_parser!(i32).range(1..))]
    pub conid: i32,
    /// The strategy the leg belongs to (e.g. "SPY iron condor").
    #[arg(long)]
    pub strategy: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DemoteArgs {
    /// IB contract id of the leg (a positive number).
    #[arg(value_parser = clap::value_parser!(i32).range(1..))]
    pub conid: i32,
}

#[derive(Debug, clap::Args)]
pub struct LegsArgs {
    #[arg(long)]
    pub json: bool,
}

pub async fn promote(args: PromoteArgs, config: &Config) -> anyhow::Result<()> {
    let root = &config.lake.root;
    match OwnerLock::acquire(root) {
        Err(_) => {
            super::queue::via_engine(
                config,
                Command::Promote {
                    conid: args.conid,
                    strategy: args.strategy,
                },
            )
            .await
        }
        Ok(_) => anyhow::bail!(
            "no ibq engine is running on {}: promoting needs its gateway connection to check the contract and stream it (start `ibq run` or the console)",
            root.display()
        ),
    }
}

pub async fn demote(args: DemoteArgs, config: &Config) -> anyhow::Result<()> {
    let root = &config.lake.root;
    let _lock = match OwnerLock::acquire(root) {
        Err(_) => return super::queue::via_engine(config, Command::Demote(vec![args.conid])).await,
        Ok(lock) => lock,
    };
    // No engine runs: nothing streams, so demoting is only the registry's record.
    let mut registry = Registry::open(root).await?;
    let Some(leg) = registry.get(args.conid).filter(|l| l.active).cloned() else {
        anyhow::bail!("{} is not an active leg", args.conid);
    };
    let mut row = leg.clone();
    row.active = false;
    row.changed_at = chrono::Utc::now();
    row.promoted_by = "operator".into();
    registry.record(row).await?;
    println!("demoted {}", Clean(&describe(&leg)));
    Ok(())
}

pub async fn legs(args: LegsArgs, config: &Config) -> anyhow::Result<()> {
    let root = &config.lake.root;
    let running = OwnerLock::acquire(root).is_err();
    let live: Option<Vec<LegView>> = running
        .then(|| std::fs::read_to_string(status_path(root)).ok())
        .flatten()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| serde_json::from_value(v["legs"].clone()).ok());
    let registry = Registry::open(root).await?;
    let mut legs: Vec<_> = registry.active().cloned().collect();
    legs.sort_by(|a, b| a.strategy.cmp(&b.strategy).then(a.conid.cmp(&b.conid)));
    if args.json {
        let rows: Vec<_> = legs
            .iter()
            .map(|l| {
                let view = live.as_ref().and_then(|v| v.iter().find(|x| x.conid == l.conid));
                serde_json::json!({
                    "conid": l.conid, "symbol": l.symbol, "sec_type": l.sec_type, "expiry": l.expiry,
                    "strike": l.strike, "right": l.right, "strategy": l.strategy, "quantity": l.quantity,
                    "promoted_at": l.promoted_at, "promoted_by": l.promoted_by, "live": view,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{} active legs{}",
        legs.len(),
        if running {
            ""
        } else {
            " (no engine running: no live quotes)"
        }
    );
    for l in &legs {
        let view = live
            .as_ref()
            .and_then(|v| v.iter().find(|x| x.conid == l.conid));
        let quote = view
            .map(|v| {
                let f = |x: Option<f64>| x.map(|p| format!("{p:.2}")).unwrap_or_else(|| "-".into());
                let tick = v
                    .last_tick_at
                    .map(|t| format!(" tick {}", crate::market::et::near(t, chrono::Utc::now())))
                    .unwrap_or_default();
                format!(
                    "bid {} ask {} last {}{tick} ({:?})",
                    f(v.bid),
                    f(v.ask),
                    f(v.last),
                    v.state
                )
            })
            .unwrap_or_default();
        // The registry is a table other programs may write: cleaned of control characters.
        println!(
            "  {:<40} {:<20} qty {:>6}  {}",
            Clean(&describe(l)),
            Clean(l.strategy.as_deref().unwrap_or("-")),
            l.quantity,
            Clean(&quote)
        );
    }
    Ok(())
}
