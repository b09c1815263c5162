//! Queue subcommands: enqueue, list, show, retry, reprioritize, cancel, compact.
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {}
#[derive(Debug, clap::Args)]
pub struct ListArgs {}
#[derive(Debug, clap::Args)]
pub struct ShowArgs {}
#[derive(Debug, clap::Args)]
pub struct RetryArgs {}
#[derive(Debug, clap::Args)]
pub struct ReprioritizeArgs {}
#[derive(Debug, clap::Args)]
pub struct CancelArgs {}

pub async fn enqueue(_a: EnqueueArgs, _c: &Config) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
pub async fn list(_a: ListArgs, _c: &Config) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
pub async fn show(_a: ShowArgs, _c: &Config) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
pub async fn retry(_a: RetryArgs, _c: &Config) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
pub async fn reprioritize(_a: ReprioritizeArgs, _c: &Config) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
pub async fn cancel(_a: CancelArgs, _c: &Config) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
pub async fn compact(_c: &Config) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
