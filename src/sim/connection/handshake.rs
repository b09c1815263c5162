//! The handshake: the hello and its version range, the reply with the negotiated version
//! and the time, StartApi with the client id (refused when in use), then managed accounts,
//! the next order id and every farm's state.

use bytes::BytesMut;
use chrono_tz::America::New_York;
use prost::Message;
use tokio::net::tcp::OwnedReadHalf;

use super::{lock, read_more, Conn, ConnError};
use crate::sim::farms::Farm;
use crate::sim::faults::error_text;
use crate::sim::frame::{self, encode_proto, PROTOBUF_OFFSET};
use crate::sim::proto::{self, inbound, outbound};

impl Conn {
    /// Hello, version, StartApi, client id.
    pub(super) async fn handshake(
        &mut self,
        rd: &mut OwnedReadHalf,
        buf: &mut BytesMut,
    ) -> Result<(), ConnError> {
        let (min, max) = loop {
            if let Some(range) = frame::take_hello(buf)? {
                break range;
            }
            if buf.len() > 1024 {
                return Err(ConnError::HelloTooLong);
            }
            read_more(rd, buf).await?;
        };
        let version = match frame::negotiate(min, max) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("refusing client: {e}");
                self.shared.count_error(530);
                self.send(frame::encode_text_error(530, &e.to_string()))
                    .await;
                return Err(ConnError::Refused("unsupported API version"));
            }
        };
        let now = self.shared.clock.now().with_timezone(&New_York);
        self.send(frame::encode_hello_reply(
            version,
            &now.format("%Y%m%d %H:%M:%S US/Eastern").to_string(),
        ))
        .await;
        let client_id = loop {
            match frame::take_frame(buf)? {
                Some(body) => match frame::split_message(&body) {
                    Some((id, payload)) if id == inbound::START_API + PROTOBUF_OFFSET => {
                        break proto::StartApiRequest::decode(payload)
                            .ok()
                            .and_then(|r| r.client_id)
                            .unwrap_or(0);
                    }
                    _ => tracing::debug!("ignoring a frame before StartApi"),
                },
                None => read_more(rd, buf).await?,
            }
        };
        let registered = {
            let mut clients = lock(&self.shared.clients);
            match clients.entry(client_id) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(self.conn_id);
                    true
                }
            }
        };
        if !registered {
            tracing::warn!(client_id, "client id already in use");
            self.send_error(-1, 326, error_text(326)).await;
            return Err(ConnError::Refused("client id in use"));
        }
        self.client_id = Some(client_id);
        tracing::info!(client_id, version, "client connected");
        // A gateway does not promise an order: managedAccounts may come first (the TWS
        // API's connection docs name both as the handshake's answers, in either order).
        self.send(encode_proto(
            outbound::MANAGED_ACCOUNTS,
            &proto::ManagedAccounts {
                accounts_list: Some(self.shared.config.account.clone()),
            },
        ))
        .await;
        self.send(encode_proto(
            outbound::NEXT_VALID_ID,
            &proto::NextValidId { order_id: Some(1) },
        ))
        .await;
        // Then each farm's state, as a gateway reports its farms on every connect.
        let farms = *self.shared.avail.borrow();
        for farm in Farm::ALL {
            if let Some(code) = farm.code(farms.farm(farm)) {
                self.send_error(-1, code, &farm.notice(code)).await;
            }
        }
        Ok(())
    }
}
