//! Live autoscaling on the offline stack (issue 16, "Tests and figures"): 20 scripted players in live games
//! and steady HTTP load through nginx the whole time; idle Socket.IO connections are ramped past the policy's
//! `target_connections` and `cargo xtask autoscale --watch` must add a game server that takes new
//! connections with no manual step; the extra connections are closed and, after the stabilisation window,
//! one game server must be drained and removed while its players resume elsewhere and every game finishes.
//!
//! The policy is a file an operator could pass with `--policy`: the shipped format and semantics, with a
//! low `target_connections` (30 per instance) and short windows so the test fits in a few minutes — the
//! mechanism measured (registry → Scaler → scale → edge membership → drain) is the shipped one.
//!
//! Printed: seconds from the threshold crossed to the new replica serving, seconds to drain on scale-in,
//! requests failed (goal 0; nginx reload keep-alive resets counted apart, as in the chaos suite), games
//! lost (goal 0).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod stack_support;
#[path = "chaos_support/traffic.rs"]
mod traffic;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stack_support::{docker, docker_with_compose_v2, run, run_ok, workspace_root};
use traffic::{Load, Players};

const TABLES: usize = 4;
/// Extra connections: with the 20 players, 60 on one game server — twice the policy's
/// `target_connections` of 30.
const RAMP: u64 = 40;
/// Ramp connections kept open through the ramp-down (the newest), so the drained server has clients.
const KEPT: u64 = 8;

/// The test's policy: every key of deploy/scaling.toml, windows short enough for a test.
const POLICY: &str = r#"
[api]
min = 2
max = 2
cpu_limit_millicores = 1000
memory_limit_mib = 512
target_cpu_pct = 90
target_memory_pct = 0
target_connections = 0
tolerance = 0.1
sync_period = "2s"
scale_up_stabilization = "0s"
scale_down_stabilization = "20s"
scale_up_max_pods = 1
scale_up_max_percent = 100
scale_up_period = "10s"
scale_down_max_pods = 1
scale_down_period = "10s"

[websocket]
min = 1
max = 2
cpu_limit_millicores = 1000
memory_limit_mib = 512
target_cpu_pct = 95
target_memory_pct = 95
target_connections = 30
tolerance = 0.1
sync_period = "2s"
scale_up_stabilization = "0s"
scale_down_stabilization = "20s"
scale_up_max_pods = 1
scale_up_max_percent = 100
scale_up_period = "10s"
scale_down_max_pods = 1
scale_down_period = "10s"
"#;

struct Stack {
    project: String,
    port: u16,
    dir: tempfile::TempDir,
}

impl Stack {
    fn new() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        // One address signs in every client: the per-address limits would be what is measured.
        let development =
            std::fs::read_to_string(workspace_root().join("config/development.toml")).unwrap();
        std::fs::write(
            dir.path().join("development.toml"),
            format!("{development}\nrate_limit_ip = 100000000\nrate_limit_user = 100000000\n"),
        )
        .unwrap();
        let model = json!({
            "rate_limits": {
                "api_per_second": 100000, "api_burst": 100000, "api_retry_after": 1,
                "ws_connections_per_ip": 1000
            }
        });
        std::fs::write(dir.path().join("edge.json"), model.to_string()).unwrap();
        std::fs::write(dir.path().join("scaling.toml"), POLICY).unwrap();
        std::fs::create_dir(dir.path().join("ledger")).unwrap();
        Stack {
            project: format!("avalon-autoscale-{}", std::process::id()),
            port: avalon_testkit::free_port(),
            dir,
        }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn xtask(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .current_dir(workspace_root())
            .args(args)
            .args(["--env", "offline", "--project", &self.project])
            .env("AVALON_CONFIG_DIR", self.dir.path())
            .env("AVALON_EDGE_MODEL", self.dir.path().join("edge.json"))
            .env("AVALON_LEDGER_DIR", self.dir.path().join("ledger"))
            .env("AVALON_API_REPLICAS", "2")
            .env("AVALON_WS_REPLICAS", "1")
            .env("RUST_BACKTRACE", "0");
        command
    }

    fn policy(&self) -> PathBuf {
        self.dir.path().join("scaling.toml")
    }

    /// Running game-server containers (names).
    fn game_servers(&self) -> Vec<String> {
        run_ok(&mut docker(&[
            "ps",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            "label=com.docker.compose.service=websocket",
        ]))
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// Open connections per game-server container (name), from the instance registry
    /// (`cargo xtask instances --json`).
    fn connections(&self) -> Vec<(String, u64)> {
        let out = run_ok(&mut self.xtask(&["instances", "--json"]));
        let view: Value = serde_json::from_str(&out).unwrap();
        view["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["service"] == "websocket")
            .map(|i| {
                (
                    i["container"].as_str().unwrap_or_default().to_owned(),
                    i["connections"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = run(&mut self.xtask(&["logs", "--tail", "60"]));
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let _ = run(&mut self.xtask(&["down", "--volumes"]));
        let _ = run(&mut docker(&[
            "volume",
            "rm",
            "--force",
            &format!("{}-releases", self.project),
        ]));
    }
}

/// `autoscale --watch`, stopped (SIGINT, then SIGKILL after 20 s) however the test ends — before the
/// stack is torn down (it is declared after it), so it cannot scale containers back up after `down`.
struct Stopped(Child);

impl Stopped {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

/// A line-driven child (the connection ramp), its stdout read on a thread.
struct Driven {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Driven {
    fn spawn(mut command: Command) -> Driven {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdin = child.stdin.take().unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        Driven {
            child,
            stdin,
            lines,
        }
    }

    fn ask(&mut self, command: &str, within: Duration) -> Value {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let line = self
            .lines
            .recv_timeout(within)
            .expect("connections: no answer");
        println!("connections: {line}");
        serde_json::from_str(line.strip_prefix("OPEN ").unwrap()).unwrap()
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(stdout: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

fn dev_login(stack: &Stack) -> String {
    let addr = format!("127.0.0.1:{}", stack.port).parse().unwrap();
    let body = json!({ "openid": "autoscale-load" }).to_string();
    let (status, text) =
        avalon_testkit::http_post_json(addr, "/api/v1/auth/dev-login", &body).unwrap();
    assert_eq!(status, 200, "{text}");
    let session: Value = serde_json::from_str(&text).unwrap();
    session["access_token"].as_str().unwrap().to_owned()
}

/// The autoscaler's decisions (`--json`), as they come.
fn decisions(lines: &Receiver<String>, seen: &mut Vec<Value>) {
    while let Ok(line) = lines.try_recv() {
        println!("autoscale: {line}");
        if let Ok(decision) = serde_json::from_str::<Value>(&line) {
            seen.push(decision);
        }
    }
}

#[test]
fn autoscale_adds_a_game_server_under_load_and_drains_it_after() {
    if !docker_with_compose_v2() {
        return;
    }
    let missing: Vec<&str> = ["oha", "python3"]
        .into_iter()
        .filter(|tool| avalon_testkit::require_tool(tool).is_none())
        .collect();
    if !missing.is_empty() {
        return;
    }
    let stack = Stack::new();
    run_ok(&mut stack.xtask(&[
        "up",
        "--http-port",
        &stack.port.to_string(),
        "--timeout",
        "240",
    ]));
    assert_eq!(
        stack.game_servers().len(),
        1,
        "the stack starts with one game server"
    );

    let token = dev_login(&stack);
    let mut players = Players::start(&stack.base_url(), TABLES);
    let load = Load::start(
        &format!("{}/api/v1/users/me", stack.base_url()),
        &token,
        "200",
        "4",
    );
    players.send("start autoscale");

    let policy = stack.policy().display().to_string();
    let mut autoscaler = Stopped(
        stack
            .xtask(&["autoscale", "--watch", "--json", "--policy", &policy])
            .stdout(Stdio::piped())
            .spawn()
            .expect("cargo xtask autoscale --watch"),
    );
    let autoscale_lines = lines_of(autoscaler.0.stdout.take().unwrap());
    let mut seen = Vec::new();

    let script = workspace_root().join("xtask/tests/autoscale_support/connections.py");
    let mut ramp = Command::new("python3");
    ramp.arg(script).arg(stack.base_url());
    let mut connections = Driven::spawn(ramp);

    // Scale-out: past the target (20 players + 40 = 60 on one game server, target 30).
    let before = stack.game_servers();
    let opened = connections.ask(&format!("open {RAMP}"), Duration::from_secs(120));
    assert_eq!(opened["open"], RAMP, "{opened}");
    let crossed = Instant::now();
    let mut serving = None;
    let mut extra: u64 = 0;
    while crossed.elapsed() < Duration::from_secs(120) {
        decisions(&autoscale_lines, &mut seen);
        let servers = stack.game_servers();
        if servers.len() == 2 {
            let fresh: Vec<&String> = servers.iter().filter(|id| !before.contains(id)).collect();
            // New clients arrive; the edge must send some to the new game server by itself.
            connections.ask("open 2", Duration::from_secs(60));
            extra += 2;
            let on_fresh = stack
                .connections()
                .into_iter()
                .any(|(name, count)| count > 0 && fresh.contains(&&name));
            if on_fresh {
                serving = Some(crossed.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let serving =
        serving.expect("no new game server took connections within 120 s of the threshold");

    // Scale-in: the ramp's connections closed but the newest (at most KEPT), which hash on their tokens over
    // both servers. 20 players + those few on two game servers is below the target, and the new server has
    // no live game, so it is the one drained: its clients must be told to reconnect and resume.
    let on_fresh_before: u64 = stack
        .connections()
        .into_iter()
        .filter(|(name, _)| !before.contains(name))
        .map(|(_, count)| count)
        .sum();
    // At most KEPT stay (20 players + 8 on two servers is below the target of 30 each: the policy wants 1);
    // they hash on their tokens, so some of them sit on the new server.
    let kept = extra.min(KEPT);
    let closed = connections.ask(
        &format!("close-oldest {}", RAMP + extra - kept),
        Duration::from_secs(60),
    );
    assert_eq!(closed["open"], kept, "{closed}");
    let reconnects_before = closed["reconnects"].as_u64().unwrap_or_default();
    let lowered = Instant::now();
    let mut drained = None;
    while lowered.elapsed() < Duration::from_secs(120) {
        decisions(&autoscale_lines, &mut seen);
        if stack.game_servers().len() == 1 {
            drained = Some(lowered.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let drained = drained.expect("no game server was drained within 120 s of the load going down");
    // The drained server's clients resume through the edge: every connection kept is up again.
    let resumed_by = Instant::now() + Duration::from_secs(60);
    let resumed = loop {
        let status = connections.ask("open 0", Duration::from_secs(30));
        let reconnected = status["reconnects"].as_u64().unwrap_or_default() - reconnects_before;
        if (status["open"] == kept && reconnected >= 1) || Instant::now() > resumed_by {
            break status;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let resumed_connections =
        resumed["reconnects"].as_u64().unwrap_or_default() - reconnects_before;
    assert_eq!(
        resumed["open"], kept,
        "clients of the drained game server did not all resume: {resumed}"
    );
    assert!(
        resumed_connections >= 1,
        "no client of the drained game server was told to reconnect (it had {on_fresh_before}): {resumed}"
    );
    std::thread::sleep(Duration::from_secs(3));
    decisions(&autoscale_lines, &mut seen);
    autoscaler.stop();

    players.send("stop");
    let games = players.expect("PHASE ", Duration::from_secs(240));
    let load = load.stop();
    println!("load: {load}");

    let drain_seconds = seen
        .iter()
        .filter_map(|d| d["scale"]["removed"].as_array())
        .flatten()
        .filter_map(|r| r["drain_seconds"].as_f64())
        .fold(0.0, f64::max);
    let failed = traffic::failed_requests(&load);
    let resets = traffic::keepalive_resets(&load);
    let lost = games["started"].as_u64().unwrap() - games["finished"].as_u64().unwrap();
    avalon_testkit::figures::figure(
        "autoscale (websocket 1 → 2 → 1)",
        &format!(
            "threshold crossed → new replica serving {:.1} s; load down → replica drained and removed {:.1} s \
             (its drain {drain_seconds:.1} s); requests {} failed {} (+{resets} keep-alive resets at reloads); \
             games started {} finished {} lost {lost}; reconnects {}; clients of the drained server resumed \
             {resumed_connections} of {on_fresh_before}",
            serving.as_secs_f64(),
            drained.as_secs_f64(),
            load["requests"],
            failed - resets,
            games["started"],
            games["finished"],
            games["reconnects"],
        ),
    );

    let ups: Vec<&Value> = seen
        .iter()
        .filter(|d| d["applied"] == true && d["to"].as_u64() > d["from"].as_u64())
        .collect();
    let downs: Vec<&Value> = seen
        .iter()
        .filter(|d| d["applied"] == true && d["to"].as_u64() < d["from"].as_u64())
        .collect();
    assert_eq!(ups.len(), 1, "one scale-out: {seen:?}");
    assert_eq!(downs.len(), 1, "one scale-in: {seen:?}");
    assert_eq!(ups[0]["service"], "websocket");
    assert!(
        !downs[0]["reason"].as_str().unwrap_or_default().is_empty(),
        "a decision says why: {}",
        downs[0]
    );
    assert_eq!(failed - resets, 0, "requests failed: {load}");
    assert!(
        resets * 1000 <= load["requests"].as_u64().unwrap(),
        "{load}"
    );
    assert!(games["started"].as_u64().unwrap() > 0, "{games}");
    assert_eq!(lost, 0, "games lost: {games}");
    assert_eq!(games["errors"].as_array().unwrap().len(), 0, "{games}");
    let ledger = std::fs::read_to_string(stack.dir.path().join("ledger/releases.jsonl")).unwrap();
    assert_eq!(
        ledger
            .lines()
            .filter(|l| l.contains("\"event\":\"scale\""))
            .count(),
        2,
        "both scales are in the ledger:\n{ledger}"
    );
}
