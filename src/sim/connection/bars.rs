//! Historical data requests: permissions, the request checked and paced as a gateway does,
//! and the bars built off the connection's task.

use std::sync::Arc;
use std::time::Instant;

use super::{error_frame, lock, Conn, Reply};
use crate::sim::faults::{error_text, RequestKind};
use crate::sim::frame::encode_proto;
use crate::sim::historical::{self, BarRequest};
use crate::sim::market_data;
use crate::sim::proto::{self, outbound};

impl Conn {
    pub(super) fn historical(&self, r: proto::HistoricalDataRequest) -> Reply {
        let req_id = r.req_id.unwrap_or(-1);
        let v = self.verdict(RequestKind::HistoricalData);
        let Some(inst) = self.resolve_one(r.contract.as_ref()) else {
            return Reply::error(req_id, 200, v.latency);
        };
        if let Some(code) = v.error {
            return Reply::error(req_id, code, v.latency);
        }
        let exchange = r
            .contract
            .as_ref()
            .and_then(|c| c.exchange.clone())
            .unwrap_or_default();
        // The listing a gateway names: the primary exchange of a stock, else the exchange.
        let listed = inst.to_proto(&exchange);
        let listing = listed
            .primary_exch
            .filter(|e| !e.is_empty())
            .or(listed.exchange)
            .unwrap_or_default();
        if let Some(text) = market_data::historical_refusal(
            self.shared.config.permissions,
            &listing,
            inst.sec_type(),
        ) {
            return Reply::error_text(req_id, 162, &text, v.latency);
        }
        let request = match BarRequest::parse(&r, &inst, self.shared.clock.now()) {
            Ok(req) => req,
            Err(e @ historical::HistoricalError::Invalid(_)) => {
                return Reply::error_text(req_id, 321, &e.to_string(), v.latency)
            }
            Err(e) => return Reply::error_text(req_id, 162, &e.to_string(), v.latency),
        };
        let what = r.what_to_show.clone().unwrap_or_default();
        let group = format!("{}|{exchange}|{what}", inst.conid);
        let whole = format!(
            "{group}|{}|{}|{}|{}|{}",
            r.end_date_time.as_deref().unwrap_or(""),
            r.duration.as_deref().unwrap_or(""),
            r.bar_size_setting.as_deref().unwrap_or(""),
            r.use_rth.unwrap_or(false),
            r.format_date.unwrap_or(0)
        );
        if let Err(violation) = lock(&self.shared.pacing).check(Instant::now(), &whole, &group) {
            return Reply::error_text(req_id, 162, &violation.to_string(), v.latency);
        }
        let market = Arc::clone(&self.shared.market);
        let shared = Arc::clone(&self.shared);
        Reply::later_async(v.latency, move || {
            Box::pin(async move {
                let built = tokio::task::spawn_blocking(move || {
                    historical::bars(&market, &inst, &request).map(|b| (b, request))
                })
                .await;
                match built {
                    Ok(Ok((bars, request))) => {
                        let (start, end) = request.window_text();
                        vec![
                            encode_proto(
                                outbound::HISTORICAL_DATA,
                                &proto::HistoricalData {
                                    req_id: Some(req_id),
                                    historical_data_bars: bars,
                                },
                            ),
                            encode_proto(
                                outbound::HISTORICAL_DATA_END,
                                &proto::HistoricalDataEnd {
                                    req_id: Some(req_id),
                                    start_date_str: Some(start),
                                    end_date_str: Some(end),
                                },
                            ),
                        ]
                    }
                    Ok(Err(e)) => {
                        shared.count_error(162);
                        vec![error_frame(req_id, 162, &e.to_string())]
                    }
                    Err(_) => {
                        shared.count_error(322);
                        vec![error_frame(req_id, 322, error_text(322))]
                    }
                }
            })
        })
    }
}
