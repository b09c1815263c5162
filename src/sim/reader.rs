//! The socket's reading side after the handshake: every frame is counted against the
//! message rate when it arrives, not when the session gets round to answering it.
//!
//! IB limits what a client *sends* (50 messages a second, "from an API application to TWS";
//! see docs/SIM.md). A session that counted a message only when it dispatched it would count
//! the backlog behind a slow answer (a large set of bars, a full reply queue) as a burst the
//! client never sent. So a task of its own reads the socket as data comes, stamps each frame
//! with the time it was read and judges it there; the session then answers the frames in
//! order.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;

use super::frame::{self, FrameError};
use super::limits::{MessageRate, RateVerdict};
use super::server::{lock, Arrival, Shared, ARRIVALS_KEPT};

/// One frame as read, with the rate limiter's verdict on it.
pub(crate) struct Inbound {
    pub body: Bytes,
    pub verdict: RateVerdict,
}

/// Why the reading side stopped.
pub(crate) enum ReadEnd {
    Eof,
    Io(std::io::Error),
    Frame(FrameError),
}

/// Starts the reader: frames already in `buf` first, then whatever the socket brings. The
/// receiver yields each frame in order and, last, why reading stopped.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
) -> (
    mpsc::UnboundedReceiver<Result<Inbound, ReadEnd>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut rate = MessageRate::new(shared.config.max_messages_per_sec);
        let end = loop {
            let arrived = Instant::now();
            loop {
                match frame::take_frame(&mut buf) {
                    Ok(Some(body)) => {
                        lock(&shared.stats).messages_received += 1;
                        let verdict = rate.on_message(arrived);
                        let message = frame::split_message(&body)
                            .map_or(-1, |(id, _)| id - frame::PROTOBUF_OFFSET);
                        {
                            let mut log = lock(&shared.arrivals);
                            if log.len() >= ARRIVALS_KEPT {
                                log.pop_front();
                            }
                            log.push_back(Arrival {
                                at: arrived,
                                message,
                                over_rate: verdict != RateVerdict::Ok,
                            });
                        }
                        let stop = verdict == RateVerdict::Disconnect;
                        if tx.send(Ok(Inbound { body, verdict })).is_err() || stop {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(ReadEnd::Frame(e)));
                        return;
                    }
                }
            }
            buf.reserve(8192);
            match rd.read_buf(&mut buf).await {
                Ok(0) => break ReadEnd::Eof,
                Ok(_) => {}
                Err(e) => break ReadEnd::Io(e),
            }
        };
        let _ = tx.send(Err(end));
    });
    (rx, task)
}
