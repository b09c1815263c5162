//! `ibq upkeep`: the upkeep of the result tables and of the queue's tables on demand (the
//! engine runs both hourly), and `--migrate`, the one-time rewrite of result tables an older
//! ibq created unpartitioned.

use chrono::Utc;

use crate::config::Config;
use crate::lake::upkeep::{self, Policy, Report};
use crate::lake::LakeTable;
use crate::market::calendar::new_york_date;
use crate::queue::rows::QUEUE_TABLE;
use crate::queue::store::{OwnerLock, QueueStore, StoreError};
use crate::worker::results::{self, PARTITION_COLUMN, RESULT_TABLES};

#[derive(Debug, clap::Args)]
pub struct UpkeepArgs {
    /// First rewrite every result table that is not partitioned by day (created by an
    /// older ibq) as a partitioned one, in one commit per table; no row is lost. Needs the
    /// engine stopped.
    #[arg(long)]
    pub migrate: bool,
    /// Print one JSON object instead of a line per table.
    #[arg(long)]
    pub json: bool,
}

/// Bytes as a short figure (KiB, MiB, GiB).
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn line(r: &Report) -> String {
    let parts = if r.partition_columns.is_empty() {
        "not partitioned".to_string()
    } else {
        format!("partitioned by {}", r.partition_columns.join(", "))
    };
    let checkpoint = match r.checkpoint {
        Some(v) => format!("checkpoint at {v}"),
        None => "checkpoint current".to_string(),
    };
    let u = &r.usage;
    format!(
        "{}: {parts}, version {}; merged {} files in {} partitions, {checkpoint}, vacuumed {} files, deleted {} log files; live {} files ({}), removed {} files ({}), log {} files ({})",
        r.table,
        r.version,
        r.files_merged,
        r.partitions_merged,
        r.files_vacuumed,
        r.log_files_deleted,
        u.live_files,
        size(u.live_bytes),
        u.removed_files,
        size(u.removed_bytes),
        u.log_files,
        size(u.log_bytes),
    )
}

pub async fn run(args: UpkeepArgs, config: &Config) -> anyhow::Result<()> {
    let root = &config.lake.root;
    let mut migrated = Vec::new();
    if args.migrate {
        let _lock = match OwnerLock::acquire(root) {
            Ok(lock) => lock,
            Err(StoreError::Locked(..)) => anyhow::bail!(
                "an ibq engine is running on {}: stop it before `ibq upkeep --migrate` (it writes the result tables)",
                root.display()
            ),
            Err(e) => return Err(e.into()),
        };
        for r in results::repartition_all(root).await {
            let r = r?;
            if !args.json {
                println!(
                    "{}: rewritten partitioned by {PARTITION_COLUMN} at version {}: {} rows, {} files → {}",
                    r.table, r.version, r.rows, r.files_before, r.files_after
                );
            }
            migrated.push(r);
        }
    }

    let policy = Policy::default();
    let now = Utc::now();
    let today = new_york_date(now).to_string();
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for name in RESULT_TABLES {
        let cols = results::stored_columns(name);
        let outcome = async {
            let Some(mut table) = LakeTable::open_existing(root, name, &cols).await? else {
                return Ok(None);
            };
            upkeep::run(&mut table, &policy, Some(&today), now)
                .await
                .map(Some)
        }
        .await;
        match outcome {
            Ok(None) => {}
            Ok(Some(r)) => {
                if !args.json {
                    println!("{}", line(&r));
                    if !r.partition_columns.iter().any(|c| c == PARTITION_COLUMN) {
                        println!(
                            "{}: not partitioned by {PARTITION_COLUMN}, so a one-day read reads every file; stop ibq and run `ibq upkeep --migrate` to rewrite it partitioned (no row is lost)",
                            r.table
                        );
                    }
                }
                reports.push(r);
            }
            Err(e) => {
                if !args.json {
                    eprintln!("{e}");
                }
                failed.push(e.to_string());
            }
        }
    }
    let queue_kept_by_engine = match queue_upkeep(config).await {
        Ok(Some(q)) => {
            for r in std::iter::once(q.queue).chain(q.history) {
                if !args.json {
                    println!("{}", line(&r));
                }
                reports.push(r);
            }
            false
        }
        Ok(None) => false,
        Err(StoreError::Locked(..)) => {
            if !args.json {
                println!(
                    "{QUEUE_TABLE}: kept up by the ibq engine running on {} (every hour)",
                    root.display()
                );
            }
            true
        }
        Err(e) => {
            if !args.json {
                eprintln!("{e}");
            }
            failed.push(e.to_string());
            false
        }
    };
    if !args.json && reports.is_empty() && failed.is_empty() && !queue_kept_by_engine {
        println!("no tables under {}", root.display());
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "migrated": migrated,
                "tables": reports,
                "failed": failed,
                "queue_kept_by_engine": queue_kept_by_engine,
                "vacuum_retention_hours": policy.vacuum_retention.num_hours(),
                "log_retention_hours": policy.log_retention.num_hours(),
            })
        );
    }
    if !failed.is_empty() {
        anyhow::bail!("the upkeep of {} table(s) failed", failed.len());
    }
    Ok(())
}

/// The queue's upkeep as its owner (`queue::upkeep`), when the lake has a queue table and
/// no engine holds it: an engine keeps its queue itself, and only the owner may merge the
/// history table (a compaction must not be under way). Opening the queue as owner does
/// what any owner's start does (orphaned PROCESSING requests released: no engine runs).
async fn queue_upkeep(
    config: &Config,
) -> Result<Option<crate::queue::upkeep::QueueUpkeep>, StoreError> {
    let root = &config.lake.root;
    if !root.join(QUEUE_TABLE).join("_delta_log").is_dir() {
        return Ok(None);
    }
    let mut store = QueueStore::open(root, config.queue.clone()).await?;
    store.upkeep().await.map(Some)
}
