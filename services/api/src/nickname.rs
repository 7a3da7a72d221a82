//! Nickname rules: what other players see at the table.

use crate::error::ApiError;
use crate::rules::NICKNAME;

pub const MAX_CHARS: usize = 16;

/// The nickname as it will be stored (trimmed), or the rule it broke. Acceptance is the published rule
/// ([`NICKNAME`]); the checks below only pick the message that says which part of it failed.
pub fn validate(raw: &str) -> Result<String, ApiError> {
    if NICKNAME.matches(raw)? {
        return Ok(raw.trim().to_owned());
    }
    Err(NICKNAME.refusal(diagnose(raw.trim())))
}

fn diagnose(nickname: &str) -> String {
    let count = nickname.chars().count();
    if count == 0 {
        return "nickname must not be empty".to_owned();
    }
    if count > MAX_CHARS {
        return format!("nickname must be at most {MAX_CHARS} characters (got {count})");
    }
    // Control and zero-width characters let one name impersonate another.
    "nickname must not contain control or invisible characters".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_follow_the_rules() {
        assert_eq!(validate("  Merlin  ").unwrap(), "Merlin");
        assert_eq!(validate("亚瑟王").unwrap(), "亚瑟王");
        assert_eq!(validate("   ").unwrap_err().code, "INVALID_NICKNAME");
        assert!(validate(&"x".repeat(MAX_CHARS)).is_ok());
        assert!(validate(&"x".repeat(MAX_CHARS + 1)).is_err());
        assert!(validate("Mer\u{200B}lin").is_err());
        assert!(validate("a\nb").is_err());
    }
}
