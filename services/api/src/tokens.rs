//! Sessions: a short-lived access JWT (shared with the game server) plus an opaque refresh token that rotates
//! on every use. Refresh tokens are stored only as SHA-256 hashes, grouped in a family per login; presenting
//! a used one again means it was copied, so the whole family is revoked.

use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::model::{Consumed, RefreshRecord, User, now_ms};
use crate::state::AppState;

/// What a successful login or refresh returns.
#[derive(Debug, Serialize)]
pub struct SessionTokens {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    pub user: PublicUser,
}

/// A user as the API shows it (no openid).
#[derive(Debug, Clone, Serialize)]
pub struct PublicUser {
    pub id: String,
    pub nickname: String,
    pub created_at_ms: u64,
}

impl From<&User> for PublicUser {
    fn from(user: &User) -> PublicUser {
        PublicUser {
            id: user.id.clone(),
            nickname: user.nickname.clone(),
            created_at_ms: user.created_at_ms,
        }
    }
}

pub fn new_refresh_token() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_refresh_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Starts a new login session (a new refresh family) for `user`.
pub async fn start_session(state: &AppState, user: &User) -> ApiResult<SessionTokens> {
    let family = uuid::Uuid::new_v4().simple().to_string();
    issue(state, user, &family).await
}

async fn issue(state: &AppState, user: &User, family: &str) -> ApiResult<SessionTokens> {
    let access_lifetime = state.config.common.jwt_expires_in;
    let refresh_lifetime = state.config.service.refresh_token_expires_in;
    let (access_token, _claims) = avalon_runtime::auth::issue_access_token(
        &state.config.common.jwt_secret,
        &user.id,
        &user.nickname,
        family,
        access_lifetime,
    )
    .map_err(|err| ApiError::internal(format!("cannot sign the access token: {err}")))?;
    let refresh_token = new_refresh_token();
    let now = now_ms();
    let record = RefreshRecord {
        token_hash: hash_refresh_token(&refresh_token),
        family: family.to_owned(),
        user_id: user.id.clone(),
        issued_at_ms: now,
        expires_at_ms: now.saturating_add(millis(refresh_lifetime)),
        used: false,
        revoked: false,
    };
    state.store.insert_refresh(&record).await?;
    Ok(SessionTokens {
        access_token,
        token_type: "Bearer",
        expires_in: access_lifetime.as_secs(),
        refresh_token,
        refresh_expires_in: refresh_lifetime.as_secs(),
        user: PublicUser::from(user),
    })
}

fn refused(code: &'static str, message: &str) -> ApiError {
    ApiError::unauthorized(code, message)
}

/// Rotates `refresh_token`: the presented token becomes used and a new pair in the same family is issued.
pub async fn refresh_session(state: &AppState, refresh_token: &str) -> ApiResult<SessionTokens> {
    let hash = hash_refresh_token(refresh_token);
    let record = match state.store.consume_refresh(&hash).await? {
        Consumed::Unknown => {
            return Err(refused(
                "REFRESH_TOKEN_INVALID",
                "unknown refresh token; sign in again",
            ));
        }
        Consumed::AlreadyUsed(record) => {
            let revoked = state.store.revoke_family(&record.family).await?;
            tracing::warn!(
                user_id = %record.user_id,
                family = %record.family,
                revoked,
                "refresh token replayed: session revoked"
            );
            return Err(refused(
                "REFRESH_TOKEN_REUSED",
                "this refresh token was already used; the session has been revoked, sign in again",
            ));
        }
        Consumed::Fresh(record) => record,
    };
    if record.revoked {
        return Err(refused(
            "REFRESH_TOKEN_REVOKED",
            "this session was revoked; sign in again",
        ));
    }
    if record.expires_at_ms <= now_ms() {
        return Err(refused(
            "REFRESH_TOKEN_EXPIRED",
            "the refresh token expired; sign in again",
        ));
    }
    let user = state.store.user(&record.user_id).await?.ok_or_else(|| {
        refused(
            "USER_NOT_FOUND",
            "the user of this session no longer exists",
        )
    })?;
    issue(state, &user, &record.family).await
}

/// Ends the session the refresh token belongs to. Unknown tokens are ignored (logout is idempotent).
pub async fn end_session(state: &AppState, refresh_token: &str) -> ApiResult<()> {
    let hash = hash_refresh_token(refresh_token);
    let family = match state.store.consume_refresh(&hash).await? {
        Consumed::Fresh(record) | Consumed::AlreadyUsed(record) => record.family,
        Consumed::Unknown => return Ok(()),
    };
    state.store.revoke_family(&family).await?;
    Ok(())
}

/// Anything not shaped like a refresh token is refused before touching the store.
pub fn check_refresh_shape(token: &str) -> ApiResult<()> {
    crate::rules::REFRESH_TOKEN.check(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_random_and_hashed_stably() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(check_refresh_shape(&a).is_ok());
        assert_eq!(hash_refresh_token(&a), hash_refresh_token(&a));
        assert_ne!(hash_refresh_token(&a), hash_refresh_token(&b));
        assert_eq!(hash_refresh_token(&a).len(), 64);
        assert!(check_refresh_shape("short").is_err());
        assert!(check_refresh_shape("has spaces in it, which tokens never do").is_err());
    }
}
