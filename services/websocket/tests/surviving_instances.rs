//! Instances come and go; games do not: a killed or drained instance's players resume on another one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Redis, Ws, assert_record_matches, python_socketio, run_table, token};

#[test]
fn killing_an_instance_mid_game_loses_nothing_its_players_finish_on_the_other() {
    let Some(python) = python_socketio() else {
        return;
    };
    let Some(redis) = Redis::start() else { return };
    let mut doomed = Ws::start("ws-doomed", Some(&redis), &[]);
    let survivor = Ws::start("ws-survivor", Some(&redis), &[]);
    let tokens: Vec<String> = (0..5).map(|seat| token(&format!("kill-{seat}"))).collect();
    let result = run_table(
        &python,
        &json!({
            "urls": [doomed.url(), survivor.url()],
            "tokens": tokens,
            "options": { "percival": true, "morgana": true },
            "disrupt": { "pid": doomed.process.pid(), "signal": "KILL", "after_quests": 1, "url": doomed.url() },
        }),
        Duration::from_secs(120),
    );
    let status = doomed
        .process
        .wait_exit(Duration::from_secs(5))
        .expect("the instance was killed");
    assert!(!status.success());
    assert_eq!(
        result["instances"].as_array().unwrap().len(),
        1,
        "everyone ended on the survivor: {result}"
    );
    let records = redis.finished_games();
    assert_eq!(records.len(), 1, "the game finished and was recorded once");
    assert_record_matches(&records[0], &result, 5);
}

#[test]
fn draining_an_instance_tells_its_players_to_reconnect_and_they_carry_on() {
    let Some(python) = python_socketio() else {
        return;
    };
    let Some(redis) = Redis::start() else { return };
    let mut draining = Ws::start("ws-draining", Some(&redis), &[]);
    let other = Ws::start("ws-other", Some(&redis), &[]);
    let tokens: Vec<String> = (0..6).map(|seat| token(&format!("drain-{seat}"))).collect();
    let result = run_table(
        &python,
        &json!({
            "urls": [draining.url(), other.url()],
            "tokens": tokens,
            "options": { "lady_of_the_lake": true },
            "disrupt": { "pid": draining.process.pid(), "signal": "TERM", "after_quests": 2, "url": draining.url() },
        }),
        Duration::from_secs(120),
    );
    assert_eq!(
        result["reconnect_notices"], 3,
        "each of its 3 players was told to reconnect: {result}"
    );
    let status = draining
        .process
        .wait_exit(Duration::from_secs(20))
        .expect("the drained instance exited");
    assert!(status.success(), "a drain is a clean exit: {status:?}");
    assert!(
        draining
            .process
            .output_contains("draining: asking every client to reconnect elsewhere")
    );
    let records = redis.finished_games();
    assert_eq!(records.len(), 1);
    assert_record_matches(&records[0], &result, 6);
}
