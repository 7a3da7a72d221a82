//! `backup verify` over backup directories built from the real fixtures.

use std::fs;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use time::macros::datetime;

use super::*;
use crate::backup::digest::DigestReader;
use crate::backup::manifest::ManifestNamespace;
use crate::backup::manifest::tests::sample_manifest;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mongodump")
        .join(name)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn namespace(db: &str, collection: &str, documents: u64) -> ManifestNamespace {
    ManifestNamespace {
        db: db.to_owned(),
        collection: collection.to_owned(),
        documents: Some(documents),
    }
}

/// Stores `archive` as backup `id` with a manifest that matches it, the way `backup create` would.
fn store_backup(dir: &Path, id: &str, archive: &[u8], gzip: bool) -> Manifest {
    let mut manifest = sample_manifest(id, datetime!(2025-05-01 04:00 UTC));
    manifest.archive_file = format!("{id}.archive{}", if gzip { ".gz" } else { "" });
    manifest.gzip = gzip;
    manifest.namespaces = vec![namespace("test", "foo", 25), namespace("", "oplog", 18)];
    fs::write(dir.join(&manifest.archive_file), archive).unwrap();
    let digest = DigestReader::new(archive).finish().unwrap();
    manifest.sha256 = digest.sha256;
    manifest.size_bytes = digest.bytes;
    manifest
        .write_atomically(&dir.join(Manifest::file_name(id)))
        .unwrap();
    manifest
}

fn verify_id(dir: &Path, id: &str) -> Outcome {
    let dir = BackupDir::new(dir.to_path_buf());
    let backup = dir.load(id).unwrap();
    verify_backup(&dir, &backup, None)
}

fn command(dir: &Path, id: Option<&str>, all: bool) -> Verify {
    Verify {
        id: id.map(str::to_owned),
        all,
        file: None,
        json: false,
        identity: None,
        restore_test: false,
        target: TargetArgs::default(),
        config: None,
        dir: BackupDirArg {
            dir: Some(dir.to_path_buf()),
        },
    }
}

fn oplog_archive() -> Vec<u8> {
    fs::read(fixture_path("dump-w-oplog.archive")).unwrap()
}

#[test]
fn matching_backups_verify_plain_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    store_backup(dir.path(), "plain", &oplog_archive(), false);
    store_backup(dir.path(), "gzipped", &gzip(&oplog_archive()), true);
    for id in ["plain", "gzipped"] {
        let outcome = verify_id(dir.path(), id);
        assert!(outcome.ok, "{id}: {:?}", outcome.problems);
        assert!(outcome.checksum.as_ref().unwrap().ok);
        assert_eq!(outcome.archive.as_ref().unwrap().total_documents(), 44);
    }
    command(dir.path(), None, true).run().unwrap();
}

#[test]
fn corruption_after_the_backup_was_made_fails_checksum_and_names_the_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = store_backup(dir.path(), "damaged", &oplog_archive(), false);
    let path = dir.path().join(&manifest.archive_file);
    let mut bytes = fs::read(&path).unwrap();
    let header = bson::rawdoc! { "db": "test", "collection": "foo", "EOF": false, "CRC": 0_i64 };
    let header = header.as_bytes();
    let document = bytes
        .windows(header.len())
        .position(|window| window == header)
        .unwrap()
        + header.len();
    bytes[document + 12] ^= 0x40;
    fs::write(&path, &bytes).unwrap();

    let outcome = verify_id(dir.path(), "damaged");
    assert!(!outcome.ok);
    assert!(
        outcome.problems[0].starts_with("checksum mismatch"),
        "{:?}",
        outcome.problems
    );
    assert!(
        outcome.problems[1].starts_with("CRC mismatch in namespace test.foo"),
        "{:?}",
        outcome.problems
    );

    let error = command(dir.path(), Some("damaged"), false)
        .run()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("verification failed for 1 of 1") && error.contains("damaged"),
        "{error}"
    );
}

#[test]
fn manifest_claims_are_checked_against_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = store_backup(dir.path(), "claims", &oplog_archive(), false);
    manifest.namespaces = vec![
        namespace("test", "foo", 26),
        namespace("game", "players", 1),
    ];
    manifest.gzip = true;
    manifest
        .write_atomically(&dir.path().join(Manifest::file_name("claims")))
        .unwrap();

    let outcome = verify_id(dir.path(), "claims");
    assert!(outcome.checksum.as_ref().unwrap().ok);
    assert_eq!(
        outcome.problems,
        vec![
            "manifest says gzip = true, but the archive is not gzip-compressed".to_owned(),
            "document count mismatch in namespace test.foo: manifest says 26, archive has 25"
                .to_owned(),
            "namespace game.players is in the manifest but not in the archive".to_owned(),
        ]
    );
}

#[test]
fn missing_archive_fails() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = store_backup(dir.path(), "gone", &oplog_archive(), false);
    fs::remove_file(dir.path().join(&manifest.archive_file)).unwrap();
    let outcome = verify_id(dir.path(), "gone");
    assert!(
        !outcome.ok && outcome.problems[0].starts_with("cannot open archive"),
        "{:?}",
        outcome.problems
    );
}

#[test]
fn encrypted_archives_are_checked_by_checksum_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = store_backup(dir.path(), "sealed", b"ciphertext, not an archive", false);
    manifest.encrypted = true;
    manifest
        .write_atomically(&dir.path().join(Manifest::file_name("sealed")))
        .unwrap();
    let outcome = verify_id(dir.path(), "sealed");
    assert!(outcome.ok, "{:?}", outcome.problems);
    assert!(outcome.archive.is_none() && outcome.skipped.is_some());
}

#[test]
fn bare_files_verify_without_a_manifest() {
    for name in ["test.bar.archive", "dump-w-oplog.archive"] {
        let outcome = verify_file(&fixture_path(name));
        assert!(
            outcome.ok && outcome.checksum.is_none(),
            "{name}: {:?}",
            outcome.problems
        );
    }
    let bad = Verify {
        id: None,
        all: false,
        file: Some(fixture_path("bad-format.archive")),
        json: true,
        identity: None,
        restore_test: false,
        target: TargetArgs::default(),
        config: None,
        dir: BackupDirArg::default(),
    };
    let error = bad.run().unwrap_err().to_string();
    assert!(error.contains("namespace test.ixtest"), "{error}");
}

#[test]
fn all_over_an_empty_directory_fails() {
    let dir = tempfile::tempdir().unwrap();
    let error = command(dir.path(), None, true)
        .run()
        .unwrap_err()
        .to_string();
    assert!(error.contains("no backups found"), "{error}");
}

#[test]
fn json_report_serializes() {
    let outcome = verify_file(&fixture_path("test.bar.archive"));
    let json = serde_json::to_value(JsonReport {
        ok: outcome.ok,
        backups: std::slice::from_ref(&outcome),
    })
    .unwrap();
    assert_eq!(json["ok"], true);
    let bar = &json["backups"][0]["archive"]["namespaces"][0];
    assert_eq!(bar["collection"], "bar");
    assert_eq!(bar["archive_crc"], "0x9369f0f35bec50d9");
}

/// `backup verify` as an operator types it.
fn parse_verify(args: &[&str]) -> Verify {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        verify: Verify,
    }
    <Cli as clap::Parser>::try_parse_from(std::iter::once("verify").chain(args.iter().copied()))
        .unwrap()
        .verify
}

/// The monthly drill (`backup verify --all --config /etc/avalon/backup.toml`) must check the directory the
/// config names, like every other backup command, not `backups/` of the checkout.
#[test]
fn verify_reads_the_backup_directory_from_the_config_file_unless_dir_is_given() {
    let configured = tempfile::tempdir().unwrap();
    store_backup(configured.path(), "nightly", &oplog_archive(), false);
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("backup.toml");
    fs::write(
        &config,
        format!(
            "directory = {:?}\n",
            configured.path().display().to_string()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let verify = parse_verify(&["nightly", "--config", config]);
    assert_eq!(verify.backup_dir().unwrap().path(), configured.path());
    verify.run().unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let dir = elsewhere.path().to_str().unwrap();
    let overridden = parse_verify(&["nightly", "--config", config, "--dir", dir]);
    assert_eq!(overridden.backup_dir().unwrap().path(), elsewhere.path());
    assert!(overridden.run().is_err(), "--dir wins over the config file");
}
