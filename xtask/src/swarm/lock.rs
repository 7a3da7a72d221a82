//! The deploy lock on a Swarm: the same rules as `deploy::lock` (holder labels, lease, fence, refusal,
//! liveness are that module's), kept in Swarm configs so every operator who reaches a manager sees it.
//!
//! - Test-and-set: config `<project>-deploy-lock` (config names are unique in the cluster; the create is
//!   one Raft write). Its labels are deploy::lock's holder labels; its data the first lease.
//! - Lease: configs are immutable, so a renewal creates `<project>-deploy-lock-lease-<lock id>-<n>` (label
//!   `avalon.lock.lease-of=<lock id>`) and removes the one before; the newest lease counts.
//! - Fence: taken from the ledger's sequence as the Compose lock's is, and raised in the ledger's configs.
//! - Release removes the lock by the id this process created, never by name.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use time::OffsetDateTime;

use super::ledger::{ConfigStore, parse_inspect};
use crate::command::DockerCli;
use crate::command::swarm as argv;
use crate::deploy::ledger::History;
use crate::deploy::ledger_store::LedgerStore;
use crate::deploy::lock::{
    Held, Holder, Holding, Lease, LeaseClock, Observed, boot_id, liveness, lock_name, pid_alive,
    refusal, this_machine,
};

const LOCK_LABEL: &str = "avalon.lock";
const LEASE_OF_LABEL: &str = "avalon.lock.lease-of";

pub struct SwarmLock {
    docker: DockerCli,
    project: String,
    id: String,
    holding: Holding,
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
    /// True from the create until `release`: Drop removes the lock by id while this is set, so an error
    /// between the create and the renewer's start (ledger read, fence raise) does not leak the config.
    armed: bool,
}

fn lease_body(fence: Option<u64>, lease: Duration) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&Lease {
        renewed_at: OffsetDateTime::now_utc(),
        lease_seconds: lease.as_secs(),
        fence,
    })?)
}

/// `(id, name)` of configs carrying `label`.
fn list(docker: &DockerCli, label: String) -> anyhow::Result<Vec<(String, String)>> {
    let text = argv::config_ls(docker, &[label]).capture(None)?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(id, name)| (id.to_owned(), name.trim().to_owned()))
        .collect())
}

/// The lease counter of a lease config's name (`…-<n>`).
fn lease_number(name: &str) -> u64 {
    name.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl SwarmLock {
    /// Takes the lock (refused with its holder's description when held) and a fence from the ledger.
    pub fn acquire(
        project: &str,
        command: &str,
        lease: Duration,
        holding: Holding,
    ) -> anyhow::Result<Self> {
        let docker = DockerCli::default();
        let name = lock_name(project);
        let labels: Vec<(String, String)> = [
            (LOCK_LABEL, project.to_owned()),
            ("avalon.lock.holder", crate::deploy::who()),
            ("avalon.lock.command", command.to_owned()),
            ("avalon.lock.since", crate::deploy::now_rfc3339()),
            ("avalon.lock.pid", std::process::id().to_string()),
            ("avalon.lock.boot", boot_id()),
            ("avalon.lock.lease", lease.as_secs().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let created = argv::config_create(&docker, &name, &labels)
            .output(Some(lease_body(None, lease)?.as_bytes()))?;
        if !created.success() {
            return match Self::observe(project).ok().flatten() {
                Some(held) => Err(refusal(&held)),
                None => bail!(
                    "cannot take the deploy lock {name}: {}",
                    created.stderr.trim()
                ),
            };
        }
        let id = created.stdout_text().trim().to_owned();
        let clock = Arc::new(LeaseClock::new(lease));
        holding.set(Some(Held {
            container: id.clone(),
            fence: None,
            clock: clock.clone(),
        }));
        let mut lock = Self {
            docker,
            project: project.to_owned(),
            id,
            holding,
            stop: Arc::new(AtomicBool::new(false)),
            renewer: None,
            armed: true,
        };
        let store = ConfigStore::new(project);
        let stored = store.read()?;
        let fence = History::parse(&stored.jsonl).next_fence(stored.fence_mark);
        store.raise_fence(fence)?;
        lock.holding.set_fence(fence);
        eprintln!("lock: {command} holds the deploy lock {name} (fence {fence})");
        lock.renewer = Some(lock.start_renewing(clock, lease));
        Ok(lock)
    }

    fn start_renewing(
        &self,
        clock: Arc<LeaseClock>,
        lease: Duration,
    ) -> std::thread::JoinHandle<()> {
        let docker = self.docker.clone();
        let project = self.project.clone();
        let id = self.id.clone();
        let holding = self.holding.clone();
        let stop = self.stop.clone();
        let every = (lease / 3).max(Duration::from_secs(1));
        std::thread::spawn(move || {
            let mut previous: Option<String> = None;
            for n in 1.. {
                let due = Instant::now() + every;
                while Instant::now() < due {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                if clock.check().is_err() {
                    return;
                }
                let attempted = Instant::now();
                let fence = holding.fence().ok().flatten();
                let name = format!(
                    "{}-lease-{}-{n}",
                    lock_name(&project),
                    &id[..id.len().min(12)]
                );
                let labels = [(LEASE_OF_LABEL.to_owned(), id.clone())];
                let body = lease_body(fence, lease).unwrap_or_default();
                match argv::config_create(&docker, &name, &labels)
                    .read_only()
                    .output(Some(body.as_bytes()))
                {
                    Ok(created) if created.success() => {
                        clock.renewed(attempted);
                        if let Some(old) = previous.replace(created.stdout_text().trim().to_owned())
                        {
                            let _ = argv::config_rm(&docker, &[old]).read_only().output(None);
                        }
                    }
                    Ok(created) => eprintln!(
                        "warning: could not renew the deploy lock's lease: {}",
                        created.stderr.trim()
                    ),
                    Err(err) => {
                        eprintln!("warning: could not renew the deploy lock's lease: {err:#}")
                    }
                }
            }
        })
    }

    /// The lock as it stands in the cluster, if there is one.
    pub fn observe(project: &str) -> anyhow::Result<Option<Observed>> {
        let docker = DockerCli::default();
        let name = lock_name(project);
        let Some((id, _)) = list(&docker, format!("{LOCK_LABEL}={project}"))?
            .into_iter()
            .find(|(_, listed)| *listed == name)
        else {
            return Ok(None);
        };
        let inspected: Vec<serde_json::Value> = serde_json::from_str(
            &argv::config_inspect(&docker, std::slice::from_ref(&id)).capture(None)?,
        )
        .context("unexpected `docker config inspect` output")?;
        let labels = inspected
            .first()
            .map(|config| config["Spec"]["Labels"].clone())
            .unwrap_or_default();
        let holder: Holder = serde_json::from_value(labels).context("unexpected lock labels")?;
        let first_lease = parse_inspect(&serde_json::to_string(&inspected)?)?
            .into_iter()
            .next()
            .and_then(|config| serde_json::from_str::<Lease>(&config.data).ok());
        let newest = list(&docker, format!("{LEASE_OF_LABEL}={id}"))?
            .into_iter()
            .max_by_key(|(_, name)| lease_number(name));
        let lease = match newest {
            Some((lease_id, _)) => {
                parse_inspect(&argv::config_inspect(&docker, &[lease_id]).capture(None)?)?
                    .into_iter()
                    .next()
                    .and_then(|config| serde_json::from_str::<Lease>(&config.data).ok())
                    .or(first_lease)
            }
            None => first_lease,
        };
        let liveness = liveness(
            &holder,
            lease.as_ref(),
            OffsetDateTime::now_utc(),
            &this_machine(),
            pid_alive,
        );
        Ok(Some(Observed {
            id,
            holder,
            lease,
            liveness,
        }))
    }

    /// Removes a lock (and its leases) by the id it was observed or created with.
    pub fn remove_by_id(docker: &DockerCli, id: &str) -> anyhow::Result<()> {
        let mut ids: Vec<String> = list(docker, format!("{LEASE_OF_LABEL}={id}"))?
            .into_iter()
            .map(|(lease, _)| lease)
            .collect();
        ids.push(id.to_owned());
        let removed = argv::config_rm(docker, &ids).output(None)?;
        if !removed.success() && !removed.stderr.contains("not found") {
            bail!(
                "cannot remove the deploy lock {id}: {}",
                removed.stderr.trim()
            );
        }
        Ok(())
    }

    pub fn release(mut self) -> anyhow::Result<()> {
        self.stop_renewing();
        self.armed = false;
        Self::remove_by_id(&self.docker, &self.id)
    }

    fn stop_renewing(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.renewer.take() {
            let _ = thread.join();
        }
        self.holding.set(None);
    }
}

impl Drop for SwarmLock {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            self.stop_renewing();
            if let Err(err) = Self::remove_by_id(&self.docker, &self.id) {
                eprintln!("ERROR: {err:#}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_lease_is_the_highest_number() {
        assert_eq!(lease_number("p-deploy-lock-lease-abc-12"), 12);
        assert_eq!(lease_number("junk"), 0);
    }
}
