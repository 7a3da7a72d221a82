//! `backup prune`: delete the archive and manifest of every backup no keep rule retains.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use time::format_description::well_known::Rfc3339;

use super::BackupDirArg;
use super::destinations::BackupConfig;
use super::fetch::{open_one, remote_manifests};
use super::lock::BackupLock;
use super::manifest::Manifest;
use super::retention::{Candidate, Decision, RetentionPlan, RetentionPolicy, plan_retention};
use super::store::{BackupDir, StoredBackup};

#[derive(Args, Debug)]
pub struct Prune {
    /// Keep the N newest backups.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_last: u32,
    /// For the last N days that have backups, keep the newest backup of each day.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_daily: u32,
    /// For the last N ISO weeks that have backups, keep the newest backup of each week.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_weekly: u32,
    /// For the last N months that have backups, keep the newest backup of each month.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_monthly: u32,
    /// Print what would be kept and removed, and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Prune this off-site destination instead of the backup directory (each copy has its own
    /// retention, e.g. more monthly backups off-site).
    #[arg(long = "dest", value_name = "NAME", conflicts_with = "dir")]
    destination: Option<String>,
    /// Backup config file [default: config/backup.toml when present].
    #[arg(long, value_name = "FILE", env = "AVALON_BACKUP_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    dir: BackupDirArg,
}

impl Prune {
    pub fn run(self) -> anyhow::Result<()> {
        // Checked before the directory is read: a missing rule is a usage error, whatever is there.
        let policy = RetentionPolicy::new(
            self.keep_last,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
        )?;
        let config = BackupConfig::load(self.config.as_deref())?;
        if let Some(name) = &self.destination {
            return self.prune_remote(&policy, &config, name);
        }
        let dir = self.dir.open_with(&config);
        // Not while a backup is being written or restored from.
        let _lock = if self.dry_run {
            None
        } else {
            Some(BackupLock::acquire(dir.path(), "backup prune")?)
        };
        let scan = dir.load_all()?;
        // A backup whose manifest cannot be read has no known age; pruning around it could keep the
        // wrong neighbours, so a person should look first.
        if let Some((path, error)) = scan.broken.first() {
            bail!(
                "refusing to prune: {} manifest(s) in {} cannot be read; first: {}: {error:#}",
                scan.broken.len(),
                dir.path().display(),
                path.display()
            );
        }
        if scan.backups.is_empty() {
            println!("no backups in {}; nothing to prune", dir.path().display());
            return Ok(());
        }
        let candidates: Vec<Candidate> = scan
            .backups
            .iter()
            .map(|backup| Candidate {
                id: backup.manifest.id.clone(),
                created: backup.manifest.created,
            })
            .collect();
        let plan = plan_retention(&policy, &candidates);
        print_plan(&plan);
        if self.dry_run {
            println!(
                "dry run: would remove {} of {} backup(s); nothing deleted",
                plan.remove.len(),
                candidates.len()
            );
            return Ok(());
        }
        for decision in &plan.remove {
            let backup = scan
                .backups
                .iter()
                .find(|backup| backup.manifest.id == decision.id)
                .with_context(|| format!("backup {} vanished from the plan", decision.id))?;
            remove_backup(&dir, backup)?;
            println!("removed {}", decision.id);
        }
        println!(
            "kept {}, removed {} backup(s)",
            plan.keep.len(),
            plan.remove.len()
        );
        Ok(())
    }
}

impl Prune {
    #[cfg(test)]
    pub fn for_destination(config: &Path, destination: &str, keep_last: u32) -> Self {
        Self {
            keep_last,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            dry_run: false,
            destination: Some(destination.to_owned()),
            config: Some(config.to_path_buf()),
            dir: BackupDirArg::default(),
        }
    }

    fn prune_remote(
        &self,
        policy: &RetentionPolicy,
        config: &BackupConfig,
        name: &str,
    ) -> anyhow::Result<()> {
        let destination = open_one(config, name)?;
        let (manifests, broken) = remote_manifests(&destination)?;
        if let Some(problem) = broken.first() {
            bail!(
                "refusing to prune destination {name}: {} manifest(s) cannot be read; first: {problem}",
                broken.len()
            );
        }
        if manifests.is_empty() {
            println!("no backups in destination {name}; nothing to prune");
            return Ok(());
        }
        let candidates: Vec<Candidate> = manifests
            .iter()
            .map(|manifest| Candidate {
                id: manifest.id.clone(),
                created: manifest.created,
            })
            .collect();
        let plan = plan_retention(policy, &candidates);
        print_plan(&plan);
        if self.dry_run {
            println!(
                "dry run: would remove {} of {} backup(s) from {name}; nothing deleted",
                plan.remove.len(),
                candidates.len()
            );
            return Ok(());
        }
        for decision in &plan.remove {
            let manifest = manifests
                .iter()
                .find(|manifest| manifest.id == decision.id)
                .with_context(|| format!("backup {} vanished from the plan", decision.id))?;
            // Archive first, as locally: a leftover manifest is found and finished next time.
            destination.delete(&manifest.archive_file)?;
            destination.delete(&Manifest::file_name(&manifest.id))?;
            println!("removed {} from {name}", decision.id);
        }
        println!(
            "kept {}, removed {} backup(s) in {name}",
            plan.keep.len(),
            plan.remove.len()
        );
        Ok(())
    }
}

/// The archive goes first: if interrupted, the manifest left behind still lists the backup, and
/// the next prune finishes the job. The other order could strand an archive no command sees.
fn remove_backup(dir: &BackupDir, backup: &StoredBackup) -> anyhow::Result<()> {
    remove_if_present(&dir.archive_path(&backup.manifest))?;
    remove_if_present(&backup.manifest_path)
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("deleting {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn print_plan(plan: &RetentionPlan) {
    let line = |action: &str, decision: &Decision| {
        let created = decision
            .created
            .format(&Rfc3339)
            .unwrap_or_else(|_| decision.created.to_string());
        let reasons: Vec<String> = decision.reasons.iter().map(ToString::to_string).collect();
        let reasons = if reasons.is_empty() {
            String::new()
        } else {
            format!("  ({})", reasons.join(", "))
        };
        println!("{action:<6}  {}  {created}{reasons}", decision.id);
    };
    plan.keep.iter().for_each(|decision| line("keep", decision));
    plan.remove
        .iter()
        .for_each(|decision| line("remove", decision));
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::backup::manifest::tests::sample_manifest;

    /// Six daily backups (b0 oldest … b5 newest), each an archive file and a manifest.
    fn backup_dir_with_six_days() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let first: OffsetDateTime = datetime!(2025-04-01 03:00 UTC);
        for day in 0..6 {
            let created = first + Duration::days(day);
            let manifest = sample_manifest(&format!("b{day}"), created);
            fs::write(dir.path().join(&manifest.archive_file), b"archive bytes").unwrap();
            manifest
                .write_atomically(&dir.path().join(Manifest::file_name(&manifest.id)))
                .unwrap();
        }
        dir
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn prune(dir: PathBuf, keep_last: u32, dry_run: bool) -> Prune {
        Prune {
            keep_last,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            dry_run,
            destination: None,
            config: None,
            dir: BackupDirArg { dir: Some(dir) },
        }
    }

    #[test]
    fn dry_run_deletes_nothing() {
        let dir = backup_dir_with_six_days();
        let before = file_names(dir.path());
        assert_eq!(before.len(), 12);
        prune(dir.path().to_path_buf(), 1, true).run().unwrap();
        assert_eq!(file_names(dir.path()), before);
    }

    #[test]
    fn removes_archive_and_manifest_of_unkept_backups_only() {
        let dir = backup_dir_with_six_days();
        fs::write(dir.path().join("orphan.archive.gz"), b"no manifest").unwrap();
        prune(dir.path().to_path_buf(), 2, false).run().unwrap();
        assert_eq!(
            file_names(dir.path()),
            vec![
                "b4.archive.gz",
                "b4.manifest.json",
                "b5.archive.gz",
                "b5.manifest.json",
                "orphan.archive.gz"
            ]
        );
    }

    #[test]
    fn finishes_a_prune_interrupted_after_the_archive_was_deleted() {
        let dir = backup_dir_with_six_days();
        fs::remove_file(dir.path().join("b0.archive.gz")).unwrap();
        prune(dir.path().to_path_buf(), 5, false).run().unwrap();
        assert!(!dir.path().join("b0.manifest.json").exists());
        assert_eq!(file_names(dir.path()).len(), 10);
    }

    #[test]
    fn refuses_without_a_keep_rule_naming_the_flags() {
        let dir = backup_dir_with_six_days();
        let error = prune(dir.path().to_path_buf(), 0, false)
            .run()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--keep-last") && error.contains("--keep-monthly"),
            "{error}"
        );
        assert_eq!(file_names(dir.path()).len(), 12);
    }

    #[test]
    fn refuses_when_a_manifest_is_unreadable() {
        let dir = backup_dir_with_six_days();
        fs::write(dir.path().join("broken.manifest.json"), b"{ not json").unwrap();
        let error = prune(dir.path().to_path_buf(), 1, false)
            .run()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("refusing to prune") && error.contains("broken.manifest.json"),
            "{error}"
        );
        assert_eq!(file_names(dir.path()).len(), 13);
    }
}
