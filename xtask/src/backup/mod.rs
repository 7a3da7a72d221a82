//! `cargo xtask backup …`: MongoDB backups made with `mongodump --archive --gzip`.
//!
//! `create`, `restore` and `verify --restore-test` run the MongoDB tools inside the mongodb container
//! through the Docker CLI (or on this host with `--local-tools`); `verify`, `list`, `prune`, `status`
//! and `fetch` work on the backup directory and the off-site destinations without a server.

pub mod archive;
mod create;
mod destinations;
pub mod digest;
mod encryption;
#[cfg(test)]
pub mod fake_docker;
mod fetch;
mod list;
mod lock;
mod manifest;
pub mod pipeline;
mod prune;
mod restore;
mod restore_test;
mod retention;
mod status;
mod store;
pub mod synthetic;
mod target;
mod target_args;
mod verify;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use store::BackupDir;

#[derive(Subcommand)]
pub enum Backup {
    /// Dump MongoDB into the backup directory (streamed, hashed and checked on the way), write its
    /// manifest, and copy both to the off-site destinations.
    Create(Box<create::Create>),
    /// Verify a backup, switch maintenance on, restore it with mongorestore, switch maintenance off.
    Restore(Box<restore::Restore>),
    /// Exit non-zero when the newest good backup is older than --max-age (for monitoring).
    Status(status::Status),
    /// Copy a backup from an off-site destination into the backup directory and verify it.
    Fetch(fetch::Fetch),
    /// Check backups offline: the archive's SHA-256 and size against its manifest, then a full parse
    /// of the archive (header, collection metadata, per-namespace CRC-64). Exits non-zero on any failure.
    Verify(Box<verify::Verify>),
    /// List the backups in the backup directory, oldest first, from their manifests.
    List(list::List),
    /// Delete the backups no keep rule retains (restic `forget` semantics) with their manifests.
    Prune(prune::Prune),
}

impl Backup {
    /// External programs are run through `container_exec`, which streams their output (xshell's
    /// `cmd!` buffers it) and prints each command before it runs, as `cmd!` does.
    pub fn run(self, _sh: &xshell::Shell) -> anyhow::Result<()> {
        match self {
            Self::Create(cmd) => (*cmd).run(),
            Self::Restore(cmd) => (*cmd).run(),
            Self::Status(cmd) => cmd.run(),
            Self::Fetch(cmd) => cmd.run(),
            Self::Verify(cmd) => (*cmd).run(),
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
    /// `--dir`, else the config file's `directory`, else `backups/` under the project root.
    fn open_with(&self, config: &destinations::BackupConfig) -> BackupDir {
        BackupDir::new(
            self.dir
                .clone()
                .or_else(|| config.directory.clone())
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

    /// Every `avalon-xtask backup …` command in the shipped systemd units and cron file parses, so a
    /// renamed flag cannot silently break the schedule.
    #[test]
    fn scheduled_commands_parse() {
        let dir = crate::project::root().join("scripts/backup");
        let mut found = 0;
        for file in [
            "avalon-backup.service",
            "avalon-backup-status.service",
            "avalon-backup.cron",
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            for piece in text.split("avalon-xtask backup ").skip(1) {
                let args: Vec<&str> = piece
                    .lines()
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .take_while(|word| !matches!(*word, "&&" | ")" | ">>"))
                    .collect();
                if let Err(error) = parse(&args) {
                    panic!(
                        "{file}: `backup {}` does not parse: {error}",
                        args.join(" ")
                    );
                }
                found += 1;
            }
        }
        assert_eq!(found, 8);
    }

    #[test]
    fn example_config_is_valid() {
        let path = crate::project::root().join("scripts/backup/backup.example.toml");
        let config = destinations::BackupConfig::load(Some(&path)).unwrap();
        assert_eq!(
            config.directory.as_deref(),
            Some(std::path::Path::new("/var/backups/avalon"))
        );
        assert!(config.destinations.contains_key("offsite"));
    }

    /// The documented monthly drill passes `--config` (or sets AVALON_BACKUP_CONFIG): no subcommand may
    /// ignore it.
    #[test]
    fn every_subcommand_reads_the_backup_config_from_the_flag_or_the_variable() {
        let command = Cli::command();
        let mut checked = Vec::new();
        for sub in command.get_subcommands() {
            let config = sub
                .get_arguments()
                .find(|arg| arg.get_id() == "config")
                .unwrap_or_else(|| panic!("backup {} has no --config", sub.get_name()));
            assert_eq!(
                config.get_env().and_then(|env| env.to_str()),
                Some("AVALON_BACKUP_CONFIG"),
                "backup {}",
                sub.get_name()
            );
            checked.push(sub.get_name().to_owned());
        }
        assert_eq!(checked.len(), 7, "{checked:?}");
    }

    /// `--env` is the stack's (`--env`, else AVALON_ENV, else dev) and the default project follows it, so
    /// a backup finds the MongoDB of the stack `cargo xtask up --env <env>` started.
    #[test]
    fn the_stack_and_its_project_follow_the_shared_env_rule() {
        let Ok(Backup::Create(create)) = parse(&["create"]) else {
            panic!("backup create does not parse");
        };
        if std::env::var_os(crate::stack::ENV_VAR).is_none()
            && std::env::var_os("AVALON_STACK_PROJECT").is_none()
        {
            assert_eq!(create.target().project(), "avalon-dev");
        }
        let Ok(Backup::Create(create)) = parse(&["create", "--env", "production"]) else {
            panic!("backup create --env production does not parse");
        };
        assert_eq!(create.target().environment, crate::stack::StackEnv::Prod);
        if std::env::var_os("AVALON_STACK_PROJECT").is_none() {
            assert_eq!(create.target().project(), "avalon-prod");
        }
        let Ok(Backup::Restore(restore)) =
            parse(&["restore", "id", "--env", "offline", "--project", "x"])
        else {
            panic!("backup restore does not parse");
        };
        assert_eq!(restore.target().project(), "x");
    }

    /// The secret files of a host (/etc/avalon/secrets, created by `host init`): one spelling, with
    /// underscores, everywhere — compose's secret names, the docs, the backup units' environment.
    const HOST_SECRET_FILES: [&str; 6] = [
        "jwt_secret",
        "redis_password",
        "mongodb_root_password",
        "mongodb_app_password",
        "mongodb_uri",
        "wechat_secret",
    ];
    /// What the backup tools read through `secret_from_env` (`NAME` or `NAME_FILE`): the connection
    /// string (backup/target.rs) and the Redis password of the maintenance switch (maintenance/flag.rs).
    const BACKUP_SECRETS: [&str; 2] = ["MONGODB_URI", "REDIS_PASSWORD"];

    #[test]
    fn the_backup_units_environment_names_the_host_secret_files_the_tools_read() {
        let path = crate::project::root().join("scripts/backup/backup.env.example");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut named = Vec::new();
        for line in text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
        {
            let Some((variable, value)) = line.split_once('=') else {
                continue;
            };
            let Some(secret) = variable.trim().strip_suffix("_FILE") else {
                continue;
            };
            assert!(
                BACKUP_SECRETS.contains(&secret),
                "{variable}: no backup tool reads {secret}"
            );
            let file = std::path::Path::new(value.trim());
            assert_eq!(
                file.parent(),
                Some(std::path::Path::new("/etc/avalon/secrets")),
                "{line}"
            );
            let name = file.file_name().unwrap().to_str().unwrap();
            assert!(
                HOST_SECRET_FILES.contains(&name),
                "{line}: not a host secret file"
            );
            assert_eq!(
                name,
                secret.to_lowercase(),
                "{line}: the file is the variable's name"
            );
            named.push(secret);
        }
        // MongoDB is reached as the container's root user (see the file's comment), so only Redis's
        // password is named.
        assert_eq!(named, ["REDIS_PASSWORD"], "the backup units' secrets");
    }

    /// Every `AVALON_SECRETS_DIR/<name>` of the compose files is a host secret file.
    #[test]
    fn the_compose_secret_files_are_host_secret_files() {
        let mut seen = 0;
        for overlay in [
            "compose.yml",
            "compose.dev.yml",
            "compose.prod.yml",
            "compose.offline.yml",
        ] {
            let text = std::fs::read_to_string(crate::project::root().join("docker").join(overlay))
                .unwrap();
            for line in text.lines().filter(|line| {
                line.trim_start().starts_with("file:") && line.contains("AVALON_SECRETS_DIR")
            }) {
                let Some(name) = line.trim().rsplit_once('/').map(|(_, name)| name.trim()) else {
                    continue;
                };
                assert!(
                    HOST_SECRET_FILES.contains(&name),
                    "docker/{overlay}: {line}"
                );
                seen += 1;
            }
        }
        assert!(seen >= 5, "{seen} secret files found in the compose files");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(4506), "4.4 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
