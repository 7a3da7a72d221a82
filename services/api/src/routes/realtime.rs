//! Where and how the client connects to the game server (docs/protocol.md).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;

use crate::error::ApiResult;
use crate::extract::Authenticated;
use crate::state::AppState;

#[derive(Serialize)]
pub struct Realtime {
    /// Socket.IO path on the same host (nginx routes it to the game server).
    path: &'static str,
    transports: [&'static str; 2],
    /// What to put in the handshake: `io(url, { path, transports, auth: { token } })`.
    auth: HandshakeAuth,
    /// When the token stops being accepted (seconds since the Unix epoch): refresh before then.
    token_expires_at: u64,
}

#[derive(Serialize)]
pub struct HandshakeAuth {
    token: String,
}

pub async fn realtime(
    State(_state): State<AppState>,
    Authenticated(claims): Authenticated,
    headers: HeaderMap,
) -> ApiResult<Json<Realtime>> {
    // The access token the caller just proved it holds is the one the game server checks.
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok(Json(Realtime {
        path: "/socket.io/",
        transports: ["websocket", "polling"],
        auth: HandshakeAuth { token },
        token_expires_at: claims.exp,
    }))
}
