//! One deploy at a time per stack, enforced on the target, and a holder that lost the lock can change
//! nothing.
//!
//! - **Test-and-set**: the lock is a created (never started) container named `<project>-deploy-lock`.
//!   Container names are unique per Docker engine, so `docker container create` is atomic and works the
//!   same through `DOCKER_HOST` or a context, for every operator and CI job that reaches the engine. Its
//!   labels say who holds it (user@host, pid, command, since). It may mount the ledger volume: while it is
//!   held, ledger reads and writes go through it with `docker cp`.
//! - **Lease**: labels are immutable, so the renewable part lives in a small file in the lock container
//!   ([`LEASE_FILE`]), rewritten with `docker cp` every third of the lease by a background thread. A lock
//!   whose lease was not renewed in time, or whose holder's process is gone (same host), is stale:
//!   `status` says so and `cargo xtask unlock` may break it. The holder itself counts its lease by its own
//!   monotonic clock: once it went a whole lease without renewing (stopped, cut off), it never renews
//!   again and changes nothing more, even if nobody broke the lock.
//! - **Fence**: at acquisition the holder takes a fencing number from the ledger's sequence (above every
//!   fence issued before, which the ledger keeps). Every ledger append and every edge swap carries it; the
//!   ledger refuses an append under an older fence than the newest it knows, and the edge refuses a model
//!   older than the one it runs. So a holder whose lock was broken cannot overwrite its successor's work.
//! - **Release** removes the container by the id this process created, never by name: a lock broken and
//!   taken by someone else is theirs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::container_exec::DockerCli;

/// The lease file inside the lock container.
pub const LEASE_FILE: &str = "avalon-lease.json";

pub fn lock_name(project: &str) -> String {
    format!("{project}-deploy-lock")
}

/// The lock this process holds, shared with whatever writes to the target (the ledger store, the edge):
/// empty when nothing is held.
#[derive(Clone, Debug, Default)]
pub struct Holding(Arc<Mutex<Option<Held>>>);

#[derive(Clone, Debug)]
pub struct Held {
    /// The lock container's id (never its name: a broken and re-taken lock has the same name).
    pub container: String,
    /// Taken from the ledger right after the container was created.
    pub fence: Option<u64>,
    pub clock: Arc<LeaseClock>,
}

impl Holding {
    fn get(&self) -> Option<Held> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set(&self, held: Option<Held>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = held;
    }

    #[cfg(test)]
    pub fn set_for_tests(&self, held: Held) {
        self.set(Some(held));
    }

    /// The lock container's id while held (ledger access goes through it).
    pub fn container(&self) -> Option<String> {
        self.get().map(|held| held.container)
    }

    pub fn set_fence(&self, fence: u64) {
        if let Some(held) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            held.fence = Some(fence);
        }
    }

    /// The fence to write under: `None` when this process holds no lock (a command that takes none);
    /// an error when it held one and lost the lease — nothing may be written any more.
    pub fn fence(&self) -> Result<Option<u64>, String> {
        match self.get() {
            None => Ok(None),
            Some(held) => {
                held.clock.check()?;
                Ok(held.fence)
            }
        }
    }

    /// Why the lease is lost, if this process held a lock and lost it.
    pub fn lost(&self) -> Option<String> {
        self.get().and_then(|held| held.clock.check().err())
    }
}

/// The holder's own view of its lease, by the monotonic clock: renewed when, and lost for good once.
#[derive(Debug)]
pub struct LeaseClock {
    lease: Duration,
    renewed: Mutex<Instant>,
    lost: AtomicBool,
    why: Mutex<String>,
}

impl LeaseClock {
    pub fn new(lease: Duration) -> Self {
        Self {
            lease,
            renewed: Mutex::new(Instant::now()),
            lost: AtomicBool::new(false),
            why: Mutex::new(String::new()),
        }
    }

    /// A renewal that started at `attempted` reached the target.
    pub(crate) fn renewed(&self, attempted: Instant) {
        if !self.lost.load(Ordering::SeqCst) {
            *self.renewed.lock().unwrap_or_else(PoisonError::into_inner) = attempted;
        }
    }

    pub fn lose(&self, why: String) {
        if !self.lost.swap(true, Ordering::SeqCst) {
            *self.why.lock().unwrap_or_else(PoisonError::into_inner) = why;
        }
    }

    /// Ok while the lease holds. A whole lease without a renewal loses it for good: by then another
    /// command may have broken the lock.
    pub fn check(&self) -> Result<(), String> {
        let since = self
            .renewed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed();
        if since > self.lease {
            self.lose(format!(
                "the lease was not renewed for {:.0}s (lease {}s): this process was stopped or cut off \
                 from the engine, and the lock may have been broken since",
                since.as_secs_f64(),
                self.lease.as_secs()
            ));
        }
        if self.lost.load(Ordering::SeqCst) {
            return Err(format!(
                "lost the deploy lock: {}",
                self.why.lock().unwrap_or_else(PoisonError::into_inner)
            ));
        }
        Ok(())
    }
}

/// What a lock is taken with.
pub struct LockRequest<'a> {
    /// Any image on the target (never run).
    pub image: &'a str,
    pub command: &'a str,
    /// `user@host`.
    pub who: &'a str,
    pub lease: Duration,
    /// `--volume` specs for the lock container.
    pub volumes: &'a [String],
    pub holding: Holding,
}

/// Who holds the lock: the container's labels.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Holder {
    #[serde(rename(deserialize = "avalon.lock.holder"), default)]
    pub holder: String,
    #[serde(rename(deserialize = "avalon.lock.command"), default)]
    pub command: String,
    #[serde(rename(deserialize = "avalon.lock.since"), default)]
    pub since: String,
    #[serde(rename(deserialize = "avalon.lock.pid"), default)]
    pub pid: String,
    /// The holder's kernel boot id: a pid means something only on that very machine and boot (two hosts
    /// may share a name; CI containers often do).
    #[serde(rename(deserialize = "avalon.lock.boot"), default)]
    pub boot: String,
    /// Seconds.
    #[serde(rename(deserialize = "avalon.lock.lease"), default)]
    pub lease: String,
}

/// The renewable part, in [`LEASE_FILE`].
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Lease {
    #[serde(with = "time::serde::rfc3339")]
    pub renewed_at: OffsetDateTime,
    pub lease_seconds: u64,
    #[serde(default)]
    pub fence: Option<u64>,
}

/// A lock as `status` and `unlock` see it.
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    /// The container id (what `unlock` removes).
    pub id: String,
    #[serde(flatten)]
    pub holder: Holder,
    pub lease: Option<Lease>,
    pub liveness: Liveness,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Liveness {
    /// The lease is fresh: a command is running.
    Running { lease_age_seconds: u64 },
    /// Nobody renews it any more.
    Stale { why: String },
}

impl Observed {
    /// `alice@ops-1 (deploy, pid 4242) since 2026-12-04T23:10:00Z`
    pub fn describe(&self) -> String {
        format!(
            "{} by {} (pid {}) since {}",
            self.holder.command, self.holder.holder, self.holder.pid, self.holder.since
        )
    }

    pub fn fence(&self) -> Option<u64> {
        self.lease.as_ref().and_then(|l| l.fence)
    }
}

/// Running or stale, from the labels, the lease file (if it was written), the time now, this host's name
/// and whether a pid runs here. Pure: the rules in one place, tested without Docker.
pub fn liveness(
    holder: &Holder,
    lease: Option<&Lease>,
    now: OffsetDateTime,
    this_host: &str,
    pid_alive: impl Fn(u32) -> bool,
) -> Liveness {
    let lease_seconds = lease
        .map(|l| l.lease_seconds)
        .or_else(|| holder.lease.parse().ok())
        .unwrap_or(15);
    // No lease file yet (killed between creating the container and writing it): the lock's age counts.
    let renewed_at = lease.map(|l| l.renewed_at).or_else(|| {
        OffsetDateTime::parse(
            &holder.since,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
    });
    let Some(renewed_at) = renewed_at else {
        return Liveness::Stale {
            why: "it carries no lease and no start time (not a lock this version wrote)".to_owned(),
        };
    };
    let age = (now - renewed_at).whole_seconds().max(0) as u64;
    if age > lease_seconds {
        return Liveness::Stale {
            why: format!("its lease expired: last renewed {age}s ago, lease {lease_seconds}s"),
        };
    }
    let host = holder.holder.rsplit('@').next().unwrap_or_default();
    // `this_host` is `host#boot-id` (see [`this_machine`]); a lock without a boot label (an older xtask)
    // never matches, so only its lease can make it stale.
    let machine = format!("{host}#{}", holder.boot);
    if let Ok(pid) = holder.pid.parse::<u32>()
        && !holder.boot.is_empty()
        && machine == this_host
        && !pid_alive(pid)
    {
        return Liveness::Stale {
            why: format!("its process {pid} on {host} is gone"),
        };
    }
    Liveness::Running {
        lease_age_seconds: age,
    }
}

/// Whether a process runs on this host (signal 0).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        // EPERM: it exists, under another user.
        Err(errno) => errno == nix::errno::Errno::EPERM,
    }
}

/// This machine as a lock's labels name it: `hostname#boot-id`.
pub fn this_machine() -> String {
    format!("{}#{}", this_host(), boot_id())
}

/// The kernel's id of this boot (`/proc/sys/kernel/random/boot_id`); empty where there is none.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned())
}

/// Whether an edge model written under `ours` may replace the live one written under `live`: never an
/// older fence over a newer one. No fence on either side (a command that takes no lock, an edge that
/// predates fencing) is allowed.
pub fn edge_fence_allows(ours: Option<u64>, live: Option<u64>) -> Result<(), String> {
    match (ours, live) {
        (Some(ours), Some(live)) if ours < live => Err(format!(
            "the edge was last changed under fence {live}, newer than this command's {ours}: the deploy \
             lock was broken and taken by another command; this one changes nothing more"
        )),
        _ => Ok(()),
    }
}

pub struct DeployLock {
    docker: DockerCli,
    name: String,
    id: String,
    holding: Holding,
    renewer: Option<Renewer>,
}

struct Renewer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl DeployLock {
    /// Takes the lock or fails naming its holder, whether it is running or stale, and what to do.
    pub fn acquire(
        docker: &DockerCli,
        project: &str,
        request: LockRequest<'_>,
    ) -> anyhow::Result<Self> {
        let name = lock_name(project);
        let since = crate::deploy::now_rfc3339();
        let pid = std::process::id().to_string();
        let lease_seconds = request.lease.as_secs().to_string();
        let labels = [
            ("avalon.lock.holder", request.who.to_owned()),
            ("avalon.lock.command", request.command.to_owned()),
            ("avalon.lock.since", since),
            ("avalon.lock.pid", pid),
            ("avalon.lock.boot", boot_id()),
            ("avalon.lock.lease", lease_seconds),
        ];
        let created = docker
            .create_lock(&name, &labels, request.volumes, request.image)
            .capture(None);
        let id = match created {
            Ok(output) => output.trim().to_owned(),
            Err(err) => {
                return match Self::observe(docker, project).ok().flatten() {
                    Some(held) => Err(refusal(&held)),
                    None => Err(err.context(format!("cannot take the deploy lock {name}"))),
                };
            }
        };
        let clock = Arc::new(LeaseClock::new(request.lease));
        request.holding.set(Some(Held {
            container: id.clone(),
            fence: None,
            clock: clock.clone(),
        }));
        let mut lock = Self {
            docker: docker.clone(),
            name,
            id,
            holding: request.holding,
            renewer: None,
        };
        // The first lease file is written once the fence is known (`write_lease`); until then the lock's
        // `since` label stands for it (see `liveness`), which saves a round trip on a rollback's clock.
        lock.renewer = Some(lock.start_renewing(clock, request.lease));
        Ok(lock)
    }

    /// Writes the lease file now (after the fence is known, so `status` shows it at once).
    pub fn write_lease(&self) -> anyhow::Result<()> {
        let fence = self.holding.get().and_then(|held| held.fence);
        write_lease_file(&self.docker, &self.id, fence, self.lease())
    }

    fn lease(&self) -> Duration {
        self.holding
            .get()
            .map_or(Duration::from_secs(15), |held| held.clock.lease)
    }

    fn start_renewing(&self, clock: Arc<LeaseClock>, lease: Duration) -> Renewer {
        let stop = Arc::new(AtomicBool::new(false));
        let docker = self.docker.clone();
        let id = self.id.clone();
        let holding = self.holding.clone();
        let stopped = stop.clone();
        let every = (lease / 3).max(Duration::from_secs(1));
        let thread = std::thread::spawn(move || {
            loop {
                let due = Instant::now() + every;
                while Instant::now() < due {
                    if stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                // Expired by our own clock first: a process resumed after a stop must not renew a lease
                // another command may have broken in the meantime.
                if clock.check().is_err() {
                    return;
                }
                if test_knob_stops_renewal() {
                    continue;
                }
                let attempted = Instant::now();
                let fence = holding.get().and_then(|held| held.fence);
                match write_lease_file(&docker, &id, fence, lease) {
                    Ok(()) => clock.renewed(attempted),
                    Err(err) if err.to_string().contains(NO_SUCH_CONTAINER) => {
                        clock.lose(
                            "the lock container was removed (broken with `cargo xtask unlock`?)"
                                .to_owned(),
                        );
                        return;
                    }
                    // Engine hiccup: tried again on the next round; the lease runs out by itself if it
                    // never comes back.
                    Err(err) => {
                        eprintln!("warning: could not renew the deploy lock's lease: {err:#}")
                    }
                }
            }
        });
        Renewer { stop, thread }
    }

    /// The lock as it stands on the target, if there is one.
    pub fn observe(docker: &DockerCli, project: &str) -> anyhow::Result<Option<Observed>> {
        let name = lock_name(project);
        let output = docker
            .container_named(&name, "{{.ID}} {{json .Labels}}")
            .capture(None)?;
        let Some((id, labels)) = output.lines().next().and_then(|l| l.split_once(' ')) else {
            return Ok(None);
        };
        let holder = parse_labels(labels)?;
        let lease = read_lease_file(docker, id).ok();
        let liveness = liveness(
            &holder,
            lease.as_ref(),
            OffsetDateTime::now_utc(),
            &this_machine(),
            pid_alive,
        );
        Ok(Some(Observed {
            id: id.to_owned(),
            holder,
            lease,
            liveness,
        }))
    }

    /// Removes a lock by the id it was observed with (`unlock` of a stale lock).
    pub fn break_stale(docker: &DockerCli, observed: &Observed) -> anyhow::Result<()> {
        docker
            .remove_container(&observed.id)
            .capture(None)
            .map(|_| ())
            .with_context(|| format!("cannot remove the lock container {}", observed.id))
    }

    pub fn release(mut self) -> anyhow::Result<()> {
        self.remove()
    }

    fn remove(&mut self) -> anyhow::Result<()> {
        if let Some(renewer) = self.renewer.take() {
            renewer.stop.store(true, Ordering::SeqCst);
            let _ = renewer.thread.join();
        }
        self.holding.set(None);
        // By id: if this lock was broken and the name taken again, the new lock is not ours to remove.
        let removed = self
            .docker
            .remove_container(&self.id)
            .output(None)
            .with_context(|| format!("cannot release the deploy lock {}", self.name))?;
        // A container that no longer exists was broken by `unlock`: nothing left to release.
        if removed.success() || removed.stderr.contains(NO_SUCH_CONTAINER) {
            return Ok(());
        }
        bail!(
            "cannot release the deploy lock {} ({}): {}",
            self.name,
            self.id,
            removed.stderr.trim()
        )
    }
}

/// What the Docker CLI says about a container id that does not exist.
const NO_SUCH_CONTAINER: &str = "No such container";

impl Drop for DeployLock {
    fn drop(&mut self) {
        if (self.renewer.is_some() || self.holding.get().is_some())
            && let Err(err) = self.remove()
        {
            eprintln!("ERROR: {err:#}; once its holder is gone, `cargo xtask unlock` breaks it");
        }
    }
}

/// The error of a command refused by a held lock: who, how fresh, and what to do.
pub fn refusal(held: &Observed) -> anyhow::Error {
    match &held.liveness {
        Liveness::Running { lease_age_seconds } => anyhow::anyhow!(
            "the deploy lock is held by a running {} (lease renewed {lease_age_seconds}s ago); wait for it to \
             finish (`cargo xtask status` shows it)",
            held.describe()
        ),
        Liveness::Stale { why } => anyhow::anyhow!(
            "the deploy lock is held by a stale {}: {why}. Break it with `cargo xtask unlock` (see the \
             \"Stale lock\" runbook in docs/operations.md), then check `cargo xtask status`",
            held.describe()
        ),
    }
}

/// Test-only knob: `AVALON_LOCK_STOP_RENEWING=1` makes the holder stop renewing (a holder cut off from
/// the engine), so a test can watch its lease run out without waiting on a real outage.
fn test_knob_stops_renewal() -> bool {
    std::env::var("AVALON_LOCK_STOP_RENEWING").is_ok_and(|v| v == "1")
}

fn write_lease_file(
    docker: &DockerCli,
    id: &str,
    fence: Option<u64>,
    lease: Duration,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&Lease {
        renewed_at: OffsetDateTime::now_utc(),
        lease_seconds: lease.as_secs(),
        fence,
    })?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o644);
    header.set_size(body.len() as u64);
    header.set_mtime(OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
    builder.append_data(&mut header, LEASE_FILE, body.as_slice())?;
    let tar = builder
        .into_inner()
        .context("cannot build the lease archive")?;
    let written = docker.renew_lease(id).output(Some(&tar))?;
    if !written.success() {
        // The CLI's own words, so the renewer can tell a removed lock from an engine hiccup.
        bail!("{}", written.stderr.trim());
    }
    Ok(())
}

fn read_lease_file(docker: &DockerCli, id: &str) -> anyhow::Result<Lease> {
    let mut tar = Vec::new();
    docker
        .copy_out(id, &format!("/{LEASE_FILE}"))
        .stream(None, &mut tar)?;
    let mut archive = tar::Archive::new(tar.as_slice());
    let file = archive
        .entries()
        .context("the lease archive is not a tar stream")?
        .next()
        .context("the lease archive is empty")?
        .context("damaged lease archive")?;
    serde_json::from_reader(file).context("unreadable lease file")
}

/// `docker ps --format '{{json .Labels}}'` prints `"a=b,c=d"`.
fn parse_labels(text: &str) -> anyhow::Result<Holder> {
    let text: String =
        serde_json::from_str(text.trim()).context("unexpected docker label output")?;
    let mut map = serde_json::Map::new();
    for pair in text.split(',') {
        if let Some((key, value)) = pair.split_once('=') {
            map.insert(key.to_owned(), serde_json::Value::String(value.to_owned()));
        }
    }
    serde_json::from_value(serde_json::Value::Object(map)).context("unexpected lock labels")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn holder(host: &str, pid: &str, since: &str) -> Holder {
        Holder {
            holder: format!("ops@{host}"),
            command: "deploy".to_owned(),
            since: since.to_owned(),
            pid: pid.to_owned(),
            boot: "b".to_owned(),
            lease: "15".to_owned(),
        }
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    fn lease(renewed: i64) -> Lease {
        Lease {
            renewed_at: at(renewed),
            lease_seconds: 15,
            fence: Some(12),
        }
    }

    #[test]
    fn holder_labels_are_read_back() {
        let holder = parse_labels(
            r#""avalon.lock.boot=b,avalon.lock.command=deploy,avalon.lock.holder=ops@host,avalon.lock.pid=42,avalon.lock.lease=15,avalon.lock.since=2026-11-26T01:00:00Z""#,
        )
        .unwrap();
        assert_eq!(holder, {
            let mut h = super::tests::holder("host", "42", "2026-11-26T01:00:00Z");
            h.holder = "ops@host".to_owned();
            h
        });
        assert_eq!(lock_name("avalon-prod"), "avalon-prod-deploy-lock");
    }

    #[test]
    fn a_fresh_lease_on_a_live_process_is_running() {
        let state = liveness(
            &holder("ops-1", "42", ""),
            Some(&lease(0)),
            at(10),
            "ops-1#b",
            |_| true,
        );
        assert_eq!(
            state,
            Liveness::Running {
                lease_age_seconds: 10
            }
        );
        // Another host's pid cannot be checked here: the lease alone decides.
        let elsewhere = liveness(
            &holder("ci-runner", "42", ""),
            Some(&lease(0)),
            at(10),
            "ops-1#b",
            |_| false,
        );
        assert!(matches!(elsewhere, Liveness::Running { .. }));
    }

    #[test]
    fn an_expired_lease_or_a_gone_process_is_stale() {
        let expired = liveness(
            &holder("ci-runner", "42", ""),
            Some(&lease(0)),
            at(16),
            "ops-1#b",
            |_| true,
        );
        assert!(
            matches!(&expired, Liveness::Stale { why } if why.contains("last renewed 16s ago, lease 15s")),
            "{expired:?}"
        );
        let killed = liveness(
            &holder("ops-1", "42", ""),
            Some(&lease(0)),
            at(1),
            "ops-1#b",
            |pid| pid != 42,
        );
        assert!(
            matches!(&killed, Liveness::Stale { why } if why.contains("process 42 on ops-1 is gone")),
            "{killed:?}"
        );
        // Same host name, another machine or boot: its pid means nothing here.
        let namesake = liveness(
            &holder("ops-1", "42", ""),
            Some(&lease(0)),
            at(1),
            "ops-1#another-boot",
            |pid| pid != 42,
        );
        assert!(matches!(namesake, Liveness::Running { .. }), "{namesake:?}");
    }

    #[test]
    fn without_a_lease_file_the_locks_age_counts() {
        let since = "2027-01-15T08:00:00Z";
        let start =
            OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339).unwrap();
        let young = liveness(
            &holder("h", "1", since),
            None,
            start + time::Duration::seconds(5),
            "other",
            |_| true,
        );
        assert!(matches!(young, Liveness::Running { .. }));
        let old = liveness(
            &holder("h", "1", since),
            None,
            start + time::Duration::seconds(60),
            "other",
            |_| true,
        );
        assert!(matches!(old, Liveness::Stale { .. }));
        assert!(matches!(
            liveness(&holder("h", "1", "garbage"), None, at(0), "h", |_| true),
            Liveness::Stale { .. }
        ));
    }

    #[test]
    fn the_holders_own_clock_loses_the_lease_for_good() {
        let clock = LeaseClock::new(Duration::from_millis(50));
        assert!(clock.check().is_ok());
        std::thread::sleep(Duration::from_millis(80));
        let err = clock.check().unwrap_err();
        assert!(err.contains("not renewed"), "{err}");
        // A renewal after the loss does not bring it back: someone may have taken the lock meanwhile.
        clock.renewed(Instant::now());
        assert!(clock.check().is_err());
    }

    #[test]
    fn a_holding_without_a_lock_writes_unfenced_and_a_lost_one_writes_nothing() {
        let holding = Holding::default();
        assert_eq!(holding.fence().unwrap(), None);
        let clock = Arc::new(LeaseClock::new(Duration::from_secs(60)));
        holding.set(Some(Held {
            container: "abc".to_owned(),
            fence: None,
            clock: clock.clone(),
        }));
        holding.set_fence(7);
        assert_eq!(holding.fence().unwrap(), Some(7));
        clock.lose("the lock container was removed".to_owned());
        assert!(holding.fence().is_err());
        assert!(holding.lost().unwrap().contains("removed"));
    }

    #[test]
    fn an_older_fence_never_replaces_a_newer_edge() {
        assert!(edge_fence_allows(Some(12), Some(12)).is_ok());
        assert!(edge_fence_allows(Some(13), Some(12)).is_ok());
        assert!(
            edge_fence_allows(Some(11), Some(12))
                .unwrap_err()
                .contains("fence 12")
        );
        assert!(edge_fence_allows(None, Some(12)).is_ok());
        assert!(edge_fence_allows(Some(3), None).is_ok());
    }

    #[test]
    fn the_lease_file_round_trips() {
        let text = serde_json::to_string(&lease(3)).unwrap();
        assert_eq!(serde_json::from_str::<Lease>(&text).unwrap(), lease(3));
    }
}
