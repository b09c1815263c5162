//! One client connection: handshake, request dispatch, streaming subscriptions, limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono_tz::America::New_York;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};

use super::farms::{wait_open, Farm};
use super::faults::{error_text, RequestKind};
use super::frame::{self, encode_proto, FrameError, PROTOBUF_OFFSET};
use super::historical::{self, BarRequest};
use super::limits::RateVerdict;
use super::market_data::{self, Quote};
use super::pricing;
use super::proto::{self, inbound, outbound};
use super::reader::{self, Inbound, ReadEnd};
use super::server::{lock, ConnEvent, Shared};
use super::universe::{Instrument, Kind};

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

    /// Hello, version, StartApi, client id.
    async fn handshake(
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

    fn drop_market_data(&self) {
        let n = lock(&self.subs).drain().count();
        lock(&self.shared.lines).release(n as u32);
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

    async fn dispatch(&mut self, body: &[u8]) {
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
    fn verdict(&self, kind: RequestKind) -> super::faults::Verdict {
        self.shared.count_request(kind);
        lock(&self.shared.faults).decide(kind)
    }

    fn resolve_one(&self, contract: Option<&proto::Contract>) -> Option<Instrument> {
        let found = self.shared.universe.resolve(contract?);
        (found.len() == 1)
            .then(|| found.into_iter().next())
            .flatten()
    }

    fn contract_data(&self, r: proto::ContractDataRequest) -> Reply {
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

    fn market_data(&mut self, r: proto::MarketDataRequest) -> Reply {
        let req_id = r.req_id.unwrap_or(-1);
        let v = self.verdict(RequestKind::MarketData);
        // Every answer, refusals included, comes through the farm that serves the contract.
        self.hold = Some(Farm::MarketData);
        let Some(inst) = self.resolve_one(r.contract.as_ref()) else {
            return Reply::error(req_id, 200, v.latency);
        };
        let farm = Farm::serving(&inst.kind);
        self.hold = Some(farm);
        if lock(&self.subs).contains_key(&req_id) {
            return Reply::error_text(
                req_id,
                322,
                "Error processing request:-'bW' : cause - Duplicate ticker id",
                v.latency,
            );
        }
        if let Some(code) = v.error {
            return Reply::error(req_id, code, v.latency);
        }
        let exchange = r
            .contract
            .as_ref()
            .and_then(|c| c.exchange.clone())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "SMART".to_string());
        let delayed = match market_data::entitlement(
            self.shared.config.permissions,
            self.shared.config.competing_session,
            self.market_data_type,
            inst.symbol(),
            &exchange,
        ) {
            market_data::Entitlement::Live => false,
            market_data::Entitlement::Delayed => true,
            market_data::Entitlement::Refused(code, text) => {
                return Reply::error_text(req_id, code, &text, v.latency)
            }
        };
        if !lock(&self.shared.lines).try_acquire() {
            return Reply::error(req_id, 101, v.latency);
        }
        let snapshot = r.snapshot.unwrap_or(false) || r.regulatory_snapshot.unwrap_or(false);
        let frozen = self.shared.market_closed.load(Ordering::SeqCst)
            && !matches!(inst.kind, Kind::Future { .. });
        let shared = Arc::clone(&self.shared);
        if snapshot {
            // The data goes at once; the end (TickSnapshotEnd) follows `snapshot_end` later,
            // and the line is held until then, as a gateway does (docs/SIM.md).
            let end_after = shared.config.snapshot_end;
            if end_after.is_zero() {
                let burst = move || {
                    let (mut frames, _) = first_burst(&shared, req_id, &inst, frozen, delayed);
                    frames.push(market_data::snapshot_end(req_id));
                    lock(&shared.lines).release(1);
                    frames
                };
                return Reply::later(v.latency, burst);
            }
            let tx = self.tx.clone();
            let ender = Arc::clone(&shared);
            tokio::spawn(async move {
                // The data waits for the farm (see `deliver`), and so does its end.
                let answered = wait_open(ender.avail.subscribe(), Some(farm)).await;
                if answered {
                    tokio::time::sleep(v.latency + end_after).await;
                }
                lock(&ender.lines).release(1);
                if answered {
                    let _ = tx.send(market_data::snapshot_end(req_id)).await;
                }
            });
            return Reply::later(v.latency, move || {
                first_burst(&shared, req_id, &inst, frozen, delayed).0
            });
        }
        lock(&self.subs).insert(
            req_id,
            Subscription {
                inst: inst.clone(),
                last: None,
                frozen,
                delayed,
            },
        );
        let subs = Arc::clone(&self.subs);
        Reply::later(v.latency, move || {
            let (frames, quote) = first_burst(&shared, req_id, &inst, frozen, delayed);
            match lock(&subs).get_mut(&req_id) {
                Some(sub) => sub.last = Some(quote),
                // Cancelled while the latency ran.
                None => return Vec::new(),
            }
            frames
        })
    }

    fn cancel_market_data(&self, req_id: i32) {
        if lock(&self.subs).remove(&req_id).is_some() {
            lock(&self.shared.lines).release(1);
        }
    }

    fn historical(&self, r: proto::HistoricalDataRequest) -> Reply {
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

    fn positions(&self) -> Reply {
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

    fn sec_def(&self, r: proto::SecDefOptParamsRequest) -> Reply {
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

    fn current_time(&self) -> Reply {
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

/// What a gateway sends first for a market-data request: the request parameters, the market
/// data type, session statistics and the full quote.
fn first_burst(
    shared: &Shared,
    req_id: i32,
    inst: &Instrument,
    frozen: bool,
    delayed: bool,
) -> (Vec<Bytes>, Quote) {
    let now = shared.clock.now();
    let at = if frozen {
        pricing::last_close_before(now)
    } else if delayed {
        now - market_data::DELAY
    } else {
        now
    };
    // 1 live, 2 frozen, 3 delayed, 4 delayed frozen; delayed data is announced by 10167.
    let data_type = match (delayed, frozen) {
        (false, false) => 1,
        (false, true) => 2,
        (true, false) => 3,
        (true, true) => 4,
    };
    let mut frames = Vec::new();
    if delayed {
        let (code, text) = market_data::DELAYED_NOTICE;
        shared.count_error(code);
        frames.push(error_frame(req_id, code, text));
    }
    frames.extend(market_data::preamble(req_id, data_type, inst));
    frames.extend(market_data::stats_ticks(
        req_id,
        &market_data::session_stats(&shared.market, inst, at),
        delayed,
    ));
    let mut quote = market_data::quote(&shared.market, inst, at);
    if frozen {
        quote = market_data::after_the_close(quote);
    }
    frames.extend(market_data::ticks(req_id, None, &quote, delayed));
    (frames, quote)
}

/// Sends quote changes of every live subscription of one connection, every tick interval.
async fn tick_loop(shared: Arc<Shared>, subs: Subscriptions, tx: mpsc::Sender<Bytes>) {
    let mut interval = tokio::time::interval(shared.config.tick_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        if shared.outage.load(Ordering::SeqCst) {
            continue;
        }
        let avail = *shared.avail.borrow();
        let now = shared.clock.now();
        let mut frames = Vec::new();
        for (req_id, sub) in lock(&subs).iter_mut() {
            // A stream pauses while the farm serving its contract is down.
            if sub.frozen || !avail.farm(Farm::serving(&sub.inst.kind)).serves() {
                continue;
            }
            let Some(prev) = &sub.last else { continue };
            let at = if sub.delayed {
                now - market_data::DELAY
            } else {
                now
            };
            let quote = market_data::quote(&shared.market, &sub.inst, at);
            frames.extend(market_data::ticks(*req_id, Some(prev), &quote, sub.delayed));
            sub.last = Some(quote);
        }
        for f in frames {
            match tx.try_send(f) {
                Ok(()) => {}
                // A client that does not read loses ticks rather than stalling the simulator.
                Err(mpsc::error::TrySendError::Full(_)) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
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
