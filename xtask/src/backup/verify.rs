//! `backup verify`: is a backup restorable as far as can be told without a server? The archive is
//! read once: the SHA-256 is computed on the bytes the parser consumes.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args};
use serde::Serialize;

use super::archive::{ArchiveReport, scan_archive};
use super::destinations::BackupConfig;
use super::digest::{DigestReader, StreamDigest};
use super::encryption::Identities;
use super::manifest::Manifest;
use super::restore_test::{RestoreTestReport, restore_test};
use super::store::{BackupDir, StoredBackup};
use super::target_args::TargetArgs;
use super::{BackupDirArg, human_bytes};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["id", "all", "file"])))]
pub struct Verify {
    /// The backup to verify (its manifest is DIR/ID.manifest.json).
    #[arg(value_name = "ID")]
    id: Option<String>,
    /// Verify every backup in the backup directory.
    #[arg(long)]
    all: bool,
    /// Verify a bare archive file, without a manifest (so without the checksum step).
    #[arg(long, value_name = "PATH", conflicts_with = "dir")]
    file: Option<PathBuf>,
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
    /// age identity file: decrypt encrypted backups and check their contents too (without it
    /// they are checked by checksum only).
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Also restore each backup into a throwaway database on the server, compare document counts
    /// with the manifest, and drop it again.
    #[arg(long, conflicts_with = "file")]
    restore_test: bool,
    #[command(flatten)]
    target: TargetArgs,
    /// Backup config file [default: config/backup.toml when present]: its `directory` is the backup
    /// directory unless --dir names one, as for every other backup command.
    #[arg(long, value_name = "FILE", env = "AVALON_BACKUP_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    dir: BackupDirArg,
}

/// The result of verifying one archive.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// `None` for `--file`.
    id: Option<String>,
    archive_path: PathBuf,
    /// `None` for `--file`, which has no manifest to compare with.
    checksum: Option<ChecksumCheck>,
    /// `None` when the archive could not be parsed, or was not (see `skipped`).
    pub archive: Option<ArchiveReport>,
    /// Why the archive's contents were not parsed, when they were not.
    skipped: Option<String>,
    /// `--restore-test`: counts found after restoring into a throwaway database.
    #[serde(skip_serializing_if = "Option::is_none")]
    restore_test: Option<RestoreTestReport>,
    pub problems: Vec<String>,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
struct ChecksumCheck {
    expected: StreamDigest,
    actual: StreamDigest,
    ok: bool,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    ok: bool,
    backups: &'a [Outcome],
}

impl Verify {
    pub fn run(self) -> anyhow::Result<()> {
        let identities = self
            .identity
            .as_deref()
            .map(Identities::from_file)
            .transpose()?;
        let outcomes = if let Some(path) = &self.file {
            vec![verify_file(path)]
        } else {
            let dir = self.backup_dir()?;
            let backups = match &self.id {
                Some(id) => vec![dir.load(id)?],
                None => load_all_for_verify(&dir)?,
            };
            let target = if self.restore_test {
                Some(self.target.mongo()?.resolve()?)
            } else {
                None
            };
            let mut outcomes = Vec::new();
            for backup in &backups {
                let mut outcome = verify_backup(&dir, backup, identities.as_ref());
                if let Some(target) = &target
                    && outcome.ok
                {
                    match restore_test(target, &dir, &backup.manifest, identities.as_ref()) {
                        Ok(report) => {
                            report
                                .problems
                                .iter()
                                .for_each(|problem| outcome.fail(problem.clone()));
                            outcome.restore_test = Some(report);
                        }
                        Err(error) => outcome.fail(format!("restore test: {error:#}")),
                    }
                }
                outcomes.push(outcome);
            }
            outcomes
        };

        let failed: Vec<&Outcome> = outcomes.iter().filter(|outcome| !outcome.ok).collect();
        if self.json {
            let report = JsonReport {
                ok: failed.is_empty(),
                backups: &outcomes,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&report).context("serializing the verify report")?
            );
        } else {
            for outcome in &outcomes {
                print_outcome(outcome);
            }
        }
        match failed.first() {
            None => {
                if !self.json {
                    println!("verified {} backup(s): all ok", outcomes.len());
                }
                Ok(())
            }
            Some(first) => bail!(
                "verification failed for {} of {} backup(s); first: {}: {}",
                failed.len(),
                outcomes.len(),
                first.label(),
                first
                    .problems
                    .first()
                    .map_or("unknown problem", String::as_str)
            ),
        }
    }
}

impl Verify {
    /// `--dir`, else the config file's `directory`, else `backups/`.
    fn backup_dir(&self) -> anyhow::Result<BackupDir> {
        let config = BackupConfig::load(self.config.as_deref())?;
        Ok(self.dir.open_with(&config))
    }
}

#[cfg(test)]
impl Verify {
    pub fn for_restore_test(id: &str, dir: &Path, target: TargetArgs) -> Self {
        Self {
            id: Some(id.to_owned()),
            all: false,
            file: None,
            json: false,
            identity: None,
            restore_test: true,
            target,
            config: None,
            dir: BackupDirArg {
                dir: Some(dir.to_path_buf()),
            },
        }
    }
}

/// `--all` over an empty directory fails: a green check of nothing would hide a wrong `--dir`.
fn load_all_for_verify(dir: &BackupDir) -> anyhow::Result<Vec<StoredBackup>> {
    let scan = dir.load_all()?;
    if let Some((path, error)) = scan.broken.first() {
        bail!(
            "{} manifest(s) cannot be read; first: {}: {error:#}",
            scan.broken.len(),
            path.display()
        );
    }
    if scan.backups.is_empty() {
        bail!(
            "no backups found in {} (no *.manifest.json files)",
            dir.path().display()
        );
    }
    Ok(scan.backups)
}

/// A manifest-backed backup: checksum and size, then the archive contents, then the manifest's
/// claims about those contents.
pub fn verify_backup(
    dir: &BackupDir,
    backup: &StoredBackup,
    identities: Option<&Identities>,
) -> Outcome {
    let manifest = &backup.manifest;
    let archive_path = dir.archive_path(manifest);
    let mut outcome = Outcome::new(Some(manifest.id.clone()), archive_path.clone());
    let file = match File::open(&archive_path) {
        Ok(file) => file,
        Err(error) => {
            outcome.fail(format!(
                "cannot open archive {}: {error}",
                archive_path.display()
            ));
            return outcome;
        }
    };
    let mut reader = DigestReader::new(file);
    let mut archive_problems = Vec::new();
    let scanned = match (manifest.encrypted, identities) {
        (false, _) => Some(scan_archive(&mut reader).map_err(|error| error.to_string())),
        // A second pass: the first (below) checks the checksum of the stored ciphertext.
        (true, Some(identities)) => Some(
            identities
                .decrypt_file(&archive_path)
                .map_err(|error| format!("{error:#}"))
                .and_then(|plaintext| scan_archive(plaintext).map_err(|error| error.to_string())),
        ),
        (true, None) => {
            outcome.skipped = Some(
                "the archive is encrypted; only its checksum was verified (pass --identity FILE to check its contents)"
                    .to_owned(),
            );
            None
        }
    };
    match scanned {
        Some(Ok(report)) => {
            archive_problems.extend(report.crc_mismatches().map(|mismatch| mismatch.to_string()));
            archive_problems.extend(manifest_disagreements(manifest, &report));
            outcome.archive = Some(report);
        }
        Some(Err(error)) => archive_problems.push(error),
        None => {}
    }
    match reader.finish() {
        Ok(actual) => {
            let expected = StreamDigest {
                sha256: manifest.sha256.clone(),
                bytes: manifest.size_bytes,
            };
            let ok = actual == expected;
            if !ok {
                // First, because a damaged file explains whatever the parser found.
                outcome.fail(format!(
                    "checksum mismatch: manifest says sha256 {} ({} bytes), archive file has {} ({} bytes)",
                    expected.sha256, expected.bytes, actual.sha256, actual.bytes
                ));
            }
            outcome.checksum = Some(ChecksumCheck {
                expected,
                actual,
                ok,
            });
        }
        Err(error) => outcome.fail(format!(
            "reading archive {}: {error}",
            archive_path.display()
        )),
    }
    archive_problems
        .into_iter()
        .for_each(|problem| outcome.fail(problem));
    outcome
}

/// Where the manifest and the archive disagree about what the backup holds.
fn manifest_disagreements(manifest: &Manifest, report: &ArchiveReport) -> Vec<String> {
    let mut problems = Vec::new();
    if manifest.gzip != report.gzip {
        problems.push(format!(
            "manifest says gzip = {}, but the archive is {}gzip-compressed",
            manifest.gzip,
            if report.gzip { "" } else { "not " }
        ));
    }
    for expected in &manifest.namespaces {
        let name = super::archive::namespace_name(&expected.db, &expected.collection);
        let found = report
            .namespaces
            .iter()
            .find(|ns| ns.db == expected.db && ns.collection == expected.collection);
        match (found, expected.documents) {
            (None, _) => problems.push(format!("namespace {name} is in the manifest but not in the archive")),
            (Some(found), Some(documents)) if found.documents != documents => problems.push(format!(
                "document count mismatch in namespace {name}: manifest says {documents}, archive has {}",
                found.documents
            )),
            _ => {}
        }
    }
    problems
}

/// A bare archive: only its contents can be checked.
fn verify_file(path: &Path) -> Outcome {
    let mut outcome = Outcome::new(None, path.to_path_buf());
    match File::open(path) {
        Err(error) => outcome.fail(format!("cannot open archive {}: {error}", path.display())),
        Ok(file) => check_archive_contents(file, &mut outcome),
    }
    outcome
}

/// The whole check of `--file`, on any stream: structure, strict BSON, cross-checks and CRCs.
fn check_archive_contents<R: Read>(input: R, outcome: &mut Outcome) {
    match scan_archive(input) {
        Ok(report) => {
            report
                .crc_mismatches()
                .for_each(|mismatch| outcome.fail(mismatch.to_string()));
            outcome.archive = Some(report);
        }
        Err(error) => outcome.fail(error.to_string()),
    }
}

impl Outcome {
    fn new(id: Option<String>, archive_path: PathBuf) -> Self {
        Self {
            id,
            archive_path,
            checksum: None,
            archive: None,
            skipped: None,
            restore_test: None,
            problems: Vec::new(),
            ok: true,
        }
    }

    pub fn fail(&mut self, problem: String) {
        self.problems.push(problem);
        self.ok = false;
    }

    fn label(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => self.archive_path.display().to_string(),
        }
    }
}

fn print_outcome(outcome: &Outcome) {
    match &outcome.id {
        Some(id) => println!("backup {id}  ({})", outcome.archive_path.display()),
        None => println!("archive {}", outcome.archive_path.display()),
    }
    if let Some(checksum) = &outcome.checksum {
        let verdict = if checksum.ok { "ok" } else { "MISMATCH" };
        println!(
            "  checksum  {verdict}  sha256 {}  {}",
            checksum.actual.sha256,
            human_bytes(checksum.actual.bytes)
        );
    }
    if let Some(report) = &outcome.archive {
        println!(
            "  archive   {} documents in {} namespaces; format {}, server {}, mongodump {}, {} collections in parallel{}",
            report.total_documents(),
            report.namespaces.len(),
            report.format_version,
            report.server_version.as_deref().unwrap_or("unknown"),
            report.tool_version.as_deref().unwrap_or("unknown"),
            report.concurrent_collections,
            if report.gzip { ", gzip" } else { "" }
        );
        let width = report
            .namespaces
            .iter()
            .map(|ns| ns.name().len())
            .max()
            .unwrap_or(0);
        for namespace in &report.namespaces {
            let crc = match (namespace.archive_crc, namespace.crc_ok) {
                (None, _) => "metadata only (view or time-series)",
                (Some(_), true) => "crc ok",
                (Some(_), false) => "CRC MISMATCH",
            };
            let noun = if namespace.documents == 1 {
                "document "
            } else {
                "documents"
            };
            println!(
                "    {:<width$}  {:>9} {noun}  {:>10}  {crc}",
                namespace.name(),
                namespace.documents,
                human_bytes(namespace.bytes)
            );
        }
    }
    if let Some(skipped) = &outcome.skipped {
        println!("  note: {skipped}");
    }
    if let Some(test) = &outcome.restore_test {
        println!(
            "  restore test into {}: {} namespace(s) compared, {}",
            test.databases.join(", "),
            test.compared,
            if test.problems.is_empty() {
                "counts match"
            } else {
                "MISMATCH"
            }
        );
    }
    for problem in &outcome.problems {
        println!("  FAILED: {problem}");
    }
    println!("  {}", if outcome.ok { "OK" } else { "FAILED" });
}

#[cfg(test)]
mod flip_tests;
#[cfg(test)]
mod tests;
