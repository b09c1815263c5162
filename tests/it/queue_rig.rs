//! What the queue's tests on real tables share: a clock the test moves, New York moments,
//! a plain request, and a count of every stored row over the live queue and its history.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use ibq::lake::columns::BatchReader;
use ibq::lake::LakeTable;
use ibq::market::clock::Clock;
use ibq::queue::rows::{HISTORY_COLUMNS, HISTORY_TABLE, QUEUE_COLUMNS, QUEUE_TABLE};
use ibq::queue::{Actor, NewRequest, Priority, RequestType};
use serde_json::json;

use crate::common::{ibq, stderr, stdout};

/// A clock the test moves.
#[derive(Debug)]
pub struct Moved(Mutex<DateTime<Utc>>);

impl Moved {
    pub fn starting_at(t: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(t)))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
}

impl Clock for Moved {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// `h:m` in New York on `d`.
pub fn new_york(d: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    New_York
        .from_local_datetime(&d.and_hms_opt(h, m, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A daily-bars request for `symbol`, as an operator makes it.
pub fn bars(symbol: &str) -> NewRequest {
    NewRequest {
        request_type: RequestType::MarketBars,
        symbol: symbol.into(),
        priority: Priority::NORMAL,
        parameters: json!({"bar_size": "1 day"}),
        changed_by: Actor::Operator,
        schedule_key: None,
        during: Default::default(),
    }
}

/// (request id, seq) → how many times it is stored, over the queue and its history; rows
/// without `seq` (other writers') under -1.
pub async fn stored_rows(lake: &Path) -> HashMap<(String, i64), usize> {
    let mut out = HashMap::new();
    for (name, cols) in [
        (QUEUE_TABLE, QUEUE_COLUMNS),
        (HISTORY_TABLE, HISTORY_COLUMNS),
    ] {
        let table = LakeTable::open_existing(lake, name, cols)
            .await
            .unwrap()
            .unwrap();
        for b in table.read_all().await.unwrap() {
            let r = BatchReader::new(&b);
            for (id, seq) in r
                .utf8("request_id")
                .unwrap()
                .into_iter()
                .zip(r.i64("seq").unwrap())
            {
                *out.entry((id.unwrap(), seq.unwrap_or(-1))).or_default() += 1;
            }
        }
    }
    out
}

/// `count` requests made by `ibq debug enqueue-burst`, one commit each; their ids.
pub fn burst_by_cli(lake: &Path, count: usize) -> Vec<String> {
    let n = count.to_string();
    let out = ibq(
        lake,
        &["debug", "enqueue-burst", "--count", &n, "--per-commit", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ids: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("ack ").map(str::to_string))
        .collect();
    assert_eq!(ids.len(), count, "{}", stdout(&out));
    ids
}

/// Each of `ids` cancelled by `ibq cancel`.
pub fn cancel_by_cli(lake: &Path, ids: &[String]) {
    for id in ids {
        let out = ibq(lake, &["cancel", id]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}
