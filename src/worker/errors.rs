//! Why a request failed, and whether trying again can help.

/// Codes a gateway sends for conditions that pass: pacing, farms down, rate, lines,
/// competing sessions, server-side errors.
const RETRYABLE_CODES: &[i32] = &[
    100, 101, 162, 165, 322, 366, 1100, 2103, 2105, 2107, 2108, 2157, 10197,
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkError {
    /// An error the gateway sent, with its code.
    #[error("IB error {code}: {message}")]
    Ib { code: i32, message: String },
    #[error("timed out after {0} s")]
    Timeout(u64),
    /// The connection dropped: not the request's fault, it goes back to PENDING uncounted.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The request cannot succeed as asked (bad parameters, nothing matches).
    #[error("{0}")]
    Invalid(String),
    #[error("writing results failed: {0}")]
    Lake(String),
    #[error("{0}")]
    Other(String),
}

/// What a code 162 ("Historical Market Data Service error message") means. IB sends the
/// one code for pacing, for a query with no data and for a missing permission; only the
/// text tells them apart (ibapi 5.5 `messages/notice.rs`, `HMDS_ERROR_CODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hmds {
    /// "HMDS query returned no data: …": the window holds no bars; asking again gives none.
    NoData,
    /// "No market data permissions for …": the account lacks the subscription.
    NoPermission,
    /// Pacing violations and everything else: worth a retry after a pause.
    Other,
}

pub fn hmds_kind(message: &str) -> Hmds {
    let m = message.to_ascii_lowercase();
    if m.contains("hmds query returned no data") {
        Hmds::NoData
    } else if m.contains("no market data permissions") {
        Hmds::NoPermission
    } else {
        Hmds::Other
    }
}

impl WorkError {
    /// A 162 that says the window holds no data.
    pub fn is_no_data(&self) -> bool {
        matches!(self, WorkError::Ib { code: 162, message } if hmds_kind(message) == Hmds::NoData)
    }

    pub fn retryable(&self) -> bool {
        match self {
            WorkError::Ib { code: 162, message } => hmds_kind(message) == Hmds::Other,
            WorkError::Ib { code, .. } => RETRYABLE_CODES.contains(code),
            WorkError::Timeout(_) | WorkError::Lake(_) | WorkError::Other(_) => true,
            WorkError::ConnectionLost(_) => true,
            WorkError::Invalid(_) => false,
        }
    }
}

impl From<ibapi::Error> for WorkError {
    fn from(e: ibapi::Error) -> Self {
        match e {
            ibapi::Error::Notice(n) => WorkError::Ib {
                code: n.code,
                message: n.message,
            },
            e if e.is_connection_lost() => WorkError::ConnectionLost(e.to_string()),
            ibapi::Error::ConnectionFailed
            | ibapi::Error::Shutdown
            | ibapi::Error::ConnectionReset => WorkError::ConnectionLost(e.to_string()),
            ibapi::Error::Timeout => WorkError::Timeout(0),
            e => WorkError::Other(e.to_string()),
        }
    }
}

impl From<crate::lake::LakeError> for WorkError {
    fn from(e: crate::lake::LakeError) -> Self {
        WorkError::Lake(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_is_retried_and_no_security_definition_is_not() {
        let pacing = WorkError::Ib {
            code: 162,
            message: "pacing".into(),
        };
        let unknown = WorkError::Ib {
            code: 200,
            message: "no security definition".into(),
        };
        assert!(pacing.retryable());
        assert!(!unknown.retryable());
        assert!(!WorkError::Invalid("x".into()).retryable());
        assert!(WorkError::Timeout(5).retryable());
        assert_eq!(unknown.to_string(), "IB error 200: no security definition");
    }

    #[test]
    fn code_162_is_classified_by_its_text() {
        let e = |m: &str| WorkError::Ib {
            code: 162,
            message: m.into(),
        };
        let pacing = e(
            "Historical Market Data Service error message:Historical data request pacing violation",
        );
        let no_data = e("Historical Market Data Service error message:HMDS query returned no data: SPY@SMART Trades");
        let no_perm = e(
            "Historical Market Data Service error message:No market data permissions for NYSE STK",
        );
        assert!(pacing.retryable() && !pacing.is_no_data());
        assert!(!no_data.retryable() && no_data.is_no_data());
        assert!(!no_perm.retryable() && !no_perm.is_no_data());
    }
}
