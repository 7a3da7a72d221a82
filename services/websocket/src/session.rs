//! What the server keeps per socket: who it is, its room, the user's rate budget it draws on, activity.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::budget::UserBudget;
use crate::room::User;

pub struct Session {
    pub user: User,
    /// `<instance>/<socket id>`: names this socket in the room's member list.
    pub connection: String,
    room: Mutex<Option<String>>,
    /// Shared by every socket of this user on this instance.
    budget: Arc<UserBudget>,
    last_active_ms: AtomicU64,
    /// One more than the last room version pushed to this socket (0 = nothing pushed yet).
    pushed: AtomicU64,
    /// Set once the connect handler has put a returning player back in their room (or found none).
    /// Events wait for it: a client that acts the moment its socket opens must not be told NOT_IN_ROOM
    /// by a seat that is still being restored. `resume_done` wakes the events waiting for it (a flag and a
    /// `Notify` rather than a watch channel: ~40 bytes instead of ~350 per connection).
    resumed: AtomicBool,
    resume_done: Notify,
}

impl Session {
    pub fn new(user: User, connection: String, budget: Arc<UserBudget>) -> Session {
        Session {
            user,
            connection,
            room: Mutex::new(None),
            budget,
            last_active_ms: AtomicU64::new(now_ms()),
            pushed: AtomicU64::new(0),
            resumed: AtomicBool::new(false),
            resume_done: Notify::new(),
        }
    }

    pub fn mark_resumed(&self) {
        self.resumed.store(true, Ordering::Release);
        self.resume_done.notify_waiters();
    }

    /// Waits until the connect handler is done with this socket's room (at most `limit`, so a stuck
    /// resume cannot hold events forever; they then see the room as it is).
    pub async fn resumed(&self, limit: Duration) {
        let done = async {
            loop {
                let notified = self.resume_done.notified();
                tokio::pin!(notified);
                // Registered before the flag is read, so a `mark_resumed` in between still wakes it.
                notified.as_mut().enable();
                if self.resumed.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, done).await;
    }

    pub fn room(&self) -> Option<String> {
        self.room.lock().ok().and_then(|room| room.clone())
    }

    /// Moves the socket to `room` (or out of any); the next state pushed is always sent.
    pub fn set_room(&self, room: Option<String>) {
        if let Ok(mut current) = self.room.lock() {
            *current = room;
        }
        self.pushed.store(0, Ordering::SeqCst);
    }

    /// Claims the right to push `version`; false if this or a newer version was already pushed.
    pub fn claim_version(&self, version: u64) -> bool {
        let seen = version.saturating_add(1);
        self.pushed.fetch_max(seen, Ordering::SeqCst) < seen
    }

    pub fn touch(&self) {
        self.last_active_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn idle_for(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.last_active_ms.load(Ordering::Relaxed)))
    }

    /// Takes one event token from the user's budget; `per_minute` follows RATE_LIMIT_USER as reloaded.
    pub fn allow_action(&self, per_minute: u32) -> bool {
        self.budget.allow_action(per_minute)
    }

    pub fn allow_chat(&self) -> bool {
        self.budget.allow_chat()
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_pushed_once_and_never_after_a_newer_one() {
        let session = Session::new(
            User {
                id: "u".into(),
                name: "U".into(),
            },
            "i/s".into(),
            Arc::new(UserBudget::new(60, 5)),
        );
        assert!(session.claim_version(0));
        assert!(!session.claim_version(0));
        assert!(session.claim_version(3));
        assert!(!session.claim_version(2));
        session.set_room(Some("ROOM".into()));
        assert!(session.claim_version(0), "a new room starts over");
    }

    #[tokio::test]
    async fn events_wait_for_the_resume_and_not_longer() {
        let session = Arc::new(Session::new(
            User {
                id: "u".into(),
                name: "U".into(),
            },
            "i/s".into(),
            Arc::new(UserBudget::new(60, 5)),
        ));
        let waiter = {
            let session = Arc::clone(&session);
            tokio::spawn(async move { session.resumed(Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "an event ran before the resume");
        session.mark_resumed();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the event still waits after the resume")
            .expect("waiter panicked");
        // Once resumed, later events do not wait at all.
        tokio::time::timeout(
            Duration::from_millis(100),
            session.resumed(Duration::from_secs(30)),
        )
        .await
        .expect("a resumed session made an event wait");
    }
}
