//! How many idle, authenticated Socket.IO connections one server instance holds, and at what memory cost,
//! read at each of a rising series of counts (10,000, 20,000, 40,000): the connections of one step stay open
//! while the next step adds to them, so every figure is the same server holding more.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use super::client::Client;
use super::processes::Server;

/// Handshakes in flight at once while filling the server.
const CONCURRENT_HANDSHAKES: usize = 64;
/// Time allowed to open each 10,000 connections of a step; a server slower than that is reported at what
/// it held, and not asked for more.
const OPEN_TIME_PER_10K: Duration = Duration::from_secs(120);
/// How long the connections of one server may take to close before the next server is filled.
const CLOSE_LIMIT: Duration = Duration::from_secs(120);

/// One server's figures at one connection count.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Connections asked for (cumulative).
    pub attempted: usize,
    /// Connections open when the RSS was read.
    pub held: usize,
    pub failed: usize,
    /// Seconds this step took to open its new connections.
    pub seconds_to_open: f64,
    pub rss_mib: f64,
    /// (RSS − RSS before any connection) ÷ held.
    pub kib_per_connection: f64,
    /// Why this server was not asked for this many, when it was not (`held` is then 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// One server's whole series.
#[derive(Debug, Serialize)]
pub struct Series {
    pub rss_idle_mib: f64,
    pub steps: Vec<Step>,
}

/// Opens connections to `server` up to each count of `counts` (ascending) in turn, reading its RSS at each,
/// then closes them all. A step that cannot open all its connections ends the series there.
///
/// A count above `max_sockets` (what RLIMIT_NOFILE leaves one process) is not attempted: it is reported
/// as skipped with the reason, rather than measured as a pile of refused connections.
pub async fn fill(
    server: &Server,
    counts: &[usize],
    token: &str,
    max_sockets: usize,
) -> anyhow::Result<Series> {
    let rss_idle_mib = server.rss_mib()?;
    let open_before = open_descriptors();
    let mut clients: Vec<Client> = Vec::new();
    let mut steps = Vec::with_capacity(counts.len());
    let mut failed = 0;
    let mut stopped: Option<String> = None;
    for &count in counts {
        if count > max_sockets && stopped.is_none() {
            stopped = Some(format!(
                "RLIMIT_NOFILE leaves one process room for {max_sockets} sockets (its hard limit cannot be \
                 raised here); run where `ulimit -Hn` exceeds {count}"
            ));
        }
        if let Some(reason) = &stopped {
            steps.push(Step {
                attempted: count,
                held: 0,
                failed: 0,
                seconds_to_open: 0.0,
                rss_mib: 0.0,
                kib_per_connection: 0.0,
                skipped: Some(reason.clone()),
            });
            continue;
        }
        let first = clients.len() + failed;
        let wanted = count.saturating_sub(first);
        let budget = OPEN_TIME_PER_10K.mul_f64((wanted as f64 / 10_000.0).max(0.1));
        let started = Instant::now();
        let (opened, errors) = open(server.port, first, wanted, budget, token).await;
        let seconds_to_open = started.elapsed().as_secs_f64();
        if let Some(error) = errors.first() {
            eprintln!(
                "bench ws: {} of {wanted} connections to {} failed, first: {error:#}",
                errors.len(),
                server.name
            );
        }
        failed += errors.len();
        let short = opened.len() < wanted;
        clients.extend(opened);
        // Let the server settle (handshake buffers freed, resume look-ups done) before reading its memory.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_mib = server.rss_mib()?;
        let held = clients.len();
        let kib_per_connection = if held > 0 {
            round1((rss_mib - rss_idle_mib).max(0.0) * 1024.0 / held as f64)
        } else {
            0.0
        };
        eprintln!(
            "bench ws: {} holds {held} connections in {rss_mib:.1} MiB ({kib_per_connection:.1} KiB each)",
            server.name
        );
        steps.push(Step {
            attempted: count,
            held,
            failed,
            seconds_to_open: round1(seconds_to_open),
            rss_mib: round1(rss_mib),
            kib_per_connection,
            skipped: None,
        });
        if short {
            stopped = Some(format!(
                "{} held {held} of {count} (the rest failed or did not open within {}s)",
                server.name,
                budget.as_secs()
            ));
        }
    }
    drop(clients);
    // Closing tens of thousands of sockets takes the server a moment, and each client socket lives until the
    // server has closed its side: the next server must neither be measured meanwhile nor find this
    // process out of descriptors.
    wait_until_closed(open_before, CLOSE_LIMIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(Series {
        rss_idle_mib: round1(rss_idle_mib),
        steps,
    })
}

/// Opens `wanted` connections numbered from `first` (which picks their source addresses) within `budget`.
async fn open(
    port: u16,
    first: usize,
    wanted: usize,
    budget: Duration,
    token: &str,
) -> (Vec<Client>, Vec<anyhow::Error>) {
    let deadline = Instant::now() + budget;
    let results: Vec<anyhow::Result<Client>> = futures::stream::iter(first..first + wanted)
        .take_while(|_| futures::future::ready(Instant::now() < deadline))
        .map(|index| {
            let token = token.to_owned();
            async move { Client::connect(port, &token, index, None).await }
        })
        .buffer_unordered(CONCURRENT_HANDSHAKES)
        .collect()
        .await;
    let mut opened = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(client) => opened.push(client),
            Err(error) => errors.push(error),
        }
    }
    (opened, errors)
}

/// Descriptors this process has open (0 where /proc cannot say, which ends the wait at once).
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Waits until this process is back to about `before` open descriptors, at most `limit`.
async fn wait_until_closed(before: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while open_descriptors() > before + 64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
