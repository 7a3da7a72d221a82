//! What each request field accepts, as one regular expression per field. Handlers validate with it and the
//! OpenAPI document publishes the same text as the field's `pattern`, so the document cannot promise more or
//! less than the server takes. Patterns keep to the syntax Rust's `regex`, ECMA-262 (JSON Schema) and
//! Python's `re` read alike: anchored, `\uXXXX` / `\xXX` escapes, plain classes and `(?:…)` groups.

use std::sync::OnceLock;

use axum::http::StatusCode;
use regex::Regex;
use serde_json::{Value, json};

use crate::error::ApiError;

/// One string field of a request and the refusal that breaking its rule earns.
pub struct FieldRule {
    pub name: &'static str,
    pub description: &'static str,
    pub pattern: &'static str,
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
    compiled: OnceLock<Result<Regex, regex::Error>>,
}

impl FieldRule {
    const fn new(
        name: &'static str,
        description: &'static str,
        pattern: &'static str,
        refusal: (StatusCode, &'static str, &'static str),
    ) -> FieldRule {
        FieldRule {
            name,
            description,
            pattern,
            status: refusal.0,
            code: refusal.1,
            message: refusal.2,
            compiled: OnceLock::new(),
        }
    }

    /// Whether `text` follows the rule. A pattern that does not compile is a bug a unit test catches; should
    /// one ship anyway, requests get 500 rather than a check that lets everything through.
    pub fn matches(&self, text: &str) -> Result<bool, ApiError> {
        match self.compiled.get_or_init(|| Regex::new(self.pattern)) {
            Ok(regex) => Ok(regex.is_match(text)),
            Err(err) => Err(ApiError::internal(format!(
                "the rule of `{}` does not compile: {err}",
                self.name
            ))),
        }
    }

    /// `Ok` when `text` follows the rule, else this rule's refusal.
    pub fn check(&self, text: &str) -> Result<(), ApiError> {
        if self.matches(text)? {
            Ok(())
        } else {
            Err(self.refusal(self.message))
        }
    }

    pub fn refusal(&self, message: impl Into<String>) -> ApiError {
        ApiError::new(self.status, self.code, message)
    }

    /// The field's JSON Schema.
    pub fn schema(&self) -> Value {
        json!({ "type": "string", "pattern": self.pattern, "description": self.description })
    }
}

/// The code from `wx.login()`: printable ASCII, at most 128 characters.
pub static WECHAT_CODE: FieldRule = FieldRule::new(
    "code",
    "the code from wx.login: 1-128 printable ASCII characters",
    r"^[!-~]{1,128}$",
    (
        StatusCode::BAD_REQUEST,
        "INVALID_CODE",
        "code must be the 1-128 character code from wx.login",
    ),
);

pub static DEV_OPENID: FieldRule = FieldRule::new(
    "openid",
    "1-64 letters, digits, - or _",
    r"^[A-Za-z0-9_-]{1,64}$",
    (
        StatusCode::BAD_REQUEST,
        "INVALID_OPENID",
        "openid must be 1-64 letters, digits, `-` or `_`",
    ),
);

/// Refresh tokens are 43 URL-safe base64 characters; the rule leaves room for a longer format later.
pub static REFRESH_TOKEN: FieldRule = FieldRule::new(
    "refresh_token",
    "the opaque refresh token from sign-in or the last refresh (20-200 URL-safe base64 characters)",
    r"^[A-Za-z0-9_-]{20,200}$",
    (
        StatusCode::BAD_REQUEST,
        "INVALID_REFRESH_TOKEN",
        "refresh_token must be the opaque token returned at sign-in",
    ),
);

/// What other players see at the table. Surrounding white space is trimmed off; what remains is 1-16
/// characters, starts and ends with a visible character, and holds no control character (Unicode `Cc`) nor
/// an invisible one (zero-width, bidi controls, word joiners, BOM) that would let one name pass for another.
/// The white space trimmed is Unicode `White_Space`, as Rust's `str::trim` has it.
pub static NICKNAME: FieldRule = FieldRule::new(
    "nickname",
    "1-16 characters once surrounding white space is trimmed, no control or invisible characters",
    concat!(
        // leading white space
        r"^[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
        // one visible character, or a visible one, up to 14 of any allowed, a visible one
        r"(?:[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200F\u2028-\u202F\u205F-\u2064\u3000\uFEFF]",
        r"|[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200F\u2028-\u202F\u205F-\u2064\u3000\uFEFF]",
        r"[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u202A-\u202E\u2060-\u2064\uFEFF]{0,14}",
        r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200F\u2028-\u202F\u205F-\u2064\u3000\uFEFF])",
        // trailing white space
        r"[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$",
    ),
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_NICKNAME",
        "nickname must be 1-16 characters without control or invisible characters",
    ),
);

/// `cursor` of `GET /v1/games`: empty (first page) or a `next_cursor`, `<ms>.<hex of the game id>`.
pub static CURSOR: FieldRule = FieldRule::new(
    "cursor",
    "the previous page's next_cursor; empty or absent for the first page",
    r"^(?:[0-9]{1,19}\.(?:[0-9a-f]{2})*)?$",
    (
        StatusCode::BAD_REQUEST,
        "INVALID_CURSOR",
        "cursor must be a next_cursor value from this API",
    ),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles_and_is_anchored() {
        for rule in [
            &WECHAT_CODE,
            &DEV_OPENID,
            &REFRESH_TOKEN,
            &NICKNAME,
            &CURSOR,
        ] {
            assert!(rule.matches("").is_ok(), "{} does not compile", rule.name);
            assert!(rule.pattern.starts_with('^') && rule.pattern.ends_with('$'));
        }
    }

    #[test]
    fn field_rules_accept_and_refuse_what_the_docs_say() {
        assert!(WECHAT_CODE.check("0a1b2c~!").is_ok());
        assert!(WECHAT_CODE.check("").is_err());
        assert!(WECHAT_CODE.check("has space").is_err());
        assert!(WECHAT_CODE.check(&"x".repeat(129)).is_err());
        assert!(DEV_OPENID.check("arthur_1-b").is_ok());
        assert!(
            DEV_OPENID.check("arthur\n").is_err(),
            "no newline at the end"
        );
        assert!(REFRESH_TOKEN.check(&"A".repeat(43)).is_ok());
        assert!(REFRESH_TOKEN.check("short").is_err());
        assert!(CURSOR.check("").is_ok());
        assert!(CURSOR.check("1700000000000.672d31").is_ok());
        assert!(CURSOR.check("1700000000000.672").is_err(), "odd hex");
        assert!(CURSOR.check(&"9".repeat(20)).is_err());
    }

    #[test]
    fn nickname_rule_trims_and_refuses_hidden_characters() {
        for good in [
            "Merlin",
            "  Merlin  ",
            "亚瑟王",
            "King Arthur",
            "\u{3000}M\u{3000}",
            &"x".repeat(16),
            &format!("  {}\t", "y".repeat(16)),
        ] {
            assert!(NICKNAME.check(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "   ",
            &"x".repeat(17),
            "Mer\u{200B}lin",
            "\u{200B}Merlin",
            "a\nb",
            "a\u{7f}",
            "\u{FEFF}",
            "a\u{202E}b",
        ] {
            assert!(NICKNAME.check(bad).is_err(), "{bad:?} accepted");
        }
    }
}
