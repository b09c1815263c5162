//! One client connection: handshake, request dispatch, streaming subscriptions, limits.
//!
//! This file holds the connection's life (accept, handshake, session, close) and the reply
//! every request gets; `handshake` the hello and client id, `dispatch` the way from a frame
//! to its answer, `quotes` market data, `bars` historical data, `contracts` contract details
//! and option chain parameters, `account` positions and the current time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};

use super::farms::Farm;
use super::faults::error_text;
use super::frame::{self, encode_proto, FrameError};
use super::limits::RateVerdict;
use super::market_data::Quote;
use super::proto::{self, outbound};
use super::reader::{self, Inbound, ReadEnd};
use super::server::{lock, ConnEvent, Shared};
use super::universe::Instrument;

mod account;
mod bars;
mod contracts;
mod dispatch;
mod handshake;
mod quotes;

use quotes::tick_loop;

/// Why a connection ended before or during its session.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("client closed the connection")]
    Eof,
    #[error("no handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("hello longer than any version range")]
    HelloTooLong,
    #[error("refused: {0}")]
    Refused(&'static str),
}

struct Subscription {
    inst: Instrument,
    /// The last quote sent; `None` until the first burst went out.
    last: Option<Quote>,
    /// Frozen (market closed): no updates after the first burst.
    frozen: bool,
    /// Delayed data (delayed tick types, prices 15 minutes old).
    delayed: bool,
}

type Subscriptions = Arc<Mutex<HashMap<i32, Subscription>>>;

/// Serves one accepted socket until it closes; never panics on peer input.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let conn_id = shared.next_connection_id();
    {
        let mut stats = lock(&shared.stats);
        stats.connections_open += 1;
        stats.connections_total += 1;
    }
    let _ = stream.set_nodelay(true);
    let events = shared.events.subscribe();
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Bytes>(4096);
    let writer = tokio::spawn(write_loop(wr, rx));
    let mut conn = Conn {
        shared: Arc::clone(&shared),
        tx,
        conn_id,
        client_id: None,
        subs: Arc::new(Mutex::new(HashMap::new())),
        market_data_type: 1,
        hold: None,
    };
    let outcome = conn.run(rd, events).await;
    match &outcome {
        Ok(()) => tracing::info!(%peer, conn_id, "connection closed by the simulator"),
        Err(ConnError::Eof) => tracing::info!(%peer, conn_id, "client disconnected"),
        Err(e) => tracing::warn!(%peer, conn_id, "connection ended: {e}"),
    }
    conn.cleanup();
    let closed_by_us = matches!(outcome, Ok(()));
    drop(conn);
    if closed_by_us {
        // A restart closes at once; anything still queued is lost as on a real restart.
        writer.abort();
    } else {
        // Let queued replies (a 326, an error 100) reach the client before closing.
        let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    }
    lock(&shared.stats).connections_open -= 1;
}

async fn write_loop(wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(first) = rx.recv().await {
        if wr.write_all(&first).await.is_err() {
            return;
        }
        // Batch what is already queued into one flush.
        while let Ok(next) = rx.try_recv() {
            if wr.write_all(&next).await.is_err() {
                return;
            }
        }
        if wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

struct Conn {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Bytes>,
    conn_id: u64,
    client_id: Option<i32>,
    subs: Subscriptions,
    /// The market data type the client asked for with reqMarketDataType (1 live by default).
    market_data_type: i32,
    /// The market-data farm that holds the answer being built (see `deliver`).
    hold: Option<Farm>,
}

fn error_frame(id: i32, code: i32, message: &str) -> Bytes {
    encode_proto(
        outbound::ERROR,
        &proto::ErrorMessage {
            id: Some(id),
            error_time: Some(chrono::Utc::now().timestamp_millis()),
            error_code: Some(code),
            error_msg: Some(message.to_string()),
        },
    )
}

async fn read_more(rd: &mut OwnedReadHalf, buf: &mut BytesMut) -> Result<(), ConnError> {
    buf.reserve(8192);
    match rd.read_buf(buf).await? {
        0 => Err(ConnError::Eof),
        _ => Ok(()),
    }
}

impl Conn {
    async fn send(&self, frame: Bytes) {
        let _ = self.tx.send(frame).await;
    }

    async fn send_error(&self, id: i32, code: i32, message: &str) {
        self.shared.count_error(code);
        self.send(error_frame(id, code, message)).await;
    }

    async fn run(
        &mut self,
        mut rd: OwnedReadHalf,
        mut events: broadcast::Receiver<ConnEvent>,
    ) -> Result<(), ConnError> {
        let mut buf = BytesMut::with_capacity(8192);
        let timeout = self.shared.config.handshake_timeout;
        if self.shared.stall_handshake.load(Ordering::SeqCst) {
            // A gateway that accepts the socket but never answers the hello (still starting,
            // or its API thread hung): the client's own connect timeout must fire.
            tracing::info!(conn_id = self.conn_id, "leaving the handshake unanswered");
            return tokio::select! {
                r = tokio::time::timeout(timeout, swallow(&mut rd, &mut buf)) => match r {
                    Err(_) => Err(ConnError::HandshakeTimeout(timeout)),
                    Ok(e) => Err(e),
                },
                _ = wait_close(&mut events) => Ok(()),
            };
        }
        let handshake = tokio::select! {
            r = tokio::time::timeout(timeout, self.handshake(&mut rd, &mut buf)) => r,
            _ = wait_close(&mut events) => return Ok(()),
        };
        match handshake {
            Err(_) => return Err(ConnError::HandshakeTimeout(timeout)),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
        }
        let ticker = tokio::spawn(tick_loop(
            Arc::clone(&self.shared),
            Arc::clone(&self.subs),
            self.tx.clone(),
        ));
        let result = self.session(rd, buf, &mut events).await;
        ticker.abort();
        result
    }

    async fn session(
        &mut self,
        rd: OwnedReadHalf,
        buf: BytesMut,
        events: &mut broadcast::Receiver<ConnEvent>,
    ) -> Result<(), ConnError> {
        let (mut inbound, reader) = reader::spawn(Arc::clone(&self.shared), rd, buf);
        let result = self.answer(&mut inbound, events).await;
        reader.abort();
        result
    }

    /// Answers the frames the reader passes on, in order, until the socket or the
    /// simulator closes.
    async fn answer(
        &mut self,
        inbound: &mut mpsc::UnboundedReceiver<Result<Inbound, ReadEnd>>,
        events: &mut broadcast::Receiver<ConnEvent>,
    ) -> Result<(), ConnError> {
        loop {
            let next = tokio::select! {
                next = inbound.recv() => next,
                event = events.recv() => {
                    match event {
                        Ok(ConnEvent::Close) | Err(broadcast::error::RecvError::Closed) => return Ok(()),
                        Ok(ConnEvent::Notice(code)) => self.send_error(-1, code, error_text(code)).await,
                        Ok(ConnEvent::FarmNotice(code, farm)) => self.send_error(-1, code, &farm.notice(code)).await,
                        Ok(ConnEvent::DropMarketData) => self.drop_market_data(),
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                    }
                    continue;
                }
            };
            let Inbound { body, verdict } = match next {
                Some(Ok(frame)) => frame,
                None | Some(Err(ReadEnd::Eof)) => return Err(ConnError::Eof),
                Some(Err(ReadEnd::Io(e))) => return Err(ConnError::Io(e)),
                Some(Err(ReadEnd::Frame(e))) => return Err(ConnError::Frame(e)),
            };
            match verdict {
                RateVerdict::Ok => self.dispatch(&body).await,
                RateVerdict::Exceeded => {
                    let id = frame::split_message(&body)
                        .and_then(|(_, p)| proto::ReqIdOnly::decode(p).ok())
                        .and_then(|r| r.req_id)
                        .unwrap_or(-1);
                    let limit = self.shared.config.max_messages_per_sec;
                    self.send_error(
                        id,
                        100,
                        &format!("Max rate of messages per second has been exceeded:max={limit}"),
                    )
                    .await;
                }
                RateVerdict::Disconnect => {
                    tracing::warn!(conn_id = self.conn_id, "message flood: disconnecting");
                    self.send_error(
                        -1,
                        100,
                        "Max rate of messages per second has been exceeded: disconnecting",
                    )
                    .await;
                    return Err(ConnError::Eof);
                }
            }
        }
    }

    fn cleanup(&mut self) {
        self.drop_market_data();
        if let Some(id) = self.client_id.take() {
            let mut clients = lock(&self.shared.clients);
            if clients.get(&id) == Some(&self.conn_id) {
                clients.remove(&id);
            }
        }
    }
}

type Later = Box<
    dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Bytes>> + Send>> + Send,
>;

/// The answer to one request: frames to send (after `latency`), error codes they carry, and
/// frames computed only when the latency has passed.
struct Reply {
    frames: Vec<Bytes>,
    latency: Duration,
    errors: Vec<i32>,
    after: Option<Later>,
}

impl Reply {
    fn now(frames: Vec<Bytes>) -> Self {
        Self {
            frames,
            latency: Duration::ZERO,
            errors: Vec::new(),
            after: None,
        }
    }

    fn now_after(frames: Vec<Bytes>, latency: Duration) -> Self {
        Self {
            frames,
            latency,
            errors: Vec::new(),
            after: None,
        }
    }

    fn error(req_id: i32, code: i32, latency: Duration) -> Self {
        Self::error_text(req_id, code, error_text(code), latency)
    }

    fn error_text(req_id: i32, code: i32, text: &str, latency: Duration) -> Self {
        Self {
            frames: vec![error_frame(req_id, code, text)],
            latency,
            errors: vec![code],
            after: None,
        }
    }

    fn later(latency: Duration, build: impl FnOnce() -> Vec<Bytes> + Send + 'static) -> Self {
        Self::later_async(latency, move || Box::pin(async move { build() }))
    }

    fn later_async(
        latency: Duration,
        build: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Bytes>> + Send>>
            + Send
            + 'static,
    ) -> Self {
        Self {
            frames: Vec::new(),
            latency,
            errors: Vec::new(),
            after: Some(Box::new(build)),
        }
    }
}

/// Reads and drops whatever the client sends, until it closes.
async fn swallow(rd: &mut OwnedReadHalf, buf: &mut BytesMut) -> ConnError {
    loop {
        if let Err(e) = read_more(rd, buf).await {
            return e;
        }
        buf.clear();
    }
}

async fn wait_close(events: &mut broadcast::Receiver<ConnEvent>) {
    loop {
        match events.recv().await {
            Ok(ConnEvent::Close) | Err(broadcast::error::RecvError::Closed) => return,
            _ => {}
        }
    }
}
