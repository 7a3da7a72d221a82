//! The command layer: every docker/compose command xtask runs on a target is built here by pure
//! functions ([`docker`], [`compose`], [`edge`], [`redis`]; tested as argv) and run by one runner ([`Invocation`]),
//! which prints each command before it runs — always when it changes something, only with
//! `cargo xtask -v` when it only reads ([`print`]) — and passes secrets by name, never on a command line.
//!
//! Command files parse flags and orchestrate; they never spell argv.

mod compose;
mod docker;
mod edge;
mod invocation;
pub mod lab;
mod print;
mod redis;
mod scaling;
pub mod swarm;

pub use compose::Compose;
pub use docker::{DockerCli, SERVICE_LABEL};
pub use edge::EdgeWriter;
pub use invocation::{Captured, Invocation, SecretValue};
pub use print::{Effect, set_verbose, verbose};
pub use redis::{redis_cli, registry_records};

#[cfg(test)]
mod house_rules;
