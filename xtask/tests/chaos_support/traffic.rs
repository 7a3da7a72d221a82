//! Traffic through the edge that stack tests measure users by (shared by the chaos suite and the autoscale
//! test): steady HTTP load (oha) and the scripted players (players.py), and how a load report is counted.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::stack_support::{run_ok, workspace_root};

/// Steady HTTP load through the edge until stopped: oha at a fixed rate over keep-alive connections.
pub struct Load {
    child: Child,
}

impl Load {
    /// `rate` requests per second over `connections` keep-alive connections.
    pub fn start(url: &str, token: &str, rate: &str, connections: &str) -> Load {
        let child = Command::new("oha")
            .args(["-z", "1h", "-q", rate, "-c", connections, "-t", "5s"])
            .args(["--no-tui", "--output-format", "json", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(url)
            .stdout(Stdio::piped())
            .spawn()
            .expect("oha");
        Load { child }
    }

    /// SIGINT makes oha stop and print its JSON report; kept: status counts and errors.
    pub fn stop(self) -> Value {
        run_ok(Command::new("kill").args(["-INT", &self.child.id().to_string()]));
        let output = self.child.wait_with_output().unwrap();
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "oha printed no JSON report ({err}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        // Requests still in flight when oha is interrupted are reported as canceled: that is the stop,
        // not the stack, so they are not counted at all.
        let mut errors = report["errorDistribution"].clone();
        if let Some(map) = errors.as_object_mut() {
            map.remove("operation was canceled");
        }
        let count = |value: &Value| -> u64 {
            value
                .as_object()
                .map_or(0, |map| map.values().filter_map(Value::as_u64).sum())
        };
        json!({
            "requests": count(&report["statusCodeDistribution"]) + count(&errors),
            "statuses": report["statusCodeDistribution"],
            "errors": errors,
            "p99_ms": report["metrics"]["latency_ms"]["p99"],
        })
    }
}

/// The scripted players (chaos_support/players.py), driven over stdin.
pub struct Players {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Players {
    /// `tables` tables of five players, signed in and seated.
    pub fn start(base: &str, tables: usize) -> Players {
        let script = workspace_root().join("xtask/tests/chaos_support/players.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(base)
            .arg(tables.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut players = Players {
            child,
            stdin,
            lines,
        };
        players.expect("READY ", Duration::from_secs(120));
        players
    }

    pub fn expect(&mut self, prefix: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|err| {
                panic!("players: no {prefix:?} line within {within:?}: {err}")
            });
            println!("players: {line}");
            if let Some(json) = line.strip_prefix(prefix) {
                return serde_json::from_str(json).unwrap();
            }
        }
    }

    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }
}

impl Drop for Players {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests of a [`Load::stop`] report that did not get a 2xx: any other status, or an error
/// (connection, timeout).
pub fn failed_requests(load: &Value) -> u64 {
    let not_ok: u64 = load["statuses"]
        .as_object()
        .map(|statuses| {
            statuses
                .iter()
                .filter(|(status, _)| !status.starts_with('2'))
                .filter_map(|(_, count)| count.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let errors: u64 = load["errors"]
        .as_object()
        .map(|errors| errors.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    not_ok + errors
}

/// Requests sent on a reused keep-alive connection that an exiting nginx worker closed before reading
/// them: at a reload, old workers close their idle client connections at once, and a request already
/// on its way meets the close. nginx 1.22 has no setting against it; browsers and the mobile HTTP
/// stacks retry such requests by themselves, oha (hyper) does not. Counted apart, bounded, and shown.
pub fn keepalive_resets(load: &Value) -> u64 {
    load["errors"]["connection closed before message completed"]
        .as_u64()
        .unwrap_or(0)
}
