//! The layout of an edge's state directory, shared by both targets (see [`super::target`]):
//!
//! ```text
//! STATE/live          -> trees/<stamp>-<config id>   (symlink; nginx runs with -p STATE/live/)
//! STATE/trees/<stamp>-<config id>/nginx.conf …       (rendered trees, the newest few kept)
//! ```

/// How many rendered trees to keep (the live one always survives).
pub const KEEP_TREES: usize = 5;

/// The symlink nginx runs from.
pub const LIVE: &str = "live";
/// Where rendered trees are kept.
pub const TREES: &str = "trees";
