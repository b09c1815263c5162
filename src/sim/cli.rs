//! Command-line entry of `ibq sim`.

/// Options of `ibq sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Port to listen on (127.0.0.1 only).
    #[arg(long, default_value_t = 4002)]
    pub port: u16,
}

pub async fn run(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("ibq sim is not built yet")
}
