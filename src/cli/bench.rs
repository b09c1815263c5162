//! `ibq bench`: benchmarks that compare against a baseline in the same run and report
//! ratios, so a noisy machine moves both sides alike.

use std::time::Instant;

use chrono::Utc;
use serde_json::json;

use crate::config::{Config, QueueConfig};
use crate::queue::store::QueueStore;
use crate::queue::{Actor, NewRequest, Priority, RequestType};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchWhat {
    /// The full life of N requests (enqueue, claim, succeed) through the durable store with
    /// grouped commits, against one commit per change; then start-up time with a large queue.
    Queue {
        /// Requests through the grouped design.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Requests through the one-commit-per-change baseline (it is much slower).
        #[arg(long, default_value_t = 300)]
        baseline_requests: usize,
        /// Requests in the table when start-up (recovery) is timed.
        #[arg(long, default_value_t = 100_000)]
        startup_requests: usize,
        /// Requests claimed (and completed) per commit, like the worker's batch.
        #[arg(long, default_value_t = 50)]
        batch: usize,
        /// PROCESSING requests a killed engine leaves behind when recovery is timed.
        #[arg(long, default_value_t = 50)]
        orphans: usize,
    },
    /// Drains mixed requests through the engine against `ibq sim` with its real limits and
    /// compares the wall time with the least time those limits allow.
    Worker {
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// Run `ibq sim` as a process of its own, as a real gateway is, rather than in this
        /// one (where a busy engine also delays the simulator's reading).
        #[arg(long)]
        sim_process: bool,
    },
    /// Drains N requests (mostly option chains of five strikes each side, as the scheduler
    /// enqueues them) through the engine against `ibq sim`, first with a steady gateway,
    /// then with the gateway restarting every `restart_every` seconds, and compares the
    /// rates.
    Restarts {
        #[arg(long, default_value_t = 300)]
        requests: usize,
        /// Seconds between two restarts.
        #[arg(long, default_value_t = 15)]
        restart_every: u64,
        /// Milliseconds each restart refuses connections.
        #[arg(long, default_value_t = 3000)]
        restart_down_ms: u64,
        /// A run still draining after this many seconds stops and reports what it did.
        #[arg(long, default_value_t = 1200)]
        give_up_secs: u64,
    },
    /// Builds a lake of N trading days of the schedule (requests and result rows written
    /// as the engine writes them, plus one streamed leg every 5 s) and one of 1 day, then
    /// compares engine start-up, peak memory of `ibq run`, a `derived_stats` request, a
    /// one-day option-snapshot query and the tables' files. `--lake DIR` (new or empty)
    /// keeps the N-day lake there; otherwise both are built in a temporary folder.
    Year {
        /// Trading days in the lake (the ones before today, New York).
        #[arg(long, default_value_t = 250)]
        days: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Seconds `ibq run` runs on each lake while its peak memory is read.
        #[arg(long, default_value_t = 10)]
        session_secs: u64,
        /// The last days written with the engine's own commits (and its hourly upkeep);
        /// the days before them are written in fewer commits (see --commit-window) with one
        /// upkeep a day, which leaves the same lake once the upkeep has passed over them
        /// (docs/TABLES.md, The year benchmark).
        #[arg(long, default_value_t = 7)]
        exact_days: usize,
        /// For the days before the last --exact-days: what falls due within this many
        /// seconds shares one commit per table (the same rows in fewer commits).
        #[arg(long, default_value_t = 3600)]
        commit_window: u64,
    },
    /// Renders the full console with a large queue and a log flood.
    Render {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        #[arg(long, default_value_t = 200)]
        frames: usize,
    },
}

fn request(i: usize) -> NewRequest {
    NewRequest {
        request_type: RequestType::PositionUpdate,
        symbol: "ALL".into(),
        priority: Priority::try_from(1 + (i % 3) as i64).expect("1..=3"),
        parameters: json!({"conid": i + 1}),
        changed_by: Actor::Operator,
        schedule_key: None,
        during: Default::default(),
    }
}

struct Run {
    secs: f64,
    commits: i64,
    files: usize,
}

/// Enqueue in commits of `enqueue_batch`, then claim and complete `batch` at a time.
async fn full_life(
    store: &mut QueueStore,
    n: usize,
    enqueue_batch: usize,
    batch: usize,
) -> anyhow::Result<Run> {
    let v0 = store.table_version();
    let started = Instant::now();
    let mut made = 0;
    while made < n {
        let k = enqueue_batch.min(n - made);
        store
            .enqueue_many((made..made + k).map(request).collect())
            .await?;
        made += k;
    }
    loop {
        let claimed = store.claim(batch, "bench", Utc::now()).await?;
        if claimed.is_empty() {
            break;
        }
        let ids: Vec<_> = claimed.iter().map(|r| r.request_id).collect();
        let now = Utc::now();
        store
            .change_each(&ids, |q, id| q.prepare_succeed(id, json!({"rows": 1}), now))
            .await?;
    }
    Ok(Run {
        secs: started.elapsed().as_secs_f64(),
        commits: store.table_version() - v0,
        files: store.live_files().await?,
    })
}

/// Benchmarks use the `[queue]` and `[worker]` settings of the loaded configuration, so a
/// setting can be measured by changing it in a config file.
/// The engine's path: the queue service with `in_flight` concurrent workers, each claiming
/// one request and completing it as a separate operation; the service groups whatever
/// arrives together into one commit.
async fn through_service(
    root: &std::path::Path,
    config: QueueConfig,
    n: usize,
    in_flight: usize,
) -> anyhow::Result<Run> {
    let store = QueueStore::open(root, config).await?;
    let v0 = store.table_version();
    let queue = crate::queue::service::start(store, std::time::Duration::from_secs(3600));
    let started = Instant::now();
    let mut made = 0;
    while made < n {
        let k = 1000.min(n - made);
        queue
            .enqueue((made..made + k).map(request).collect())
            .await
            .map_err(anyhow::Error::msg)?;
        made += k;
    }
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..in_flight.max(1) {
        let queue = queue.clone();
        workers.spawn(async move {
            let owner = format!("bench-{w}");
            loop {
                let claimed = queue.claim(1, &owner).await.map_err(anyhow::Error::msg)?;
                let Some(r) = claimed.into_iter().next() else {
                    return anyhow::Ok(());
                };
                queue
                    .change(
                        vec![r.request_id],
                        crate::queue::service::Change::Succeed(json!({"rows": 1})),
                    )
                    .await
                    .map_err(anyhow::Error::msg)?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let secs = started.elapsed().as_secs_f64();
    queue.stop().await;
    let table = crate::lake::LakeTable::open_existing(
        root,
        crate::queue::rows::QUEUE_TABLE,
        crate::queue::rows::QUEUE_COLUMNS,
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("the queue table is missing"))?;
    Ok(Run {
        secs,
        commits: table.version() - v0,
        files: table.files().await?.len(),
    })
}

/// Runs a benchmark; `lake` is the `--lake` folder when one was given.
pub async fn run(
    args: BenchArgs,
    config: &Config,
    lake: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match args.what {
        BenchWhat::Year {
            days,
            json,
            session_secs,
            exact_days,
            commit_window,
        } => {
            super::bench_year::year(
                config,
                days,
                json,
                lake,
                session_secs,
                commit_window,
                exact_days,
            )
            .await
        }
        BenchWhat::Queue {
            requests,
            baseline_requests,
            startup_requests,
            batch,
            orphans,
        } => {
            queue(
                config.queue.clone(),
                requests,
                baseline_requests,
                startup_requests,
                batch,
                orphans,
            )
            .await
        }
        BenchWhat::Worker {
            requests,
            sim_process,
        } => worker(config, requests, sim_process).await,
        BenchWhat::Restarts {
            requests,
            restart_every,
            restart_down_ms,
            give_up_secs,
        } => {
            super::bench_restarts::restarts(
                config,
                requests,
                std::time::Duration::from_secs(restart_every),
                std::time::Duration::from_millis(restart_down_ms),
                std::time::Duration::from_secs(give_up_secs),
            )
            .await
        }
        BenchWhat::Render { rows, frames } => {
            println!("{}", crate::console::bench_render(rows, frames));
            Ok(())
        }
    }
}

async fn queue(
    config: QueueConfig,
    requests: usize,
    baseline_requests: usize,
    startup_requests: usize,
    batch: usize,
    orphans: usize,
) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    println!("ibq bench queue (lake in {})", dir.display());

    let mut crashed = Vec::new();
    let mut clean = Vec::new();
    for i in 0..3 {
        crashed.push(restart(&dir.join(format!("orphans-{i}")), &config, orphans, true).await?);
        clean.push(restart(&dir.join(format!("pending-{i}")), &config, orphans, false).await?);
    }
    crashed.sort_by(f64::total_cmp);
    clean.sort_by(f64::total_cmp);
    println!(
        "recovery: {orphans} orphaned PROCESSING requests running again {:.0} ms after start (median of {:?} ms); the same start with {orphans} PENDING requests {:.0} ms; ratio {:.2}",
        crashed[1] * 1e3,
        crashed.iter().map(|s| (s * 1e3).round()).collect::<Vec<_>>(),
        clean[1] * 1e3,
        crashed[1] / clean[1]
    );

    let mut grouped = QueueStore::open(&dir.join("grouped"), config.clone()).await?;
    let g = full_life(&mut grouped, requests, 1000, batch).await?;
    drop(grouped);
    let mut single = QueueStore::open(&dir.join("single"), config.clone()).await?;
    let s = full_life(&mut single, baseline_requests, 1, 1).await?;
    drop(single);
    let g_rate = requests as f64 / g.secs;
    let s_rate = baseline_requests as f64 / s.secs;
    println!("grouped commits:  {requests:>7} requests in {:>7.2} s = {g_rate:>9.0} req/s, {} commits, {} live data files", g.secs, g.commits, g.files);
    println!("commit per change:{baseline_requests:>7} requests in {:>7.2} s = {s_rate:>9.0} req/s, {} commits, {} live data files", s.secs, s.commits, s.files);
    println!("ratio: {:.0}x", g_rate / s_rate);
    let v = through_service(&dir.join("service"), config.clone(), requests, batch).await?;
    let v_rate = requests as f64 / v.secs;
    println!(
        "queue service, {batch} in flight: {requests:>7} requests in {:>7.2} s = {v_rate:>9.0} req/s, {} commits; ratio to commit per change {:.0}x",
        v.secs,
        v.commits,
        v_rate / s_rate
    );

    let root = dir.join("startup");
    let mut big = QueueStore::open(&root, config.clone()).await?;
    let b = full_life(&mut big, startup_requests, 1000, 500).await?;
    let files = big.live_files().await?;
    drop(big);
    let mut recoveries = Vec::new();
    for _ in 0..3 {
        let reopened = QueueStore::open(&root, config.clone()).await?;
        anyhow::ensure!(
            reopened.state().len() == startup_requests,
            "start-up lost requests"
        );
        recoveries.push(reopened.recovery.as_secs_f64());
    }
    recoveries.sort_by(f64::total_cmp);
    println!(
        "start-up with {startup_requests} requests ({} commits, {files} live data files): median {:.3} s (of {:?})",
        b.commits, recoveries[1], recoveries
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Leaves `n` requests in a lake, PROCESSING under a lease of an engine that died
/// (`orphaned`) or PENDING; then times a new owner from the start of its open until a
/// worker has claimed all `n` through the queue service.
async fn restart(
    root: &std::path::Path,
    config: &QueueConfig,
    n: usize,
    orphaned: bool,
) -> anyhow::Result<f64> {
    let mut store = QueueStore::open(root, config.clone()).await?;
    store.enqueue_many((0..n).map(request).collect()).await?;
    if orphaned {
        let claimed = store.claim(n, "engine-killed", Utc::now()).await?;
        anyhow::ensure!(claimed.len() == n, "claimed {} of {n}", claimed.len());
    }
    // Dropped without releasing anything, as kill -9 leaves it.
    drop(store);
    let started = Instant::now();
    let store = QueueStore::open(root, config.clone()).await?;
    anyhow::ensure!(
        store.orphaned() == if orphaned { n } else { 0 },
        "the new owner released {} orphans",
        store.orphaned()
    );
    let queue = crate::queue::service::start(store, std::time::Duration::from_secs(3600));
    let mut running = 0;
    while running < n {
        let claimed = queue
            .claim(n - running, "engine-new")
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(!claimed.is_empty(), "only {running} of {n} came back");
        running += claimed.len();
    }
    let secs = started.elapsed().as_secs_f64();
    queue.stop().await;
    Ok(secs)
}

pub(super) fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ibq-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A mix a trading day produces, all distinct so none is refused as a duplicate: some bars
/// (within IB's 60 per 10 minutes), a snapshot of every listed futures month, and option
/// chains (one strike or more each side) for the rest.
fn mixed(n: usize, universe: &crate::sim::Universe) -> Vec<NewRequest> {
    const RIGHTS: [&str; 2] = ["C", "P"];
    let syms = ["SPY", "QQQ", "IWM"];
    let mut out = Vec::with_capacity(n);
    let bars = (n / 20).min(50);
    let sizes = ["1 min", "5 mins", "15 mins", "30 mins", "1 hour", "1 day"];
    for i in 0..bars {
        out.push(NewRequest {
            request_type: RequestType::MarketBars,
            symbol: syms[i % 3].into(),
            priority: Priority::BACKGROUND,
            parameters: json!({"bar_size": sizes[(i / 3) % sizes.len()], "duration": format!("{} D", 1 + i / 18)}),
            changed_by: Actor::Operator,
            schedule_key: None,
            during: Default::default(),
        });
    }
    for root in ["ES", "NQ", "RTY"] {
        for f in universe.futures(root) {
            let Some(expiry) = f.expiry() else { continue };
            out.push(NewRequest {
                request_type: RequestType::FuturesSnapshot,
                symbol: root.to_string(),
                priority: Priority::NORMAL,
                parameters: json!({"month": expiry.format("%Y%m").to_string()}),
                changed_by: Actor::Operator,
                schedule_key: None,
                during: Default::default(),
            });
        }
    }
    let mut i = 0;
    while out.len() < n {
        out.push(NewRequest {
            request_type: RequestType::OptionChain,
            symbol: syms[i % 3].into(),
            priority: Priority::NORMAL,
            parameters: json!({"target_dte": 1 + (i / 6) % 90, "strikes": 1 + (i / 540), "rights": RIGHTS[(i / 3) % 2]}),
            changed_by: Actor::Operator,
            schedule_key: None,
            during: Default::default(),
        });
        i += 1;
    }
    out
}

async fn worker(base: &Config, requests: usize, sim_process: bool) -> anyhow::Result<()> {
    use crate::engine::runtime::{Engine, EngineOptions};
    let dir = tempfile_dir()?;
    let sim = super::bench_sim::BenchSim::start(sim_process).await?;
    let mut config = base.clone();
    config.lake.root = dir.join("lake");
    config.logging.dir = dir.join("logs");
    config.gateway.address = sim.address();
    config.scheduler.enabled = false;
    config.worker.poll_secs = 1;
    let engine = Engine::start(
        &config,
        EngineOptions {
            clock: std::sync::Arc::new(crate::scheduler::clock::SystemClock),
        },
    )
    .await?;
    let news = mixed(requests, &sim.universe());
    let load_before = load_average();
    let started = Instant::now();
    let outcomes = engine
        .queue()
        .enqueue(news)
        .await
        .map_err(anyhow::Error::msg)?;
    let ids: Vec<_> = outcomes
        .into_iter()
        .filter_map(|o| o.ok())
        .map(|o| o.request().request_id)
        .collect();
    println!(
        "ibq bench worker: {} requests against ibq sim at {} ({}; lake {})",
        ids.len(),
        sim.address(),
        sim.describe(),
        dir.display()
    );
    loop {
        let c = engine.queue().view().borrow().counts;
        if c.pending + c.processing == 0 && c.total() >= ids.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let counts = engine.queue().view().borrow().counts;
    // Why anything was retried, from the transition history of requests tried twice or more.
    let state = crate::queue::store::read_state(&config.lake.root).await?;
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    // How far apart the quotes of one option chain were taken.
    let mut spreads: Vec<u64> = state
        .all()
        .filter_map(|r| r.result_data.as_ref()?.get("quote_spread_ms")?.as_u64())
        .collect();
    spreads.sort_unstable();
    for r in state.all().filter(|r| r.attempts > 1) {
        for h in engine
            .queue()
            .history(r.request_id)
            .await
            .map_err(anyhow::Error::msg)?
        {
            if h.event == crate::queue::Event::RetryScheduled {
                *reasons
                    .entry(format!(
                        "{} {}",
                        r.request_type,
                        h.error_message.unwrap_or_default()
                    ))
                    .or_default() += 1;
            }
        }
    }
    let stats = sim.counts().await?;
    engine.shutdown().await;
    sim.shutdown().await;
    // The least time the gateway's limits allow: every message at 50 per second, and every
    // line-second the quotes held spread over all of the account's lines.
    let by_messages = stats.messages_received as f64 / 50.0;
    let by_lines = stats.line_seconds / f64::from(stats.lines_limit.max(1));
    let least = by_messages.max(by_lines);
    println!(
        "wall {wall:.1} s for {} messages and {:.0} line-seconds; least time the limits allow {least:.1} s (50 msg/s: {by_messages:.1} s, {} lines: {by_lines:.1} s); ratio {:.2}",
        stats.messages_received,
        stats.line_seconds,
        stats.lines_limit,
        wall / least.max(0.001)
    );
    println!(
        "succeeded {}, failed {}; most lines in use {} of 100; errors 100: {}, 101: {}, 162: {}",
        counts.success,
        counts.failed,
        stats.max_lines_in_use,
        stats.errors.get(&100).unwrap_or(&0),
        stats.errors.get(&101).unwrap_or(&0),
        stats.errors.get(&162).unwrap_or(&0)
    );
    if let (Some(max), false) = (spreads.last(), spreads.is_empty()) {
        println!(
            "quote times within one option chain (first to last quote): median {} ms, p90 {} ms, max {max} ms over {} chains",
            spreads[spreads.len() / 2],
            spreads[spreads.len() * 9 / 10],
            spreads.len()
        );
    }
    for (reason, n) in reasons {
        println!("  retried {n}x: {reason}");
    }
    println!(
        "machine load (1-minute average) at the start {load_before}, at the end {}",
        load_average()
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// The 1-minute load average (`uptime`'s first figure), or `?` where there is none.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}
