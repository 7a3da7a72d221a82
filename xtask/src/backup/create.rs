//! `backup create`: `mongodump --archive --gzip [--oplog]` inside the mongodb container (or on this
//! host against MONGODB_URI), its standard output streamed straight into the backup directory —
//! no copy inside the container — while it is hashed, parsed and CRC-checked. Only an archive that
//! parsed cleanly gets a manifest; then copies go to the off-site destinations.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;

use super::archive::ArchiveReport;
use super::destinations::{BackupConfig, Destination};
use super::encryption::Recipients;
use super::lock::BackupLock;
use super::manifest::{MANIFEST_SCHEMA_VERSION, Manifest, ManifestNamespace};
use super::pipeline::ArchiveWriter;
use super::target::{OplogMode, ResolvedTarget, ServerFacts};
use super::target_args::TargetArgs;
use super::{BackupDirArg, human_bytes};

#[derive(Args, Debug)]
pub struct Create {
    #[command(flatten)]
    target: TargetArgs,
    /// Off-site destinations to copy to (names from the backup config; repeatable).
    /// Default: every configured destination.
    #[arg(long = "dest", value_name = "NAME")]
    destinations: Vec<String>,
    /// Keep the backup on this host only, even if destinations are configured.
    #[arg(long, conflicts_with = "destinations")]
    local_only: bool,
    /// Include the oplog for a point-in-time consistent dump (replica sets only).
    #[arg(long, value_enum, default_value_t = OplogMode::Auto)]
    oplog: OplogMode,
    /// Backup config file [default: config/backup.toml when present].
    #[arg(long, value_name = "FILE", env = "AVALON_BACKUP_CONFIG")]
    config: Option<PathBuf>,
    /// Print the commands that would run, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the manifest and the copies made as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: BackupDirArg,
}

#[derive(Debug, Serialize)]
pub struct CreateReport {
    pub manifest: Manifest,
    pub archive_path: PathBuf,
    pub copies: Vec<CopyOutcome>,
}

#[derive(Debug, Serialize)]
pub struct CopyOutcome {
    pub destination: String,
    pub location: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Create {
    pub fn run(self) -> anyhow::Result<()> {
        let config = BackupConfig::load(self.config.as_deref())?;
        let dir = self.dir.open_with(&config);
        // Configuration problems surface before anything runs.
        let recipients = config
            .encryption
            .as_ref()
            .map(|encryption| Recipients::from_file(&encryption.recipients_file))
            .transpose()?;
        let destinations = if self.local_only {
            Vec::new()
        } else {
            config.open_destinations(&self.destinations)?
        };
        let mongo = self.target.mongo()?;

        if self.dry_run {
            return self.print_plan(
                &mongo.resolve_for_display(),
                dir.path(),
                &destinations,
                recipients.is_some(),
            );
        }

        let _lock = BackupLock::acquire(dir.path(), "backup create")?;
        let target = mongo.resolve()?;
        let report = create_backup(
            &target,
            &BackupJob {
                dir: dir.path(),
                oplog: self.oplog,
                recipients: recipients.as_ref(),
                environment: Some(self.target.environment.app_env().to_owned()),
            },
        )?;
        let copies = copy_offsite(&report, &destinations);
        let report = CreateReport { copies, ..report };
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).context("serializing the report")?
            );
        } else {
            print_report(&report);
        }
        let failed: Vec<&CopyOutcome> = report.copies.iter().filter(|copy| !copy.ok).collect();
        if let Some(first) = failed.first() {
            bail!(
                "backup {} is stored locally, but {} of {} off-site copies failed; first: {}: {}",
                report.manifest.id,
                failed.len(),
                report.copies.len(),
                first.destination,
                first.error.as_deref().unwrap_or("unknown error")
            );
        }
        Ok(())
    }

    fn print_plan(
        &self,
        target: &ResolvedTarget,
        dir: &Path,
        destinations: &[Destination],
        encrypted: bool,
    ) -> anyhow::Result<()> {
        println!("dry run: nothing will be changed. backup create would:");
        if self.oplog == OplogMode::Auto {
            println!("  ask the server whether it is a replica set:");
            println!("    $ {}", target.shell(PROBE_PLACEHOLDER));
        }
        let oplog = match self.oplog {
            OplogMode::Auto => "--oplog if it is a replica set",
            OplogMode::On => "with --oplog",
            OplogMode::Off => "without --oplog",
        };
        println!("  take the backup lock in {}", dir.display());
        println!("  stream the dump ({oplog}) into {}:", dir.display());
        println!(
            "    $ {}",
            target.dump(self.oplog == OplogMode::On)?.invocation
        );
        if encrypted {
            println!("  encrypting it with age while it streams");
        }
        println!(
            "  check it (sha256, archive structure, per-namespace CRC) and write its manifest"
        );
        for destination in destinations {
            println!(
                "  copy archive and manifest to {} ({})",
                destination.name,
                destination.describe("<id>.archive.gz")
            );
        }
        Ok(())
    }
}

const PROBE_PLACEHOLDER: &str = "/* hello + buildInfo */";

/// What one run needs besides the target.
pub struct BackupJob<'a> {
    pub dir: &'a Path,
    pub oplog: OplogMode,
    pub recipients: Option<&'a Recipients>,
    pub environment: Option<String>,
}

/// Dumps, checks and stores one backup; the caller holds the lock.
pub fn create_backup(target: &ResolvedTarget, job: &BackupJob<'_>) -> anyhow::Result<CreateReport> {
    let started = Instant::now();
    let created = OffsetDateTime::now_utc();
    let facts = match job.oplog {
        OplogMode::Auto => Some(target.probe().context(
            "asking the server whether it is a replica set (pass --oplog on or --oplog off to skip this)",
        )?),
        _ => None,
    };
    let oplog = match job.oplog {
        OplogMode::On => true,
        OplogMode::Off => false,
        OplogMode::Auto => facts
            .as_ref()
            .is_some_and(|facts: &ServerFacts| facts.replica_set.is_some()),
    };
    let id = unique_id(job.dir, created)?;
    let archive_file = format!(
        "{id}.archive.gz{}",
        if job.recipients.is_some() { ".age" } else { "" }
    );
    let dump = target.dump(oplog)?;
    let mut writer = ArchiveWriter::create(job.dir, &archive_file, job.recipients)?;
    dump.invocation
        .stream(None, &mut writer)
        .context("mongodump failed; no backup was stored")?;
    let written = writer.finish()?;
    let report = match &written.parsed {
        Ok(report) => report.clone(),
        Err(error) => bail!("the dump is not a valid archive ({error}); no backup was stored"),
    };
    if let Some(mismatch) = report.crc_mismatches().next() {
        bail!("the dump failed its own checksum ({mismatch}); no backup was stored");
    }
    if !report.gzip {
        bail!(
            "mongodump was asked for --gzip but wrote an uncompressed archive; no backup was stored"
        );
    }
    let manifest = Manifest {
        schema_version: MANIFEST_SCHEMA_VERSION,
        id: id.clone(),
        created,
        release_version: release_version(),
        server_version: report
            .server_version
            .clone()
            .or_else(|| facts.as_ref().and_then(|facts| facts.version.clone())),
        tool_version: report.tool_version.clone(),
        archive_file: archive_file.clone(),
        namespaces: manifest_namespaces(&report),
        sha256: written.digest.sha256.clone(),
        size_bytes: written.digest.bytes,
        duration_seconds: started.elapsed().as_secs_f64(),
        gzip: true,
        encrypted: job.recipients.is_some(),
        environment: job.environment.clone(),
        oplog,
    };
    let archive_path = job.dir.join(&archive_file);
    written.persist(&archive_path)?;
    manifest.write_atomically(&job.dir.join(Manifest::file_name(&id)))?;
    Ok(CreateReport {
        manifest,
        archive_path,
        copies: Vec::new(),
    })
}

fn manifest_namespaces(report: &ArchiveReport) -> Vec<ManifestNamespace> {
    report
        .namespaces
        .iter()
        .map(|namespace| ManifestNamespace {
            db: namespace.db.clone(),
            collection: namespace.collection.clone(),
            documents: Some(namespace.documents),
        })
        .collect()
}

/// `20250102T030405Z`, with `-2`, `-3`… if a backup of that second already exists.
fn unique_id(dir: &Path, created: OffsetDateTime) -> anyhow::Result<String> {
    let base = created
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .context("formatting the backup id")?;
    let mut id = base.clone();
    let mut suffix = 1;
    while dir.join(Manifest::file_name(&id)).exists() {
        suffix += 1;
        id = format!("{base}-{suffix}");
    }
    Ok(id)
}

/// The release running on the target: AVALON_RELEASE_VERSION, else the newest entry of the release
/// ledger named by AVALON_RELEASE_LEDGER (JSON lines or a JSON array of objects with `version`),
/// else this workspace's version.
pub fn release_version() -> String {
    if let Ok(version) = std::env::var("AVALON_RELEASE_VERSION")
        && !version.trim().is_empty()
    {
        return version.trim().to_owned();
    }
    std::env::var_os("AVALON_RELEASE_LEDGER")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| version_from_ledger(&text))
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
}

fn version_from_ledger(text: &str) -> Option<String> {
    let entries: Vec<serde_json::Value> = match serde_json::from_str(text) {
        Ok(serde_json::Value::Array(entries)) => entries,
        _ => text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect(),
    };
    entries
        .iter()
        .rev()
        .find_map(|entry| entry.get("version")?.as_str().map(str::to_owned))
}

fn copy_offsite(report: &CreateReport, destinations: &[Destination]) -> Vec<CopyOutcome> {
    let manifest_path = report
        .archive_path
        .with_file_name(Manifest::file_name(&report.manifest.id));
    destinations
        .iter()
        .map(|destination| {
            let result = destination.upload_backup(&report.archive_path, &manifest_path);
            CopyOutcome {
                destination: destination.name.clone(),
                location: destination.describe(&report.manifest.archive_file),
                ok: result.is_ok(),
                error: result.err().map(|error| format!("{error:#}")),
            }
        })
        .collect()
}

fn print_report(report: &CreateReport) {
    let manifest = &report.manifest;
    let documents: u64 = manifest
        .namespaces
        .iter()
        .filter_map(|namespace| namespace.documents)
        .sum();
    println!(
        "backup {} stored: {}  {}  sha256 {}",
        manifest.id,
        report.archive_path.display(),
        human_bytes(manifest.size_bytes),
        manifest.sha256
    );
    println!(
        "  {} documents in {} namespaces; server {}, mongodump {}, oplog {}, {}took {:.1} s",
        documents,
        manifest.namespaces.len(),
        manifest.server_version.as_deref().unwrap_or("unknown"),
        manifest.tool_version.as_deref().unwrap_or("unknown"),
        if manifest.oplog { "yes" } else { "no" },
        if manifest.encrypted {
            "encrypted, "
        } else {
            ""
        },
        manifest.duration_seconds
    );
    for copy in &report.copies {
        match &copy.error {
            None => println!("  copied to {} ({})", copy.destination, copy.location),
            Some(error) => println!("  FAILED copy to {}: {error}", copy.destination),
        }
    }
}

#[cfg(test)]
impl Create {
    pub fn target(&self) -> &TargetArgs {
        &self.target
    }
}

#[cfg(test)]
mod tests;
