//! Whole games played by an independent python-socketio client against real avalon-ws processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Redis, Ws, assert_record_matches, python_socketio, run_table, token};

fn tokens(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|seat| token(&format!("{prefix}-{seat}")))
        .collect()
}

#[test]
fn five_players_play_a_full_game_and_it_is_recorded_for_history() {
    let Some(python) = python_socketio() else {
        return;
    };
    let ws = Ws::start("ws", None, &[]);
    let result = run_table(
        &python,
        &json!({ "urls": [ws.url()], "tokens": tokens("five", 5), "options": {} }),
        Duration::from_secs(120),
    );
    assert!(result["outcome"]["winner"].is_string(), "{result}");
    assert_eq!(result["room_stage"], "finished");
    assert_eq!(result["chat"][0]["text"], "good luck, all");
    let spool = ws.data_dir.path().join(avalon_game::FINISHED_GAMES_SPOOL);
    let lines = std::fs::read_to_string(&spool).unwrap();
    let records: Vec<Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "exactly one record per game");
    assert_record_matches(&records[0], &result, 5);
    let metrics = ws.metrics();
    assert!(metrics.contains("ws_games_finished_total 1"), "{metrics}");
    assert!(
        metrics.contains("ws_events_total{event=\"game:vote\",result=\"OK\"}"),
        "{metrics}"
    );
}

#[test]
fn ten_players_with_every_optional_role_split_over_two_instances_play_to_the_end() {
    let Some(python) = python_socketio() else {
        return;
    };
    let Some(redis) = Redis::start() else { return };
    let first = Ws::start("ws-a", Some(&redis), &[]);
    let second = Ws::start("ws-b", Some(&redis), &[]);
    let options = json!({
        "percival": true, "morgana": true, "mordred": true, "oberon": true, "lady_of_the_lake": true,
    });
    let result = run_table(
        &python,
        &json!({ "urls": [first.url(), second.url()], "tokens": tokens("ten", 10), "options": options }),
        Duration::from_secs(180),
    );
    assert_eq!(
        result["instances"].as_array().unwrap().len(),
        2,
        "players sat on both instances: {result}"
    );
    let roles: Vec<&str> = result["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for role in [
        "merlin", "percival", "assassin", "morgana", "mordred", "oberon",
    ] {
        assert!(roles.contains(&role), "{role} missing from {roles:?}");
    }
    let log: Vec<&str> = result["log_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        log.contains(&"lady_examined"),
        "the Lady of the Lake was used: {log:?}"
    );
    assert!(
        log.contains(&"assassination_attempted"),
        "the game reached the assassination: {log:?}"
    );
    let records = redis.finished_games();
    assert_eq!(records.len(), 1);
    assert_record_matches(&records[0], &result, 10);
}
