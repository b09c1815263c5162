//! `ibq.toml`: every key optional, defaults in `assets/ibq.default.toml`.
//!
//! Unknown keys and wrong types are errors that name the file, line and key, never ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scheduler::config::SchedulerConfig;

pub mod check;

/// The embedded default configuration, documented key by key.
pub const DEFAULT_CONFIG: &str = include_str!("../../assets/ibq.default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub lake: LakeConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub lines: LinesConfig,
    #[serde(default)]
    pub streaming: StreamingConfig,
    #[serde(default)]
    pub market_data: MarketDataConfig,
    /// `[contracts]`: which contract each symbol means.
    #[serde(default)]
    pub contracts: crate::worker::contracts::ContractTable,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub console: ConsoleConfig,
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str(DEFAULT_CONFIG).expect("the embedded default configuration parses")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    pub root: PathBuf,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("./data/lake"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub lease_secs: u64,
    pub compact_at_files: usize,
    pub checkpoint_every: u64,
    pub poll_external_secs: u64,
    pub max_batch: usize,
    /// Days a finished request (SUCCESS, FAILED for good, CANCELLED) stays in the live
    /// queue after its last change; compaction then moves it to the history table.
    pub keep_finished_days: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            lease_secs: 300,
            compact_at_files: 64,
            checkpoint_every: 50,
            poll_external_secs: 2,
            max_batch: 10_000,
            keep_finished_days: 7,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub address: String,
    pub client_id: i32,
    pub connect_timeout_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:4002".into(),
            client_id: 100,
            connect_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub poll_secs: u64,
    pub batch_size: usize,
    pub max_attempts: u32,
    pub max_age_secs: u64,
    pub backoff_base_secs: u64,
    pub backoff_max_secs: u64,
    pub request_timeout_secs: u64,
    pub max_messages_per_sec: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll_secs: 5,
            batch_size: 50,
            max_attempts: 5,
            max_age_secs: 86_400,
            backoff_base_secs: 5,
            backoff_max_secs: 600,
            request_timeout_secs: 120,
            max_messages_per_sec: 45,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinesConfig {
    pub limit: u32,
    pub margin: u32,
}

impl Default for LinesConfig {
    fn default() -> Self {
        Self {
            limit: 100,
            margin: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingConfig {
    pub write_interval_secs: u64,
    pub stale_after_secs: u64,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self {
            write_interval_secs: 5,
            stale_after_secs: 30,
        }
    }
}

/// `[market_data]`: live, delayed, or live with a switch to delayed per exchange (auto).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketDataConfig {
    #[serde(rename = "type")]
    pub kind: crate::worker::market_data::MarketDataMode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub dir: PathBuf,
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data/logs"),
            level: "warn,ibq=info".into(),
        }
    }
}

/// What the console tells a terminal multiplexer (tmux) about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Ring the terminal bell when something needs the trader.
    pub bell: bool,
    /// Keep the terminal title (OSC 2) current; the previous title comes back on exit.
    pub title: bool,
    /// Ring once the worker has stayed paused this long.
    pub paused_alert_secs: u64,
    /// The `:` command line's history; empty: `<data dir>/ibq/history`.
    pub history_file: PathBuf,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            bell: true,
            title: true,
            paused_alert_secs: 300,
            history_file: PathBuf::new(),
        }
    }
}

impl ConsoleConfig {
    /// Where the command history is kept: `history_file`, else `<data dir>/ibq/history`
    /// (`~/.local/share/ibq/history` on Linux); `None` when there is no data dir.
    pub fn history_path(&self) -> Option<PathBuf> {
        if self.history_file.as_os_str().is_empty() {
            crate::console::cmdline::history::default_path()
        } else {
            Some(self.history_file.clone())
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}, line {line}, key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("config file {path}{}, key `{key}`: {message}", .line.map(|l| format!(", line {l}")).unwrap_or_default())]
    OutOfRange {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        message: String,
    },
    #[error("configuration key `{key}`: {message}")]
    Value { key: String, message: String },
}

impl Config {
    /// Parses a configuration text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let start = e.span().map(|s| s.start.min(text.len())).unwrap_or(0);
            let line = text[..start].matches('\n').count() + 1;
            // The key is what stands before `=` on the offending line (or the table header).
            let key = text
                .lines()
                .nth(line - 1)
                .map(|l| l.split('=').next().unwrap_or(l).trim().to_string())
                .unwrap_or_default();
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                key,
                message: e.message().trim().to_string(),
            }
        })?;
        check::check(&config).map_err(|p| ConfigError::OutOfRange {
            path: path.to_path_buf(),
            line: check::line_of(text, p.key),
            key: p.key.to_string(),
            message: p.message,
        })?;
        Ok(config)
    }

    /// Checks every value of a configuration built in code (or changed after loading).
    pub fn check(&self) -> Result<(), ConfigError> {
        check::check(self).map_err(|p| ConfigError::Value {
            key: p.key.to_string(),
            message: p.message,
        })
    }

    /// Loads `explicit`, else `./ibq.toml`, else `<user config dir>/ibq/ibq.toml`, else defaults.
    /// An explicit path that does not exist is an error; the implicit ones are optional.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => Self::implicit_path(),
        };
        match path {
            None => Ok(Self::default()),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Self::parse(&text, &path)
            }
        }
    }

    fn implicit_path() -> Option<PathBuf> {
        let local = PathBuf::from("ibq.toml");
        if local.is_file() {
            return Some(local);
        }
        let user = dirs::config_dir()?.join("ibq").join("ibq.toml");
        user.is_file().then_some(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_match_the_code_defaults() {
        let parsed: Config = toml::from_str(DEFAULT_CONFIG).unwrap();
        let empty: Config = toml::from_str("").unwrap();
        assert_eq!(
            parsed, empty,
            "assets/ibq.default.toml and the Default impls disagree"
        );
    }

    #[test]
    fn a_partial_file_overrides_only_what_it_names() {
        let c = Config::parse("[worker]\nbatch_size = 7\n", Path::new("x.toml")).unwrap();
        assert_eq!(c.worker.batch_size, 7);
        assert_eq!(c.worker.poll_secs, WorkerConfig::default().poll_secs);
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let err = Config::parse(
            "[worker]\npoll_secs = 5\nbatch_sise = 7\n",
            Path::new("my.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("my.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("batch_sise"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_the_line_and_key() {
        let err = Config::parse("[lines]\nlimit = \"many\"\n", Path::new("my.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("`limit`"), "{err}");
    }

    fn parse_err(text: &str) -> String {
        Config::parse(text, Path::new("my.toml"))
            .expect_err(text)
            .to_string()
    }

    /// `[section]\nname = value\n` for a dotted key.
    fn setting(key: &str, value: &str) -> String {
        let (section, name) = key.split_once('.').unwrap();
        format!("[{section}]\n{name} = {value}\n")
    }

    #[test]
    fn every_range_rule_names_the_key_and_the_allowed_range() {
        for (key, lo, hi, _) in check::RANGES {
            let allowed = format!("allowed: {lo} to {hi}");
            let name = key.split_once('.').unwrap().1;
            let mut bad = vec![(hi + 1).to_string()];
            if *lo > 0 {
                bad.push((lo - 1).to_string());
            }
            if *key == "lines.margin" {
                // A margin past its own range is also past the limit; give a limit that fits.
                bad = vec![];
                let text = format!("[lines]\nlimit = 10000\nmargin = {}\n", hi + 1);
                let err = parse_err(&text);
                assert!(err.contains("`lines.margin`"), "{err}");
                assert!(err.contains(&allowed), "{err}");
            }
            for value in bad {
                let err = parse_err(&setting(key, &value));
                assert!(err.contains(&format!("`{key}`")), "{key}={value}: {err}");
                assert!(err.contains(&allowed), "{key}={value}: {err}");
                assert!(err.contains("my.toml, line 2"), "{key}={value}: {err}");
                assert!(err.contains(&value), "{key}={value}: {err}");
                assert!(!name.is_empty());
            }
            // Both ends are accepted.
            for ok in [lo, hi] {
                let text = match *key {
                    "lines.margin" => format!("[lines]\nlimit = 10000\nmargin = {ok}\n"),
                    "worker.backoff_base_secs" => {
                        format!("[worker]\nbackoff_base_secs = {ok}\nbackoff_max_secs = 604800\n")
                    }
                    "worker.backoff_max_secs" => {
                        format!("[worker]\nbackoff_base_secs = 1\nbackoff_max_secs = {ok}\n")
                    }
                    "lines.limit" if *ok == 1 => "[lines]\nlimit = 1\nmargin = 0\n".into(),
                    _ => setting(key, &ok.to_string()),
                };
                Config::parse(&text, Path::new("my.toml"))
                    .unwrap_or_else(|e| panic!("{key} = {ok} is in range: {e}"));
            }
        }
    }

    #[test]
    fn the_values_that_broke_the_engine_are_refused_by_key() {
        for (text, key) in [
            ("[queue]\nlease_secs = 10000000000000\n", "queue.lease_secs"),
            (
                "[worker]\nbackoff_base_secs = 9223372036854775807\n",
                "worker.backoff_base_secs",
            ),
            ("[lines]\nlimit = 1\nmargin = 5\n", "lines.margin"),
            (
                "[worker]\nmax_messages_per_sec = 0\n",
                "worker.max_messages_per_sec",
            ),
            (
                "[worker]\nmax_messages_per_sec = 51\n",
                "worker.max_messages_per_sec",
            ),
            ("[worker]\nbatch_size = 0\n", "worker.batch_size"),
            ("[queue]\nmax_batch = 0\n", "queue.max_batch"),
            ("[queue]\ncompact_at_files = 0\n", "queue.compact_at_files"),
            ("[queue]\ncheckpoint_every = 0\n", "queue.checkpoint_every"),
            (
                "[queue]\nkeep_finished_days = 0\n",
                "queue.keep_finished_days",
            ),
        ] {
            let err = parse_err(text);
            assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
            assert!(
                err.contains("allowed") || err.contains("less than"),
                "{err}"
            );
        }
    }

    #[test]
    fn rules_between_keys_name_both() {
        let err = parse_err("[lines]\nlimit = 1\nmargin = 5\n");
        assert!(
            err.contains("`lines.margin`") && err.contains("lines.limit (1)"),
            "{err}"
        );
        assert!(err.contains("line 3"), "{err}");
        let err = parse_err("[worker]\nbackoff_base_secs = 60\nbackoff_max_secs = 10\n");
        assert!(err.contains("`worker.backoff_max_secs`"), "{err}");
        assert!(err.contains("worker.backoff_base_secs (60)"), "{err}");
    }

    #[test]
    fn empty_folders_bad_addresses_and_bad_levels_are_refused() {
        for (text, key) in [
            ("[lake]\nroot = \"\"\n", "lake.root"),
            ("[logging]\ndir = \"\"\n", "logging.dir"),
            ("[logging]\nlevel = \"ibq=loud\"\n", "logging.level"),
            ("[gateway]\naddress = \"localhost\"\n", "gateway.address"),
            ("[gateway]\naddress = \":4002\"\n", "gateway.address"),
            ("[gateway]\naddress = \"127.0.0.1:0\"\n", "gateway.address"),
            (
                "[gateway]\naddress = \"127.0.0.1:70000\"\n",
                "gateway.address",
            ),
        ] {
            let err = parse_err(text);
            assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
            assert!(err.contains("line 2"), "{text}: {err}");
        }
    }

    #[test]
    fn a_config_built_in_code_is_checked_too() {
        let mut c = Config::default();
        assert!(c.check().is_ok());
        c.queue.lease_secs = 10_000_000_000_000;
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("`queue.lease_secs`"), "{err}");
        assert!(err.contains("allowed: 1 to 604800 seconds"), "{err}");
    }

    #[test]
    fn the_console_section_names_a_bad_key() {
        let c = Config::parse(
            "[console]\nbell = false\npaused_alert_secs = 60\n",
            Path::new("my.toml"),
        )
        .unwrap();
        assert!(!c.console.bell && c.console.title);
        assert_eq!(c.console.paused_alert_secs, 60);
        assert_eq!(
            c.console.history_path(),
            crate::console::cmdline::history::default_path()
        );
        let c = Config::parse(
            "[console]
history_file = \"/tmp/h\"\n",
            Path::new("my.toml"),
        )
        .unwrap();
        assert_eq!(c.console.history_path(), Some(PathBuf::from("/tmp/h")));
        let err = parse_err("[console]\nbel = false\n");
        assert!(err.contains("line 2") && err.contains("`bel`"), "{err}");
        let err = parse_err("[console]\ntitle = \"yes\"\n");
        assert!(err.contains("line 2") && err.contains("`title`"), "{err}");
    }

    #[test]
    fn the_default_file_states_every_range() {
        for (key, lo, hi, _) in check::RANGES {
            let line = check::line_of(DEFAULT_CONFIG, key)
                .unwrap_or_else(|| panic!("{key} is in assets/ibq.default.toml"));
            // The comment lines right above the key state its range.
            let lines: Vec<&str> = DEFAULT_CONFIG.lines().collect();
            let comment: String = lines[..line - 1]
                .iter()
                .rev()
                .take_while(|l| l.trim_start().starts_with('#'))
                .copied()
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                comment.contains(&format!("{lo} to {hi}")),
                "the comment above {key} states `{lo} to {hi}`: {comment:?}"
            );
        }
    }

    #[test]
    fn contracts_default_to_the_index_products_and_a_file_adds_to_them() {
        use crate::worker::contracts::SecType;
        let c = Config::default();
        for (sym, t, ex) in [
            ("SPY", SecType::Stock, "SMART"),
            ("QQQ", SecType::Stock, "SMART"),
            ("IWM", SecType::Stock, "SMART"),
            ("VIX", SecType::Index, "CBOE"),
            ("ES", SecType::Future, "CME"),
            ("NQ", SecType::Future, "CME"),
            ("RTY", SecType::Future, "CME"),
        ] {
            let spec = c
                .contracts
                .get(sym)
                .unwrap_or_else(|| panic!("{sym} is configured"));
            assert_eq!((spec.sec_type, spec.exchange.as_str()), (t, ex), "{sym}");
        }
        assert!(DEFAULT_CONFIG.contains("\n[contracts]\n"));
        let c = Config::parse(
            "[contracts]\nES = { type = \"STK\", exchange = \"SMART\", primary_exchange = \"NYSE\" }\nxyz = { type = \"IND\", exchange = \"CBOE\" }\n",
            Path::new("my.toml"),
        )
        .unwrap();
        let es = c.contracts.get("ES").unwrap();
        assert_eq!(es.sec_type, SecType::Stock);
        assert_eq!(es.primary_exchange.as_deref(), Some("NYSE"));
        assert_eq!(es.currency, "USD");
        assert_eq!(c.contracts.get("XYZ").unwrap().sec_type, SecType::Index);
        assert_eq!(
            c.contracts.get("NQ").unwrap().sec_type,
            SecType::Future,
            "defaults stay"
        );
    }

    #[test]
    fn a_bad_contract_entry_names_its_line_and_key() {
        for (text, line, key) in [
            (
                "[contracts]\nSPY = { type = \"STK\", exchange = \"SMART\" }\nES = { type = \"FUT\", exchang = \"CME\" }\n",
                "line 3",
                "exchang",
            ),
            (
                "[contracts]\nES = { type = \"FUTURE\", exchange = \"CME\" }\n",
                "line 2",
                "FUTURE",
            ),
            ("[contracts]\nES = { type = \"FUT\" }\n", "line 2", "exchange"),
            (
                "[contracts]\n\"E S\" = { type = \"FUT\", exchange = \"CME\" }\n",
                "line",
                "E S",
            ),
        ] {
            let err = parse_err(text);
            assert!(err.contains("my.toml"), "{text}: {err}");
            assert!(err.contains(line), "{text}: {err}");
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
