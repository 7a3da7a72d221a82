//! The stack-wide maintenance flag both services read and `cargo xtask maintenance` writes: one Redis
//! key holding `{"enabled":true,"message":"…","retry_after":N}`, read by every instance on a fixed period.

use std::time::Duration;

/// The Redis key.
pub const KEY: &str = "avalon:maintenance";

/// How often each instance reads [`KEY`]; a change reaches every instance within this. xtask waits this
/// long (and a little more) after clearing the flag before it opens the edge again.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
