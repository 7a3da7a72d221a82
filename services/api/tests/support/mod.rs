//! Shared helpers for the API's process-level tests: start `avalon-api` with a clean environment, a local
//! WeChat stub, and a real `redis-server` on a free loopback port.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use avalon_testkit::{Process, RedisServer, free_port, wait_for_port};
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const DEV_JWT_SECRET: &str = "dev-only-insecure-jwt-secret-change-me-0123456789";
/// What the WeChat stub hands out as session_key: it must never appear anywhere the API sends or logs.
pub const STUB_SESSION_KEY: &str = "STUB-SESSION-KEY-tSeCrEt+/==";
pub const STUB_APPID: &str = "wx0123456789abcdef";
pub const STUB_SECRET: &str = "stub-app-secret-0123456789";

pub struct Api {
    pub process: Process,
    pub addr: SocketAddr,
    pub base: String,
    pub data_dir: PathBuf,
    _config_dir: tempfile::TempDir,
}

impl Api {
    /// Starts avalon-api in development on the embedded store in `data_dir`, with `env` on top, and waits
    /// until /readyz answers 200.
    pub async fn start(data_dir: &Path, env: &[(&str, &str)]) -> Api {
        let port = free_port();
        let config_dir = tempfile::tempdir().unwrap();
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in [
            ("APP_ENV", "development"),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("LOG_FORMAT", "json"),
            ("LOG_LEVEL", "info"),
            ("SHUTDOWN_DRAIN_DELAY", "0s"),
        ] {
            vars.insert(key.to_owned(), value.to_owned());
        }
        vars.insert("PORT".to_owned(), port.to_string());
        let ws_port = if port == 65535 { port - 1 } else { port + 1 };
        vars.insert("WS_PORT".to_owned(), ws_port.to_string());
        vars.insert("DATA_DIR".to_owned(), data_dir.display().to_string());
        vars.insert(
            "CONFIG_DIR".to_owned(),
            config_dir.path().display().to_string(),
        );
        for (key, value) in env {
            vars.insert((*key).to_owned(), (*value).to_owned());
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_avalon-api"));
        // A clean environment: nothing from the developer's shell or CI (MONGODB_URI, REDIS_HOST) leaks in.
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        command.envs(&vars);
        let process = Process::spawn_command(&format!("api:{port}"), command);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let api = Api {
            process,
            addr,
            base: format!("http://{addr}"),
            data_dir: data_dir.to_path_buf(),
            _config_dir: config_dir,
        };
        assert!(
            wait_for_port(addr, Duration::from_secs(30)),
            "avalon-api did not start listening"
        );
        let client = reqwest::Client::new();
        for _ in 0..150 {
            if let Ok(response) = client.get(format!("{}/readyz", api.base)).send().await
                && response.status() == 200
            {
                return api;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("avalon-api never became ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn logs(&self) -> String {
        self.process.output().join("\n")
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Status, headers and JSON body of a response.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub async fn of(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }
}

pub async fn post_json(url: &str, body: Value) -> Answer {
    Answer::of(client().post(url).json(&body).send().await.unwrap()).await
}

pub async fn get_auth(url: &str, token: &str) -> Answer {
    Answer::of(client().get(url).bearer_auth(token).send().await.unwrap()).await
}

/// Signs in through dev-login; returns the session JSON.
pub async fn dev_login(api: &Api, openid: &str) -> Value {
    let answer = post_json(&api.url("/auth/dev-login"), json!({ "openid": openid })).await;
    assert_eq!(answer.status, 200, "dev-login failed: {}", answer.text);
    answer.body
}

/// A local stand-in for api.weixin.qq.com. `codes` maps a js_code to the errcode to answer (0 = success).
#[derive(Clone, Default)]
pub struct WechatStub {
    pub calls: Arc<Mutex<Vec<String>>>,
    pub risky_words: Arc<Mutex<Vec<String>>>,
}

pub async fn start_wechat_stub(stub: WechatStub) -> String {
    async fn session(
        State(stub): State<WechatStub>,
        Query(query): Query<BTreeMap<String, String>>,
    ) -> axum::Json<Value> {
        stub.calls.lock().unwrap().push("jscode2session".to_owned());
        let code = query.get("js_code").cloned().unwrap_or_default();
        let right_app = query.get("appid").map(String::as_str) == Some(STUB_APPID)
            && query.get("secret").map(String::as_str) == Some(STUB_SECRET)
            && query.get("grant_type").map(String::as_str) == Some("authorization_code");
        if !right_app {
            return axum::Json(json!({ "errcode": 40013, "errmsg": "invalid appid" }));
        }
        if let Some(errcode) = code.strip_prefix("err") {
            let errcode: i64 = errcode.parse().unwrap();
            return axum::Json(json!({ "errcode": errcode, "errmsg": "stub error" }));
        }
        if code == "slow" {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        axum::Json(json!({
            "openid": format!("openid-{code}"),
            "session_key": STUB_SESSION_KEY,
            "unionid": "union-1",
        }))
    }
    async fn stable_token(
        State(stub): State<WechatStub>,
        body: axum::Json<Value>,
    ) -> axum::Json<Value> {
        stub.calls.lock().unwrap().push("stable_token".to_owned());
        assert_eq!(body["appid"], STUB_APPID);
        axum::Json(json!({ "access_token": "stub-access-token", "expires_in": 7200 }))
    }
    async fn msg_sec_check(
        State(stub): State<WechatStub>,
        Query(query): Query<BTreeMap<String, String>>,
        body: axum::Json<Value>,
    ) -> axum::Json<Value> {
        stub.calls.lock().unwrap().push("msg_sec_check".to_owned());
        if query.get("access_token").map(String::as_str) != Some("stub-access-token") {
            return axum::Json(json!({ "errcode": 40001, "errmsg": "invalid credential" }));
        }
        let content = body["content"].as_str().unwrap_or_default().to_owned();
        let risky = stub
            .risky_words
            .lock()
            .unwrap()
            .iter()
            .any(|word| content.contains(word.as_str()));
        let suggest = if risky { "risky" } else { "pass" };
        axum::Json(
            json!({ "errcode": 0, "errmsg": "ok", "result": { "suggest": suggest, "label": 100 } }),
        )
    }
    let app = Router::new()
        .route("/sns/jscode2session", get(session))
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/wxa/msg_sec_check", post(msg_sec_check))
        .with_state(stub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A throwaway redis-server on a free loopback port, or `None` (loud skip) when it is not installed.
pub struct Redis {
    server: RedisServer,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Option<Redis> {
        let server = RedisServer::start()?;
        Some(Redis {
            port: server.port,
            server,
        })
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REDIS_HOST", "127.0.0.1".to_owned()),
            ("REDIS_PORT", self.port.to_string()),
        ]
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

/// `(&str, String)` pairs as `(&str, &str)` for [`Api::start`].
pub fn borrowed<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect()
}

/// A finished game with `players` (user ids), first listed players on the winning side.
pub fn finished_game(
    game_id: &str,
    players: &[&str],
    finished_at_ms: u64,
) -> avalon_game::FinishedGame {
    let summary = json!({
        "seed": u64::MAX - 7,
        "options": serde_json::to_value(avalon_game::RoomOptions::default()).unwrap(),
        "players": players.iter().enumerate().map(|(seat, id)| json!({
            "seat": seat,
            "player_id": id,
            "role": if seat < 3 { "loyal_servant" } else { "minion" },
            "side": if seat < 3 { "good" } else { "evil" },
            "won": seat < 3,
        })).collect::<Vec<_>>(),
        "outcome": { "winner": "good", "reason": "merlin_survived" },
        "quests": [],
        "proposals": 3,
        "lady_examinations": [],
        "assassination": null,
        "started_at_ms": finished_at_ms - 60_000,
        "finished_at_ms": finished_at_ms,
        "duration_ms": 60_000,
    });
    avalon_game::FinishedGame {
        game_id: game_id.to_owned(),
        room_code: "ROOM42".to_owned(),
        summary: serde_json::from_value(summary).unwrap(),
    }
}
