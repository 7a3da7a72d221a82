//! How many idle, authenticated Socket.IO connections one server instance holds, and at what memory cost.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use super::client::Client;
use super::processes::Server;

/// Handshakes in flight at once while filling the server.
const CONCURRENT_HANDSHAKES: usize = 64;

#[derive(Debug, Serialize)]
pub struct Held {
    pub attempted: usize,
    pub held: usize,
    pub failed: usize,
    pub seconds_to_open: f64,
    pub rss_idle_mib: f64,
    pub rss_held_mib: f64,
    pub kib_per_connection: f64,
    /// Connections that fit in the RSS budget at the measured cost per connection.
    pub projected_within_budget: u64,
}

/// Opens up to `count` connections to `server` within `budget_time`, measures its RSS, then closes them.
pub async fn fill(
    server: &Server,
    count: usize,
    budget_time: Duration,
    budget_mib: f64,
    token: &str,
) -> anyhow::Result<Held> {
    let rss_idle_mib = server.rss_mib()?;
    let started = Instant::now();
    let deadline = started + budget_time;
    let port = server.port;
    let results: Vec<anyhow::Result<Client>> = futures::stream::iter(0..count)
        .take_while(|_| futures::future::ready(Instant::now() < deadline))
        .map(|index| {
            let token = token.to_owned();
            async move { Client::connect(port, &token, index, None).await }
        })
        .buffer_unordered(CONCURRENT_HANDSHAKES)
        .collect()
        .await;
    let seconds_to_open = started.elapsed().as_secs_f64();
    let attempted = results.len();
    let (clients, failures): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    if let Some(Err(first)) = failures.first() {
        eprintln!(
            "bench ws: {} of {attempted} connections to {} failed, first: {first:#}",
            failures.len(),
            server.name
        );
    }
    // Let the server settle (handshake buffers freed, resume look-ups done) before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_held_mib = server.rss_mib()?;
    let held = clients.len();
    drop(clients);
    let kib_per_connection = if held > 0 {
        (rss_held_mib - rss_idle_mib).max(0.0) * 1024.0 / held as f64
    } else {
        0.0
    };
    let projected_within_budget = if kib_per_connection > 0.0 {
        (((budget_mib - rss_idle_mib).max(0.0) * 1024.0) / kib_per_connection) as u64
    } else {
        0
    };
    // Closing 10,000 sockets takes the server a moment; the next phase should not measure that.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(Held {
        attempted,
        held,
        failed: failures.len(),
        seconds_to_open,
        rss_idle_mib,
        rss_held_mib,
        kib_per_connection,
        projected_within_budget,
    })
}
