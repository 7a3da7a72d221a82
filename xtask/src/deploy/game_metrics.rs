//! The game server's own signals for a judgment: every running avalon-ws container of the watched slots is
//! scraped (its Prometheus `/metrics`) at the start and at the end of the window, and the difference is what
//! that slot's game server did meanwhile — handshakes admitted and refused (by code), events answered and
//! those that failed on the server's side, Redis errors.
//!
//! The services publish no port, so the scrape runs inside the edge container, which shares their backend
//! network and carries busybox `wget` (its healthcheck uses it): one `docker exec` per scrape for all
//! containers, each answer framed by a marker line.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;

use super::slots::Slot;
use super::target::{ContainerInfo, Edge, Target};

/// Refusal codes that are the client's doing (no or a bad token), not the game server's failure.
pub const CLIENT_REFUSALS: [&str; 5] = [
    "AUTH_REQUIRED",
    "TOKEN_MALFORMED",
    "TOKEN_INVALID",
    "TOKEN_EXPIRED",
    "TOKEN_WRONG_TYPE",
];
/// Event results that mean the game server failed (docs/protocol.md): a bug, its store unreachable, or
/// contention it gave up on. Rule refusals (NOT_YOUR_TURN…) are the game working.
pub const SERVER_ERRORS: [&str; 3] = ["INTERNAL", "UNAVAILABLE", "BUSY"];
/// The game server's port when its environment names none (docker/compose.yml's WS_PORT).
const DEFAULT_WS_PORT: &str = "3001";

/// `sh -c SCRAPE_SCRIPT scrape URL…` in the edge: each answer after a marker naming its URL, a failed one
/// marked as such (wget's own message goes to stderr). `timeout`, not wget's `-T`: the offline image's
/// static busybox wget crashes with `-T`, and a frozen game server must not hold the judgment.
const SCRAPE_SCRIPT: &str = r##"for url do echo "# avalon-scrape $url"; timeout 5 wget -q -O - "$url" || echo "# avalon-scrape-failed"; done"##;

/// One container's counters as read from its `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// `None` from a game server that does not export ws_connections_accepted_total (releases before it).
    pub accepted: Option<u64>,
    pub refused: BTreeMap<String, u64>,
    pub events: u64,
    pub event_errors: u64,
    pub redis_errors: u64,
}

/// A slot's game-server figures over a window, summed over its containers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerSignals {
    /// Containers read at both ends of the window.
    pub instances: u64,
    /// Containers that could not be read, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// `None` when an instance does not count admitted handshakes (an older release).
    pub handshakes_accepted: Option<u64>,
    pub handshakes_refused: BTreeMap<String, u64>,
    pub events: u64,
    /// Events answered INTERNAL, UNAVAILABLE or BUSY.
    pub event_errors: u64,
    pub redis_errors: u64,
}

impl ServerSignals {
    /// Refusals that are the server's failure (draining, full, injected faults…), not a client's bad token.
    pub fn server_refusals(&self) -> u64 {
        self.handshakes_refused
            .iter()
            .filter(|(code, _)| !CLIENT_REFUSALS.contains(&code.as_str()))
            .map(|(_, count)| count)
            .sum()
    }

    /// Every handshake the game server answered, when it counts admitted ones.
    pub fn handshakes(&self) -> Option<u64> {
        self.handshakes_accepted
            .map(|accepted| accepted + self.handshakes_refused.values().sum::<u64>())
    }
}

/// One scrape of every game-server container of some slots: container name → counters or why not.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    slots: BTreeMap<String, Slot>,
    read: BTreeMap<String, Result<Counters, String>>,
}

/// A container's environment and its addresses by network, from `docker inspect`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspected {
    pub env: Vec<String>,
    pub addresses: BTreeMap<String, String>,
}

/// The game-server containers of `slots` and their `/metrics` URLs, by address on a network the edge
/// shares with them: busybox's static `wget` cannot resolve names (it crashes doing so), and an address
/// needs no resolver. A container without a shared address is scraped by name and shows as unreadable
/// if that fails.
pub fn scrape_targets(
    containers: &[ContainerInfo],
    inspected: &BTreeMap<String, Inspected>,
    edge: &Inspected,
    slots: &[Slot],
) -> Vec<(String, Slot, String)> {
    containers
        .iter()
        .filter(|c| c.running() && c.service.starts_with("websocket"))
        .filter_map(|c| {
            let slot = c.slot.filter(|slot| slots.contains(slot))?;
            let own = inspected.get(&c.id).cloned().unwrap_or_default();
            let port = own
                .env
                .iter()
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == "WS_PORT")
                .map_or_else(|| DEFAULT_WS_PORT.to_owned(), |(_, port)| port.to_owned());
            let host = own
                .addresses
                .iter()
                .find(|(network, address)| {
                    !address.is_empty() && edge.addresses.contains_key(*network)
                })
                .map_or_else(|| c.name.clone(), |(_, address)| address.clone());
            Some((
                c.name.clone(),
                slot,
                format!("http://{host}:{port}/metrics"),
            ))
        })
        .collect()
}

/// Scrapes every target; a failed `docker exec` leaves every container unreadable, with the reason.
pub fn scrape(target: &Target, edge: &Edge, targets: &[(String, Slot, String)]) -> Scrape {
    let mut scrape = Scrape {
        slots: targets
            .iter()
            .map(|(name, slot, _)| (name.clone(), *slot))
            .collect(),
        read: BTreeMap::new(),
    };
    if targets.is_empty() {
        return scrape;
    }
    let urls: Vec<String> = targets.iter().map(|(_, _, url)| url.clone()).collect();
    // The script is printed by name: its text would bury the command.
    let invocation = target.docker.scrape_from_edge(
        &edge.container,
        "<game_metrics::SCRAPE_SCRIPT>",
        SCRAPE_SCRIPT,
        &urls,
    );
    let answers = invocation
        .capture(None)
        .context("scraping the game servers from the edge")
        .map(|output| split_answers(&output));
    for (name, _, url) in targets {
        let counters = match &answers {
            Ok(answers) => answers
                .get(url)
                .cloned()
                .unwrap_or_else(|| Err("no answer".to_owned())),
            Err(err) => Err(format!("{err:#}")),
        };
        scrape.read.insert(name.clone(), counters);
    }
    scrape
}

/// The scrape output split by URL: counters, or why not.
fn split_answers(output: &str) -> BTreeMap<String, Result<Counters, String>> {
    let mut answers = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut finish = |current: Option<(String, String)>| {
        if let Some((url, text)) = current {
            let counters = if text.contains("# avalon-scrape-failed") {
                Err("its /metrics did not answer (wget from the edge failed)".to_owned())
            } else {
                Ok(parse_counters(&text))
            };
            answers.insert(url, counters);
        }
    };
    for line in output.lines() {
        if let Some(url) = line.strip_prefix("# avalon-scrape ") {
            finish(current.take());
            current = Some((url.to_owned(), String::new()));
        } else if let Some((_, text)) = &mut current {
            text.push_str(line);
            text.push('\n');
        }
    }
    finish(current);
    answers
}

/// The counters a judgment reads, from Prometheus' text format.
pub fn parse_counters(text: &str) -> Counters {
    let mut counters = Counters::default();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        // Counters are whole numbers; the text format writes them as floats.
        let value = value.max(0.0) as u64;
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let label = |key: &str| {
            labels.split(',').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        match name {
            "ws_connections_accepted_total" => counters.accepted = Some(value),
            "ws_connections_refused_total" => {
                *counters
                    .refused
                    .entry(label("code").unwrap_or_default())
                    .or_default() += value;
            }
            "ws_events_total" => {
                counters.events += value;
                if label("result").is_some_and(|result| SERVER_ERRORS.contains(&result.as_str())) {
                    counters.event_errors += value;
                }
            }
            "ws_redis_errors_total" => counters.redis_errors += value,
            _ => {}
        }
    }
    counters
}

/// What happened between two counter readings; a counter that went down belongs to a restarted process,
/// whose whole count is new.
fn increase(before: u64, after: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

fn difference(before: &Counters, after: &Counters) -> Counters {
    let mut refused = BTreeMap::new();
    for (code, count) in &after.refused {
        let was = before.refused.get(code).copied().unwrap_or(0);
        let new = increase(was, *count);
        if new > 0 {
            refused.insert(code.clone(), new);
        }
    }
    Counters {
        accepted: match (before.accepted, after.accepted) {
            (Some(was), Some(now)) => Some(increase(was, now)),
            _ => None,
        },
        refused,
        events: increase(before.events, after.events),
        event_errors: increase(before.event_errors, after.event_errors),
        redis_errors: increase(before.redis_errors, after.redis_errors),
    }
}

/// Per-slot figures between two scrapes. A container first seen at the end started in the window: all
/// of its counts are new. One unreadable at either end is named and left out.
pub fn signals(before: &Scrape, after: &Scrape) -> BTreeMap<Slot, ServerSignals> {
    let mut by_slot: BTreeMap<Slot, ServerSignals> = BTreeMap::new();
    for (name, slot) in &after.slots {
        let signals = by_slot.entry(*slot).or_insert_with(|| ServerSignals {
            handshakes_accepted: Some(0),
            ..ServerSignals::default()
        });
        let start = match before.read.get(name) {
            None => Ok(Counters {
                accepted: Some(0),
                ..Counters::default()
            }),
            Some(read) => read.clone(),
        };
        let end = after
            .read
            .get(name)
            .cloned()
            .unwrap_or_else(|| Err("not scraped".to_owned()));
        match (start, end) {
            (Ok(start), Ok(end)) => {
                let delta = difference(&start, &end);
                signals.instances += 1;
                signals.handshakes_accepted = signals
                    .handshakes_accepted
                    .zip(delta.accepted)
                    .map(|(sum, more)| sum + more);
                for (code, count) in delta.refused {
                    *signals.handshakes_refused.entry(code).or_default() += count;
                }
                signals.events += delta.events;
                signals.event_errors += delta.event_errors;
                signals.redis_errors += delta.redis_errors;
            }
            (Err(why), _) | (_, Err(why)) => signals.unreadable.push(format!("{name}: {why}")),
        }
    }
    for signals in by_slot.values_mut() {
        if signals.instances == 0 {
            signals.handshakes_accepted = None;
        }
    }
    by_slot
}

/// The format of [`inspect`]: id, addresses by network, environment (last: its values may hold spaces).
const INSPECT_FORMAT: &str = "{{.Id}} {{json .NetworkSettings.Networks}} {{json .Config.Env}}";

/// Environments and network addresses of some containers (ids or names), by short id.
pub fn inspect(
    target: &Target,
    containers: &[String],
) -> anyhow::Result<BTreeMap<String, Inspected>> {
    if containers.is_empty() {
        return Ok(BTreeMap::new());
    }
    let output = target
        .docker
        .inspect_format(INSPECT_FORMAT, containers)
        .capture(None)?;
    parse_inspected(&output)
}

fn parse_inspected(output: &str) -> anyhow::Result<BTreeMap<String, Inspected>> {
    #[derive(serde::Deserialize)]
    struct Endpoint {
        #[serde(rename = "IPAddress", default)]
        ip_address: String,
    }
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let unexpected = || anyhow::anyhow!("unexpected `docker inspect` output: {line}");
            let mut fields = line.splitn(3, ' ');
            let (Some(id), Some(networks), Some(env)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(unexpected());
            };
            let networks: Option<BTreeMap<String, Endpoint>> =
                serde_json::from_str(networks).map_err(|_| unexpected())?;
            let env: Option<Vec<String>> = serde_json::from_str(env).map_err(|_| unexpected())?;
            let inspected = Inspected {
                env: env.unwrap_or_default(),
                addresses: networks
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(network, endpoint)| (network, endpoint.ip_address))
                    .collect(),
            };
            // Keyed like `ContainerInfo::id`: the short id.
            Ok((id.chars().take(12).collect(), inspected))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const METRICS: &str = r#"# HELP ws_connections_refused_total Refused Socket.IO handshakes, by code
# TYPE ws_connections_refused_total counter
ws_connections_refused_total{code="AUTH_REQUIRED"} 2
ws_connections_refused_total{code="FAULT_INJECTED"} 7
ws_connections_accepted_total 40
ws_events_total{event="sync",result="OK"} 30
ws_events_total{event="game:vote",result="NOT_YOUR_TURN"} 3
ws_events_total{event="game:vote",result="UNAVAILABLE"} 1
ws_redis_errors_total{operation="update"} 1
ws_connections 4
"#;

    #[test]
    fn counters_are_read_from_the_text_format() {
        let counters = parse_counters(METRICS);
        assert_eq!(counters.accepted, Some(40));
        assert_eq!(counters.refused["FAULT_INJECTED"], 7);
        assert_eq!(counters.events, 34);
        assert_eq!(
            counters.event_errors, 1,
            "rule refusals are the game working"
        );
        assert_eq!(counters.redis_errors, 1);
        assert_eq!(parse_counters("ws_events_total 1\n").accepted, None);
    }

    fn scrape_of(slot: Slot, read: &[(&str, Result<&str, &str>)]) -> Scrape {
        Scrape {
            slots: read
                .iter()
                .map(|(name, _)| ((*name).to_owned(), slot))
                .collect(),
            read: read
                .iter()
                .map(|(name, text)| {
                    (
                        (*name).to_owned(),
                        text.map(parse_counters).map_err(str::to_owned),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn the_window_is_the_difference_and_a_restart_counts_from_zero() {
        let before = scrape_of(
            Slot::Green,
            &[
                (
                    "ws-1",
                    Ok(
                        "ws_connections_accepted_total 10\nws_events_total{event=\"sync\",result=\"OK\"} 10\n",
                    ),
                ),
                ("ws-2", Ok("ws_connections_accepted_total 50\n")),
                ("ws-3", Err("did not answer")),
            ],
        );
        let after = scrape_of(
            Slot::Green,
            &[
                ("ws-1", Ok(METRICS)),
                // Restarted: its counter went down.
                ("ws-2", Ok("ws_connections_accepted_total 5\n")),
                ("ws-3", Ok(METRICS)),
            ],
        );
        let signals = &signals(&before, &after)[&Slot::Green];
        assert_eq!(signals.instances, 2);
        assert_eq!(signals.handshakes_accepted, Some(30 + 5));
        assert_eq!(signals.handshakes_refused["FAULT_INJECTED"], 7);
        assert_eq!(
            signals.server_refusals(),
            7,
            "a missing token is the client's"
        );
        assert_eq!(signals.handshakes(), Some(35 + 9));
        assert_eq!(signals.events, 24);
        assert_eq!(signals.unreadable, ["ws-3: did not answer"]);
    }

    #[test]
    fn answers_are_split_by_their_marker_lines() {
        let output = format!(
            "# avalon-scrape http://a:3001/metrics\n{METRICS}# avalon-scrape http://b:3001/metrics\n# avalon-scrape-failed\n"
        );
        let answers = split_answers(&output);
        assert_eq!(
            answers["http://a:3001/metrics"].as_ref().unwrap().accepted,
            Some(40)
        );
        assert!(answers["http://b:3001/metrics"].is_err());
    }

    #[test]
    fn inspect_output_and_targets_by_shared_network_address() {
        let output = concat!(
            r#"0d6f4b8bd1bc1234 {"p_backend":{"IPAddress":"172.20.0.5"},"p_data":{"IPAddress":"172.21.0.3"}} ["WS_PORT=4001","NAME=a b"]"#,
            "\n",
            r#"ee11ee11ee11ffff {"p_backend":{"IPAddress":"172.20.0.2"},"p_edge":{"IPAddress":"172.19.0.2"}} null"#,
            "\n",
        );
        let inspected = parse_inspected(output).unwrap();
        let ws = &inspected["0d6f4b8bd1bc"];
        assert_eq!(ws.env, ["WS_PORT=4001", "NAME=a b"]);
        assert_eq!(ws.addresses["p_data"], "172.21.0.3");
        let edge = &inspected["ee11ee11ee11"];
        assert!(edge.env.is_empty());
        let container = |id: &str, name: &str| ContainerInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            service: "websocket-green".to_owned(),
            slot: Some(Slot::Green),
            image: String::new(),
            image_id: String::new(),
            release: None,
            config_digest: None,
            state: "running".to_owned(),
            health: "healthy".to_owned(),
            restart_count: 0,
            failing_streak: 0,
            exit_code: 0,
            oom_killed: false,
            finished_at: None,
            one_off: false,
            healthcheck: None,
            hostname: String::new(),
            networks: BTreeMap::new(),
            binds: BTreeMap::new(),
        };
        let targets = scrape_targets(
            &[
                container("0d6f4b8bd1bc", "ws-green-1"),
                container("999999999999", "ws-green-2"),
            ],
            &inspected,
            edge,
            &[Slot::Green],
        );
        assert_eq!(
            targets,
            [
                (
                    "ws-green-1".to_owned(),
                    Slot::Green,
                    "http://172.20.0.5:4001/metrics".to_owned()
                ),
                (
                    "ws-green-2".to_owned(),
                    Slot::Green,
                    "http://ws-green-2:3001/metrics".to_owned()
                ),
            ]
        );
        assert!(
            scrape_targets(
                &[container("0d6f4b8bd1bc", "x")],
                &inspected,
                edge,
                &[Slot::Blue]
            )
            .is_empty()
        );
    }
}
