//! The in-process store of embedded (development) mode: one instance, rooms in a map, finished games
//! appended to `<DATA_DIR>/finished-games.jsonl` for the API to pick up.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use avalon_game::FinishedGame;

use super::{BusSender, Committed, StoreError, bus_message};
use crate::room::{Effects, Room};

pub struct MemoryStore {
    rooms: Mutex<HashMap<String, Room>>,
    users: Mutex<HashMap<String, String>>,
    spool: PathBuf,
    bus: BusSender,
}

impl MemoryStore {
    pub fn new(spool: PathBuf, bus: BusSender) -> MemoryStore {
        MemoryStore {
            rooms: Mutex::default(),
            users: Mutex::default(),
            spool,
            bus,
        }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        // A panic while holding the lock cannot leave a half-applied room: changes are applied to a copy.
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn load(&self, code: &str) -> Option<Room> {
        self.rooms().get(code).cloned()
    }

    pub fn create(&self, room: &Room) -> Result<bool, StoreError> {
        let mut rooms = self.rooms();
        if rooms.contains_key(&room.code) {
            return Ok(false);
        }
        rooms.insert(room.code.clone(), room.clone());
        drop(rooms);
        let _ = self.bus.send(Arc::new(bus_message(
            Some(room),
            &room.code,
            room.version,
            None,
        )));
        Ok(true)
    }

    pub fn update(
        &self,
        code: &str,
        apply: &mut dyn FnMut(&mut Room) -> Result<Effects, StoreError>,
    ) -> Result<Committed, StoreError> {
        let mut rooms = self.rooms();
        let current = rooms
            .get(code)
            .ok_or_else(|| StoreError::NotFound(code.to_owned()))?;
        let mut room = current.clone();
        let mut effects = apply(&mut room)?;
        if let Some(record) = &effects.finished {
            self.record(record)?;
        }
        let message = bus_message(
            (!effects.deleted).then_some(&room),
            code,
            room.version,
            effects.chat.take(),
        );
        effects.chat = message.chat.clone();
        let stored = if effects.deleted {
            rooms.remove(code);
            None
        } else {
            rooms.insert(code.to_owned(), room.clone());
            Some(room)
        };
        drop(rooms);
        let _ = self.bus.send(Arc::new(message));
        Ok(Committed {
            room: stored,
            effects,
        })
    }

    fn record(&self, record: &FinishedGame) -> Result<(), StoreError> {
        let line =
            serde_json::to_string(record).map_err(|err| StoreError::Backend(err.to_string()))?;
        let append = || -> std::io::Result<()> {
            if let Some(dir) = self.spool.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.spool)?;
            writeln!(file, "{line}")
        };
        append().map_err(|err| {
            StoreError::Backend(format!("cannot append to {}: {err}", self.spool.display()))
        })
    }

    pub fn user_room(&self, user_id: &str) -> Option<String> {
        self.users
            .lock()
            .ok()
            .and_then(|users| users.get(user_id).cloned())
    }

    pub fn set_user_room(&self, user_id: &str, code: Option<&str>) {
        if let Ok(mut users) = self.users.lock() {
            match code {
                Some(code) => users.insert(user_id.to_owned(), code.to_owned()),
                None => users.remove(user_id),
            };
        }
    }

    pub fn sweep_expired(&self, now_ms: u64, ttl: Duration) -> Vec<String> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut rooms = self.rooms();
        let expired: Vec<String> = rooms
            .values()
            .filter(|room| now_ms.saturating_sub(room.updated_ms) > ttl_ms)
            .map(|room| room.code.clone())
            .collect();
        for code in &expired {
            rooms.remove(code);
        }
        expired
    }
}
