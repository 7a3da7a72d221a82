//! Command errors in MongoDB's shape (`ok: 0`, `errmsg`, `code`, `codeName`), so the driver maps them to
//! the same error kinds as a real server's.

use bson::{Document, doc};

/// The server error codes the stand-in answers with (numbers and names from MongoDB's error_codes.yml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadValue,
    FailedToParse,
    TypeMismatch,
    Unauthorized,
    AuthenticationFailed,
    NamespaceNotFound,
    CursorNotFound,
    CommandNotFound,
    ImmutableField,
    IndexOptionsConflict,
    IndexKeySpecsConflict,
    ProtocolError,
    MechanismUnavailable,
    DuplicateKey,
    InvalidNamespace,
    IllegalOperation,
    NamespaceExists,
}

impl Code {
    pub fn number(self) -> i32 {
        match self {
            Code::BadValue => 2,
            Code::FailedToParse => 9,
            Code::TypeMismatch => 14,
            Code::Unauthorized => 13,
            Code::AuthenticationFailed => 18,
            Code::NamespaceNotFound => 26,
            Code::CursorNotFound => 43,
            Code::CommandNotFound => 59,
            Code::ImmutableField => 66,
            Code::InvalidNamespace => 73,
            Code::IndexOptionsConflict => 85,
            Code::IndexKeySpecsConflict => 86,
            Code::ProtocolError => 17,
            Code::MechanismUnavailable => 334,
            Code::DuplicateKey => 11000,
            Code::IllegalOperation => 20,
            Code::NamespaceExists => 48,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Code::BadValue => "BadValue",
            Code::FailedToParse => "FailedToParse",
            Code::TypeMismatch => "TypeMismatch",
            Code::Unauthorized => "Unauthorized",
            Code::AuthenticationFailed => "AuthenticationFailed",
            Code::NamespaceNotFound => "NamespaceNotFound",
            Code::CursorNotFound => "CursorNotFound",
            Code::CommandNotFound => "CommandNotFound",
            Code::ImmutableField => "ImmutableField",
            Code::InvalidNamespace => "InvalidNamespace",
            Code::IndexOptionsConflict => "IndexOptionsConflict",
            Code::IndexKeySpecsConflict => "IndexKeySpecsConflict",
            Code::ProtocolError => "ProtocolError",
            Code::MechanismUnavailable => "MechanismUnavailable",
            Code::DuplicateKey => "DuplicateKey",
            Code::IllegalOperation => "IllegalOperation",
            Code::NamespaceExists => "NamespaceExists",
        }
    }
}

/// A failed command: becomes the whole reply document.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    pub code: Code,
    pub message: String,
    /// Extra fields of the reply (e.g. `keyPattern`/`keyValue` of a duplicate key).
    pub extra: Document,
}

impl CommandError {
    pub fn new(code: Code, message: impl Into<String>) -> CommandError {
        CommandError {
            code,
            message: message.into(),
            extra: Document::new(),
        }
    }

    pub fn bad_value(message: impl Into<String>) -> CommandError {
        CommandError::new(Code::BadValue, message)
    }

    pub fn reply(&self) -> Document {
        let mut reply = doc! {
            "ok": 0.0,
            "errmsg": &self.message,
            "code": self.code.number(),
            "codeName": self.code.name(),
        };
        reply.extend(self.extra.clone());
        reply
    }

    /// The entry of a `writeErrors` array (the same fields, without `ok`, with the batch index).
    pub fn write_error(&self, index: usize) -> Document {
        let mut entry = doc! {
            "index": i32::try_from(index).unwrap_or(i32::MAX),
            "code": self.code.number(),
            "errmsg": &self.message,
        };
        entry.extend(self.extra.clone());
        entry
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.name(),
            self.code.number(),
            self.message
        )
    }
}

pub type CommandResult<T> = Result<T, CommandError>;
