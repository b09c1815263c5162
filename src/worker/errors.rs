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

impl WorkError {
    pub fn retryable(&self) -> bool {
        match self {
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
}
