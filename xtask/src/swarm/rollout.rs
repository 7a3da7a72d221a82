//! `deploy --engine swarm` and `rollback --engine swarm`: a rolling update of api then websocket to a
//! release's images (`docker service update --image … --update-order start-first`, one task at a time,
//! Swarm's own rollback when a new task fails its healthcheck), waited on with a deadline, under the deploy
//! lock, recorded in the ledger. Rollback takes the ledger's previous good release: no name needed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::guard;
use super::ledger::ConfigStore;
use super::lock::SwarmLock;
use super::target::{SwarmTarget, image_matches};
use crate::command::swarm as argv;
use crate::deploy::ledger::{self, Entry, Event, History, Outcome, Release, to_line};
use crate::deploy::ledger_store::LedgerStore;
use crate::deploy::lock::Holding;

/// The services a release names, in the order they roll.
pub const ROLLED: [&str; 2] = ["api", "websocket"];
/// What the ledger's `slot` says for a Swarm entry (there are no slots: one service per role).
pub const SLOT: &str = "swarm";
const LEASE: Duration = Duration::from_secs(30);

/// Appends one entry under the fence `holding` carries (refused once the lease is lost or a newer fence
/// was issued): deploy::ledger's rules, on the config store.
pub fn record(
    store: &ConfigStore,
    holding: &Holding,
    event: Event,
    release: Release,
    outcome: Outcome,
    note: Option<String>,
) -> anyhow::Result<Entry> {
    let fence = holding.fence().map_err(anyhow::Error::msg)?;
    let stored = store.read()?;
    let history = History::parse(&stored.jsonl);
    ledger::fence_allows(fence, history.newest_fence(stored.fence_mark))
        .map_err(anyhow::Error::msg)?;
    let entry = Entry {
        seq: history.next_seq(),
        at: time::OffsetDateTime::now_utc(),
        event,
        release,
        slot: SLOT.to_owned(),
        weight: 100,
        outcome,
        who: crate::deploy::who(),
        from: crate::deploy::from(),
        note,
        plan: None,
        fence,
    };
    store.append(entry.seq, &to_line(&entry)?)?;
    eprintln!(
        "ledger: #{} {:?} {} → {:?}",
        entry.seq, entry.event, entry.release.version, entry.outcome
    );
    Ok(entry)
}

/// A release as the ledger keeps it.
pub fn release(version: &str, api: &str, ws: &str, config_digest: &str) -> Release {
    Release {
        version: version.to_owned(),
        images: BTreeMap::from([
            ("api".to_owned(), api.to_owned()),
            ("websocket".to_owned(), ws.to_owned()),
        ]),
        config_digest: config_digest.to_owned(),
    }
}

/// Rolls api then websocket to `release`'s images and records the outcome as `event`.
pub fn roll(
    project: &str,
    release: Release,
    event: Event,
    note: Option<String>,
    timeout: Duration,
    dry_run: bool,
) -> anyhow::Result<()> {
    let target = SwarmTarget::new(project.to_owned());
    let images: Vec<(&str, String)> = ROLLED
        .iter()
        .map(|service| {
            release
                .images
                .get(*service)
                .map(|image| (*service, image.clone()))
                .with_context(|| format!("release {} names no {service} image", release.version))
        })
        .collect::<anyhow::Result<_>>()?;
    if dry_run {
        println!(
            "{event:?} plan for stack {project} (release {}):",
            release.version
        );
        for (service, image) in &images {
            println!(
                "  {}   # then wait until it converged",
                argv::service_update_image(&target.docker, &target.service(service), image)
            );
        }
        println!("  record {event:?} in the ledger (Swarm configs {project}-ledger-*)");
        return Ok(());
    }
    target.require_manager()?;
    let holding = Holding::default();
    let command = if event == Event::Rollback {
        "rollback"
    } else {
        "deploy"
    };
    // Ctrl-C stops at the next check (before a service update, or on a wait's poll), then the outcome is
    // recorded and the lock released, as on the Compose path.
    crate::deploy::interrupt::install()?;
    let lock = SwarmLock::acquire(project, command, LEASE, holding.clone())?;
    let store = ConfigStore::new(project);
    let started = Instant::now();
    let deadline = started + timeout;
    let mut result = Ok(());
    for (service, image) in &images {
        let current = match target.spec(service) {
            Ok(spec) => spec,
            Err(err) => {
                result = Err(err);
                break;
            }
        };
        if image_matches(image, &current.image) {
            eprintln!(
                "{command}: {} already runs {image}",
                target.service(service)
            );
            continue;
        }
        // A holder that lost its lease (or was interrupted) changes nothing more.
        result = guard::checkpoint(&holding)
            .and_then(|()| {
                argv::service_update_image(&target.docker, &target.service(service), image)
                    .capture(None)
            })
            .map(|_| ())
            .and_then(|()| {
                let waiter = SwarmTarget::new(project.to_owned());
                // The update status before this command: an older one (or none) passes only once the
                // tasks themselves match.
                let before = current.update.as_ref().map(|u| u.started_at.clone());
                let (service, image) = (service.to_string(), image.clone());
                guard::wait(&holding, move || {
                    waiter.wait_updated(&service, &image, before.as_deref(), deadline)
                })
            });
        if result.is_err() {
            break;
        }
    }
    crate::deploy::interrupt::begin_cleanup();
    let seconds = started.elapsed().as_secs_f64();
    let recorded = match &result {
        Ok(()) => record(
            &store,
            &holding,
            event,
            release.clone(),
            Outcome::Succeeded,
            note,
        ),
        Err(err) => record(
            &store,
            &holding,
            event,
            release.clone(),
            guard::outcome(err),
            Some(format!("{err:#}")),
        ),
    };
    lock.release()?;
    result?;
    recorded?;
    println!(
        "{command}: stack {project} runs {} ({}) after {seconds:.1}s",
        release.version,
        ROLLED.join(", ")
    );
    Ok(())
}

/// `rollback --engine swarm`: the ledger's previous good release (or `to`'s newest good entry).
pub fn rollback(
    project: &str,
    to: Option<&str>,
    timeout: Duration,
    dry_run: bool,
) -> anyhow::Result<()> {
    let history = History::parse(&ConfigStore::new(project).read()?.jsonl);
    let live = history.live().map(|entry| entry.release.version.clone());
    let target = match to {
        Some(version) => history
            .find_good(version)
            .with_context(|| format!("the ledger has no good release {version}"))?,
        None => match history.previous_good() {
            Some(entry) => entry,
            None => bail!(
                "rollback: the ledger (Swarm configs {project}-ledger-*) has no earlier good release than \
                 the live one ({}); `cargo xtask releases --engine swarm` shows it",
                live.as_deref().unwrap_or("none")
            ),
        },
    };
    let note = Some(format!(
        "rollback from {} to {}",
        live.as_deref().unwrap_or("unknown"),
        target.release.version
    ));
    roll(
        project,
        target.release.clone(),
        Event::Rollback,
        note,
        timeout,
        dry_run,
    )
}
