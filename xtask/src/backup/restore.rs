//! `backup restore ID`: verify the backup offline, switch maintenance on, stream the archive into
//! mongorestore, switch maintenance off — also when the restore fails (a guard does it).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::BackupDirArg;
use super::destinations::BackupConfig;
use super::encryption::Identities;
use super::lock::BackupLock;
use super::restore_test::open_archive;
use super::store::BackupDir;
use super::target::{ResolvedTarget, RestoreOptions};
use super::target_args::TargetArgs;
use super::verify::verify_backup;
use crate::container_exec::ContainerRef;
use crate::maintenance::MaintenanceFlag;

#[derive(Args, Debug)]
pub struct Restore {
    /// The backup to restore (see `backup list`).
    #[arg(value_name = "ID")]
    id: String,
    /// Drop each collection before restoring it (a full rollback to the backup); without it,
    /// documents whose _id exists are kept and reported as duplicates.
    #[arg(long)]
    drop: bool,
    /// Restore namespaces matching this pattern (e.g. `avalon.*`) under --ns-to instead.
    #[arg(long, value_name = "PATTERN", requires = "ns_to")]
    ns_from: Option<String>,
    /// The new name pattern for --ns-from (e.g. `avalon_restored.*`).
    #[arg(long, value_name = "PATTERN", requires = "ns_from")]
    ns_to: Option<String>,
    /// Fetch the backup from this off-site destination first, if it is not in the backup directory.
    #[arg(long = "from", value_name = "NAME")]
    from: Option<String>,
    /// age identity file, for encrypted backups.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Leave maintenance mode alone (e.g. when restoring into a side database with --ns-to).
    #[arg(long)]
    no_maintenance: bool,
    /// The message players see while the restore runs.
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "The game is being restored from a backup. Please come back in a few minutes."
    )]
    maintenance_message: String,
    /// Retry-After seconds announced while in maintenance.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    retry_after: u32,
    /// Redis container name or id (default: the `redis` service of --project).
    #[arg(long, value_name = "NAME")]
    redis_container: Option<String>,
    /// Backup config file (for --from).
    #[arg(long, value_name = "FILE", env = "AVALON_BACKUP_CONFIG")]
    config: Option<PathBuf>,
    /// Verify and print what would run, and change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    dir: BackupDirArg,
}

impl Restore {
    pub fn run(self) -> anyhow::Result<()> {
        let config = BackupConfig::load(self.config.as_deref())?;
        let dir = self.dir.open_with(&config);
        if let Some(source) = &self.from {
            super::fetch::fetch_if_missing(&config, source, &dir, &self.id)?;
        }
        let identities = self
            .identity
            .as_deref()
            .map(Identities::from_file)
            .transpose()?;
        let backup = dir.load(&self.id)?;
        let manifest = &backup.manifest;
        if manifest.encrypted && identities.is_none() {
            bail!(
                "backup {} is encrypted: pass --identity FILE with the age identity it was encrypted to",
                manifest.id
            );
        }
        eprintln!("verifying backup {} before restoring it", manifest.id);
        let outcome = verify_backup(&dir, &backup, identities.as_ref());
        if !outcome.ok {
            bail!(
                "backup {} failed verification, nothing was restored: {}",
                manifest.id,
                outcome.problems.join("; ")
            );
        }
        let options = self.restore_options(manifest);
        let mongo = self.target.mongo()?;
        let flag = if self.no_maintenance {
            None
        } else {
            let container = match &self.redis_container {
                Some(name) => ContainerRef::Named(name.clone()),
                None => self.target.compose_service("redis"),
            };
            Some(MaintenanceFlag::new(self.target.docker(), container)?)
        };

        if self.dry_run {
            let target = mongo.resolve_for_display();
            println!(
                "dry run: backup {} verified ok; nothing will be changed. restore would:",
                manifest.id
            );
            if flag.is_some() {
                println!(
                    "  switch maintenance on (Redis key avalon:maintenance, retry after {} s)",
                    self.retry_after
                );
            }
            println!("  stream {} into:", dir.archive_path(manifest).display());
            println!("    $ {}", target.restore(&options)?.invocation);
            if flag.is_some() {
                println!("  switch maintenance off (also if the restore fails)");
            }
            return Ok(());
        }

        let _lock = BackupLock::acquire(dir.path(), "backup restore")?;
        let target = mongo.resolve()?;
        let guard = match &flag {
            Some(flag) => Some(flag.enable_for(&self.maintenance_message, self.retry_after)?),
            None => None,
        };
        let restored = run_restore(&target, &dir, manifest, identities.as_ref(), &options);
        // Off again in both cases; a failure to switch it off is reported after the restore's own.
        let released = guard.map(|guard| guard.release());
        restored.with_context(|| format!("restoring backup {}", manifest.id))?;
        if let Some(released) = released {
            released.context("the restore succeeded, but maintenance could not be switched off")?;
        }
        println!("backup {} restored", manifest.id);
        Ok(())
    }

    fn restore_options(&self, manifest: &super::manifest::Manifest) -> RestoreOptions {
        let renames: Vec<(String, String)> = match (&self.ns_from, &self.ns_to) {
            (Some(from), Some(to)) => vec![(from.clone(), to.clone())],
            _ => Vec::new(),
        };
        RestoreOptions {
            gzip: manifest.gzip,
            drop: self.drop,
            include: Vec::new(),
            // Replaying the oplog makes the restore consistent to the dump's end; mongorestore
            // cannot rename namespaces inside the oplog, so not with --ns-from.
            oplog_replay: manifest.oplog && renames.is_empty(),
            renames,
        }
    }
}

fn run_restore(
    target: &ResolvedTarget,
    dir: &BackupDir,
    manifest: &super::manifest::Manifest,
    identities: Option<&Identities>,
    options: &RestoreOptions,
) -> anyhow::Result<()> {
    let archive = open_archive(dir, manifest, identities)?;
    let tool = target.restore(options)?;
    tool.invocation
        .stream(Some(archive), &mut std::io::stderr())
}

#[cfg(test)]
impl Restore {
    pub fn target(&self) -> &TargetArgs {
        &self.target
    }
}

#[cfg(test)]
mod tests;
