//! The backup directory: one `<id>.manifest.json` per backup, each naming its archive file in the
//! same directory. Archives without a manifest are not backups as far as these commands go, so
//! `prune` never touches them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};

use super::manifest::{MANIFEST_SUFFIX, Manifest, is_safe_file_name};

pub struct BackupDir {
    path: PathBuf,
}

/// A manifest and where it was read from.
pub struct StoredBackup {
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

/// Everything found in the directory: readable backups oldest first, and manifests that could not
/// be read (kept apart so one bad file does not hide the others).
#[derive(Default)]
pub struct DirectoryScan {
    pub backups: Vec<StoredBackup>,
    pub broken: Vec<(PathBuf, anyhow::Error)>,
}

impl BackupDir {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn archive_path(&self, manifest: &Manifest) -> PathBuf {
        self.path.join(&manifest.archive_file)
    }

    /// Loads one backup by id.
    pub fn load(&self, id: &str) -> anyhow::Result<StoredBackup> {
        ensure!(
            is_safe_file_name(id),
            "backup id {id:?} is not a plain file name"
        );
        let manifest_path = self.path.join(Manifest::file_name(id));
        let manifest =
            Manifest::read(&manifest_path).with_context(|| format!("loading backup {id}"))?;
        ensure!(
            manifest.id == id,
            "manifest {} belongs to backup {:?}, not {id:?}",
            manifest_path.display(),
            manifest.id
        );
        Ok(StoredBackup {
            manifest_path,
            manifest,
        })
    }

    /// Loads every manifest; a directory that does not exist holds no backups.
    pub fn load_all(&self) -> anyhow::Result<DirectoryScan> {
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(DirectoryScan::default());
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("listing backup directory {}", self.path.display()));
            }
        };
        let mut scan = DirectoryScan::default();
        for entry in entries {
            let entry = entry
                .with_context(|| format!("listing backup directory {}", self.path.display()))?;
            let file_name = entry.file_name();
            let Some(id) = file_name
                .to_str()
                .and_then(|name| name.strip_suffix(MANIFEST_SUFFIX))
            else {
                continue;
            };
            // Ids never start with a dot; a hidden file is someone else's, not a broken backup.
            if id.starts_with('.') {
                continue;
            }
            match self.load(id) {
                Ok(backup) => scan.backups.push(backup),
                Err(error) => scan.broken.push((entry.path(), error)),
            }
        }
        scan.backups.sort_by(|a, b| {
            a.manifest
                .created
                .cmp(&b.manifest.created)
                .then_with(|| a.manifest.id.cmp(&b.manifest.id))
        });
        scan.broken.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(scan)
    }
}
