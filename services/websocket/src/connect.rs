//! The handshake and the life of a connection: refuse (draining, full, unauthenticated) with a
//! `connect_error`, otherwise attach a session, put a returning player back in their room, and mark them
//! away when the socket goes.

use std::sync::Arc;

use avalon_runtime::auth::verify_access_token;
use serde_json::{Value, json};
use socketioxide::extract::SocketRef;

use crate::app::{App, session_of};
use crate::error::WsError;
use crate::handlers::{self, Call, Entry};
use crate::room::User;
use crate::session::{Session, now_ms};

pub const SESSION: &str = "session";
pub const MAINTENANCE: &str = "server:maintenance";

/// The connect middleware: every refusal is a `connect_error` whose message is `{code, message}` as JSON.
/// An admitted socket gets its event handlers here, before socketioxide acknowledges the CONNECT: the
/// connect handler runs on a task of its own after the acknowledgement, and an event a client sends the
/// moment it is connected would otherwise find no handler and never be answered (the deploy probe's
/// `sync` did, one session in a few). The events wait for the connect handler's resume themselves.
pub async fn admit(
    app: &Arc<App>,
    socket: &SocketRef,
    auth: Result<Value, impl std::fmt::Display>,
) -> Result<(), WsError> {
    let result = check(app, socket, auth);
    match &result {
        Ok(()) => {
            app.metrics.accepted.inc();
            handlers::register(socket, app);
        }
        Err(err) => app.metrics.refused(err.code),
    }
    result
}

/// FAULT_INJECT_WS_REFUSE_RATE: refuses that share of handshakes on purpose, so a canary built with it
/// must be caught by the judgment's game-server signals. Health and metrics are untouched, so the
/// instance stays healthy and keeps getting players, as a subtly broken release would.
fn injected_fault(app: &App) -> Result<(), WsError> {
    let rate = app.ws().fault_inject_refuse_rate;
    if rate > 0.0 && rand::random::<f64>() < rate {
        return Err(WsError::new(
            "FAULT_INJECTED",
            format!("handshake refused on purpose (FAULT_INJECT_WS_REFUSE_RATE={rate})"),
        ));
    }
    Ok(())
}

fn check(
    app: &App,
    socket: &SocketRef,
    auth: Result<Value, impl std::fmt::Display>,
) -> Result<(), WsError> {
    if app.lifecycle.is_draining() {
        return Err(WsError::new(
            "DRAINING",
            "this server is shutting down; reconnect (you will reach another instance)",
        ));
    }
    injected_fault(app)?;
    let limit = app.live.get().max_connections;
    let open = app.metrics.connections.get();
    if open >= i64::from(limit) {
        return Err(WsError::new(
            "SERVER_FULL",
            format!("this server holds its maximum of {limit} connections; retry shortly"),
        ));
    }
    let token = auth
        .ok()
        .and_then(|auth| auth.get("token").and_then(Value::as_str).map(str::to_owned))
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            WsError::new(
                "AUTH_REQUIRED",
                "send the access token from the API in the handshake: auth: {token}",
            )
        })?;
    let claims = verify_access_token(&app.config.common.jwt_secret, &token)
        .map_err(|err| WsError::new(err.code(), format!("access token refused: {err}")))?;
    let user = User {
        id: claims.sub,
        name: claims.name,
    };
    let connection = format!("{}/{}", app.instance, socket.id);
    let budget = app.budgets.of(
        &user.id,
        app.live.get().rate_limit_user,
        app.ws().chat_per_minute,
    );
    socket
        .extensions
        .insert(Arc::new(Session::new(user, connection, budget)));
    Ok(())
}

/// After the handshake: count the connection, wire the events, and resume the player's room if any.
pub async fn connected(app: Arc<App>, socket: SocketRef) {
    let Some(session) = session_of(&socket) else {
        let _ = socket.disconnect();
        return;
    };
    app.metrics.connections.inc();
    {
        let app = Arc::clone(&app);
        socket.on_disconnect(move |socket: SocketRef| {
            let app = Arc::clone(&app);
            async move { disconnected(app, socket).await }
        });
    }
    let room = resume(&app, &socket, &session).await;
    session.mark_resumed();
    let maintenance = app.maintenance();
    let _ = socket.emit(
        SESSION,
        &json!({
            "user_id": session.user.id,
            "name": session.user.name,
            "room": room,
            "instance": app.instance,
            "maintenance": maintenance.enabled.then_some(&maintenance),
        }),
    );
}

/// Puts a returning player back in the room they were in, on whichever instance they reached.
async fn resume(app: &Arc<App>, socket: &SocketRef, session: &Arc<Session>) -> Option<String> {
    let code = match app.store.user_room(&session.user.id).await {
        Ok(code) => code?,
        Err(err) => {
            tracing::warn!(error = %err, "cannot look up the player's room");
            return None;
        }
    };
    let call = Call {
        app: Arc::clone(app),
        socket: socket.clone(),
        session: Arc::clone(session),
    };
    match handlers::enter(&call, &code, Entry::Resume).await {
        Ok(_) => Some(code),
        Err(err) => {
            tracing::debug!(code = %code, reason = %err.message, "previous room not resumed");
            // The room is gone or the seat was given up: stop offering it on later connects.
            if matches!(
                err.code,
                "ROOM_NOT_FOUND" | "NOT_IN_ROOM" | "GAME_IN_PROGRESS" | "ROOM_FULL"
            ) {
                let _ = app
                    .store
                    .set_user_room(&session.user.id, None, app.room_ttl())
                    .await;
            }
            None
        }
    }
}

async fn disconnected(app: Arc<App>, socket: SocketRef) {
    app.metrics.connections.dec();
    // Before anything awaits: socketioxide drops the socket from its rooms once this handler is done.
    app.rooms.forget(socket.id);
    let Some(session) = session_of(&socket) else {
        return;
    };
    let Some(code) = session.room() else { return };
    if app.lifecycle.is_draining() {
        // Told to reconnect elsewhere: the seat stays connected-looking until the new socket takes it.
        return;
    }
    let user_id = session.user.id.clone();
    let connection = session.connection.clone();
    let result = app
        .store
        .update(&code, app.room_ttl(), now_ms(), |room| {
            room.disconnect(&user_id, &connection, now_ms())?;
            Ok(crate::room::Effects::default())
        })
        .await;
    if let Err(err) = result {
        tracing::debug!(code = %code, error = %err, "disconnect not recorded");
    }
}
