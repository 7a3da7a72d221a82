//! What every deploy command needs: the target, the deploy config, the ledger, and how to record.

use std::path::PathBuf;
use std::sync::PoisonError;

use clap::Args;
use xshell::Shell;

use super::config::DeployConfig;
use super::interrupt::Stopped;
use super::labels::config_digest;
use super::ledger::{self, Entry, Event, History, Outcome, Release, to_line};
use super::ledger_store::{self, DirStore, LedgerStore, VolumeStore};
use super::lock::{DeployLock, Holding, LockRequest};
use super::slots::Slot;
use super::target::{ContainerInfo, Target};
use crate::stack::StackEnv;

#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Which stack (overlay of docker/compose.yml). The engine is DOCKER_HOST / DOCKER_CONTEXT's.
    #[arg(long, value_enum, env = crate::stack::ENV_VAR, default_value_t)]
    pub env: StackEnv,
    /// Compose project name [default: avalon-<env>].
    #[arg(long, env = "AVALON_STACK_PROJECT")]
    pub project: Option<String>,
    /// Deploy settings and canary plans.
    #[arg(long, value_name = "FILE", default_value = super::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Keep the release ledger in this host directory instead of the Docker volume `<project>-releases`.
    #[arg(long, value_name = "DIR", env = "AVALON_LEDGER_DIR")]
    pub ledger_dir: Option<PathBuf>,
    #[command(flatten)]
    pub engine: crate::swarm::EngineArg,
}

pub struct Ctx {
    pub target: Target,
    pub config: DeployConfig,
    ledger_dir: Option<PathBuf>,
    /// The deploy lock while held: it mounts the ledger volume.
    holding: Holding,
    /// The ledger as read when the lock was taken (nobody else may write it meanwhile): the next
    /// `history` uses it instead of reading again, one round trip less on a rollback's clock.
    fresh: std::sync::Mutex<Option<super::ledger_store::Stored>>,
}

impl Ctx {
    pub fn new(args: &TargetArgs) -> anyhow::Result<Self> {
        // The verbs that know Swarm dispatch before they get here; any other one is Compose-only.
        args.engine.refuse_swarm("this command")?;
        let path = if args.config.is_absolute() {
            args.config.clone()
        } else {
            crate::project::root().join(&args.config)
        };
        let holding = Holding::default();
        let mut target = Target::new(args.env, args.project.clone());
        // The edge fences its swaps with the lock this command holds (see lock.rs).
        target.holding = holding.clone();
        Ok(Self {
            target,
            config: DeployConfig::load(&path)?,
            ledger_dir: args.ledger_dir.clone(),
            holding,
            fresh: std::sync::Mutex::new(None),
        })
    }

    /// Takes the deploy lock for `command`, with its lease, and a fencing number from the ledger. The lock
    /// container mounts the ledger volume, so the ledger is read and written through it while the lock is
    /// held.
    pub fn lock(&self, containers: &[ContainerInfo], command: &str) -> anyhow::Result<DeployLock> {
        let volumes = match self.ledger_dir {
            Some(_) => Vec::new(),
            None => vec![format!("{}:{}", self.ledger_volume(), ledger_store::MOUNT)],
        };
        let lock = DeployLock::acquire(
            &self.target.docker,
            &self.target.project,
            LockRequest {
                image: &self.target.helper_image(containers)?,
                command,
                who: &who(),
                lease: self.config.lock.lease,
                volumes: &volumes,
                holding: self.holding.clone(),
            },
        )?;
        let store = self.store(containers)?;
        let stored = store.read()?;
        let fence = History::parse(&stored.jsonl).next_fence(stored.fence_mark);
        self.holding.set_fence(fence);
        // Two independent writes, side by side: they count on a rollback's clock.
        let (raised, leased) = std::thread::scope(|scope| {
            let leased = scope.spawn(|| lock.write_lease());
            (store.raise_fence(fence), leased.join())
        });
        raised?;
        leased.map_err(|_| anyhow::anyhow!("the thread writing the lease panicked"))??;
        *self.fresh.lock().unwrap_or_else(PoisonError::into_inner) = Some(stored);
        eprintln!("lock: {command} holds the deploy lock (fence {fence})");
        Ok(lock)
    }

    /// The lock this command holds (empty before `lock` and after its release).
    pub fn holding(&self) -> &Holding {
        &self.holding
    }

    pub fn ledger_volume(&self) -> String {
        format!("{}-releases", self.target.project)
    }

    pub fn store(&self, containers: &[ContainerInfo]) -> anyhow::Result<Box<dyn LedgerStore>> {
        Ok(match &self.ledger_dir {
            Some(dir) => Box::new(DirStore { dir: dir.clone() }),
            None => Box::new(VolumeStore {
                docker: self.target.docker.clone(),
                volume: self.ledger_volume(),
                helper_image: self.target.helper_image(containers)?,
                via: self.holding.container(),
            }),
        })
    }

    pub fn history(&self, containers: &[ContainerInfo]) -> anyhow::Result<History> {
        let store = self.store(containers)?;
        let fresh = self
            .fresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let stored = match fresh {
            Some(stored) => stored,
            None => store.read()?,
        };
        let history = History::parse(&stored.jsonl);
        for damaged in &history.damaged {
            eprintln!(
                "WARNING: ledger {} line {} is damaged and ignored: {}",
                store.describe(),
                damaged.line_number,
                damaged.error
            );
        }
        Ok(history)
    }

    /// Appends an entry (after re-reading, so the sequence number is the next one), under this command's
    /// fence: refused once the lease is lost or a newer fence was issued.
    pub fn record(&self, containers: &[ContainerInfo], draft: Draft) -> anyhow::Result<Entry> {
        let slot = draft.slot.name().to_owned();
        self.append(containers, draft, slot)
    }

    /// A scale of the live stack: like [`Self::record`], on `slot` — the live slot's name, or `unslotted`
    /// for the stack `cargo xtask up` started (which is no deploy slot).
    pub fn record_scale(
        &self,
        containers: &[ContainerInfo],
        scale: ScaleDraft,
    ) -> anyhow::Result<Entry> {
        let draft = Draft {
            event: Event::Scale,
            release: scale.release,
            slot: Slot::Blue,
            weight: scale.weight,
            outcome: scale.outcome,
            note: Some(scale.note),
            plan: None,
        };
        self.append(containers, draft, scale.slot)
    }

    fn append(
        &self,
        containers: &[ContainerInfo],
        draft: Draft,
        slot: String,
    ) -> anyhow::Result<Entry> {
        let lost = |why| anyhow::Error::new(Stopped::LeaseLost(why));
        let fence = self.holding.fence().map_err(lost)?;
        self.fresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let store = self.store(containers)?;
        let stored = store.read()?;
        let history = History::parse(&stored.jsonl);
        ledger::fence_allows(fence, history.newest_fence(stored.fence_mark)).map_err(lost)?;
        let entry = Entry {
            seq: history.next_seq(),
            at: time::OffsetDateTime::now_utc(),
            event: draft.event,
            release: draft.release,
            slot,
            weight: draft.weight,
            outcome: draft.outcome,
            who: who(),
            from: from(),
            note: draft.note,
            plan: draft.plan,
            fence,
        };
        store.append(entry.seq, &to_line(&entry)?)?;
        eprintln!(
            "ledger: #{} {:?} {} on {} → {:?}",
            entry.seq, entry.event, entry.release.version, entry.slot, entry.outcome
        );
        Ok(entry)
    }

    /// A file kept beside the ledger (the live autoscaler's state between `--once` runs).
    pub fn read_beside_ledger(
        &self,
        containers: &[ContainerInfo],
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        self.store(containers)?.read_aside(name)
    }

    pub fn write_beside_ledger(
        &self,
        containers: &[ContainerInfo],
        name: &str,
        body: &str,
    ) -> anyhow::Result<()> {
        self.store(containers)?.write_aside(name, body)
    }

    /// The release for `api_image` / `ws_image` on the target, with digests that start the same bits.
    pub fn release(
        &self,
        sh: &Shell,
        version: &str,
        api_image: &str,
        ws_image: &str,
        slot: Slot,
        extra_env: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<Release> {
        let mut release = Release {
            version: version.to_owned(),
            images: [
                ("api".to_owned(), self.target.image_digest(api_image)?),
                ("websocket".to_owned(), self.target.image_digest(ws_image)?),
            ]
            .into_iter()
            .collect(),
            config_digest: String::new(),
        };
        let overlay = self
            .target
            .slot_overlay_json(sh, slot, &release, extra_env)?;
        release.config_digest = config_digest(&overlay)?;
        Ok(release)
    }
}

pub struct Draft {
    pub event: Event,
    pub release: Release,
    pub slot: Slot,
    pub weight: u8,
    pub outcome: Outcome,
    pub note: Option<String>,
    pub plan: Option<String>,
}

/// What [`Ctx::record_scale`] appends.
pub struct ScaleDraft {
    pub release: Release,
    /// The live slot's name, or `unslotted`.
    pub slot: String,
    /// The slot's share of users.
    pub weight: u8,
    pub outcome: Outcome,
    /// Service, from → to, and why.
    pub note: String,
}

pub fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("GITHUB_ACTOR"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("{user}@{}", super::lock::this_host())
}

pub(crate) fn from() -> String {
    if let (Ok(repo), Ok(run)) = (
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        return format!("github-actions {repo} run {run}");
    }
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(crate::project::root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    format!(
        "checkout {}",
        revision.unwrap_or_else(|| "unknown".to_owned())
    )
}
