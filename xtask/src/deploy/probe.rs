//! The built-in synthetic probe: steady GETs through the edge pinned to one slot with the override
//! cookie, so a judgment has data even when real users are few. Its requests are ordinary access-log
//! lines, judged like anyone else's. Beside them, Socket.IO sessions through the same edge and cookie
//! ([`probe_ws`]): handshake, sign-in, `sync`, close — counted per slot with their connect latency, so
//! a game server that refuses players fails the judgment even when HTTP is healthy.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::probe_ws::{self, Outcome, SessionTarget};

/// Paths the probe requests: the readiness passthrough and a cheap API document.
const PATHS: [&str; 2] = ["/health", "/api/v1/openapi.json"];

pub struct Probe {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    sessions: Arc<Mutex<BTreeMap<String, WsProbeCounts>>>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeCounts {
    pub sent: u64,
    /// Answers ≥ 500 or no answer.
    pub failed: u64,
    /// Socket.IO sessions per slot.
    pub ws: BTreeMap<String, WsProbeCounts>,
}

/// The probe's Socket.IO sessions on one slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WsProbeCounts {
    pub sessions: u64,
    pub failed: u64,
    /// Failed sessions by step and reason, e.g. `connect: refused FAULT_INJECTED`.
    pub failures: BTreeMap<String, u64>,
    /// Connect latency of each passed session (TCP connect → Socket.IO CONNECT acknowledged), ms.
    #[serde(skip)]
    pub connect_ms: Vec<f64>,
}

impl WsProbeCounts {
    fn record(&mut self, outcome: &Outcome) {
        self.sessions += 1;
        match outcome {
            Outcome::Passed { connect } => self.connect_ms.push(connect.as_secs_f64() * 1000.0),
            Outcome::Failed(failure) => {
                self.failed += 1;
                *self.failures.entry(failure.kind()).or_default() += 1;
            }
        }
    }
}

/// The Socket.IO half of the probe: sessions per second per slot, and each slot's sign-in token.
pub struct WsPlan {
    pub per_second: u32,
    /// Slot name → the access token its sessions sign in with.
    pub tokens: BTreeMap<String, String>,
}

impl Probe {
    /// Starts one thread per slot sending `per_second` requests each, and one per slot of `ws` opening
    /// its sessions; `override_cookie` pins the slot.
    pub fn start(
        base_url: &str,
        override_cookie: &str,
        slots: &[String],
        per_second: u32,
        ws: &WsPlan,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let sessions = Arc::new(Mutex::new(BTreeMap::new()));
        let mut threads = Vec::new();
        let authority = base_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        if ws.per_second > 0 {
            for (slot, token) in &ws.tokens {
                threads.push(start_sessions(
                    SessionTarget {
                        authority: authority.clone(),
                        cookie: format!("{override_cookie}={slot}; avalon_uid=probe-{slot}"),
                        token: token.clone(),
                    },
                    slot.clone(),
                    ws.per_second,
                    stop.clone(),
                    sessions.clone(),
                ));
            }
        }
        if per_second > 0 {
            for slot in slots {
                let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
                let cookie = format!("{override_cookie}={slot}; avalon_uid=probe-{slot}");
                let authority = authority.clone();
                let interval = Duration::from_secs_f64(1.0 / f64::from(per_second));
                threads.push(std::thread::spawn(move || {
                    let mut next = Instant::now();
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let path = PATHS[n % PATHS.len()];
                        n += 1;
                        sent.fetch_add(1, Ordering::Relaxed);
                        if get(&authority, path, &cookie).is_none_or(|status| status >= 500) {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        next += interval;
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                }));
            }
        }
        Self {
            stop,
            sent,
            failed,
            sessions,
            threads,
        }
    }

    /// Stops the probe; a session under way is finished first (it is bounded by its read timeouts).
    pub fn finish(self) -> ProbeCounts {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        let ws = self
            .sessions
            .lock()
            .map(|sessions| sessions.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        ProbeCounts {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            ws,
        }
    }
}

/// One slot's session loop: a session every `1 / per_second` seconds (or back to back when a session
/// takes longer), each recorded as it ends.
fn start_sessions(
    target: SessionTarget,
    slot: String,
    per_second: u32,
    stop: Arc<AtomicBool>,
    sessions: Arc<Mutex<BTreeMap<String, WsProbeCounts>>>,
) -> JoinHandle<()> {
    let interval = Duration::from_secs_f64(1.0 / f64::from(per_second));
    std::thread::spawn(move || {
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let outcome = probe_ws::session(&target);
            if let Ok(mut sessions) = sessions.lock() {
                sessions.entry(slot.clone()).or_default().record(&outcome);
            }
            next += interval;
            let now = Instant::now();
            if next < now {
                next = now;
            }
            // Short naps, so a stop is noticed within 100 ms even at one session every few seconds.
            while !stop.load(Ordering::Relaxed) && Instant::now() < next {
                std::thread::sleep(
                    next.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(100)),
                );
            }
        }
    })
}

/// One HTTP/1.0 GET; the status, or None when there was no answer.
fn get(authority: &str, path: &str, cookie: &str) -> Option<u16> {
    let addr = authority.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nCookie: {cookie}\r\nUser-Agent: avalon-deploy-probe\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    parse_status(&head[..n])
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    text.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::TcpListener;

    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(
            parse_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"garbage"), None);
    }

    #[test]
    fn the_probe_pins_its_slot_with_the_cookie_and_counts_failures() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut cookies = Vec::new();
            for _ in 0..4 {
                let (mut stream, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = stream.read(&mut buf).unwrap();
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let canary = request.contains("avalon_canary=green");
                cookies.push(canary);
                let status = if canary {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                stream
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .unwrap();
            }
            cookies
        });
        let probe = Probe::start(
            &format!("http://{addr}"),
            "avalon_canary",
            &["green".to_owned()],
            50,
            &WsPlan {
                per_second: 0,
                tokens: BTreeMap::new(),
            },
        );
        std::thread::sleep(Duration::from_millis(60));
        let seen = server.join().unwrap();
        let counts = probe.finish();
        assert!(seen.iter().all(|canary| *canary), "{seen:?}");
        assert!(counts.sent >= 4 && counts.failed >= 4, "{counts:?}");
    }
}
