//! Hidden commands the integration tests drive (for example the crash test).

use crate::config::Config;
use crate::queue::store::QueueStore;
use crate::queue::{Actor, NewRequest, Priority, RequestType};

#[derive(Debug, clap::Args)]
pub struct DebugArgs {
    #[command(subcommand)]
    pub command: DebugCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DebugCommand {
    /// Enqueue distinct requests in commits of `per_commit`, printing `ack <id>` for each
    /// once its commit is done.
    EnqueueBurst {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        per_commit: usize,
    },
    /// Compact the queue as if it were AT (RFC 3339): retention counts from AT, so
    /// archiving can be driven without waiting days.
    CompactAt { at: String },
}

pub async fn run(args: DebugArgs, config: &Config) -> anyhow::Result<()> {
    match args.command {
        DebugCommand::EnqueueBurst { count, per_commit } => {
            use std::io::Write;
            let mut store = QueueStore::open(&config.lake.root, config.queue.clone()).await?;
            let mut made = 0;
            while made < count {
                let n = per_commit.max(1).min(count - made);
                let news = (made..made + n)
                    .map(|i| NewRequest {
                        request_type: RequestType::PositionUpdate,
                        symbol: "ALL".into(),
                        priority: Priority::BACKGROUND,
                        parameters: serde_json::json!({"conid": i + 1}),
                        changed_by: Actor::Operator,
                        schedule_key: None,
                        during: Default::default(),
                    })
                    .collect();
                let outcomes = store.enqueue_many(news).await?;
                let mut out = std::io::stdout().lock();
                for o in outcomes {
                    writeln!(out, "ack {}", o?.request().request_id)?;
                }
                out.flush()?;
                made += n;
            }
            Ok(())
        }
        DebugCommand::CompactAt { at } => {
            let at: chrono::DateTime<chrono::Utc> = at
                .parse()
                .map_err(|e| anyhow::anyhow!("`{at}` is not an RFC 3339 time: {e}"))?;
            let mut store = QueueStore::open(&config.lake.root, config.queue.clone()).await?;
            let r = store.compact_at(at).await?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
    }
}
