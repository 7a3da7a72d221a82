//! Where everything lives on a prepared host, who owns it and with which mode.
//!
//! Paths are written as they are on the host (`/etc/avalon/…`). `--root DIR` is a staging tree for the host's
//! root file system, as `DESTDIR` is for `make install`: files land under DIR, but what they say inside (the
//! secrets directory named by the env file, the env file named by the units) is the host path.

use std::path::{Path, PathBuf};

use super::plan::{Entry, Kind};

pub const CONFIG_DIR: &str = "/etc/avalon";
pub const ENV_FILE: &str = "/etc/avalon/avalon.env";
pub const BACKUP_ENV_FILE: &str = "/etc/avalon/backup.env";
pub const SECRETS_DIR: &str = "/etc/avalon/secrets";
pub const CERTS_DIR: &str = "/etc/avalon/certs";
pub const CERT_FILE: &str = "/etc/avalon/certs/fullchain.pem";
pub const KEY_FILE: &str = "/etc/avalon/certs/privkey.pem";
pub const DATA_DIR: &str = "/var/lib/avalon";
pub const LEDGER_DIR: &str = "/var/lib/avalon/releases";
pub const BACKUP_DIR: &str = "/var/backups/avalon";
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/60-avalon.conf";
pub const LIMITS_FILE: &str = "/etc/security/limits.d/60-avalon.conf";
pub const DOCKER_DROP_IN: &str = "/etc/systemd/system/docker.service.d/60-avalon-limits.conf";
pub const CONTAINERD_DROP_IN: &str =
    "/etc/systemd/system/containerd.service.d/60-avalon-limits.conf";
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// The xtask the units run (they cannot rely on cargo or a checkout's target directory).
pub const XTASK_BIN: &str = "/usr/local/bin/avalon-xtask";

/// Numeric owner of a path. The container users need not exist on the host: compose bind-mounts secret
/// files as they are, so what matters is the uid the process inside the container runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
    /// Secrets and the private key: root's, readable by group 10001 — the services' own group
    /// (`USER 10001:10001` of docker/Dockerfile), which every other container that reads one joins
    /// (`group_add` in docker/compose.prod.yml: redis and mongodb as 999, nginx as 101).
    pub const SECRET: Owner = Owner { uid: 0, gid: 10001 };
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// Whether this run sets owners. Only root can give a file to another uid; an unprivileged rehearsal under
/// `--root` keeps its own uid on everything and says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Apply,
    Skip { reason: String },
}

impl Ownership {
    pub fn for_effective_uid(euid: u32) -> Ownership {
        if euid == 0 {
            Ownership::Apply
        } else {
            Ownership::Skip {
                reason: format!(
                    "not running as root (uid {euid}): owners are left as they are, so the containers (group \
                     10001) could not read the secrets or the private key"
                ),
            }
        }
    }

    /// The owner to enforce, or none when owners are not managed in this run.
    pub fn wanted(&self, owner: Owner) -> Option<Owner> {
        match self {
            Ownership::Apply => Some(owner),
            Ownership::Skip { .. } => None,
        }
    }
}

/// The prepared host's root: `/`, or the staging tree of `--root`.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    pub fn new(dir: &Path) -> Root {
        Root {
            dir: dir.to_path_buf(),
        }
    }

    /// Whether this is the running system (only then are sysctls applied and units enabled).
    pub fn is_live_system(&self) -> bool {
        self.dir == Path::new("/")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a host path is in this tree.
    pub fn join(&self, host_path: &str) -> PathBuf {
        self.dir.join(host_path.trim_start_matches('/'))
    }
}

/// Every path a prepared host holds, in the order they are made (directories before their files, a
/// password before the URI that carries it). `env_file` is the env file's content as it should be.
pub fn entries(
    env: super::HostEnv,
    domain: &str,
    env_file: String,
    wechat_secret: Option<&str>,
    xtask: &[u8],
) -> anyhow::Result<Vec<Entry>> {
    let dir = |path: &str, mode: u32| Entry {
        path: path.to_owned(),
        mode,
        owner: Owner::ROOT,
        kind: Kind::Dir,
    };
    let mut entries = vec![
        dir(CONFIG_DIR, 0o755),
        Entry {
            path: ENV_FILE.to_owned(),
            mode: 0o640,
            owner: Owner::ROOT,
            kind: Kind::Managed(env_file.into_bytes()),
        },
    ];
    entries.extend(super::secrets::entries(wechat_secret));
    entries.extend(super::certs::entries(env, domain));
    entries.extend([
        dir(DATA_DIR, 0o755),
        dir(LEDGER_DIR, 0o750),
        dir(BACKUP_DIR, 0o750),
    ]);
    entries.extend(super::system::entries());
    entries.extend(super::units::entries(&crate::project::root(), xtask)?);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_land_under_the_staging_tree() {
        let root = Root::new(Path::new("/tmp/tree"));
        assert_eq!(
            root.join(SECRETS_DIR),
            PathBuf::from("/tmp/tree/etc/avalon/secrets")
        );
        assert!(!root.is_live_system());
        assert!(Root::new(Path::new("/")).is_live_system());
        assert_eq!(
            Root::new(Path::new("/")).join(ENV_FILE),
            PathBuf::from("/etc/avalon/avalon.env")
        );
    }

    #[test]
    fn owners_are_set_only_by_root() {
        assert_eq!(
            Ownership::for_effective_uid(0).wanted(Owner::SECRET),
            Some(Owner::SECRET)
        );
        let unprivileged = Ownership::for_effective_uid(1000);
        assert_eq!(unprivileged.wanted(Owner::SECRET), None);
        assert!(matches!(unprivileged, Ownership::Skip { reason } if reason.contains("uid 1000")));
    }
}
