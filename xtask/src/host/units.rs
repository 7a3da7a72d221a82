//! The systemd units of scripts/ (heal, nightly backup, hourly freshness check, failure alert), the xtask they
//! run, and the environment file of the backup units (from scripts/backup/backup.env.example).
//!
//! The units are the repository's files, with one path made true for this host: `WorkingDirectory` is the
//! checkout host init runs from (its path is compiled into xtask, so that is where its files are found).

use std::path::Path;

use anyhow::Context;

use super::layout::{BACKUP_ENV_FILE, Owner, Root, UNIT_DIR, XTASK_BIN};
use super::plan::{Entry, Kind, Source};

/// Repository file → unit name.
pub const UNITS: [&str; 8] = [
    "scripts/systemd/avalon-heal.service",
    "scripts/systemd/avalon-edge-follow.service",
    "scripts/systemd/avalon-autoscale.service",
    "scripts/backup/avalon-backup.service",
    "scripts/backup/avalon-backup.timer",
    "scripts/backup/avalon-backup-status.service",
    "scripts/backup/avalon-backup-status.timer",
    "scripts/backup/avalon-backup-failed.service",
];

/// The units that start things; the rest are started by these (services by their timers, the alert by
/// `OnFailure=`). `avalon-autoscale.service` is installed, not enabled: autoscaling is the operator's call
/// (it replaces the follower when started).
pub const ENABLED: [&str; 4] = [
    "avalon-heal.service",
    "avalon-edge-follow.service",
    "avalon-backup.timer",
    "avalon-backup-status.timer",
];

/// Where the units assume the checkout is.
const ASSUMED_CHECKOUT: &str = "/opt/avalon-ops";

pub fn unit_name(repo_path: &str) -> &str {
    repo_path.rsplit('/').next().unwrap_or(repo_path)
}

/// A unit as installed on this host.
pub fn installed_unit(shipped: &str, checkout: &Path) -> String {
    shipped.replace(
        &format!("WorkingDirectory={ASSUMED_CHECKOUT}"),
        &format!("WorkingDirectory={}", checkout.display()),
    )
}

/// The backup units' environment: the repository's `scripts/backup/backup.env.example`, which names this
/// host's secret files and the stack (`AVALON_ENV=prod`). Written once; the operator's afterwards.
pub const BACKUP_ENV_TEMPLATE: &str = "scripts/backup/backup.env.example";

/// The unit files, this xtask as `avalon-xtask`, and the backup units' environment file.
pub fn entries(checkout: &Path, xtask: &[u8]) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for repo_path in UNITS {
        let file = checkout.join(repo_path);
        let shipped = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        entries.push(Entry {
            path: format!("{UNIT_DIR}/{}", unit_name(repo_path)),
            mode: 0o644,
            owner: Owner::ROOT,
            kind: Kind::Managed(installed_unit(&shipped, checkout).into_bytes()),
        });
    }
    entries.push(Entry {
        path: XTASK_BIN.to_owned(),
        mode: 0o755,
        owner: Owner::ROOT,
        kind: Kind::Managed(xtask.to_vec()),
    });
    let template = checkout.join(BACKUP_ENV_TEMPLATE);
    let backup_env = std::fs::read_to_string(&template)
        .with_context(|| format!("reading {}", template.display()))?;
    entries.push(Entry {
        path: BACKUP_ENV_FILE.to_owned(),
        mode: 0o600,
        owner: Owner::ROOT,
        kind: Kind::Once(Source::Text(backup_env)),
    });
    Ok(entries)
}

/// Whether systemd runs this system (`sd_booted`): only then can units be enabled and reloaded.
pub fn systemd_running(root: &Root) -> bool {
    root.is_live_system() && Path::new("/run/systemd/system").is_dir()
}

/// The units of [`ENABLED`] that are not enabled (asks `systemctl is-enabled`, read-only).
pub fn not_enabled(sh: &xshell::Shell, verbose: bool) -> Vec<&'static str> {
    ENABLED
        .iter()
        .copied()
        .filter(|unit| {
            let command = xshell::cmd!(sh, "systemctl is-enabled {unit}");
            let command = super::checks::read_only(command, verbose);
            let state = command
                .ignore_status()
                .ignore_stderr()
                .read()
                .unwrap_or_default();
            state.trim() != "enabled"
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_run_from_this_checkout_and_heal_reads_the_env_file() {
        let checkout = crate::project::root();
        let entries = entries(&checkout, b"binary").unwrap();
        let heal = entries
            .iter()
            .find(|entry| entry.path == "/etc/systemd/system/avalon-heal.service")
            .unwrap();
        let Kind::Managed(content) = &heal.kind else {
            panic!("a unit is shipped content");
        };
        let text = String::from_utf8(content.clone()).unwrap();
        assert!(
            text.contains(&format!("WorkingDirectory={}\n", checkout.display())),
            "{text}"
        );
        assert!(
            text.contains("EnvironmentFile=-/etc/avalon/avalon.env\n"),
            "{text}"
        );
        assert!(!text.contains("WorkingDirectory=/opt/avalon-ops"));
        for unit in ENABLED {
            assert!(
                entries.iter().any(|entry| entry.path.ends_with(unit)),
                "{unit} is installed"
            );
        }
    }

    #[test]
    fn the_backup_environment_names_the_secret_files_host_init_makes() {
        let text =
            std::fs::read_to_string(crate::project::root().join(BACKUP_ENV_TEMPLATE)).unwrap();
        assert!(text.contains("REDIS_PASSWORD_FILE=/etc/avalon/secrets/redis_password\n"));
        // MongoDB is reached as the container's root user; the app's URI (avalon database only) must not
        // be the backup tools' connection.
        assert!(!text.contains("\nMONGODB_URI_FILE=/etc/avalon/secrets/mongodb_uri"));
    }
}
