//! The workflow replay harness (xtask/tests/workflow_replay.rs): an expression evaluator, a runner that
//! replays a workflow file step by step, and what the repository's `uses:` actions do on this machine.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod actions;
pub mod expr;
pub mod replay;
