//! The account and the clock: the account's positions and the gateway's current time.

use bytes::Bytes;

use super::{Conn, Reply};
use crate::sim::faults::RequestKind;
use crate::sim::frame::encode_proto;
use crate::sim::proto::{self, outbound};

impl Conn {
    pub(super) fn positions(&self) -> Reply {
        let v = self.verdict(RequestKind::Positions);
        if let Some(code) = v.error {
            return Reply::error(-1, code, v.latency);
        }
        let universe = &self.shared.universe;
        let mut frames: Vec<Bytes> = self
            .shared
            .portfolio
            .iter()
            .filter_map(|p| {
                let inst = universe.by_conid(p.conid)?;
                Some(encode_proto(
                    outbound::POSITION,
                    &proto::Position {
                        account: Some(self.shared.config.account.clone()),
                        contract: Some(inst.to_proto("")),
                        position: Some(format!("{}", p.quantity)),
                        avg_cost: Some(p.avg_cost),
                    },
                ))
            })
            .collect();
        frames.push(encode_proto(outbound::POSITION_END, &proto::Empty {}));
        Reply {
            frames,
            latency: v.latency,
            errors: Vec::new(),
            after: None,
        }
    }

    pub(super) fn current_time(&self) -> Reply {
        let v = self.verdict(RequestKind::CurrentTime);
        if let Some(code) = v.error {
            return Reply::error(-1, code, v.latency);
        }
        let now = self.shared.clock.now().timestamp();
        Reply::now_after(
            vec![encode_proto(
                outbound::CURRENT_TIME,
                &proto::CurrentTime {
                    current_time: Some(now),
                },
            )],
            v.latency,
        )
    }
}
