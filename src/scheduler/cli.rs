//! `ibq schedule`: print a day's plan.

#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    /// The day to plan (YYYY-MM-DD, New York); today when absent.
    #[arg(long)]
    pub date: Option<chrono::NaiveDate>,
}

pub fn run(_args: ScheduleArgs, _config: &crate::config::Config) -> anyhow::Result<()> {
    anyhow::bail!("ibq schedule is not built yet")
}
