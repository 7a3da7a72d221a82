//! The backup commands against a live MongoDB server: create (mongodump inside the server's container,
//! streamed out), verify with a restore test, status, and a restore into a side database whose counts
//! must match what was seeded.
//!
//! No MongoDB server can run on the project's own CI machine (no image registry, no packages), so this
//! runs in the GitHub Actions `mongodb-contract` job, which starts `mongo:7` as a service container and
//! names it in AVALON_LIVE_MONGODB_CONTAINER (`cargo xtask ci --mongodb-contract`). Everywhere else it
//! skips loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod stack_support;

use serde_json::Value;
use stack_support::{docker, run, run_ok, xtask};

const CONTAINER_VAR: &str = "AVALON_LIVE_MONGODB_CONTAINER";
const GAMES: u64 = 500;
const USERS: u64 = 40;

fn live_container() -> Option<String> {
    match std::env::var(CONTAINER_VAR) {
        Ok(name) if !name.trim().is_empty() => Some(name.trim().to_owned()),
        _ => {
            avalon_testkit::skip(
                "mongodb-backup-drill",
                &format!(
                    "{CONTAINER_VAR} names no MongoDB container; the live backup drill runs in the GitHub \
                     Actions mongodb-contract job (`cargo xtask ci --mongodb-contract`)"
                ),
            );
            None
        }
    }
}

/// Runs JavaScript in the server's container with mongosh and returns the last line it printed.
fn mongosh(container: &str, script: &str) -> String {
    let out = run_ok(&mut docker(&[
        "exec", container, "mongosh", "--quiet", "--eval", script,
    ]));
    out.lines().last().unwrap_or_default().trim().to_owned()
}

fn count(container: &str, db: &str, collection: &str) -> u64 {
    mongosh(
        container,
        &format!("print(db.getSiblingDB('{db}').getCollection('{collection}').countDocuments())"),
    )
    .parse()
    .unwrap()
}

#[test]
fn a_live_backup_is_created_verified_by_restore_and_restored_into_a_side_database() {
    let Some(container) = live_container() else {
        return;
    };
    let source_db = format!("backup_drill_{}", std::process::id());
    let side_db = format!("{source_db}_restored");
    mongosh(
        &container,
        &format!(
            "const d = db.getSiblingDB('{source_db}'); d.dropDatabase();
             d.games.insertMany(Array.from({{length: {GAMES}}}, (_, i) => ({{_id: 'g' + i, players: 5 + (i % 6), winner: i % 2 ? 'good' : 'evil'}})));
             d.users.insertMany(Array.from({{length: {USERS}}}, (_, i) => ({{_id: 'u' + i, nickname: 'player ' + i}})));
             d.users.createIndex({{nickname: 1}});
             print('seeded')"
        ),
    );

    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap().to_owned();
    // The job's MONGODB_URI points at 127.0.0.1 inside the container too; dump only the seeded database.
    let uri = format!("mongodb://127.0.0.1:27017/{source_db}");
    let created: Value = serde_json::from_str(&run_ok(
        xtask()
            .env("MONGODB_URI", &uri)
            .args(["backup", "create", "--mongodb-container", &container])
            .args(["--local-only", "--dir", &dir_arg, "--json"]),
    ))
    .unwrap();
    println!("backup create: {created}");
    let id = created["manifest"]["id"].as_str().unwrap().to_owned();
    let namespaces = created["manifest"]["namespaces"].as_array().unwrap();
    for (collection, documents) in [("games", GAMES), ("users", USERS)] {
        let entry = namespaces
            .iter()
            .find(|ns| ns["db"] == source_db.as_str() && ns["collection"] == collection)
            .unwrap_or_else(|| panic!("{collection} missing from the manifest: {created}"));
        assert_eq!(entry["documents"], documents, "{entry}");
    }

    let verified = run(xtask()
        .env("MONGODB_URI", &uri)
        .args(["backup", "verify", &id, "--restore-test"])
        .args([
            "--mongodb-container",
            &container,
            "--dir",
            &dir_arg,
            "--json",
        ]));
    let report = String::from_utf8_lossy(&verified.stdout);
    println!("backup verify --restore-test: {report}");
    assert!(verified.status.success(), "{report}");

    let status = run(xtask().args([
        "backup",
        "status",
        "--max-age",
        "1h",
        "--dir",
        &dir_arg,
        "--json",
    ]));
    assert!(
        status.status.success(),
        "a backup made a moment ago is fresh: {}",
        String::from_utf8_lossy(&status.stdout)
    );

    run_ok(
        xtask()
            .env("MONGODB_URI", &uri)
            .args(["backup", "restore", &id, "--no-maintenance"])
            .args([
                "--ns-from",
                &format!("{source_db}.*"),
                "--ns-to",
                &format!("{side_db}.*"),
            ])
            .args(["--mongodb-container", &container, "--dir", &dir_arg]),
    );
    assert_eq!(count(&container, &side_db, "games"), GAMES);
    assert_eq!(count(&container, &side_db, "users"), USERS);
    let indexes = mongosh(
        &container,
        &format!(
            "print(db.getSiblingDB('{side_db}').users.getIndexes().map(i => i.name).join(','))"
        ),
    );
    assert!(
        indexes.contains("nickname_1"),
        "indexes restored: {indexes}"
    );

    // A stale backup is what monitoring must catch.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let stale = run(xtask().args([
        "backup",
        "status",
        "--max-age",
        "1s",
        "--dir",
        &dir_arg,
        "--json",
    ]));
    let stale_report: Value = serde_json::from_slice(&stale.stdout).unwrap();
    assert!(!stale.status.success(), "{stale_report}");
    assert_eq!(stale_report["ok"], false, "{stale_report}");
    assert_eq!(stale_report["backups"], 1, "{stale_report}");

    for db in [&source_db, &side_db] {
        mongosh(
            &container,
            &format!("db.getSiblingDB('{db}').dropDatabase(); print('dropped')"),
        );
    }
}
