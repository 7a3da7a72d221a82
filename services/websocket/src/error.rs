//! The one error type handlers answer with: a stable machine `code` (SCREAMING_SNAKE_CASE) and a human `message`.
//! Every code is listed in `docs/protocol.md`.

use std::fmt;

use avalon_game::{RuleError, SetupError};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WsError {
    pub code: &'static str,
    pub message: String,
}

impl WsError {
    pub fn new(code: &'static str, message: impl Into<String>) -> WsError {
        WsError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> WsError {
        WsError::new("BAD_REQUEST", message)
    }

    pub fn internal(message: impl Into<String>) -> WsError {
        WsError::new("INTERNAL", message)
    }

    pub fn unavailable(message: impl Into<String>) -> WsError {
        WsError::new("UNAVAILABLE", message)
    }
}

impl fmt::Display for WsError {
    /// The `connect_error` packet of Socket.IO carries only a `message` string, so refusals at the handshake
    /// put the whole `{code, message}` object there as JSON text (see docs/protocol.md).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(json) => f.write_str(&json),
            Err(_) => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for WsError {}

impl From<RuleError> for WsError {
    fn from(err: RuleError) -> WsError {
        WsError::new(err.code(), err.to_string())
    }
}

impl From<SetupError> for WsError {
    fn from(err: SetupError) -> WsError {
        WsError::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_json_object_clients_parse_from_connect_error() {
        let err = WsError::new("AUTH_REQUIRED", "send auth: {token}");
        let parsed: serde_json::Value = serde_json::from_str(&err.to_string()).unwrap();
        assert_eq!(parsed["code"], "AUTH_REQUIRED");
        assert_eq!(parsed["message"], "send auth: {token}");
    }

    #[test]
    fn engine_refusals_keep_their_codes() {
        let err = WsError::from(RuleError::GoodCannotFail);
        assert_eq!(err.code, "GOOD_CANNOT_FAIL");
    }
}
