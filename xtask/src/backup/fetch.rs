//! `backup fetch ID --from NAME`: bring a backup back from an off-site destination into the backup
//! directory (the first step of recovering on a new host), then verify it like any local backup.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::BackupDirArg;
use super::destinations::{BackupConfig, Destination};
use super::manifest::Manifest;
use super::store::BackupDir;
use super::verify::verify_backup;

#[derive(Args, Debug)]
pub struct Fetch {
    /// The backup to fetch (see `backup list --dest NAME`).
    #[arg(value_name = "ID")]
    id: String,
    /// The destination to fetch from.
    #[arg(long = "from", value_name = "NAME")]
    from: String,
    /// Backup config file [default: config/backup.toml when present].
    #[arg(long, value_name = "FILE", env = "AVALON_BACKUP_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    dir: BackupDirArg,
}

impl Fetch {
    pub fn run(self) -> anyhow::Result<()> {
        let config = BackupConfig::load(self.config.as_deref())?;
        let dir = self.dir.open_with(&config);
        let destination = open_one(&config, &self.from)?;
        fetch(&destination, &dir, &self.id)?;
        let backup = dir.load(&self.id)?;
        let outcome = verify_backup(&dir, &backup, None);
        if !outcome.ok {
            bail!(
                "fetched backup {} fails verification: {}",
                self.id,
                outcome.problems.join("; ")
            );
        }
        println!(
            "backup {} fetched from {} into {} and verified",
            self.id,
            self.from,
            dir.path().display()
        );
        Ok(())
    }
}

pub fn open_one(config: &BackupConfig, name: &str) -> anyhow::Result<Destination> {
    let mut opened = config.open_destinations(&[name.to_owned()])?;
    opened
        .pop()
        .with_context(|| format!("destination {name} is not configured"))
}

/// Manifest first (to learn the archive's name), archive next, manifest into place last, so an
/// interrupted fetch never leaves a manifest without its archive.
pub fn fetch(destination: &Destination, dir: &BackupDir, id: &str) -> anyhow::Result<()> {
    let manifest_name = Manifest::file_name(id);
    let bytes = destination.read_small_file(&manifest_name)?;
    let manifest: Manifest = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "parsing {manifest_name} from destination {}",
            destination.name
        )
    })?;
    manifest.validate()?;
    if manifest.id != id {
        bail!(
            "{manifest_name} in {} belongs to backup {}",
            destination.name,
            manifest.id
        );
    }
    std::fs::create_dir_all(dir.path())
        .with_context(|| format!("creating {}", dir.path().display()))?;
    destination.download(&manifest.archive_file, &dir.archive_path(&manifest))?;
    manifest.write_atomically(&dir.path().join(&manifest_name))
}

/// For `restore --from`: fetch only when the backup is not already here.
pub fn fetch_if_missing(
    config: &BackupConfig,
    source: &str,
    dir: &BackupDir,
    id: &str,
) -> anyhow::Result<()> {
    if dir
        .load(id)
        .is_ok_and(|backup| dir.archive_path(&backup.manifest).exists())
    {
        return Ok(());
    }
    fetch(&open_one(config, source)?, dir, id)
}

/// Every readable manifest in a destination, oldest first; unreadable ones are returned apart.
pub fn remote_manifests(destination: &Destination) -> anyhow::Result<(Vec<Manifest>, Vec<String>)> {
    let mut manifests = Vec::new();
    let mut broken = Vec::new();
    for name in destination.manifest_names()? {
        let parsed = destination
            .read_small_file(&name)
            .and_then(|bytes| Ok(serde_json::from_slice::<Manifest>(&bytes)?))
            .and_then(|manifest| manifest.validate().map(|()| manifest));
        match parsed {
            Ok(manifest) => manifests.push(manifest),
            Err(error) => broken.push(format!("{name}: {error:#}")),
        }
    }
    manifests.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    Ok((manifests, broken))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::backup::destinations::DestinationConfig;
    use crate::backup::digest::DigestReader;
    use crate::backup::fake_docker::fixture;
    use crate::backup::manifest::tests::sample_manifest;
    use crate::backup::prune::Prune;

    /// Three daily backups of the real fixture, copied to a directory destination the way
    /// `backup create` copies them.
    fn offsite_with_three_backups(local: &Path, offsite: &Path) -> Destination {
        let destination = Destination::open(
            "nas",
            &DestinationConfig::Directory {
                path: offsite.to_path_buf(),
            },
        )
        .unwrap();
        let archive = fixture("test.bar.archive");
        let digest = DigestReader::new(&archive[..]).finish().unwrap();
        for day in 0..3 {
            let id = format!("b{day}");
            let mut manifest =
                sample_manifest(&id, datetime!(2025-04-01 03:00 UTC) + Duration::days(day));
            manifest.archive_file = format!("{id}.archive");
            manifest.gzip = false;
            manifest.namespaces.clear();
            manifest.sha256 = digest.sha256.clone();
            manifest.size_bytes = digest.bytes;
            let archive_path = local.join(&manifest.archive_file);
            let manifest_path = local.join(Manifest::file_name(&id));
            fs::write(&archive_path, &archive).unwrap();
            manifest.write_atomically(&manifest_path).unwrap();
            destination
                .upload_backup(&archive_path, &manifest_path)
                .unwrap();
        }
        destination
    }

    #[test]
    fn a_backup_fetched_from_offsite_verifies_on_a_new_host() {
        let old_host = tempfile::tempdir().unwrap();
        let offsite = tempfile::tempdir().unwrap();
        let destination = offsite_with_three_backups(old_host.path(), offsite.path());
        let (manifests, broken) = remote_manifests(&destination).unwrap();
        assert!(broken.is_empty());
        assert_eq!(
            manifests.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["b0", "b1", "b2"]
        );

        let new_host = tempfile::tempdir().unwrap();
        let dir = BackupDir::new(new_host.path().join("backups"));
        fetch(&destination, &dir, "b1").unwrap();
        let backup = dir.load("b1").unwrap();
        assert!(verify_backup(&dir, &backup, None).ok);
        assert!(fetch(&destination, &dir, "missing").is_err());
    }

    #[test]
    fn prune_of_a_destination_applies_retention_there_only() {
        let local = tempfile::tempdir().unwrap();
        let offsite = tempfile::tempdir().unwrap();
        offsite_with_three_backups(local.path(), offsite.path());
        let config_path = local.path().join("backup.toml");
        fs::write(
            &config_path,
            format!(
                "[destinations.nas]\nkind = \"directory\"\npath = \"{}\"\n",
                offsite.path().display()
            ),
        )
        .unwrap();
        Prune::for_destination(&config_path, "nas", 1)
            .run()
            .unwrap();
        let mut remaining: Vec<String> = fs::read_dir(offsite.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        remaining.sort();
        assert_eq!(remaining, ["b2.archive", "b2.manifest.json"]);
        assert_eq!(
            fs::read_dir(local.path()).unwrap().count(),
            7,
            "local untouched"
        );
    }
}
