//! One backup-changing run at a time per backup directory: a lock file created exclusively, holding
//! the owner's pid and host, removed when the run ends. A lock left by a process that no longer
//! exists on this host (a crash, `kill -9`) is stale and taken over, saying so.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub const LOCK_FILE_NAME: &str = ".backup.lock";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct LockOwner {
    pid: u32,
    host: String,
    command: String,
}

/// Held while a run may change the backup directory; dropping it releases the lock.
#[derive(Debug)]
pub struct BackupLock {
    path: PathBuf,
}

impl BackupLock {
    pub fn acquire(dir: &Path, command: &str) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE_NAME);
        let me = LockOwner {
            pid: std::process::id(),
            host: host_name(),
            command: command.to_owned(),
        };
        // Two attempts: the second after clearing a stale lock.
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let body = serde_json::to_vec(&me).context("serializing the lock owner")?;
                    file.write_all(&body)
                        .and_then(|()| file.sync_all())
                        .with_context(|| format!("writing {}", path.display()))?;
                    return Ok(Self { path });
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    let owner = read_owner(&path);
                    match owner {
                        Some(owner) if is_stale(&owner) => {
                            eprintln!(
                                "warning: removing stale backup lock {} (pid {} on {} no longer runs)",
                                path.display(),
                                owner.pid,
                                owner.host
                            );
                            remove_if_present(&path)?;
                        }
                        Some(owner) => bail!(
                            "another backup run holds {}: `{}` (pid {} on {}); wait for it to finish",
                            path.display(),
                            owner.command,
                            owner.pid,
                            owner.host
                        ),
                        None => bail!(
                            "the backup lock {} exists but cannot be read; if no backup is running, delete it",
                            path.display()
                        ),
                    }
                }
                Err(error) => {
                    return Err(error).with_context(|| format!("creating {}", path.display()));
                }
            }
        }
        bail!(
            "could not take the backup lock {}: another run took it first",
            path.display()
        )
    }
}

impl Drop for BackupLock {
    fn drop(&mut self) {
        if let Err(error) = remove_if_present(&self.path) {
            eprintln!("warning: {error:#}");
        }
    }
}

fn read_owner(path: &Path) -> Option<LockOwner> {
    let text = fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Only a lock from this host can be judged: a pid means nothing elsewhere.
fn is_stale(owner: &LockOwner) -> bool {
    owner.host == host_name() && !process_exists(owner.pid)
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence and permission without sending anything; EPERM means it exists.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(errno) => errno != nix::errno::Errno::ESRCH,
    }
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".to_owned())
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lock = BackupLock::acquire(dir.path(), "backup create").unwrap();
        let error = BackupLock::acquire(dir.path(), "backup prune")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("another backup run") && error.contains("backup create"),
            "{error}"
        );
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE_NAME).exists());
        BackupLock::acquire(dir.path(), "backup prune").unwrap();
    }

    #[test]
    fn a_lock_left_by_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let stale = LockOwner {
            pid: dead_pid,
            host: host_name(),
            command: "backup create".to_owned(),
        };
        fs::write(
            dir.path().join(LOCK_FILE_NAME),
            serde_json::to_vec(&stale).unwrap(),
        )
        .unwrap();
        let _lock = BackupLock::acquire(dir.path(), "backup create").unwrap();
        let owner = read_owner(&dir.path().join(LOCK_FILE_NAME)).unwrap();
        assert_eq!(owner.pid, std::process::id());
    }

    #[test]
    fn a_lock_from_another_host_is_never_judged_stale() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = LockOwner {
            pid: 1,
            host: "some-other-host".to_owned(),
            command: "backup create".to_owned(),
        };
        fs::write(
            dir.path().join(LOCK_FILE_NAME),
            serde_json::to_vec(&foreign).unwrap(),
        )
        .unwrap();
        assert!(BackupLock::acquire(dir.path(), "backup create").is_err());
    }

    #[test]
    fn an_unreadable_lock_is_reported_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_FILE_NAME), b"garbage").unwrap();
        let error = BackupLock::acquire(dir.path(), "x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot be read"), "{error}");
        assert!(dir.path().join(LOCK_FILE_NAME).exists());
    }
}
