//! `backup restore` and `verify --restore-test` end to end against a recording fake `docker`.

use std::fs;
use std::path::Path;

use super::*;
use crate::backup::create::{BackupJob, create_backup};
use crate::backup::fake_docker::{FakeDocker, fixture, gzip};
use crate::backup::manifest::Manifest;
use crate::backup::target::OplogMode;
use crate::backup::verify::Verify;

/// A real backup (made by `create_backup` through the fake) of the oplog fixture.
fn stored_backup(fake: &FakeDocker, dir: &Path) -> (Manifest, Vec<u8>) {
    fake.set("setname", "\"rs0\"");
    let archive = gzip(&fixture("dump-w-oplog.archive"));
    fake.set("dump.bin", &archive);
    let target = fake.mongo_target(None).resolve().unwrap();
    let report = create_backup(
        &target,
        &BackupJob {
            dir,
            oplog: OplogMode::Auto,
            recipients: None,
            environment: None,
        },
    )
    .unwrap();
    fs::remove_file(fake.path("calls.log")).unwrap();
    (report.manifest, archive)
}

fn restore(fake: &FakeDocker, dir: &Path, id: &str) -> Restore {
    Restore {
        id: id.to_owned(),
        drop: true,
        ns_from: None,
        ns_to: None,
        from: None,
        identity: None,
        no_maintenance: false,
        maintenance_message: "restoring".to_owned(),
        retry_after: 120,
        redis_container: None,
        config: None,
        dry_run: false,
        target: TargetArgs {
            docker: fake.program(),
            ..TargetArgs::default()
        },
        dir: BackupDirArg {
            dir: Some(dir.to_path_buf()),
        },
    }
}

fn enabled_sequence(fake: &FakeDocker) -> Vec<bool> {
    fake.flag_values()
        .iter()
        .map(|value| value["enabled"].as_bool().unwrap())
        .collect()
}

#[test]
fn restore_streams_the_archive_between_maintenance_on_and_off() {
    let fake = FakeDocker::new();
    let backups = tempfile::tempdir().unwrap();
    let (manifest, archive) = stored_backup(&fake, backups.path());

    restore(&fake, backups.path(), &manifest.id).run().unwrap();

    assert_eq!(fs::read(fake.path("restored.bin")).unwrap(), archive);
    assert_eq!(enabled_sequence(&fake), [true, false]);
    assert_eq!(
        fake.flag_values()[0],
        serde_json::json!({"enabled": true, "message": "restoring", "retry_after": 120})
    );
    let calls = fake.calls();
    let restore_call = calls
        .iter()
        .position(|call| call.contains("mongorestore"))
        .unwrap();
    let sets: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, call)| call.contains("redis-cli SET avalon:maintenance"))
        .map(|(index, _)| index)
        .collect();
    assert!(
        sets[0] < restore_call && restore_call < sets[1],
        "{calls:#?}"
    );
    assert!(
        calls[restore_call].ends_with("mongorestore --archive --gzip --drop --oplogReplay"),
        "{}",
        calls[restore_call]
    );
    assert!(
        calls
            .iter()
            .any(|call| call.contains("redis-cli PUBLISH avalon:maintenance:changed"))
    );
    assert!(
        calls
            .iter()
            .any(|call| call.contains("label=com.docker.compose.service=redis"))
    );
}

#[test]
fn a_failed_restore_still_turns_maintenance_off() {
    let fake = FakeDocker::new();
    let backups = tempfile::tempdir().unwrap();
    let (manifest, _) = stored_backup(&fake, backups.path());
    fake.set("restore_exit", "1");

    let error = format!(
        "{:#}",
        restore(&fake, backups.path(), &manifest.id)
            .run()
            .unwrap_err()
    );

    assert!(
        error.contains("mongorestore") && error.contains("status 1"),
        "{error}"
    );
    assert_eq!(enabled_sequence(&fake), [true, false]);
    assert!(
        !backups
            .path()
            .join(crate::backup::lock::LOCK_FILE_NAME)
            .exists()
    );
}

#[test]
fn a_damaged_backup_is_refused_before_maintenance_or_restore() {
    let fake = FakeDocker::new();
    let backups = tempfile::tempdir().unwrap();
    let (manifest, _) = stored_backup(&fake, backups.path());
    let path = backups.path().join(&manifest.archive_file);
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 0x10;
    fs::write(&path, bytes).unwrap();

    let error = restore(&fake, backups.path(), &manifest.id)
        .run()
        .unwrap_err()
        .to_string();

    assert!(
        error.contains("failed verification") && error.contains("checksum mismatch"),
        "{error}"
    );
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[test]
fn renamed_restore_without_maintenance_and_dry_run() {
    let fake = FakeDocker::new();
    let backups = tempfile::tempdir().unwrap();
    let (manifest, _) = stored_backup(&fake, backups.path());
    let renamed = |dry_run: bool| Restore {
        ns_from: Some("test.*".to_owned()),
        ns_to: Some("test_restored.*".to_owned()),
        drop: false,
        no_maintenance: true,
        dry_run,
        ..restore(&fake, backups.path(), &manifest.id)
    };

    renamed(true).run().unwrap();
    assert!(fake.calls().is_empty(), "dry run ran {:?}", fake.calls());

    renamed(false).run().unwrap();
    let calls = fake.calls();
    assert!(
        calls.iter().all(|call| !call.contains("redis-cli")),
        "{calls:?}"
    );
    let restore_call = calls
        .iter()
        .find(|call| call.contains("mongorestore"))
        .unwrap();
    assert!(
        restore_call
            .ends_with("mongorestore --archive --gzip --nsFrom=test.* --nsTo=test_restored.*"),
        "no oplog replay when renaming: {restore_call}"
    );
}

fn restore_test_command(fake: &FakeDocker, dir: &Path, id: &str) -> Verify {
    Verify::for_restore_test(
        id,
        dir,
        TargetArgs {
            docker: fake.program(),
            ..TargetArgs::default()
        },
    )
}

/// The throwaway database the last restore test restored into.
fn throwaway_database(fake: &FakeDocker) -> String {
    let calls = fake.calls();
    let restore_call = calls
        .iter()
        .rev()
        .find(|call| call.contains("mongorestore"))
        .unwrap();
    assert!(
        restore_call.contains("--nsInclude=test.*") && !restore_call.contains("--drop"),
        "{restore_call}"
    );
    restore_call
        .split_whitespace()
        .find_map(|word| word.strip_prefix("--nsTo="))
        .unwrap()
        .trim_end_matches(".*")
        .to_owned()
}

#[test]
fn restore_test_passes_when_counts_match_and_drops_the_throwaway_database() {
    let fake = FakeDocker::new();
    let backups = tempfile::tempdir().unwrap();
    let (manifest, archive) = stored_backup(&fake, backups.path());
    fake.set("counts.json", "{\"DB.foo\":25}\n");

    restore_test_command(&fake, backups.path(), &manifest.id)
        .run()
        .unwrap();

    let throwaway = throwaway_database(&fake);
    assert!(
        throwaway.starts_with("restoretest_") && throwaway.ends_with("_test"),
        "{throwaway}"
    );
    assert_eq!(fs::read(fake.path("restored.bin")).unwrap(), archive);
    assert!(fake.read("dropped.log").contains(&throwaway));
}

#[test]
fn restore_test_names_the_namespace_whose_count_differs_and_still_drops() {
    let fake = FakeDocker::new();
    let backups = tempfile::tempdir().unwrap();
    let (manifest, _) = stored_backup(&fake, backups.path());
    fake.set("counts.json", "{\"DB.foo\":24}\n");

    let error = restore_test_command(&fake, backups.path(), &manifest.id)
        .run()
        .unwrap_err()
        .to_string();

    assert!(
        error.contains("namespace test.foo has 24 documents after restore, manifest says 25"),
        "{error}"
    );
    assert!(
        fake.read("dropped.log")
            .contains(&throwaway_database(&fake))
    );
}

#[test]
fn restore_test_fails_and_drops_when_mongorestore_fails() {
    let fake = FakeDocker::new();
    let backups = tempfile::tempdir().unwrap();
    let (manifest, _) = stored_backup(&fake, backups.path());
    fake.set("restore_exit", "1");
    let error = restore_test_command(&fake, backups.path(), &manifest.id)
        .run()
        .unwrap_err()
        .to_string();
    assert!(error.contains("restore test"), "{error}");
    assert!(fake.read("dropped.log").contains("restoretest_"));
}
