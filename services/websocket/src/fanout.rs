//! Turning a stored room state into what each connected player may see. Every instance receives every
//! change (from its Redis subscription or the in-process bus) and sends each of *its* sockets in that room
//! the room state and that player's own game view; versions make repeated or late deliveries harmless.

use std::sync::Arc;

use serde_json::json;
use socketioxide::extract::SocketRef;

use crate::app::{App, session_of};
use crate::room::Room;
use crate::session::Session;
use crate::store::BusMessage;

/// Server → client event names (documented in docs/protocol.md).
pub const ROOM_STATE: &str = "room:state";
pub const GAME_VIEW: &str = "game:view";
pub const CHAT_MESSAGE: &str = "chat:message";
pub const ROOM_CLOSED: &str = "room:closed";

/// Delivers one room change to this instance's sockets in the room.
pub fn deliver(app: &App, message: &BusMessage) {
    if let Some(room) = &message.room {
        app.rooms
            .note_playing(&message.code, room.version, room.is_playing());
    }
    let sockets = app.io.within(message.code.clone()).sockets();
    if sockets.is_empty() {
        return;
    }
    match &message.room {
        Some(room) => {
            for socket in &sockets {
                let Some(session) = session_of(socket) else {
                    continue;
                };
                if session.room().as_deref() != Some(room.code.as_str()) {
                    continue;
                }
                push_state(socket, &session, room);
                if let Some(chat) = &message.chat {
                    let _ = socket.emit(CHAT_MESSAGE, chat);
                }
            }
        }
        None => {
            for socket in &sockets {
                close_room(app, socket, &message.code, "the room was closed");
            }
        }
    }
}

/// Sends `room` (and the socket's own game view) unless a newer state was already sent to it.
pub fn push_state(socket: &SocketRef, session: &Session, room: &Room) {
    if !session.claim_version(room.version) {
        return;
    }
    let _ = socket.emit(ROOM_STATE, &room.view());
    if let Some(view) = room.player_view(&session.user.id) {
        let _ = socket.emit(
            GAME_VIEW,
            &VersionedView {
                version: room.version,
                view,
            },
        );
    }
}

/// A player's view stamped with the room version it was computed from, so a client can drop a late one.
#[derive(serde::Serialize)]
struct VersionedView {
    version: u64,
    #[serde(flatten)]
    view: avalon_game::PlayerView,
}

/// Takes a socket out of a room that no longer exists (or no longer has it) and tells the client.
pub fn close_room(app: &App, socket: &SocketRef, code: &str, reason: &str) {
    let placed = session_of(socket)
        .is_some_and(|session| app.rooms.place_if_in(code, socket, &session, None));
    if !placed {
        // Not (or no longer) the session's room: only out of its Socket.IO room.
        socket.leave(code.to_owned());
    }
    let _ = socket.emit(ROOM_CLOSED, &json!({ "code": code, "reason": reason }));
}

/// Runs for the life of the process, fanning out every room change this instance hears of.
pub fn spawn(app: Arc<App>, mut bus: tokio::sync::mpsc::UnboundedReceiver<Arc<BusMessage>>) {
    tokio::spawn(async move {
        while let Some(message) = bus.recv().await {
            let app = Arc::clone(&app);
            // Rooms are independent; per-socket versions keep each room's deliveries in order.
            tokio::spawn(async move { deliver(&app, &message) });
        }
    });
}
