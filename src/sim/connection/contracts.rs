//! Contract requests: contract details for every instrument a contract matches, and an
//! underlying's option chain parameters (expirations and strikes).

use bytes::Bytes;

use super::{Conn, Reply};
use crate::sim::faults::RequestKind;
use crate::sim::frame::encode_proto;
use crate::sim::proto::{self, outbound};

impl Conn {
    pub(super) fn contract_data(&self, r: proto::ContractDataRequest) -> Reply {
        let req_id = r.req_id.unwrap_or(-1);
        let v = self.verdict(RequestKind::ContractDetails);
        if let Some(code) = v.error {
            return Reply::error(req_id, code, v.latency);
        }
        let Some(contract) = r.contract else {
            return Reply::error(req_id, 200, v.latency);
        };
        let found = self.shared.universe.resolve(&contract);
        if found.is_empty() {
            return Reply::error(req_id, 200, v.latency);
        }
        let exchange = contract.exchange.clone().unwrap_or_default();
        let today = self.shared.universe.today();
        let mut frames: Vec<Bytes> = found
            .iter()
            .map(|inst| {
                encode_proto(
                    outbound::CONTRACT_DATA,
                    &proto::ContractData {
                        req_id: Some(req_id),
                        contract: Some(inst.to_proto(&exchange)),
                        contract_details: Some(inst.details(today)),
                    },
                )
            })
            .collect();
        frames.push(encode_proto(
            outbound::CONTRACT_DATA_END,
            &proto::ReqIdOnly {
                req_id: Some(req_id),
            },
        ));
        Reply {
            frames,
            latency: v.latency,
            errors: Vec::new(),
            after: None,
        }
    }

    pub(super) fn sec_def(&self, r: proto::SecDefOptParamsRequest) -> Reply {
        let req_id = r.req_id.unwrap_or(-1);
        let v = self.verdict(RequestKind::SecDefOptParams);
        if let Some(code) = v.error {
            return Reply::error(req_id, code, v.latency);
        }
        let chain = self.shared.universe.chain(
            r.underlying_con_id.unwrap_or(0),
            r.underlying_symbol.as_deref().unwrap_or(""),
        );
        let Some((u, expiries, strikes)) = chain else {
            return Reply::error(req_id, 200, v.latency);
        };
        let expirations: Vec<String> = expiries
            .iter()
            .map(|d| d.format("%Y%m%d").to_string())
            .collect();
        let mut frames: Vec<Bytes> = ["SMART", "CBOE"]
            .iter()
            .map(|exchange| {
                encode_proto(
                    outbound::SEC_DEF_OPT_PARAMETER,
                    &proto::SecDefOptParameter {
                        req_id: Some(req_id),
                        exchange: Some(exchange.to_string()),
                        underlying_con_id: Some(u.conid()),
                        trading_class: Some(u.symbol().to_string()),
                        multiplier: Some("100".to_string()),
                        expirations: expirations.clone(),
                        strikes: strikes.clone(),
                    },
                )
            })
            .collect();
        frames.push(encode_proto(
            outbound::SEC_DEF_OPT_PARAMETER_END,
            &proto::ReqIdOnly {
                req_id: Some(req_id),
            },
        ));
        Reply {
            frames,
            latency: v.latency,
            errors: Vec::new(),
            after: None,
        }
    }
}
