//! The stand-in as the API meets it: started as a process with the users the prod overlay gives the
//! container, then driven by the official `mongodb` crate — authentication (right and wrong passwords,
//! per-database scope), ping, createIndexes, a unique violation, findAndModify upserts, cursors, and
//! CommandNotFound for what it does not implement.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use avalon_testkit::{Process, free_port, wait_for_port};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, IndexModel};

struct StandIn {
    port: u16,
    _process: Process,
    _secrets: tempfile::TempDir,
}

fn start() -> StandIn {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("root"), "root-pw\n").unwrap();
    std::fs::write(secrets.path().join("app"), "app-pw\n").unwrap();
    let port = free_port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mongo-standin"));
    command
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("MONGO_INITDB_ROOT_USERNAME", "avalon")
        .env(
            "MONGO_INITDB_ROOT_PASSWORD_FILE",
            secrets.path().join("root"),
        )
        .env("MONGO_INITDB_DATABASE", "avalon")
        .env(
            "MONGO_STANDIN_APP_PASSWORD_FILE",
            secrets.path().join("app"),
        );
    let process = Process::spawn_command("mongo-standin", command);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        wait_for_port(addr, Duration::from_secs(20)),
        "the stand-in never listened"
    );
    StandIn {
        port,
        _process: process,
        _secrets: secrets,
    }
}

async fn client(uri: &str) -> Client {
    let mut options = ClientOptions::parse(uri).await.unwrap();
    options.server_selection_timeout = Some(Duration::from_secs(5));
    options.connect_timeout = Some(Duration::from_secs(5));
    Client::with_options(options).unwrap()
}

fn code(err: &mongodb::error::Error) -> Option<i32> {
    match err.kind.as_ref() {
        ErrorKind::Command(command) => Some(command.code),
        ErrorKind::Write(WriteFailure::WriteError(write)) => Some(write.code),
        // The driver wraps the server's answer; its code shows in the error's source.
        ErrorKind::Authentication { .. } if err.to_string().contains("code: 18,") => Some(18),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_driver_authenticates_and_keeps_the_api_stores_semantics() {
    let standin = start();
    let port = standin.port;

    // The application user, as the API's MONGODB_URI names it.
    let app = client(&format!(
        "mongodb://avalon_app:app-pw@127.0.0.1:{port}/avalon?authSource=avalon"
    ))
    .await;
    let db = app.database("avalon");
    db.run_command(doc! { "ping": 1 }).await.unwrap();

    let users = db.collection::<Document>("users");
    let unique = IndexOptions::builder().unique(true).build();
    let created = users
        .create_index(
            IndexModel::builder()
                .keys(doc! { "openid": 1 })
                .options(unique.clone())
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(created.index_name, "openid_1");
    // Creating it again is a no-op, as on mongod.
    users
        .create_index(
            IndexModel::builder()
                .keys(doc! { "openid": 1 })
                .options(unique)
                .build(),
        )
        .await
        .unwrap();
    let names = users.list_index_names().await.unwrap();
    assert_eq!(names, ["_id_", "openid_1"]);

    users
        .insert_one(doc! { "_id": "u1", "openid": "o1", "nickname": "a" })
        .await
        .unwrap();
    let duplicate = users
        .insert_one(doc! { "_id": "u2", "openid": "o1", "nickname": "b" })
        .await
        .unwrap_err();
    assert_eq!(code(&duplicate), Some(11000), "{duplicate}");
    assert!(duplicate.to_string().contains("openid_1"), "{duplicate}");

    // findAndModify upsert: inserts once with $setOnInsert, then finds the same document.
    let upsert = || {
        users
            .find_one_and_update(
                doc! { "openid": "o2" },
                doc! { "$setOnInsert": { "_id": "u3", "openid": "o2", "nickname": "new" } },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
    };
    let first = upsert().await.unwrap().unwrap();
    assert_eq!(first.get_str("_id").unwrap(), "u3");
    let second = upsert().await.unwrap().unwrap();
    assert_eq!(first, second);
    let before = users
        .find_one_and_update(
            doc! { "_id": "u3" },
            doc! { "$set": { "nickname": "renamed" } },
        )
        .return_document(ReturnDocument::Before)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.get_str("nickname").unwrap(), "new");
    // An upsert that would break the unique index is a command error 11000 (what the API retries on).
    let clash = users
        .find_one_and_update(doc! { "_id": "u9" }, doc! { "$set": { "openid": "o1" } })
        .upsert(true)
        .await
        .unwrap_err();
    assert_eq!(code(&clash), Some(11000), "{clash}");

    // More documents than one batch: the cursor comes back with getMore.
    let games = db.collection::<Document>("games");
    let many: Vec<Document> = (0..250)
        .map(|n| doc! { "_id": n, "player_ids": ["me", "x"], "at": n % 7 })
        .collect();
    games.insert_many(many).await.unwrap();
    let found: Vec<Document> = games
        .find(doc! { "player_ids": "me", "at": { "$gte": 3 } })
        .sort(doc! { "at": -1, "_id": 1 })
        .batch_size(40)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let expected = (0..250).filter(|n| n % 7 >= 3).count();
    assert_eq!(found.len(), expected);
    assert_eq!(found[0].get_i32("at").unwrap(), 6);
    assert_eq!(games.count_documents(doc! { "at": 0 }).await.unwrap(), 36);
    assert_eq!(games.estimated_document_count().await.unwrap(), 250);
    let deleted = games
        .delete_many(doc! { "at": { "$lt": 3 } })
        .await
        .unwrap();
    assert_eq!(deleted.deleted_count, 250 - expected as u64);

    // Unknown commands are refused by name, never faked.
    let unknown = db
        .run_command(doc! { "mapReduce": "games" })
        .await
        .unwrap_err();
    assert_eq!(code(&unknown), Some(59), "{unknown}");
    assert!(unknown.to_string().contains("mapReduce"), "{unknown}");

    // The application user reaches only its own database.
    let elsewhere = app
        .database("other")
        .collection::<Document>("x")
        .insert_one(doc! { "a": 1 })
        .await
        .unwrap_err();
    assert_eq!(code(&elsewhere), Some(13), "{elsewhere}");

    // Root (authSource admin) reaches every database.
    let root = client(&format!(
        "mongodb://avalon:root-pw@127.0.0.1:{port}/?authSource=admin"
    ))
    .await;
    root.database("other")
        .collection::<Document>("x")
        .insert_one(doc! { "a": 1 })
        .await
        .unwrap();
    let databases = root.list_database_names().await.unwrap();
    assert!(
        databases.contains(&"avalon".to_owned()) && databases.contains(&"other".to_owned()),
        "{databases:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_unauthenticated_commands_are_refused() {
    let standin = start();
    let port = standin.port;

    let wrong = client(&format!(
        "mongodb://avalon_app:nope@127.0.0.1:{port}/avalon?authSource=avalon"
    ))
    .await;
    let refused = wrong
        .database("avalon")
        .run_command(doc! { "ping": 1 })
        .await
        .unwrap_err();
    assert_eq!(code(&refused), Some(18), "{refused}");
    // The app user does not exist in admin: same answer, no hint which part was wrong.
    let wrong_source = client(&format!(
        "mongodb://avalon_app:app-pw@127.0.0.1:{port}/avalon?authSource=admin"
    ))
    .await;
    let refused = wrong_source
        .database("avalon")
        .run_command(doc! { "ping": 1 })
        .await
        .unwrap_err();
    assert_eq!(code(&refused), Some(18), "{refused}");

    // Without credentials, ping (the healthcheck) works and nothing else does.
    let anonymous = client(&format!("mongodb://127.0.0.1:{port}/")).await;
    anonymous
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .unwrap();
    let unauthorized = anonymous
        .database("avalon")
        .collection::<Document>("users")
        .find_one(doc! {})
        .await
        .unwrap_err();
    assert_eq!(code(&unauthorized), Some(13), "{unauthorized}");

    // The image's mongosh (same binary) runs the compose healthcheck against it.
    let healthcheck = std::process::Command::new(env!("CARGO_BIN_EXE_mongo-standin"))
        .args([
            "mongosh",
            "--port",
            &port.to_string(),
            "--quiet",
            "--eval",
            "quit(db.adminCommand('ping').ok ? 0 : 1)",
        ])
        .status()
        .unwrap();
    assert!(healthcheck.success());
    let nobody = std::process::Command::new(env!("CARGO_BIN_EXE_mongo-standin"))
        .args([
            "mongosh",
            "--port",
            &free_port().to_string(),
            "--quiet",
            "--eval",
            "quit(db.adminCommand('ping').ok ? 0 : 1)",
        ])
        .status()
        .unwrap();
    assert_eq!(nobody.code(), Some(1), "no server: unhealthy");
}
