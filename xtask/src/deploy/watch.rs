//! Watching a slot for an interval and judging it: the game servers' counters read, probe traffic on
//! (HTTP requests and Socket.IO sessions), wait, counters read again, the edge's access log for the
//! interval, per-slot figures, verdict.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::analysis::{self, SlotStats, Verdict};
use super::analysis_ws::{self, WsStats};
use super::config::DeployConfig;
use super::game_metrics;
use super::probe::{Probe, ProbeCounts, WsPlan};
use super::probe_token;
use super::slots::Slot;
use super::target::{ContainerInfo, Edge, Target};

#[derive(Debug, Clone, Serialize)]
pub struct Judgment {
    pub slot: Slot,
    pub baseline: Option<Slot>,
    pub window_seconds: u64,
    pub stats: BTreeMap<String, SlotStats>,
    pub probe: ProbeCounts,
    /// Why the probe opened no Socket.IO sessions, when it could not sign in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_probe_error: Option<String>,
    pub verdict: Verdict,
}

impl Judgment {
    pub fn print(&self) {
        for (slot, s) in &self.stats {
            println!(
                "  {slot:<6} requests {:>6}  5xx {:>4} ({:>6})  p99 {:>8}  ws handshakes {:>4} failed {:>3}",
                s.requests,
                s.errors_5xx,
                s.error_rate
                    .map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0)),
                s.p99_ms.map_or("-".to_owned(), |p| format!("{p:.0} ms")),
                s.ws_handshakes,
                s.ws_handshake_failures
            );
            println!("         {}", analysis_ws::describe(s));
        }
        let sessions: u64 = self.probe.ws.values().map(|ws| ws.sessions).sum();
        let failed: u64 = self.probe.ws.values().map(|ws| ws.failed).sum();
        println!(
            "  probe: {} sent, {} failed; {sessions} Socket.IO sessions, {failed} failed",
            self.probe.sent, self.probe.failed
        );
        if let Some(error) = &self.ws_probe_error {
            println!("  probe opened no Socket.IO sessions: {error}");
        }
        println!("  verdict for {}: {}", self.slot, self.verdict.describe());
    }
}

/// Sends probe traffic to `slot` (and `baseline`), waits `window`, then judges `slot` from the log, the
/// probe's sessions and the game servers' counters.
pub fn watch(
    target: &Target,
    edge: &Edge,
    config: &DeployConfig,
    slot: Slot,
    baseline: Option<Slot>,
    window: Duration,
) -> anyhow::Result<Judgment> {
    // nginx's $time_iso8601 has whole seconds; so must the start of the interval.
    let now = time::OffsetDateTime::now_utc();
    let since = now.replace_nanosecond(0).unwrap_or(now);
    let model = edge.model()?;
    let override_cookie = model.canary.override_cookie.clone();
    // The probe speaks plain HTTP to the edge's published port 80. An edge with TLS answers the application
    // there with a redirect to HTTPS (only /health, ACME and internal endpoints stay), so Socket.IO sessions
    // cannot be opened: the game server is then judged on its own counters and the access log only, and
    // too few sessions is not held against it. (A TLS-speaking probe is the fix; docs/operations.md.)
    let plain_http_redirects = model.tls.is_some();
    let mut thresholds = config.thresholds.clone();
    let ws_sessions_per_second = if plain_http_redirects {
        thresholds.min_ws_sessions = 0;
        0
    } else {
        config.probe.ws_sessions_per_second
    };
    let watched: Vec<Slot> = std::iter::once(slot).chain(baseline).collect();
    let probed: Vec<String> = watched.iter().map(|s| s.name().to_owned()).collect();
    println!(
        "watching slot {slot} for {}s (probe {} req/s and {} Socket.IO sessions/s per slot)",
        window.as_secs(),
        config.probe.requests_per_second,
        ws_sessions_per_second
    );
    let containers = target.containers()?;
    // A slot whose containers are gone still gets judged (its HTTP fails): no token is not an error,
    // only no sessions, said in the printout.
    let (tokens, ws_probe_error) = if plain_http_redirects
        && config.probe.ws_sessions_per_second > 0
    {
        (
            BTreeMap::new(),
            Some(
                "the edge redirects plain HTTP to HTTPS and the probe speaks plain HTTP: no Socket.IO \
                 sessions; the game server is judged on its own counters and the access log"
                    .to_owned(),
            ),
        )
    } else if ws_sessions_per_second > 0 {
        match probe_tokens(target, &containers, slot, &watched, window) {
            Ok(tokens) => (tokens, None),
            Err(err) => (BTreeMap::new(), Some(format!("{err:#}"))),
        }
    } else {
        (BTreeMap::new(), None)
    };
    let ws_plan = WsPlan {
        per_second: ws_sessions_per_second,
        tokens,
    };
    let scrape_targets = game_server_targets(target, edge, &containers, &watched);
    let before = game_metrics::scrape(target, edge, &scrape_targets);
    let probe = Probe::start(
        &edge.base_url()?,
        &override_cookie,
        &probed,
        config.probe.requests_per_second,
        &ws_plan,
    );
    std::thread::sleep(window);
    let probe = probe.finish();
    // nginx writes a line when a request completes; give the last ones a moment to reach the log.
    std::thread::sleep(Duration::from_millis(500));
    // Containers that started during the window are scraped too: all their counts are new.
    let scrape_targets = game_server_targets(target, edge, &target.containers()?, &watched);
    let after = game_metrics::scrape(target, edge, &scrape_targets);
    let mut server = game_metrics::signals(&before, &after);
    let log = target.access_log(edge, since)?;
    let mut stats = analysis::stats_by_slot(&analysis::parse_log(&log, since));
    for watched_slot in &watched {
        let entry = stats.entry(watched_slot.name().to_owned()).or_default();
        entry.ws = probe
            .ws
            .get(watched_slot.name())
            .map(WsStats::from_probe)
            .unwrap_or_default();
        entry.ws.server = server.remove(watched_slot);
    }
    let judged = stats.get(slot.name()).cloned().unwrap_or_default();
    let base = baseline.and_then(|b| stats.get(b.name()));
    let verdict = analysis::judge(&judged, base, &thresholds);
    Ok(Judgment {
        slot,
        baseline,
        window_seconds: window.as_secs(),
        stats,
        probe,
        ws_probe_error,
        verdict,
    })
}

/// Each watched slot's sign-in token, signed with the JWT secret the judged slot runs with.
fn probe_tokens(
    target: &Target,
    containers: &[ContainerInfo],
    judged: Slot,
    watched: &[Slot],
    window: Duration,
) -> anyhow::Result<BTreeMap<String, String>> {
    let secret = probe_token::read_secret(target, containers, judged)
        .context("the probe cannot sign in to the game server")?;
    watched
        .iter()
        .map(|slot| {
            Ok((
                slot.name().to_owned(),
                probe_token::token(&secret, *slot, window)?,
            ))
        })
        .collect()
}

/// The running game servers of the watched slots, with their metrics URLs (by name, on the default port,
/// when they cannot be inspected: a wrong URL shows as an unreadable container, never as a pass).
fn game_server_targets(
    target: &Target,
    edge: &Edge,
    containers: &[ContainerInfo],
    watched: &[Slot],
) -> Vec<(String, Slot, String)> {
    let mut names: Vec<String> = containers
        .iter()
        .filter(|c| {
            c.running()
                && c.service.starts_with("websocket")
                && c.slot.is_some_and(|slot| watched.contains(&slot))
        })
        .map(|c| c.id.clone())
        .collect();
    names.push(edge.container.clone());
    let mut inspected = game_metrics::inspect(target, &names).unwrap_or_default();
    let edge_id = containers
        .iter()
        .find(|c| c.name == edge.container)
        .map(|c| c.id.clone())
        .unwrap_or_default();
    let edge_inspected = inspected.remove(&edge_id).unwrap_or_default();
    game_metrics::scrape_targets(containers, &inspected, &edge_inspected, watched)
}
