//! `ibq bench restarts`: the queue drained against a gateway that restarts every few
//! seconds, compared with the same work against a steady gateway in the same run.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::Config;
use crate::engine::runtime::{Engine, EngineOptions};
use crate::lake::columns::BatchReader;
use crate::queue::{Actor, NewRequest, Priority, RequestType};
use crate::sim::{SimConfig, Simulator, Universe};

/// What one drain did.
struct Drain {
    secs: f64,
    succeeded: usize,
    failed: usize,
    open: usize,
    restarts: u64,
    released: u64,
    messages: u64,
    /// Messages the gateway refused for the rate (error 100).
    over_rate: u64,
    /// Option snapshot rows, and how many of them repeat a (request, contract) pair.
    option_rows: usize,
    doubled: usize,
}

/// Option chains of five strikes each side, calls and puts (the scheduler's default), with
/// a snapshot of every listed futures month and some bars (within IB's 60 per 10 minutes);
/// all distinct so none is refused as a duplicate.
fn chains_mix(n: usize, universe: &Universe) -> Vec<NewRequest> {
    let syms = ["SPY", "QQQ", "IWM"];
    let request = |request_type, symbol: &str, parameters| NewRequest {
        request_type,
        symbol: symbol.to_string(),
        priority: Priority::NORMAL,
        parameters,
        changed_by: Actor::Operator,
        schedule_key: None,
        during: Default::default(),
    };
    let mut out = Vec::with_capacity(n);
    for root in ["ES", "NQ", "RTY"] {
        for f in universe.futures(root) {
            let Some(expiry) = f.expiry() else { continue };
            if out.len() < n / 10 {
                out.push(request(
                    RequestType::FuturesSnapshot,
                    root,
                    json!({"month": expiry.format("%Y%m").to_string()}),
                ));
            }
        }
    }
    let sizes = ["1 min", "5 mins", "15 mins", "30 mins", "1 hour", "1 day"];
    for i in 0..(n / 20).min(50) {
        out.push(request(
            RequestType::MarketBars,
            syms[i % 3],
            json!({"bar_size": sizes[(i / 3) % sizes.len()], "duration": format!("{} D", 1 + i / 18)}),
        ));
    }
    let mut i = 0;
    while out.len() < n {
        let rights = ["both", "C", "P"][(i / 450) % 3];
        out.push(request(
            RequestType::OptionChain,
            syms[i % 3],
            json!({"target_dte": 1 + (i / 3) % 150, "rights": rights}),
        ));
        i += 1;
    }
    out
}

async fn drain(
    base: &Config,
    dir: &std::path::Path,
    requests: usize,
    restart: Option<(Duration, Duration)>,
    give_up: Duration,
) -> anyhow::Result<Drain> {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await?;
    let mut config = base.clone();
    config.lake.root = dir.join("lake");
    config.logging.dir = dir.join("logs");
    config.gateway.address = sim.address();
    config.scheduler.enabled = false;
    config.worker.poll_secs = 1;
    let engine = Engine::start(
        &config,
        EngineOptions {
            clock: Arc::new(crate::scheduler::clock::SystemClock),
        },
    )
    .await?;
    let mut snapshot = engine.handle().snapshot();
    let connected = tokio::time::timeout(Duration::from_secs(30), async {
        while !snapshot.borrow_and_update().gateway.is_connected() {
            if snapshot.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    anyhow::ensure!(connected.is_ok(), "the engine did not connect to ibq sim");

    let news = chains_mix(requests, &sim.universe());
    let started = Instant::now();
    let m0 = sim.stats().messages_received;
    let outcomes = engine
        .queue()
        .enqueue(news)
        .await
        .map_err(anyhow::Error::msg)?;
    let n = outcomes.iter().filter(|o| o.is_ok()).count();
    let restarts = Arc::new(AtomicU64::new(0));
    let restarter = restart.map(|(every, down)| {
        let (sim, restarts) = (sim.clone(), Arc::clone(&restarts));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                sim.restart(down);
                restarts.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let view = engine.queue().view();
    loop {
        let c = view.borrow().counts;
        if c.pending + c.processing == 0 && c.total() >= n {
            break;
        }
        if started.elapsed() > give_up {
            println!(
                "  gave up after {} s: {} SUCCESS, {} still open",
                give_up.as_secs(),
                c.success,
                c.pending + c.processing
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    if let Some(r) = restarter {
        r.abort();
    }
    let counts = view.borrow().counts;
    let released = engine.handle().snapshot().borrow().worker.released;
    let stats = sim.stats();
    let messages = stats.messages_received - m0;
    let over_rate = stats.errors.get(&100).copied().unwrap_or(0);
    engine.shutdown().await;
    sim.shutdown().await;

    let (mut option_rows, mut seen) = (0, HashSet::new());
    if let Some(t) = crate::lake::LakeTable::open_existing(
        &config.lake.root,
        crate::worker::results::OPTION_SNAPSHOTS,
        crate::worker::results::OPTION_SNAPSHOT_COLUMNS,
    )
    .await?
    {
        for b in t.read_all().await? {
            let r = BatchReader::new(&b);
            let ids = r.utf8("request_id").map_err(anyhow::Error::msg)?;
            let conids = r.i64("conid").map_err(anyhow::Error::msg)?;
            option_rows += ids.len();
            seen.extend(ids.into_iter().zip(conids));
        }
    }
    Ok(Drain {
        secs,
        succeeded: counts.success,
        failed: counts.failed,
        open: counts.pending + counts.processing,
        restarts: restarts.load(Ordering::Relaxed),
        released,
        messages,
        over_rate,
        option_rows,
        doubled: option_rows - seen.len(),
    })
}

fn report(label: &str, d: &Drain) -> f64 {
    let rate = d.succeeded as f64 / d.secs;
    println!(
        "{label}: {} SUCCESS, {} FAILED, {} open in {:.1} s = {rate:.2} req/s; {} messages ({} refused for the rate); {} restarts, {} releases; {} option rows, {} written twice",
        d.succeeded, d.failed, d.open, d.secs, d.messages, d.over_rate, d.restarts, d.released, d.option_rows, d.doubled
    );
    rate
}

pub async fn restarts(
    config: &Config,
    requests: usize,
    every: Duration,
    down: Duration,
    give_up: Duration,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ibq-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "ibq bench restarts: {requests} requests (mostly option chains of 26 messages) against ibq sim (lake in {})",
        dir.display()
    );
    let steady = drain(config, &dir.join("steady"), requests, None, give_up).await?;
    let steady_rate = report("steady gateway", &steady);
    let restarting = drain(
        config,
        &dir.join("restarts"),
        requests,
        Some((every, down)),
        give_up,
    )
    .await?;
    let restart_rate = report(
        &format!(
            "restart every {} s, down {} ms",
            every.as_secs(),
            down.as_millis()
        ),
        &restarting,
    );
    println!(
        "ratio of rates (restarting / steady): {:.2}",
        restart_rate / steady_rate.max(f64::MIN_POSITIVE)
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
