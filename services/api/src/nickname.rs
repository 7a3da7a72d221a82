//! Nickname rules: what other players see at the table.

use crate::error::ApiError;

pub const MAX_CHARS: usize = 16;

/// The nickname as it will be stored (trimmed), or the rule it broke.
pub fn validate(raw: &str) -> Result<String, ApiError> {
    let nickname = raw.trim();
    let invalid = |message: String| {
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_NICKNAME",
            message,
        )
    };
    let count = nickname.chars().count();
    if count == 0 {
        return Err(invalid("nickname must not be empty".to_owned()));
    }
    if count > MAX_CHARS {
        return Err(invalid(format!(
            "nickname must be at most {MAX_CHARS} characters (got {count})"
        )));
    }
    // Control and zero-width characters let one name impersonate another.
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
    };
    if nickname.chars().any(hidden) {
        return Err(invalid(
            "nickname must not contain control or invisible characters".to_owned(),
        ));
    }
    Ok(nickname.to_owned())
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
