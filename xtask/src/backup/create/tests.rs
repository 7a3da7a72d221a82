//! `backup create` end to end against a recording fake `docker`.

use std::fs;

use sha2::{Digest as _, Sha256};

use super::*;
use crate::backup::encryption::tests::key_pair;
use crate::backup::fake_docker::{FakeDocker, fixture, gzip};
use crate::backup::store::BackupDir;
use crate::backup::synthetic::SyntheticArchive;
use crate::backup::verify::verify_backup;

const URI: &str = "mongodb://backup:Very$ecret@mongodb:27017/avalon?authSource=admin";

fn job(dir: &Path, oplog: OplogMode) -> BackupJob<'_> {
    BackupJob {
        dir,
        oplog,
        recipients: None,
        environment: Some("production".to_owned()),
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn replica_set_dump_becomes_a_verified_backup_and_no_secret_is_on_a_command_line() {
    let fake = FakeDocker::new();
    fake.set("setname", "\"rs0\"");
    let archive = gzip(&fixture("dump-w-oplog.archive"));
    fake.set("dump.bin", &archive);
    let backups = tempfile::tempdir().unwrap();

    let target = fake.mongo_target(Some(URI)).resolve().unwrap();
    let report = create_backup(&target, &job(backups.path(), OplogMode::Auto)).unwrap();

    let manifest = &report.manifest;
    assert!(manifest.oplog && manifest.gzip && !manifest.encrypted);
    assert_eq!(manifest.environment.as_deref(), Some("production"));
    assert_eq!(manifest.release_version, release_version());
    assert_eq!(manifest.size_bytes, archive.len() as u64);
    assert_eq!(manifest.sha256, format!("{:x}", Sha256::digest(&archive)));
    assert_eq!(fs::read(&report.archive_path).unwrap(), archive);
    let counts: Vec<(String, Option<u64>)> = manifest
        .namespaces
        .iter()
        .map(|ns| (format!("{}.{}", ns.db, ns.collection), ns.documents))
        .collect();
    assert!(
        counts.contains(&("test.foo".to_owned(), Some(25))),
        "{counts:?}"
    );
    assert!(
        counts.contains(&(".oplog".to_owned(), Some(18))),
        "{counts:?}"
    );

    let calls = fake.calls();
    assert!(calls[0].starts_with("ps --quiet --filter label=com.docker.compose.project=avalon"));
    assert!(calls[1].contains("exec -i -e AVALON_MONGODB_URI fakeid123 mongosh --nodb"));
    assert!(
        calls[2].starts_with("exec -i -e AVALON_MONGO_TOOLS_CONFIG fakeid123 sh -c")
            && calls[2].ends_with("mongodump --archive --gzip --oplog"),
        "{}",
        calls[2]
    );
    for call in &calls {
        assert!(
            !call.contains("Very$ecret") && !call.contains("--uri"),
            "{call}"
        );
    }
    let env = fake.read("env.log");
    assert!(env.contains(&format!("AVALON_MONGODB_URI={URI}")), "{env}");
    assert!(
        env.contains(&format!("AVALON_MONGO_TOOLS_CONFIG=uri: \"{URI}\"")),
        "{env}"
    );

    let dir = BackupDir::new(backups.path().to_path_buf());
    let stored = dir.load(&manifest.id).unwrap();
    assert_eq!(&stored.manifest, manifest);
    assert!(verify_backup(&dir, &stored, None).ok);
    assert_eq!(
        file_names(backups.path()),
        [
            format!("{}.archive.gz", manifest.id),
            format!("{}.manifest.json", manifest.id)
        ]
    );
}

#[test]
fn a_standalone_server_is_dumped_without_the_oplog() {
    let fake = FakeDocker::new();
    fake.set("dump.bin", gzip(&fixture("test.bar.archive")));
    let backups = tempfile::tempdir().unwrap();
    let target = fake.mongo_target(None).resolve().unwrap();
    let report = create_backup(&target, &job(backups.path(), OplogMode::Auto)).unwrap();
    assert!(!report.manifest.oplog);
    assert_eq!(report.manifest.server_version.as_deref(), Some("3.4.3"));
    let dump = fake.calls().last().unwrap().clone();
    assert!(
        dump.starts_with("exec -i fakeid123 sh -c")
            && dump.ends_with(" mongodump --archive --gzip"),
        "{dump}"
    );
}

#[test]
fn large_synthetic_dump_streams_through_with_the_sha256_of_the_bytes_written() {
    let fake = FakeDocker::new();
    let mut raw = Vec::new();
    let documents = SyntheticArchive::new(12 * 1024 * 1024)
        .write_to(&mut raw)
        .unwrap();
    let archive = gzip(&raw);
    fake.set("dump.bin", &archive);
    let backups = tempfile::tempdir().unwrap();
    let target = fake.mongo_target(None).resolve().unwrap();
    let report = create_backup(&target, &job(backups.path(), OplogMode::Off)).unwrap();
    let written = fs::read(&report.archive_path).unwrap();
    assert_eq!(
        report.manifest.sha256,
        format!("{:x}", Sha256::digest(&written))
    );
    assert_eq!(report.manifest.size_bytes, written.len() as u64);
    assert_eq!(written, archive);
    let total: u64 = report
        .manifest
        .namespaces
        .iter()
        .filter_map(|ns| ns.documents)
        .sum();
    assert_eq!(total, documents);
    assert_eq!(
        fake.calls().len(),
        2,
        "no probe with --oplog off: {:?}",
        fake.calls()
    );
}

#[test]
fn a_dump_that_is_not_a_valid_archive_stores_nothing() {
    let fake = FakeDocker::new();
    let mut damaged = fixture("dump-w-oplog.archive");
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    fake.set("dump.bin", gzip(&damaged));
    let backups = tempfile::tempdir().unwrap();
    let target = fake.mongo_target(None).resolve().unwrap();
    let error = create_backup(&target, &job(backups.path(), OplogMode::Off))
        .unwrap_err()
        .to_string();
    assert!(error.contains("no backup was stored"), "{error}");
    assert!(
        file_names(backups.path()).is_empty(),
        "{:?}",
        file_names(backups.path())
    );
}

#[test]
fn a_failing_mongodump_stores_nothing() {
    let fake = FakeDocker::new();
    fake.set("dump.bin", gzip(&fixture("test.bar.archive")));
    fake.set("dump_exit", "1");
    let backups = tempfile::tempdir().unwrap();
    let target = fake.mongo_target(None).resolve().unwrap();
    let error = format!(
        "{:#}",
        create_backup(&target, &job(backups.path(), OplogMode::Off)).unwrap_err()
    );
    assert!(
        error.contains("mongodump failed") && error.contains("status 1"),
        "{error}"
    );
    assert!(file_names(backups.path()).is_empty());
}

#[test]
fn encrypted_backups_verify_by_checksum_and_with_the_identity_in_full() {
    let fake = FakeDocker::new();
    fake.set("dump.bin", gzip(&fixture("dump-w-oplog.archive")));
    let keys = tempfile::tempdir().unwrap();
    let (identity, recipients) = key_pair(keys.path());
    let recipients = Recipients::from_file(&recipients).unwrap();
    let backups = tempfile::tempdir().unwrap();
    let target = fake.mongo_target(None).resolve().unwrap();
    let report = create_backup(
        &target,
        &BackupJob {
            recipients: Some(&recipients),
            ..job(backups.path(), OplogMode::Off)
        },
    )
    .unwrap();
    assert!(report.manifest.encrypted);
    assert!(report.manifest.archive_file.ends_with(".archive.gz.age"));

    let dir = BackupDir::new(backups.path().to_path_buf());
    let stored = dir.load(&report.manifest.id).unwrap();
    let outcome = verify_backup(&dir, &stored, None);
    assert!(
        outcome.ok && outcome.archive.is_none(),
        "{:?}",
        outcome.problems
    );
    let identities = crate::backup::encryption::Identities::from_file(&identity).unwrap();
    let outcome = verify_backup(&dir, &stored, Some(&identities));
    assert!(outcome.ok, "{:?}", outcome.problems);
    assert_eq!(outcome.archive.unwrap().total_documents(), 44);
}

#[test]
fn ids_do_not_collide_within_one_second() {
    let dir = tempfile::tempdir().unwrap();
    let created = time::macros::datetime!(2025-01-02 03:04:05 UTC);
    assert_eq!(unique_id(dir.path(), created).unwrap(), "20250102T030405Z");
    fs::write(dir.path().join("20250102T030405Z.manifest.json"), "{}").unwrap();
    assert_eq!(
        unique_id(dir.path(), created).unwrap(),
        "20250102T030405Z-2"
    );
}

#[test]
fn release_version_comes_from_the_newest_ledger_entry() {
    assert_eq!(
        version_from_ledger(
            "{\"version\":\"1.2.0\"}\n{\"version\":\"1.3.0\",\"outcome\":\"ok\"}\n"
        ),
        Some("1.3.0".to_owned())
    );
    assert_eq!(
        version_from_ledger("[{\"version\":\"0.9.0\"},{\"version\":\"1.0.0\"}]"),
        Some("1.0.0".to_owned())
    );
    assert_eq!(version_from_ledger("not json"), None);
}

#[test]
fn create_command_copies_to_a_configured_destination_and_dry_run_changes_nothing() {
    let fake = FakeDocker::new();
    fake.set("dump.bin", gzip(&fixture("test.bar.archive")));
    let work = tempfile::tempdir().unwrap();
    let offsite = work.path().join("offsite");
    let config = work.path().join("backup.toml");
    fs::write(
        &config,
        format!(
            "directory = \"{}\"\n[destinations.nas]\nkind = \"directory\"\npath = \"{}\"\n",
            work.path().join("local").display(),
            offsite.display()
        ),
    )
    .unwrap();
    let command = |dry_run: bool| Create {
        target: TargetArgs {
            docker: fake.program(),
            ..TargetArgs::default()
        },
        destinations: Vec::new(),
        local_only: false,
        oplog: OplogMode::Auto,
        config: Some(config.clone()),
        dry_run,
        json: true,
        dir: BackupDirArg::default(),
    };

    command(true).run().unwrap();
    assert!(fake.calls().is_empty(), "dry run ran {:?}", fake.calls());
    assert!(!work.path().join("local").exists());

    command(false).run().unwrap();
    let local = file_names(&work.path().join("local"));
    assert_eq!(local.len(), 2, "{local:?}");
    assert_eq!(file_names(&offsite), local);
}
