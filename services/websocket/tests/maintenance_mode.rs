//! Maintenance (the shared Redis flag) is pushed to players and stops new games, not running ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Redis, Ws, python_socketio, run_table, token};

#[test]
fn maintenance_from_the_shared_flag_is_announced_and_refuses_new_games_only() {
    let Some(python) = python_socketio() else {
        return;
    };
    let Some(redis) = Redis::start() else { return };
    let first = Ws::start("ws-a", Some(&redis), &[]);
    let second = Ws::start("ws-b", Some(&redis), &[]);
    let tokens: Vec<String> = (0..5).map(|seat| token(&format!("maint-{seat}"))).collect();
    let result = run_table(
        &python,
        &json!({
            "urls": [first.url(), second.url()],
            "tokens": tokens,
            "maintenance_redis": format!("redis://127.0.0.1:{}/0", redis.port),
        }),
        Duration::from_secs(120),
    );
    assert_eq!(
        result["maintenance_refusal"]["code"], "MAINTENANCE",
        "{result}"
    );
    assert_eq!(
        result["maintenance_refusal"]["message"],
        "Upgrading the tables"
    );
    assert!(
        result["outcome"]["winner"].is_string(),
        "the game was played after maintenance ended"
    );
}
