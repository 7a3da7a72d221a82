//! `backup status`: is there a good backup recent enough? For monitoring: exit 0 when the newest
//! good backup is younger than `--max-age`, non-zero otherwise, with the reason on one line.
//!
//! "Good" means it has a manifest — `backup create` writes one only after the archive parsed and
//! every namespace's CRC matched — and, with `--verify`, that it still passes `backup verify`
//! (checksum and full parse) now; a newest backup that fails is skipped for the next one, and the
//! failure is reported.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::destinations::BackupConfig;
use super::store::{BackupDir, StoredBackup};
use super::verify::verify_backup;
use super::{BackupDirArg, human_bytes};

#[derive(Args, Debug)]
pub struct Status {
    /// The oldest the newest good backup may be (e.g. 26h, 90m, 2d).
    #[arg(long, value_name = "DURATION", default_value = "26h", value_parser = parse_duration)]
    max_age: Duration,
    /// Re-verify backups (checksum and full archive parse) instead of trusting their manifests.
    #[arg(long)]
    verify: bool,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
    /// Backup config file [default: config/backup.toml when present].
    #[arg(long, value_name = "FILE", env = "AVALON_BACKUP_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    dir: BackupDirArg,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("{error} (examples: 26h, 90m, 2d)"))
        .and_then(|duration| {
            if duration.is_zero() {
                Err("must be longer than zero".to_owned())
            } else {
                Ok(duration)
            }
        })
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub ok: bool,
    pub directory: PathBuf,
    pub max_age_seconds: u64,
    pub backups: usize,
    pub latest_good: Option<LatestGood>,
    /// Newer backups that failed `--verify`.
    pub failed_verification: Vec<String>,
    pub unreadable_manifests: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct LatestGood {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub age_seconds: u64,
    pub size_bytes: u64,
}

impl Status {
    pub fn run(self) -> anyhow::Result<()> {
        let config = BackupConfig::load(self.config.as_deref())?;
        let dir = self.dir.open_with(&config);
        let report = evaluate(&dir, self.max_age, self.verify, OffsetDateTime::now_utc())?;
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).context("serializing the status")?
            );
        } else {
            print_status(&report);
        }
        if !report.ok {
            bail!("{}", report.reason);
        }
        Ok(())
    }
}

pub fn evaluate(
    dir: &BackupDir,
    max_age: Duration,
    verify: bool,
    now: OffsetDateTime,
) -> anyhow::Result<StatusReport> {
    let scan = dir.load_all()?;
    let mut failed_verification = Vec::new();
    let mut latest: Option<&StoredBackup> = None;
    for backup in scan.backups.iter().rev() {
        if verify {
            let outcome = verify_backup(dir, backup, None);
            if !outcome.ok {
                failed_verification.push(format!(
                    "{}: {}",
                    backup.manifest.id,
                    outcome.problems.join("; ")
                ));
                continue;
            }
        }
        latest = Some(backup);
        break;
    }
    let latest_good = latest.map(|backup| LatestGood {
        id: backup.manifest.id.clone(),
        created: backup.manifest.created,
        age_seconds: u64::try_from((now - backup.manifest.created).whole_seconds()).unwrap_or(0),
        size_bytes: backup.manifest.size_bytes,
    });
    let (ok, reason) = match &latest_good {
        None if scan.backups.is_empty() => {
            (false, format!("no backups in {}", dir.path().display()))
        }
        None => (
            false,
            format!(
                "none of the {} backups in {} passes verification",
                scan.backups.len(),
                dir.path().display()
            ),
        ),
        Some(latest) if latest.age_seconds > max_age.as_secs() => (
            false,
            format!(
                "the newest good backup {} is {} old, older than the allowed {}",
                latest.id,
                humantime::format_duration(Duration::from_secs(latest.age_seconds)),
                humantime::format_duration(max_age)
            ),
        ),
        Some(latest) => (
            true,
            format!(
                "the newest good backup {} is {} old (allowed: {})",
                latest.id,
                humantime::format_duration(Duration::from_secs(latest.age_seconds)),
                humantime::format_duration(max_age)
            ),
        ),
    };
    Ok(StatusReport {
        ok,
        directory: dir.path().to_path_buf(),
        max_age_seconds: max_age.as_secs(),
        backups: scan.backups.len(),
        latest_good,
        failed_verification,
        unreadable_manifests: scan
            .broken
            .iter()
            .map(|(path, error)| format!("{}: {error:#}", path.display()))
            .collect(),
        reason,
    })
}

fn print_status(report: &StatusReport) {
    println!(
        "{}: {}",
        if report.ok { "OK" } else { "CRITICAL" },
        report.reason
    );
    if let Some(latest) = &report.latest_good {
        println!(
            "  {}  created {}  {}",
            latest.id,
            latest
                .created
                .format(&Rfc3339)
                .unwrap_or_else(|_| latest.created.to_string()),
            human_bytes(latest.size_bytes)
        );
    }
    println!(
        "  {} backup(s) in {}",
        report.backups,
        report.directory.display()
    );
    for failure in &report.failed_verification {
        println!("  FAILED verification: {failure}");
    }
    for broken in &report.unreadable_manifests {
        println!("  unreadable manifest: {broken}");
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use time::macros::datetime;

    use super::*;
    use crate::backup::digest::DigestReader;
    use crate::backup::manifest::Manifest;
    use crate::backup::manifest::tests::sample_manifest;

    const NOW: OffsetDateTime = datetime!(2025-06-10 12:00 UTC);

    fn store(dir: &std::path::Path, id: &str, created: OffsetDateTime, archive: &[u8]) {
        let mut manifest = sample_manifest(id, created);
        manifest.namespaces.clear();
        manifest.gzip = false;
        manifest.archive_file = format!("{id}.archive");
        fs::write(dir.join(&manifest.archive_file), archive).unwrap();
        let digest = DigestReader::new(archive).finish().unwrap();
        manifest.sha256 = digest.sha256;
        manifest.size_bytes = digest.bytes;
        manifest
            .write_atomically(&dir.join(Manifest::file_name(id)))
            .unwrap();
    }

    fn fixture() -> Vec<u8> {
        fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/mongodump/test.bar.archive"),
        )
        .unwrap()
    }

    fn hours(n: u64) -> Duration {
        Duration::from_secs(n * 3600)
    }

    #[test]
    fn fresh_enough_is_ok_and_too_old_is_critical() {
        let temp = tempfile::tempdir().unwrap();
        let dir = BackupDir::new(temp.path().to_path_buf());
        store(
            temp.path(),
            "old",
            datetime!(2025-06-08 02:00 UTC),
            &fixture(),
        );
        store(
            temp.path(),
            "new",
            datetime!(2025-06-10 02:00 UTC),
            &fixture(),
        );

        let report = evaluate(&dir, hours(26), false, NOW).unwrap();
        assert!(report.ok, "{}", report.reason);
        assert_eq!(report.latest_good.as_ref().unwrap().id, "new");
        assert_eq!(report.latest_good.as_ref().unwrap().age_seconds, 10 * 3600);

        let report = evaluate(&dir, hours(9), false, NOW).unwrap();
        assert!(!report.ok);
        assert!(
            report.reason.contains("10h old, older than the allowed 9h"),
            "{}",
            report.reason
        );
    }

    #[test]
    fn an_empty_directory_is_critical() {
        let temp = tempfile::tempdir().unwrap();
        let dir = BackupDir::new(temp.path().join("missing"));
        let report = evaluate(&dir, hours(26), false, NOW).unwrap();
        assert!(
            !report.ok && report.reason.starts_with("no backups"),
            "{}",
            report.reason
        );
    }

    #[test]
    fn with_verify_a_damaged_newest_backup_does_not_count() {
        let temp = tempfile::tempdir().unwrap();
        let dir = BackupDir::new(temp.path().to_path_buf());
        store(
            temp.path(),
            "older",
            datetime!(2025-06-09 02:00 UTC),
            &fixture(),
        );
        store(
            temp.path(),
            "newest",
            datetime!(2025-06-10 02:00 UTC),
            &fixture(),
        );
        let path = temp.path().join("newest.archive");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 30;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();

        assert_eq!(
            evaluate(&dir, hours(26), false, NOW)
                .unwrap()
                .latest_good
                .unwrap()
                .id,
            "newest"
        );
        let report = evaluate(&dir, hours(48), true, NOW).unwrap();
        assert_eq!(report.latest_good.as_ref().unwrap().id, "older");
        assert_eq!(report.failed_verification.len(), 1);
        assert!(report.failed_verification[0].starts_with("newest: checksum mismatch"));
        assert!(report.ok, "{}", report.reason);
        let report = evaluate(&dir, hours(26), true, NOW).unwrap();
        assert!(!report.ok, "older is 34h old");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("26h").unwrap(), hours(26));
        assert_eq!(parse_duration("2d").unwrap(), hours(48));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
