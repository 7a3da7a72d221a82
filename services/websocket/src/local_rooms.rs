//! The game rooms this instance has players in, kept up to date as sockets enter and leave them, for the
//! `ws_rooms` and `ws_active_games` gauges (and so the registry's `rooms` and `live_games`).
//!
//! Every move of a socket between game rooms goes through [`LocalRooms::place`]: its Socket.IO room (what the
//! fan-out delivers to), its session's room and the count change together under one lock, so reading the
//! gauges is a look at this map. They used to be computed by a pass over every local socket under the
//! Socket.IO room index's read locks: 10–14 ms at 12,500 connections, every 5 s and at every registry
//! heartbeat, during which a join waited for the index's write lock and every delivery queued behind it —
//! the fan-out's p99 tail (docs/protocol.md §9).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;

use crate::session::Session;

#[derive(Default)]
pub struct LocalRooms {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The game room of each counted socket.
    seated: HashMap<Sid, String>,
    /// Each room with a counted socket here.
    rooms: HashMap<String, LocalRoom>,
}

struct LocalRoom {
    sockets: usize,
    /// Whether its game is running, as of the newest state delivered here (deliveries run as tasks of
    /// their own, so an older one can arrive after a newer one: `version` keeps it from winning).
    playing: bool,
    version: u64,
}

/// What the gauges show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomCounts {
    /// Rooms with at least one player connected here.
    pub rooms: usize,
    /// Of those, the ones whose game is in progress.
    pub playing: usize,
}

impl LocalRooms {
    /// Moves `socket` into game room `to` (`None`: out of its room): leaves the Socket.IO room of the
    /// session's current room, joins `to`'s, sets the session's room (so the next state is pushed in full)
    /// and counts the socket there. A socket whose disconnect has begun joins nothing and is not counted:
    /// its disconnect has taken it out of the count already, or will find nothing to take, and socketioxide
    /// drops it from its rooms only after that (a join after it would stay in the room index for good).
    pub fn place(&self, socket: &SocketRef, session: &Session, to: Option<&str>) {
        let mut inner = self.lock();
        inner.place(socket, session, to);
    }

    /// [`LocalRooms::place`], only if the session is still in room `code` when the lock is taken: for a
    /// caller that read the room earlier and may have been overtaken (a `room:leave` of the same socket, the
    /// room closed by a delivery). Returns whether it moved.
    pub fn place_if_in(
        &self,
        code: &str,
        socket: &SocketRef,
        session: &Session,
        to: Option<&str>,
    ) -> bool {
        let mut inner = self.lock();
        if session.room().as_deref() != Some(code) {
            return false;
        }
        inner.place(socket, session, to);
        true
    }

    /// Takes a disconnecting socket out of the count. Called first thing in the disconnect handler, which
    /// socketioxide runs after marking the socket disconnected, so no later [`LocalRooms::place`] counts
    /// it again.
    pub fn forget(&self, socket: Sid) {
        self.lock().uncount(socket);
    }

    /// Records whether room `code`'s game is running as of state `version` (a delivered state); rooms
    /// without a player here are not kept.
    pub fn note_playing(&self, code: &str, version: u64, playing: bool) {
        if let Some(room) = self.lock().rooms.get_mut(code)
            && version >= room.version
        {
            room.playing = playing;
            room.version = version;
        }
    }

    pub fn counts(&self) -> RoomCounts {
        let inner = self.lock();
        RoomCounts {
            rooms: inner.rooms.len(),
            playing: inner.rooms.values().filter(|room| room.playing).count(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing here can panic half-way through a change, so a poisoned lock still holds whole counts.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn place(&mut self, socket: &SocketRef, session: &Session, to: Option<&str>) {
        let from = session.room();
        if let Some(from) = from
            && Some(from.as_str()) != to
        {
            socket.leave(from);
        }
        session.set_room(to.map(str::to_owned));
        if self.seated.get(&socket.id).map(String::as_str) == to {
            // Placed again where it is counted (`sync`): the count and the room's `playing` stay.
            return;
        }
        self.uncount(socket.id);
        if let Some(to) = to
            && socket.connected()
        {
            socket.join(to.to_owned());
            self.count(socket.id, to);
        }
    }

    fn count(&mut self, socket: Sid, code: &str) {
        self.seated.insert(socket, code.to_owned());
        self.rooms
            .entry(code.to_owned())
            .or_insert(LocalRoom {
                sockets: 0,
                playing: false,
                version: 0,
            })
            .sockets += 1;
    }

    fn uncount(&mut self, socket: Sid) {
        let Some(code) = self.seated.remove(&socket) else {
            return;
        };
        if let Some(room) = self.rooms.get_mut(&code) {
            room.sockets = room.sockets.saturating_sub(1);
            if room.sockets == 0 {
                self.rooms.remove(&code);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid() -> Sid {
        Sid::new()
    }

    #[test]
    fn counts_follow_sockets_between_rooms() {
        let mut inner = Inner::default();
        let (a, b, c) = (sid(), sid(), sid());
        inner.count(a, "ROOM1");
        inner.count(b, "ROOM1");
        inner.count(c, "ROOM2");
        assert_eq!(inner.rooms.len(), 2);
        // A move is an uncount then a count.
        inner.uncount(b);
        inner.count(b, "ROOM2");
        assert_eq!(inner.rooms["ROOM1"].sockets, 1);
        assert_eq!(inner.rooms["ROOM2"].sockets, 2);
        inner.uncount(a);
        assert!(
            !inner.rooms.contains_key("ROOM1"),
            "an empty room is dropped"
        );
        // Forgetting twice (a disconnect after a leave) takes nothing more.
        inner.uncount(a);
        assert_eq!(inner.rooms["ROOM2"].sockets, 2);
        inner.uncount(b);
        inner.uncount(c);
        assert!(inner.rooms.is_empty() && inner.seated.is_empty());
    }

    #[test]
    fn playing_is_kept_only_for_rooms_with_a_player_here() {
        let rooms = LocalRooms::default();
        rooms.note_playing("ELSEWHERE", 1, true);
        assert_eq!(
            rooms.counts(),
            RoomCounts {
                rooms: 0,
                playing: 0
            }
        );
        rooms.lock().count(sid(), "HERE");
        rooms.lock().count(sid(), "LOBBY");
        rooms.note_playing("HERE", 7, true);
        assert_eq!(
            rooms.counts(),
            RoomCounts {
                rooms: 2,
                playing: 1
            }
        );
        // A delivery of an older state, arriving late, does not undo the newer one.
        rooms.note_playing("HERE", 6, false);
        assert_eq!(rooms.counts().playing, 1);
        rooms.note_playing("HERE", 8, false);
        assert_eq!(rooms.counts().playing, 0);
    }
}
