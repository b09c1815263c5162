//! `ibq pause`, `ibq resume`: the running engine's worker stops claiming requests, or
//! starts again (the console's `P` and `:pause`/`:resume`).

use crate::config::Config;
use crate::engine::Command;
use crate::queue::store::OwnerLock;

/// Sends `command` to the engine that owns the lake, or says that none runs.
async fn to_engine(config: &Config, command: Command, verb: &str) -> anyhow::Result<()> {
    let root = &config.lake.root;
    match OwnerLock::acquire(root) {
        Err(_) => super::queue::via_engine(config, command).await,
        Ok(_) => anyhow::bail!(
            "no ibq engine is running on {}: there is no worker to {verb} (start `ibq run` or the console)",
            root.display()
        ),
    }
}

pub async fn pause(config: &Config) -> anyhow::Result<()> {
    to_engine(config, Command::PauseWorker, "pause").await
}

pub async fn resume(config: &Config) -> anyhow::Result<()> {
    to_engine(config, Command::ResumeWorker, "resume").await
}
