//! Shared pieces of the game-server process tests: a throw-away redis-server, avalon-ws instances on free
//! loopback ports, access tokens, and the python-socketio table client (`clients/avalon_table.py`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use avalon_runtime::auth::issue_access_token;
use avalon_runtime::config::Secret;
use avalon_testkit::{
    Process, RedisServer, free_port, http_get, require_tool, wait_for_port, wait_until,
};
use serde_json::Value;

pub const JWT_SECRET: &str = "ws-integration-test-secret-0123456789abcdef";

pub struct Redis {
    server: RedisServer,
    pub port: u16,
}

impl Redis {
    /// A private redis-server on a free loopback port without persistence; `None` (skip) when not installed.
    pub fn start() -> Option<Redis> {
        let server = RedisServer::start()?;
        Some(Redis {
            port: server.port,
            server,
        })
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.server.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Every finished-game record in the stream the API consumes.
    pub fn finished_games(&self) -> Vec<Value> {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(avalon_game::FINISHED_GAMES_STREAM)
            .arg("-")
            .arg("+")
            .query(&mut self.connection())
            .unwrap();
        entries
            .into_iter()
            .map(|(_, fields)| {
                let (field, json) = fields.into_iter().next().unwrap();
                assert_eq!(field, avalon_game::FINISHED_GAMES_FIELD);
                serde_json::from_str(&json).unwrap()
            })
            .collect()
    }
}

pub struct Ws {
    pub port: u16,
    pub process: Process,
    pub data_dir: tempfile::TempDir,
}

impl Ws {
    /// Starts avalon-ws (Redis mode when `redis` is given, embedded otherwise) and waits until ready.
    pub fn start(name: &str, redis: Option<&Redis>, extra: &[(&str, &str)]) -> Ws {
        let port = free_port();
        let data_dir = tempfile::tempdir().unwrap();
        let config_dir = data_dir.path().join("config");
        let (port_text, api_port, redis_port) = (
            port.to_string(),
            free_port().to_string(),
            redis.map(|r| r.port.to_string()),
        );
        let mut env: Vec<(&str, &str)> = vec![
            ("APP_ENV", "development"),
            ("CONFIG_DIR", config_dir.to_str().unwrap()),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("WS_PORT", &port_text),
            ("PORT", &api_port),
            ("JWT_SECRET", JWT_SECRET),
            ("DATA_DIR", data_dir.path().to_str().unwrap()),
            ("LOG_FORMAT", "json"),
            ("LOG_LEVEL", "info"),
            ("SHUTDOWN_DRAIN_DELAY", "0s"),
        ];
        if let Some(redis_port) = &redis_port {
            env.push(("REDIS_HOST", "127.0.0.1"));
            env.push(("REDIS_PORT", redis_port));
        }
        env.extend_from_slice(extra);
        let process = Process::spawn(name, env!("CARGO_BIN_EXE_avalon-ws"), &[], &env);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            wait_for_port(addr, Duration::from_secs(30)),
            "{name} did not listen"
        );
        assert!(
            wait_until(Duration::from_secs(10), || http_get(addr, "/readyz")
                .is_ok_and(|(status, _)| status == 200)),
            "{name} never became ready"
        );
        Ws {
            port,
            process,
            data_dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn metrics(&self) -> String {
        http_get(SocketAddr::from(([127, 0, 0, 1], self.port)), "/metrics")
            .unwrap()
            .1
    }
}

impl Drop for Ws {
    /// A panic in any of the server's tasks is a defect even when the test's own checks pass (a background
    /// task that dies on a panic stops doing its job silently), so every test that ran avalon-ws fails on one.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let panics: Vec<String> = self
            .process
            .output()
            .into_iter()
            .filter(|line| line.contains("panicked at"))
            .collect();
        assert!(panics.is_empty(), "avalon-ws panicked: {panics:#?}");
    }
}

pub fn token(user: &str) -> String {
    token_for(user, Duration::from_secs(600))
}

pub fn token_for(user: &str, lifetime: Duration) -> String {
    let secret = Secret::new(JWT_SECRET);
    issue_access_token(
        &secret,
        user,
        &format!("Knight {user}"),
        "test-session",
        lifetime,
    )
    .unwrap()
    .0
}

/// python3 with python-socketio importable, or `None` after a loud skip (a failure under CI).
pub fn python_socketio() -> Option<PathBuf> {
    let python = require_tool("python3")?;
    let importable = Command::new(&python)
        .args(["-c", "import socketio, aiohttp"])
        .status()
        .is_ok_and(|status| status.success());
    if importable {
        return Some(python);
    }
    avalon_testkit::skip(
        "tool-python-socketio",
        "python-socketio is not installed: run `bash scripts/ci/install-tools.sh` (CI does)",
    );
    None
}

/// Runs the table client on `scenario` and returns its `RESULT` object; panics with its output on failure.
pub fn run_table(python: &Path, scenario: &Value, timeout: Duration) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.json");
    std::fs::write(&path, serde_json::to_vec(scenario).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/avalon_table.py");
    let mut table = Process::spawn(
        "table",
        python,
        &[script.to_str().unwrap(), path.to_str().unwrap()],
        &[],
    );
    let status = table.wait_exit(timeout);
    let output = table.output();
    let result = output.iter().find_map(|line| line.strip_prefix("RESULT "));
    match (status, result) {
        (Some(status), Some(result)) if status.success() => serde_json::from_str(result).unwrap(),
        _ => panic!(
            "the table client failed ({status:?}):\n{}",
            output.join("\n")
        ),
    }
}

/// Checks a recorded game against what the players saw at the end.
pub fn assert_record_matches(record: &Value, result: &Value, players: usize) {
    assert_eq!(record["game_id"], result["game_id"]);
    assert_eq!(record["room_code"], result["room"]);
    let summary = &record["summary"];
    assert_eq!(summary["players"].as_array().unwrap().len(), players);
    assert_eq!(summary["outcome"], result["outcome"]);
    let roles: Vec<&Value> = summary["players"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["role"])
        .collect();
    let seen: Vec<&Value> = result["roles"].as_array().unwrap().iter().collect();
    assert_eq!(roles, seen, "recorded roles differ from the revealed ones");
    let played: Vec<&Value> = result["quests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| !q.is_null())
        .collect();
    assert_eq!(summary["quests"].as_array().unwrap().len(), played.len());
    assert!(summary["duration_ms"].as_u64().is_some());
}
