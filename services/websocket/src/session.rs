//! What the server keeps per socket: who it is, which room it is in, its rate budgets and activity.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::room::User;

pub struct Session {
    pub user: User,
    /// `<instance>/<socket id>`: names this socket in the room's member list.
    pub connection: String,
    room: Mutex<Option<String>>,
    actions: Mutex<TokenBucket>,
    chat: Mutex<TokenBucket>,
    last_active_ms: AtomicU64,
    /// One more than the last room version pushed to this socket (0 = nothing pushed yet).
    pushed: AtomicU64,
    /// Set once the connect handler has put a returning player back in their room (or found none).
    /// Events wait for it: a client that acts the moment its socket opens must not be told NOT_IN_ROOM
    /// by a seat that is still being restored.
    resumed: tokio::sync::watch::Sender<bool>,
}

impl Session {
    pub fn new(user: User, connection: String, chat_per_minute: u32) -> Session {
        Session {
            user,
            connection,
            room: Mutex::new(None),
            actions: Mutex::new(TokenBucket::per_minute(60)),
            chat: Mutex::new(TokenBucket::per_minute(chat_per_minute)),
            last_active_ms: AtomicU64::new(now_ms()),
            pushed: AtomicU64::new(0),
            resumed: tokio::sync::watch::Sender::new(false),
        }
    }

    pub fn mark_resumed(&self) {
        self.resumed.send_replace(true);
    }

    /// Waits until the connect handler is done with this socket's room (at most `limit`, so a stuck
    /// resume cannot hold events forever; they then see the room as it is).
    pub async fn resumed(&self, limit: Duration) {
        let mut resumed = self.resumed.subscribe();
        let _ = tokio::time::timeout(limit, resumed.wait_for(|done| *done)).await;
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

    /// Takes one game-action token; `per_minute` follows RATE_LIMIT_USER as reloaded.
    pub fn allow_action(&self, per_minute: u32) -> bool {
        self.actions
            .lock()
            .map(|mut bucket| {
                bucket.set_rate(per_minute);
                bucket.take(Instant::now())
            })
            .unwrap_or(false)
    }

    pub fn allow_chat(&self) -> bool {
        self.chat
            .lock()
            .map(|mut bucket| bucket.take(Instant::now()))
            .unwrap_or(false)
    }
}

/// A bucket of `capacity` tokens refilled evenly over a minute: bursts up to a minute's budget are fine,
/// a sustained flood is not.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub fn per_minute(limit: u32) -> TokenBucket {
        TokenBucket {
            capacity: f64::from(limit),
            tokens: f64::from(limit),
            refilled: Instant::now(),
        }
    }

    fn set_rate(&mut self, limit: u32) {
        self.capacity = f64::from(limit);
        self.tokens = self.tokens.min(self.capacity);
    }

    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.capacity / 60.0).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
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
    fn a_bucket_allows_a_burst_then_refills_over_the_minute() {
        let start = Instant::now();
        let mut bucket = TokenBucket::per_minute(3);
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        assert!(bucket.take(start + Duration::from_secs(20)));
        assert!(!bucket.take(start + Duration::from_secs(20)));
    }

    #[test]
    fn a_version_is_pushed_once_and_never_after_a_newer_one() {
        let session = Session::new(
            User {
                id: "u".into(),
                name: "U".into(),
            },
            "i/s".into(),
            5,
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
        let session = std::sync::Arc::new(Session::new(
            User {
                id: "u".into(),
                name: "U".into(),
            },
            "i/s".into(),
            5,
        ));
        let waiter = {
            let session = std::sync::Arc::clone(&session);
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
