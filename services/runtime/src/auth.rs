//! Access tokens shared by the API (which issues them) and the game server (which checks them in the
//! Socket.IO handshake): HS256 JWTs signed with `JWT_SECRET`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// Issuer and audience pin tokens to this system, so a token minted for something else with the same
/// secret is refused.
pub const ISSUER: &str = "avalon-api";
pub const AUDIENCE: &str = "avalon";
/// The `typ` of access tokens; refresh tokens are opaque and never JWTs.
pub const ACCESS: &str = "access";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// Display name at issue time, so the game server needs no user lookup.
    pub name: String,
    /// The refresh-token family (login session) this token belongs to.
    pub sid: String,
    pub typ: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token is not an access token")]
    WrongType,
    #[error("cannot sign token: {0}")]
    Signing(String),
}

impl TokenError {
    /// Stable machine-readable code for API and Socket.IO error payloads.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Expired => "TOKEN_EXPIRED",
            TokenError::BadSignature => "TOKEN_INVALID",
            TokenError::Malformed(_) => "TOKEN_MALFORMED",
            TokenError::WrongType => "TOKEN_WRONG_TYPE",
            TokenError::Signing(_) => "TOKEN_SIGNING_FAILED",
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Signs an access token for `user_id` valid for `lifetime`.
pub fn issue_access_token(
    secret: &Secret,
    user_id: &str,
    name: &str,
    session_id: &str,
    lifetime: Duration,
) -> Result<(String, AccessClaims), TokenError> {
    let iat = now_secs();
    let claims = AccessClaims {
        sub: user_id.to_owned(),
        name: name.to_owned(),
        sid: session_id.to_owned(),
        typ: ACCESS.to_owned(),
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        iat,
        exp: iat.saturating_add(lifetime.as_secs()),
    };
    let key = EncodingKey::from_secret(secret.expose().as_bytes());
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|err| TokenError::Signing(err.to_string()))?;
    Ok((token, claims))
}

/// Checks signature, expiry (no leeway), issuer, audience and type.
pub fn verify_access_token(secret: &Secret, token: &str) -> Result<AccessClaims, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let key = DecodingKey::from_secret(secret.expose().as_bytes());
    let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).map_err(|err| {
        use jsonwebtoken::errors::ErrorKind;
        match err.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed(err.to_string()),
        }
    })?;
    if data.claims.typ != ACCESS {
        return Err(TokenError::WrongType);
    }
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("0123456789abcdefghijklmnopqrstuvwxyz")
    }

    #[test]
    fn issued_token_verifies() {
        let (token, claims) =
            issue_access_token(&secret(), "u1", "Arthur", "s1", Duration::from_secs(60)).unwrap();
        assert_eq!(verify_access_token(&secret(), &token).unwrap(), claims);
    }

    #[test]
    fn tampered_wrong_key_and_expired_tokens_are_refused() {
        let (token, _) =
            issue_access_token(&secret(), "u1", "Arthur", "s1", Duration::from_secs(60)).unwrap();
        let other = Secret::new("another-secret-that-is-long-enough-000");
        assert_eq!(
            verify_access_token(&other, &token),
            Err(TokenError::BadSignature)
        );
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert!(verify_access_token(&secret(), &parts.join(".")).is_err());
        let (expired, _) =
            issue_access_token(&secret(), "u1", "Arthur", "s1", Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            verify_access_token(&secret(), &expired),
            Err(TokenError::Expired)
        );
        assert!(matches!(
            verify_access_token(&secret(), "not-a-jwt"),
            Err(TokenError::Malformed(_))
        ));
    }
}
