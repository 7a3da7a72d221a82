//! One behaviour for both stores. Always against the embedded store; against MongoDB too when MONGODB_URI
//! is set (CI's mongo:7 job runs exactly `cargo test -p avalon-api --test store_contract`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use avalon_api::model::{Consumed, GameCursor, RefreshRecord, StoredGame, User};
use avalon_api::store::{EmbeddedStore, MongoStore, SharedStore};
use avalon_runtime::config::MongoPool;

fn game(id: &str, players: &[&str], at: u64) -> StoredGame {
    StoredGame::from(support::finished_game(id, players, at))
}

fn refresh(hash: &str, family: &str) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.to_owned(),
        family: family.to_owned(),
        user_id: "u1".to_owned(),
        issued_at_ms: 1,
        expires_at_ms: 4_000_000_000_000,
        used: false,
        revoked: false,
    }
}

async fn users_are_unique_by_openid(store: &SharedStore) {
    let first = store.upsert_user(User::new("openid-a", 10)).await.unwrap();
    let second = store.upsert_user(User::new("openid-a", 20)).await.unwrap();
    assert_eq!(first, second, "a second login finds the first user");
    let other = store.upsert_user(User::new("openid-b", 30)).await.unwrap();
    assert_ne!(other.id, first.id);
    assert_eq!(store.user(&first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.user("missing").await.unwrap(), None);

    let renamed = store
        .set_nickname(&first.id, "Tristan", 99)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.nickname.as_str(), renamed.updated_at_ms),
        ("Tristan", 99)
    );
    assert_eq!(
        store.user(&first.id).await.unwrap().unwrap().nickname,
        "Tristan"
    );
    assert_eq!(store.set_nickname("missing", "x", 1).await.unwrap(), None);

    // Concurrent first logins end with one user.
    let racers = (0..8).map(|_| {
        let store = Arc::clone(store);
        tokio::spawn(async move {
            store
                .upsert_user(User::new("openid-race", 1))
                .await
                .unwrap()
        })
    });
    let ids: std::collections::BTreeSet<String> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().id)
        .collect();
    assert_eq!(ids.len(), 1);
}

async fn refresh_tokens_are_consumed_once_and_revoked_by_family(store: &SharedStore) {
    store.insert_refresh(&refresh("h1", "fam")).await.unwrap();
    store.insert_refresh(&refresh("h2", "fam")).await.unwrap();
    store.insert_refresh(&refresh("h3", "other")).await.unwrap();
    assert_eq!(
        store.consume_refresh("h1").await.unwrap(),
        Consumed::Fresh(refresh("h1", "fam"))
    );
    match store.consume_refresh("h1").await.unwrap() {
        Consumed::AlreadyUsed(record) => assert!(record.used && record.family == "fam"),
        other => panic!("expected AlreadyUsed, got {other:?}"),
    }
    assert_eq!(
        store.consume_refresh("nope").await.unwrap(),
        Consumed::Unknown
    );
    assert_eq!(store.revoke_family("fam").await.unwrap(), 2);
    assert_eq!(store.revoke_family("fam").await.unwrap(), 0);
    match store.consume_refresh("h2").await.unwrap() {
        Consumed::Fresh(record) => assert!(record.revoked),
        other => panic!("expected Fresh(revoked), got {other:?}"),
    }
    match store.consume_refresh("h3").await.unwrap() {
        Consumed::Fresh(record) => assert!(!record.revoked, "other families untouched"),
        other => panic!("expected Fresh, got {other:?}"),
    }
    // Concurrent use of one token: exactly one wins.
    store.insert_refresh(&refresh("h4", "race")).await.unwrap();
    let racers = (0..8).map(|_| {
        let store = Arc::clone(store);
        tokio::spawn(async move { store.consume_refresh("h4").await.unwrap() })
    });
    let fresh = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .filter(|outcome| matches!(outcome, Ok(Consumed::Fresh(_))))
        .count();
    assert_eq!(fresh, 1);
}

async fn games_are_stored_once_and_paginated_newest_first(store: &SharedStore) {
    let base = 1_700_000_000_000;
    assert!(
        store
            .insert_game(&game("g1", &["me", "a", "b", "c", "d"], base + 1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_game(&game("g1", &["me", "a", "b", "c", "d"], base + 1))
            .await
            .unwrap()
    );
    // Two games finishing in the same millisecond still page in a stable order.
    assert!(
        store
            .insert_game(&game("g2b", &["a", "me", "b", "c", "d"], base + 2))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_game(&game("g2a", &["a", "me", "b", "c", "d"], base + 2))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_game(&game("g3", &["x", "a", "b", "c", "d"], base + 3))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_game(&game("g4", &["me", "a", "b", "c", "d"], base + 4))
            .await
            .unwrap()
    );

    let stored = store.game("g2a").await.unwrap().unwrap();
    assert_eq!(stored, game("g2a", &["a", "me", "b", "c", "d"], base + 2));
    assert_eq!(stored.summary.seed, u64::MAX - 7, "u64 values survive");
    assert_eq!(store.game("missing").await.unwrap(), None);

    let ids = |games: Vec<StoredGame>| games.into_iter().map(|g| g.game_id).collect::<Vec<_>>();
    let all = store.games_of("me", 10, None).await.unwrap();
    assert_eq!(ids(all), ["g4", "g2a", "g2b", "g1"]);
    let mut pages = Vec::new();
    let mut cursor: Option<GameCursor> = None;
    loop {
        let page = store.games_of("me", 2, cursor.as_ref()).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(GameCursor::of);
        pages.push(ids(page));
    }
    assert_eq!(pages, [vec!["g4", "g2a"], vec!["g2b", "g1"]]);
    let after_g2a = GameCursor {
        finished_at_ms: base + 2,
        game_id: "g2a".to_owned(),
    };
    assert_eq!(
        ids(store.games_of("me", 1, Some(&after_g2a)).await.unwrap()),
        ["g2b"]
    );
    assert!(store.games_of("nobody", 10, None).await.unwrap().is_empty());
}

async fn positions_are_remembered(store: &SharedStore) {
    assert_eq!(store.position("spool").await.unwrap(), None);
    store.set_position("spool", 42).await.unwrap();
    store.set_position("spool", 4200).await.unwrap();
    assert_eq!(store.position("spool").await.unwrap(), Some(4200));
    store.ping().await.unwrap();
}

async fn contract(store: SharedStore) {
    users_are_unique_by_openid(&store).await;
    refresh_tokens_are_consumed_once_and_revoked_by_family(&store).await;
    games_are_stored_once_and_paginated_newest_first(&store).await;
    positions_are_remembered(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    contract(store).await;
    // Data is on disk: a reopened store sees it.
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    let reopened: SharedStore = Arc::new(reopened);
    assert!(reopened.game("g1").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_store_keeps_the_contract() {
    let Ok(uri) = std::env::var("MONGODB_URI") else {
        avalon_testkit::skip(
            "mongodb-store-contract",
            "MONGODB_URI is not set; the MongoDB contract runs in the mongo:7 CI job",
        );
        return;
    };
    let pool = MongoPool {
        max_pool_size: 10,
        min_pool_size: 0,
        connect_timeout: std::time::Duration::from_secs(5),
        server_selection_timeout: std::time::Duration::from_secs(10),
    };
    let server = MongoStore::connect(&uri, &pool).await.unwrap();
    let database = format!("avalon_contract_{}", uuid::Uuid::new_v4().simple());
    let mongo = server.on_database(&database);
    mongo.create_indexes().await.unwrap();
    let store: SharedStore = Arc::new(mongo.clone());
    contract(store).await;
    mongo.drop_database().await.unwrap();
}
