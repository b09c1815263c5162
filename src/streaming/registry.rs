//! The registry of active legs: the Delta table `active_strategies`, one row per change of
//! a leg (promoted or demoted), the newest row per conid being its state. Loaded at start,
//! held in memory, and appended to (one commit per change, acknowledged after it) on every
//! promote and demote; compacted to the newest row per conid when files pile up.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::lake::columns::{col, BatchBuilder, BatchReader, Col, ColumnKind::*};
use crate::lake::{LakeError, LakeTable};

pub const ACTIVE_STRATEGIES: &str = "active_strategies";
const COMPACT_AT_FILES: usize = 32;

pub const LEG_COLUMNS: &[Col] = &[
    col("conid", Int64),
    col("symbol", Utf8),
    col("sec_type", Utf8),
    col("expiry", Utf8),
    col("strike", Float64),
    col("right", Utf8),
    col("exchange", Utf8),
    col("multiplier", Float64),
    col("strategy", Utf8),
    col("quantity", Float64),
    col("promoted_at", Timestamp),
    col("promoted_by", Utf8),
    col("active", Bool),
    col("changed_at", Timestamp),
    col("seq", Int64),
];

/// One leg as the registry stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    pub conid: i32,
    pub symbol: String,
    pub sec_type: String,
    pub expiry: Option<String>,
    pub strike: Option<f64>,
    pub right: Option<String>,
    pub exchange: String,
    pub multiplier: f64,
    pub strategy: Option<String>,
    pub quantity: f64,
    pub promoted_at: DateTime<Utc>,
    pub promoted_by: String,
    pub active: bool,
    pub changed_at: DateTime<Utc>,
    pub seq: i64,
}

fn encode(legs: &[&Leg]) -> deltalake::arrow::array::RecordBatch {
    BatchBuilder::new(LEG_COLUMNS)
        .i64(legs.iter().map(|l| Some(l.conid as i64)))
        .utf8(legs.iter().map(|l| Some(l.symbol.as_str())))
        .utf8(legs.iter().map(|l| Some(l.sec_type.as_str())))
        .utf8(legs.iter().map(|l| l.expiry.as_deref()))
        .f64(legs.iter().map(|l| l.strike))
        .utf8(legs.iter().map(|l| l.right.as_deref()))
        .utf8(legs.iter().map(|l| Some(l.exchange.as_str())))
        .f64(legs.iter().map(|l| Some(l.multiplier)))
        .utf8(legs.iter().map(|l| l.strategy.as_deref()))
        .f64(legs.iter().map(|l| Some(l.quantity)))
        .timestamp(legs.iter().map(|l| Some(l.promoted_at)))
        .utf8(legs.iter().map(|l| Some(l.promoted_by.as_str())))
        .bool(legs.iter().map(|l| Some(l.active)))
        .timestamp(legs.iter().map(|l| Some(l.changed_at)))
        .i64(legs.iter().map(|l| Some(l.seq)))
        .finish()
}

fn decode(batch: &deltalake::arrow::array::RecordBatch) -> Result<Vec<Leg>, String> {
    let r = BatchReader::new(batch);
    let conid = r.i64("conid")?;
    let symbol = r.utf8("symbol")?;
    let sec_type = r.utf8("sec_type")?;
    let expiry = r.utf8("expiry")?;
    let strike = r.f64("strike")?;
    let right = r.utf8("right")?;
    let exchange = r.utf8("exchange")?;
    let multiplier = r.f64("multiplier")?;
    let strategy = r.utf8("strategy")?;
    let quantity = r.f64("quantity")?;
    let promoted_at = r.timestamp("promoted_at")?;
    let promoted_by = r.utf8("promoted_by")?;
    let active = r.bool("active")?;
    let changed_at = r.timestamp("changed_at")?;
    let seq = r.i64("seq")?;
    Ok((0..r.len())
        .filter_map(|i| {
            Some(Leg {
                conid: conid[i]? as i32,
                symbol: symbol[i].clone().unwrap_or_default(),
                sec_type: sec_type[i].clone().unwrap_or_default(),
                expiry: expiry[i].clone(),
                strike: strike[i],
                right: right[i].clone(),
                exchange: exchange[i].clone().unwrap_or_default(),
                multiplier: multiplier[i].unwrap_or(1.0),
                strategy: strategy[i].clone(),
                quantity: quantity[i].unwrap_or(0.0),
                promoted_at: promoted_at[i]?,
                promoted_by: promoted_by[i].clone().unwrap_or_default(),
                active: active[i].unwrap_or(false),
                changed_at: changed_at[i]?,
                seq: seq[i].unwrap_or(0),
            })
        })
        .collect())
}

pub struct Registry {
    table: LakeTable,
    legs: HashMap<i32, Leg>,
    next_seq: i64,
    files: usize,
}

impl Registry {
    pub async fn open(root: &Path) -> Result<Self, LakeError> {
        let table = LakeTable::open_or_create(root, ACTIVE_STRATEGIES, LEG_COLUMNS).await?;
        let mut legs: HashMap<i32, Leg> = HashMap::new();
        let files = table.files().await?.len();
        for batch in table.read_all().await? {
            for leg in decode(&batch).map_err(|m| LakeError::Table {
                name: ACTIVE_STRATEGIES.into(),
                path: table.path().to_path_buf(),
                message: m,
            })? {
                if legs.get(&leg.conid).is_none_or(|l| leg.seq > l.seq) {
                    legs.insert(leg.conid, leg);
                }
            }
        }
        let next_seq = legs.values().map(|l| l.seq).max().unwrap_or(0) + 1;
        Ok(Self {
            table,
            legs,
            next_seq,
            files,
        })
    }

    pub fn active(&self) -> impl Iterator<Item = &Leg> {
        self.legs.values().filter(|l| l.active)
    }

    pub fn get(&self, conid: i32) -> Option<&Leg> {
        self.legs.get(&conid)
    }

    /// Records `leg` as the newest state of its conid; returns once committed.
    pub async fn record(&mut self, mut leg: Leg) -> Result<Leg, LakeError> {
        leg.seq = self.next_seq;
        self.table.append(&[encode(&[&leg])]).await?;
        self.next_seq += 1;
        self.files += 1;
        self.legs.insert(leg.conid, leg.clone());
        if self.files >= COMPACT_AT_FILES {
            let files = self.table.files().await?;
            let newest: Vec<&Leg> = self.legs.values().collect();
            match self.table.replace(&files, &[encode(&newest)]).await {
                Ok(_) => self.files = 1,
                Err(e) => {
                    tracing::warn!(error = %e, "compacting active_strategies failed; the registry keeps working uncompacted and tries again at its next change")
                }
            }
        }
        Ok(leg)
    }
}
