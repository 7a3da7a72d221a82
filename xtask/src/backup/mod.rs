//! `cargo xtask backup …`: MongoDB backups made with `mongodump --archive --gzip`.
//!
//! The subcommands here work on the backup directory alone, without a MongoDB server, and run no
//! external command.

mod archive;
mod digest;
mod list;
mod manifest;
mod prune;
mod retention;
mod store;
mod verify;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use store::BackupDir;

#[derive(Subcommand)]
pub enum Backup {
    /// Check backups offline: the archive's SHA-256 and size against its manifest, then a full parse
    /// of the archive (header, collection metadata, per-namespace CRC-64). Exits non-zero on any failure.
    Verify(verify::Verify),
    /// List the backups in the backup directory, oldest first, from their manifests.
    List(list::List),
    /// Delete the backups no keep rule retains (restic `forget` semantics) with their manifests.
    Prune(prune::Prune),
}

impl Backup {
    /// The shell is part of the xtask command contract; none of these subcommands runs a program.
    pub fn run(self, _sh: &xshell::Shell) -> anyhow::Result<()> {
        match self {
            Self::Verify(cmd) => cmd.run(),
            Self::List(cmd) => cmd.run(),
            Self::Prune(cmd) => cmd.run(),
        }
    }
}

/// `--dir`, shared by the subcommands that work on the backup directory.
#[derive(Args, Debug, Clone, Default)]
struct BackupDirArg {
    /// Backup directory [default: backups/ under the project root].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl BackupDirArg {
    fn open(&self) -> BackupDir {
        BackupDir::new(
            self.dir
                .clone()
                .unwrap_or_else(|| crate::project::root().join("backups")),
        )
    }
}

/// Sizes for people: 1023 B, 4.4 KiB, 1.2 GiB.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        backup: Backup,
    }

    fn parse(args: &[&str]) -> Result<Backup, clap::Error> {
        Cli::try_parse_from(std::iter::once("backup").chain(args.iter().copied()))
            .map(|cli| cli.backup)
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn verify_needs_exactly_one_target() {
        assert!(parse(&["verify"]).is_err());
        assert!(parse(&["verify", "some-id", "--all"]).is_err());
        assert!(parse(&["verify", "--all", "--file", "x.archive"]).is_err());
        assert!(parse(&["verify", "--file", "x.archive", "--dir", "backups"]).is_err());
        assert!(matches!(
            parse(&["verify", "some-id"]),
            Ok(Backup::Verify(_))
        ));
        assert!(matches!(
            parse(&["verify", "--all", "--json", "--dir", "/tmp/b"]),
            Ok(Backup::Verify(_))
        ));
        assert!(matches!(
            parse(&["verify", "--file", "x.archive", "--json"]),
            Ok(Backup::Verify(_))
        ));
    }

    #[test]
    fn list_and_prune_parse() {
        assert!(matches!(
            parse(&["list", "--json", "--dir", "b"]),
            Ok(Backup::List(_))
        ));
        assert!(matches!(
            parse(&[
                "prune",
                "--keep-last",
                "3",
                "--keep-daily",
                "7",
                "--keep-weekly",
                "4",
                "--keep-monthly",
                "12",
                "--dry-run"
            ]),
            Ok(Backup::Prune(_))
        ));
        assert!(parse(&["prune", "--keep-last", "-1"]).is_err());
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(4506), "4.4 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
