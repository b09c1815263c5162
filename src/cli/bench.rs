//! `ibq bench`: benchmarks that compare against a baseline in the same run.

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    pub what: String,
}

pub async fn run(_args: BenchArgs, _config: &crate::config::Config) -> anyhow::Result<()> {
    anyhow::bail!("no benchmarks yet")
}
