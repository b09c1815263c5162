//! Framing and handshake of the TWS API socket protocol.
//!
//! Every frame is a big-endian `u32` length followed by the body. The client opens with
//! `API\0` and one frame holding its version range (`v213..226`); the server answers with
//! one frame `<version>\0<time zone>\0`. After that every body starts with a big-endian
//! `i32` message id, protobuf messages carrying `200 + type`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest frame body the protocol allows; a longer length prefix is a protocol violation.
pub const MAX_FRAME_LEN: usize = 0x00FF_FFFF;
/// The four bytes a client sends before its version range.
pub const API_PREFIX: &[u8; 4] = b"API\0";
/// Lowest server version this simulator speaks: the protobuf-only floor of `ibapi` 5.5.
pub const MIN_SERVER_VERSION: i32 = 213;
/// Highest server version this simulator speaks (the current IB Gateway).
pub const MAX_SERVER_VERSION: i32 = 226;
/// Message ids above this carry a protobuf message of type `id - 200`.
pub const PROTOBUF_OFFSET: i32 = 200;

/// Why a byte stream cannot be read as TWS frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than [`MAX_FRAME_LEN`] bytes.
    #[error("frame length {0} exceeds the protocol maximum of {MAX_FRAME_LEN} bytes")]
    TooLong(usize),
    /// The connection did not open with `API\0`.
    #[error("handshake does not start with API\\0")]
    BadPrefix,
    /// The version frame is not `vMIN..MAX` (or `vN`).
    #[error("malformed version range {0:?}")]
    BadVersionRange(String),
}

/// Why a client's version range is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported API version range v{client_min}..{client_max}: this gateway speaks v{MIN_SERVER_VERSION}..{MAX_SERVER_VERSION} (protobuf only)")]
pub struct VersionMismatch {
    pub client_min: i32,
    pub client_max: i32,
}

/// Takes one complete frame body off the front of `buf`, or `None` until it has arrived.
/// An over-long length is reported before anything is buffered for it.
pub fn take_frame(buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
    let Some(header) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong(len));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Reads the client hello (`API\0` + version frame) off `buf`: its `(min, max)` version range,
/// or `None` until it is complete.
pub fn take_hello(buf: &mut BytesMut) -> Result<Option<(i32, i32)>, FrameError> {
    let prefix_len = buf.len().min(API_PREFIX.len());
    if buf[..prefix_len] != API_PREFIX[..prefix_len] {
        return Err(FrameError::BadPrefix);
    }
    if buf.len() < API_PREFIX.len() {
        return Ok(None);
    }
    let mut rest = BytesMut::from(&buf[API_PREFIX.len()..]);
    let Some(body) = take_frame(&mut rest)? else {
        return Ok(None);
    };
    let consumed = API_PREFIX.len() + 4 + body.len();
    buf.advance(consumed);
    let text = String::from_utf8_lossy(&body);
    parse_version_range(&text).map(Some)
}

/// Parses `v213..226` (or a single `v226`) into `(min, max)`.
pub fn parse_version_range(text: &str) -> Result<(i32, i32), FrameError> {
    let bad = || FrameError::BadVersionRange(text.chars().take(64).collect());
    let body = text
        .trim_end_matches('\0')
        .strip_prefix('v')
        .ok_or_else(bad)?;
    let (min, max) = match body.split_once("..") {
        Some((min, max)) => (min, max),
        None => (body, body),
    };
    let min: i32 = min.trim().parse().map_err(|_| bad())?;
    let max: i32 = max.trim().parse().map_err(|_| bad())?;
    if min > max || min < 0 {
        return Err(bad());
    }
    Ok((min, max))
}

/// The server version for a client range: the highest version both sides speak.
pub fn negotiate(client_min: i32, client_max: i32) -> Result<i32, VersionMismatch> {
    let version = client_max.min(MAX_SERVER_VERSION);
    if version < MIN_SERVER_VERSION || version < client_min {
        return Err(VersionMismatch {
            client_min,
            client_max,
        });
    }
    Ok(version)
}

/// Splits a frame body into its message id and payload; `None` if it is too short.
pub fn split_message(body: &[u8]) -> Option<(i32, &[u8])> {
    let (id, payload) = body.split_first_chunk::<4>()?;
    Some((i32::from_be_bytes(*id), payload))
}

/// Prefixes `body` with its length.
pub fn encode_frame(body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_u32(body.len() as u32);
    out.put_slice(body);
    out.freeze()
}

/// One framed protobuf message of type `msg_type`.
pub fn encode_proto(msg_type: i32, message: &impl prost::Message) -> Bytes {
    let len = 4 + message.encoded_len();
    let mut out = BytesMut::with_capacity(4 + len);
    out.put_u32(len as u32);
    out.put_i32(msg_type + PROTOBUF_OFFSET);
    // Encoding into a BytesMut only fails when capacity is short, and it grows on demand.
    let _ = message.encode(&mut out);
    out.freeze()
}

/// The server's handshake answer: version and connection time.
pub fn encode_hello_reply(version: i32, time_text: &str) -> Bytes {
    encode_frame(format!("{version}\0{time_text}\0").as_bytes())
}

/// A legacy (text) error frame, the only error a client that speaks no protobuf can read.
pub fn encode_text_error(code: i32, message: &str) -> Bytes {
    encode_frame(format!("4\x002\0-1\0{code}\0{message}\0").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_completion() {
        let frame = encode_frame(b"hello");
        let mut buf = BytesMut::from(&frame[..3]);
        assert_eq!(take_frame(&mut buf), Ok(None));
        buf.extend_from_slice(&frame[3..]);
        assert_eq!(take_frame(&mut buf), Ok(Some(Bytes::from_static(b"hello"))));
        assert!(buf.is_empty());
    }

    #[test]
    fn over_long_frames_are_rejected() {
        let mut buf = BytesMut::from(&0x0100_0000u32.to_be_bytes()[..]);
        assert_eq!(take_frame(&mut buf), Err(FrameError::TooLong(0x0100_0000)));
    }

    #[test]
    fn hello_and_negotiation() {
        let mut buf = BytesMut::from(&b"API\0"[..]);
        buf.extend_from_slice(&encode_frame(b"v213..226"));
        assert_eq!(take_hello(&mut buf), Ok(Some((213, 226))));
        assert_eq!(negotiate(213, 226), Ok(226));
        assert_eq!(negotiate(100, 226), Ok(226));
        assert_eq!(negotiate(213, 300), Ok(226));
        assert!(negotiate(157, 178).is_err());
        let mut bad = BytesMut::from(&b"GET / HTTP"[..]);
        assert_eq!(take_hello(&mut bad), Err(FrameError::BadPrefix));
    }
}
