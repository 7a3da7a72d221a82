//! Event budgets per signed-in user on this instance: every socket of one user draws on the same buckets, so
//! opening a second socket (or tab), or reconnecting, buys no extra events or chat. A budget is forgotten once
//! none of the user's sockets holds it and its buckets have refilled. Budgets are not shared across instances
//! (that would cost a Redis round trip per event): a user whose sockets sit on two instances has each
//! instance's budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One user's buckets.
pub struct UserBudget {
    actions: Mutex<TokenBucket>,
    chat: Mutex<TokenBucket>,
}

impl UserBudget {
    pub fn new(actions_per_minute: u32, chat_per_minute: u32) -> UserBudget {
        UserBudget {
            actions: Mutex::new(TokenBucket::per_minute(actions_per_minute)),
            chat: Mutex::new(TokenBucket::per_minute(chat_per_minute)),
        }
    }

    /// Takes one event token; `per_minute` follows RATE_LIMIT_USER as reloaded.
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

    /// True when both buckets are full again: forgetting the budget then gives nobody anything.
    fn refilled(&self, now: Instant) -> bool {
        let full = |bucket: &Mutex<TokenBucket>| bucket.lock().is_ok_and(|bucket| bucket.full(now));
        full(&self.actions) && full(&self.chat)
    }
}

/// The budgets of the users connected to this instance.
#[derive(Default)]
pub struct Budgets {
    users: Mutex<HashMap<String, Arc<UserBudget>>>,
}

impl Budgets {
    /// The budget `user_id`'s sockets share.
    pub fn of(
        &self,
        user_id: &str,
        actions_per_minute: u32,
        chat_per_minute: u32,
    ) -> Arc<UserBudget> {
        let fresh = || Arc::new(UserBudget::new(actions_per_minute, chat_per_minute));
        let Ok(mut users) = self.users.lock() else {
            return fresh();
        };
        if let Some(budget) = users.get(user_id) {
            return Arc::clone(budget);
        }
        // Forget budgets no socket holds any more once they have refilled, so the map follows the users
        // who are (or were just) connected.
        let now = Instant::now();
        users.retain(|_, budget| Arc::strong_count(budget) > 1 || !budget.refilled(now));
        let budget = fresh();
        users.insert(user_id.to_owned(), Arc::clone(&budget));
        budget
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

    fn full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens + elapsed * self.capacity / 60.0 >= self.capacity
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    fn sockets_of_one_user_share_a_budget_and_other_users_have_their_own() {
        let budgets = Budgets::default();
        let first = budgets.of("u", 2, 5);
        let second = budgets.of("u", 2, 5);
        assert!(first.allow_action(2));
        assert!(second.allow_action(2));
        assert!(
            !first.allow_action(2),
            "the second socket spent the shared budget"
        );
        assert!(budgets.of("v", 2, 5).allow_action(2));
        drop((first, second));
        assert!(
            !budgets.of("u", 2, 5).allow_action(2),
            "reconnecting does not refill the budget"
        );
    }
}
