//! A request's way from frame to answer: the message type decoded and routed to its
//! handler, the faults that apply to it, and the reply delivered now or later (a latency
//! fault, a farm that is down, a silent nightly reset).

use std::sync::Arc;

use prost::Message;

use super::{lock, Conn, Reply};
use crate::sim::farms::{wait_open, Farm};
use crate::sim::faults::{RequestKind, Verdict};
use crate::sim::frame::{self, encode_proto, PROTOBUF_OFFSET};
use crate::sim::proto::{self, inbound, outbound};
use crate::sim::universe::Instrument;

impl Conn {
    pub(super) async fn dispatch(&mut self, body: &[u8]) {
        let Some((id, payload)) = frame::split_message(body) else {
            self.send_error(
                -1,
                320,
                "Error reading request: frame shorter than a message id",
            )
            .await;
            return;
        };
        if id <= PROTOBUF_OFFSET {
            self.send_error(
                -1,
                320,
                &format!(
                    "Error reading request: text message {id} is not supported (protobuf only)"
                ),
            )
            .await;
            return;
        }
        let msg_type = id - PROTOBUF_OFFSET;
        let decoded = match msg_type {
            inbound::REQUEST_MARKET_DATA => proto::MarketDataRequest::decode(payload)
                .map(|r| self.market_data(r))
                .map(Some),
            inbound::CANCEL_MARKET_DATA => proto::ReqIdOnly::decode(payload).map(|r| {
                self.cancel_market_data(r.req_id.unwrap_or(-1));
                None
            }),
            inbound::REQUEST_MARKET_DATA_TYPE => {
                proto::MarketDataTypeRequest::decode(payload).map(|r| {
                    if let Some(t @ 1..=4) = r.market_data_type {
                        self.market_data_type = t;
                    }
                    None
                })
            }
            inbound::REQUEST_CONTRACT_DATA => {
                proto::ContractDataRequest::decode(payload).map(|r| Some(self.contract_data(r)))
            }
            inbound::REQUEST_HISTORICAL_DATA => {
                proto::HistoricalDataRequest::decode(payload).map(|r| Some(self.historical(r)))
            }
            inbound::REQUEST_POSITIONS => {
                proto::Empty::decode(payload).map(|_| Some(self.positions()))
            }
            inbound::REQUEST_SEC_DEF_OPT_PARAMS => {
                proto::SecDefOptParamsRequest::decode(payload).map(|r| Some(self.sec_def(r)))
            }
            inbound::REQUEST_CURRENT_TIME => {
                proto::Empty::decode(payload).map(|_| Some(self.current_time()))
            }
            inbound::REQUEST_IDS => Ok(Some(Reply::now(vec![encode_proto(
                outbound::NEXT_VALID_ID,
                &proto::NextValidId { order_id: Some(1) },
            )]))),
            inbound::REQUEST_MANAGED_ACCOUNTS => Ok(Some(Reply::now(vec![encode_proto(
                outbound::MANAGED_ACCOUNTS,
                &proto::ManagedAccounts {
                    accounts_list: Some(self.shared.config.account.clone()),
                },
            )]))),
            inbound::CANCEL_HISTORICAL_DATA
            | inbound::CANCEL_CONTRACT_DATA
            | inbound::CANCEL_POSITIONS
            | inbound::START_API => Ok(None),
            other => {
                self.send_error(
                    -1,
                    320,
                    &format!(
                        "Error reading request: message type {other} is not supported by ibq sim"
                    ),
                )
                .await;
                return;
            }
        };
        match decoded {
            Ok(Some(reply)) => {
                let hold = self.hold.take();
                self.deliver(reply, hold).await
            }
            Ok(None) => {}
            Err(e) => {
                self.send_error(
                    -1,
                    320,
                    &format!("Error reading request: malformed message {msg_type}: {e}"),
                )
                .await
            }
        }
    }

    /// Sends a reply now, or later from a task when a latency fault applies or the answer
    /// must wait: for the market-data farm serving its contract (`hold`, a market-data
    /// answer) or for the end of a silent nightly reset (every answer; never sent when the
    /// reset lost data).
    async fn deliver(&self, reply: Reply, hold: Option<Farm>) {
        let Reply {
            mut frames,
            latency,
            errors,
            after,
        } = reply;
        let open = self.shared.avail.borrow().open(hold);
        if latency.is_zero() && open {
            if let Some(after) = after {
                frames.extend(after().await);
            }
            for code in errors {
                self.shared.count_error(code);
            }
            for f in frames {
                self.send(f).await;
            }
            return;
        }
        let tx = self.tx.clone();
        let shared = Arc::clone(&self.shared);
        let gate = (!open).then(|| self.shared.avail.subscribe());
        tokio::spawn(async move {
            if let Some(gate) = gate {
                if !wait_open(gate, hold).await {
                    return;
                }
            }
            tokio::time::sleep(latency).await;
            // The farm may have broken (or a silent reset begun) while the answer was slow.
            if !shared.avail.borrow().open(hold) && !wait_open(shared.avail.subscribe(), hold).await
            {
                return;
            }
            let mut frames = frames;
            if let Some(after) = after {
                frames.extend(after().await);
            }
            for code in errors {
                shared.count_error(code);
            }
            for f in frames {
                if tx.send(f).await.is_err() {
                    return;
                }
            }
        });
    }

    /// Applies faults to a request of `kind`: the error to answer with, and the latency.
    pub(super) fn verdict(&self, kind: RequestKind) -> Verdict {
        self.shared.count_request(kind);
        lock(&self.shared.faults).decide(kind)
    }

    pub(super) fn resolve_one(&self, contract: Option<&proto::Contract>) -> Option<Instrument> {
        let found = self.shared.universe.resolve(contract?);
        (found.len() == 1)
            .then(|| found.into_iter().next())
            .flatten()
    }
}
