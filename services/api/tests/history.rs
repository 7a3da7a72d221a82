//! Finished games reach players' history: from the spool file (embedded) and the Redis stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::Value;
use support::{Api, Redis, borrowed, dev_login, finished_game, get_auth};

async fn wait_for_games(api: &Api, token: &str, expected: usize) -> Value {
    for _ in 0..100 {
        let page = get_auth(&api.url("/games?limit=50"), token).await;
        if page.body["games"].as_array().map_or(0, Vec::len) >= expected {
            return page.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("history never reached {expected} games");
}

#[tokio::test]
async fn spooled_games_appear_in_history_paginated_newest_first() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(data.path(), &[("DEV_LOGIN", "true")]).await;
    let me = dev_login(&api, "percival").await;
    let other = dev_login(&api, "outsider").await;
    let (my_id, token) = (
        me["user"]["id"].as_str().unwrap(),
        me["access_token"].as_str().unwrap(),
    );
    let outsider_token = other["access_token"].as_str().unwrap();

    let spool = data.path().join(avalon_game::FINISHED_GAMES_SPOOL);
    let mut file = std::fs::File::create(&spool).unwrap();
    let players = |seat: usize| {
        let mut ids = vec!["p1", "p2", "p3", "p4", "p5"];
        ids[seat] = my_id;
        ids
    };
    for n in 0..7_u64 {
        // Seats 0-2 win; I sit at seat 0 in even games and seat 4 (losing) in odd ones.
        let seat = if n % 2 == 0 { 0 } else { 4 };
        let game = finished_game(
            &format!("game-{n}"),
            &players(seat),
            1_700_000_000_000 + n * 1000,
        );
        writeln!(file, "{}", serde_json::to_string(&game).unwrap()).unwrap();
    }
    // A duplicate, a malformed line and a half-written line must not disturb anything.
    writeln!(
        file,
        "{}",
        serde_json::to_string(&finished_game("game-3", &players(4), 1_700_000_003_000)).unwrap()
    )
    .unwrap();
    writeln!(file, "this is not json").unwrap();
    write!(file, "{{\"game_id\":\"half").unwrap();
    file.flush().unwrap();

    let all = wait_for_games(&api, token, 7).await;
    assert_eq!(all["games"].as_array().unwrap().len(), 7);
    assert!(all["next_cursor"].is_null());

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(cursor) => api.url(&format!("/games?limit=3&cursor={cursor}")),
            None => api.url("/games?limit=3"),
        };
        let page = get_auth(&url, token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for game in page.body["games"].as_array().unwrap() {
            seen.push(game["game_id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|n| format!("game-{n}")).collect();
    assert_eq!(seen, expected);

    let first = get_auth(&api.url("/games?limit=1"), token).await;
    assert_eq!(first.body["games"][0]["won"], true);
    assert_eq!(first.body["games"][0]["role"], "loyal_servant");

    let stats = get_auth(&api.url("/stats/me"), token).await;
    assert_eq!(stats.body["games_played"], 7);
    assert_eq!(stats.body["wins"], 4);
    assert_eq!(stats.body["losses"], 3);
    assert_eq!(stats.body["by_side"]["evil"]["played"], 3);

    let game = get_auth(&api.url("/games/game-2"), token).await;
    assert_eq!(game.status, 200);
    assert_eq!(game.body["summary"]["seed"].as_u64(), Some(u64::MAX - 7));
    let hidden = get_auth(&api.url("/games/game-2"), outsider_token).await;
    assert_eq!((hidden.status, hidden.code()), (404, "GAME_NOT_FOUND"));
    assert_eq!(
        get_auth(&api.url("/games"), outsider_token).await.body["games"],
        Value::Array(vec![])
    );

    for bad in [
        "/games?limit=0",
        "/games?limit=51",
        "/games?cursor=@@@",
        "/games?limit=abc",
    ] {
        let answer = get_auth(&api.url(bad), token).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text);
    }
}

#[tokio::test]
async fn games_from_the_redis_stream_are_stored_once_and_acknowledged() {
    let Some(redis) = Redis::start() else { return };
    let mut env = redis.env();
    env.push(("DEV_LOGIN", "true".to_owned()));
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(data.path(), &borrowed(&env)).await;
    let me = dev_login(&api, "bedivere").await;
    let (my_id, token) = (
        me["user"]["id"].as_str().unwrap(),
        me["access_token"].as_str().unwrap(),
    );

    let mut connection = redis.connection().await;
    for n in 0..3_u64 {
        let game = finished_game(
            &format!("stream-{n}"),
            &[my_id, "a", "b", "c", "d"],
            1_700_000_000_000 + n,
        );
        let record = serde_json::to_string(&game).unwrap();
        let _: String = connection
            .xadd(
                avalon_game::FINISHED_GAMES_STREAM,
                "*",
                &[(avalon_game::FINISHED_GAMES_FIELD, record.clone())],
            )
            .await
            .unwrap();
        if n == 1 {
            // Redelivered by the game server: stored once.
            let _: String = connection
                .xadd(
                    avalon_game::FINISHED_GAMES_STREAM,
                    "*",
                    &[(avalon_game::FINISHED_GAMES_FIELD, record)],
                )
                .await
                .unwrap();
        }
    }
    let page = wait_for_games(&api, token, 3).await;
    assert_eq!(page["games"].as_array().unwrap().len(), 3);
    // Everything read was acknowledged.
    let mut pending = 1;
    for _ in 0..50 {
        let summary: redis::Value = redis::cmd("XPENDING")
            .arg(avalon_game::FINISHED_GAMES_STREAM)
            .arg("avalon-api")
            .query_async(&mut connection)
            .await
            .unwrap();
        pending = match summary {
            redis::Value::Array(items) => match items.first() {
                Some(redis::Value::Int(count)) => *count,
                _ => -1,
            },
            _ => -1,
        };
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 0);
}
