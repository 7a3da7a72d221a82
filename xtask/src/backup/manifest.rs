//! The JSON manifest written beside each archive: what the backup is, where its archive is, and
//! the checksum that `backup verify` holds the archive to.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Bumped when a field changes meaning, so older tools can refuse manifests they would misread.
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;

/// Manifests are found by this suffix; `<id>.manifest.json`.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    /// Also the manifest's file name stem; see [`is_safe_file_name`].
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// The Avalon Ops release that made the backup.
    pub release_version: String,
    pub server_version: Option<String>,
    pub tool_version: Option<String>,
    /// The archive's file name, in the same directory as the manifest.
    pub archive_file: String,
    pub namespaces: Vec<ManifestNamespace>,
    /// Lower-case hex SHA-256 of the archive file as stored (after gzip and encryption).
    pub sha256: String,
    /// Size of the archive file as stored.
    pub size_bytes: u64,
    pub duration_seconds: f64,
    pub gzip: bool,
    pub encrypted: bool,
    /// The environment (`--env`) the backup was taken from, when named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Whether the dump includes the oplog (`mongodump --oplog`, replica sets), so a restore can
    /// replay it to one consistent point in time.
    #[serde(default)]
    pub oplog: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestNamespace {
    pub db: String,
    pub collection: String,
    /// `None` when the count was not known when the backup was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<u64>,
}

impl Manifest {
    pub fn file_name(id: &str) -> String {
        format!("{id}{MANIFEST_SUFFIX}")
    }

    /// Reads and validates a manifest.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let manifest: Self = serde_json::from_str(&text)
            .with_context(|| format!("parsing manifest {}", path.display()))?;
        manifest
            .validate()
            .with_context(|| format!("invalid manifest {}", path.display()))?;
        Ok(manifest)
    }

    /// Writes the manifest so that a reader sees either the old file or the complete new one.
    pub fn write_atomically(&self, path: &Path) -> anyhow::Result<()> {
        self.validate()?;
        let mut json = serde_json::to_vec_pretty(self).context("serializing manifest")?;
        json.push(b'\n');
        write_file_atomically(path, &json)
    }

    /// Rejects manifests whose names could steer file operations outside the backup directory
    /// (`prune` deletes `archive_file`), and schema versions this tool does not know.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.schema_version == MANIFEST_SCHEMA_VERSION,
            "unsupported manifest schema version {} (this tool reads version {MANIFEST_SCHEMA_VERSION})",
            self.schema_version
        );
        ensure!(
            is_safe_file_name(&self.id),
            "backup id {:?} is not a plain file name",
            self.id
        );
        ensure!(
            is_safe_file_name(&self.archive_file),
            "archive_file {:?} is not a plain file name in the backup directory",
            self.archive_file
        );
        ensure!(
            self.sha256.len() == 64
                && self
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "sha256 {:?} is not 64 lower-case hex digits",
            self.sha256
        );
        Ok(())
    }
}

/// ASCII letters, digits, `.`, `_` and `-`, not starting with a dot: safe in a path on every
/// platform, and never `..` or a hidden file.
pub fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Temp file in the destination directory (a rename is only atomic within one file system),
/// fsync, rename over the destination, then fsync the directory so the rename survives a crash.
pub fn write_file_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let Some(file_name) = path.file_name() else {
        bail!("{} has no file name", path.display());
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", file_name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    temp.write_all(contents)
        .with_context(|| format!("writing {}", temp.path().display()))?;
    temp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", temp.path().display()))?;
    temp.persist(path)
        .map_err(|error| error.error)
        .with_context(|| format!("renaming into {}", path.display()))?;
    sync_directory(dir)
}

#[cfg(unix)]
fn sync_directory(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Windows cannot open a directory as a file; NTFS journals the rename itself.
#[cfg(not(unix))]
fn sync_directory(_dir: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use time::macros::datetime;

    use super::*;

    pub fn sample_manifest(id: &str, created: OffsetDateTime) -> Manifest {
        Manifest {
            schema_version: MANIFEST_SCHEMA_VERSION,
            id: id.to_owned(),
            created,
            release_version: "0.1.0".to_owned(),
            server_version: Some("7.0.14".to_owned()),
            tool_version: Some("100.10.0".to_owned()),
            archive_file: format!("{id}.archive.gz"),
            namespaces: vec![
                ManifestNamespace {
                    db: "game".to_owned(),
                    collection: "players".to_owned(),
                    documents: Some(25),
                },
                ManifestNamespace {
                    db: "game".to_owned(),
                    collection: "sessions".to_owned(),
                    documents: None,
                },
            ],
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_owned(),
            size_bytes: 0,
            duration_seconds: 12.5,
            gzip: true,
            encrypted: false,
            environment: None,
            oplog: false,
        }
    }

    #[test]
    fn round_trips_through_an_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = sample_manifest("20250102T030405Z", datetime!(2025-01-02 03:04:05.678 UTC));
        let path = dir.path().join(Manifest::file_name(&manifest.id));
        manifest.write_atomically(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), manifest);

        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["created"], "2025-01-02T03:04:05.678Z");
        assert!(
            json["namespaces"][1].get("documents").is_none(),
            "unknown counts are omitted"
        );
    }

    #[test]
    fn atomic_write_replaces_the_old_file_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.manifest.json");
        fs::write(&path, "old contents").unwrap();
        write_file_atomically(&path, b"new contents").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new contents");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.manifest.json")]);
    }

    #[test]
    fn rejects_names_that_leave_the_backup_directory() {
        let mut manifest = sample_manifest("ok-id", datetime!(2025-01-02 03:04:05 UTC));
        manifest.archive_file = "../../etc/passwd".to_owned();
        assert!(manifest.validate().is_err());
        for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", "a b"] {
            assert!(!is_safe_file_name(bad), "{bad:?} must be rejected");
        }
        assert!(is_safe_file_name("2025-01-02T03-04-05Z.archive.gz"));
    }

    #[test]
    fn rejects_unknown_schema_versions() {
        let mut manifest = sample_manifest("ok-id", datetime!(2025-01-02 03:04:05 UTC));
        manifest.schema_version = 2;
        let error = manifest.validate().unwrap_err().to_string();
        assert!(error.contains("schema version 2"), "{error}");
    }
}
