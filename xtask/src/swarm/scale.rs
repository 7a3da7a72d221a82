//! `scale --engine swarm --service api|websocket --replicas N`: `docker service scale`, then a wait
//! (deadline) until N tasks run healthy; under the deploy lock; recorded in the ledger as a Scale entry
//! (which routes nothing: rollback skips it).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::ledger::ConfigStore;
use super::lock::SwarmLock;
use super::rollout::record;
use super::target::SwarmTarget;
use crate::command::swarm as argv;
use crate::deploy::ledger::{Event, History, Outcome};
use crate::deploy::ledger_store::LedgerStore;
use crate::deploy::lock::Holding;

#[derive(Debug, Serialize)]
pub struct ScaleReport {
    pub service: String,
    pub from: u32,
    pub to: u32,
    pub seconds: f64,
}

pub fn scale(
    project: &str,
    service: &str,
    replicas: u32,
    timeout: Duration,
    dry_run: bool,
) -> anyhow::Result<ScaleReport> {
    let target = SwarmTarget::new(project.to_owned());
    let name = target.service(service);
    let command = argv::service_scale(&target.docker, &name, replicas);
    if dry_run {
        println!("would run: {command}   # then wait until {replicas} tasks run healthy");
        return Ok(ScaleReport {
            service: name,
            from: 0,
            to: replicas,
            seconds: 0.0,
        });
    }
    target.require_manager()?;
    let from = target
        .services()?
        .into_iter()
        .find(|row| row.name == name)
        .and_then(|row| row.counts())
        .map(|(_, desired)| desired)
        .with_context(|| {
            format!("no service {name}: is the stack up (`cargo xtask status --engine swarm`)?")
        })?;
    let holding = Holding::default();
    crate::deploy::interrupt::install()?;
    let lock = SwarmLock::acquire(project, "scale", Duration::from_secs(30), holding.clone())?;
    let started = Instant::now();
    // A holder that lost its lease (or was interrupted) changes nothing more, and stops waiting.
    let waiter = SwarmTarget::new(project.to_owned());
    let result = super::guard::checkpoint(&holding)
        .and_then(|()| command.capture(None))
        .map(|_| ())
        .and_then(|()| {
            let (service, deadline) = (service.to_owned(), started + timeout);
            super::guard::wait(&holding, move || {
                waiter.wait_service(&service, replicas, deadline)
            })
        });
    crate::deploy::interrupt::begin_cleanup();
    let store = ConfigStore::new(project);
    let recorded = History::parse(&store.read()?.jsonl)
        .live()
        .map(|live| live.release.clone())
        .map(|release| {
            record(
                &store,
                &holding,
                Event::Scale,
                release,
                match &result {
                    Ok(()) => Outcome::Succeeded,
                    Err(err) => super::guard::outcome(err),
                },
                Some(format!("{service} {from} → {replicas}")),
            )
        });
    lock.release()?;
    result?;
    if let Some(recorded) = recorded {
        recorded?;
    }
    Ok(ScaleReport {
        service: name,
        from,
        to: replicas,
        seconds: started.elapsed().as_secs_f64(),
    })
}
