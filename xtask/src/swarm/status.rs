//! `status --engine swarm [--json]` and `releases --engine swarm [--json]`: the stack's services (running
//! / desired, image), the nodes, the live release and the last ledger entry, the deploy lock, the
//! maintenance flag; and the ledger's history.

use serde::Serialize;

use super::ledger::ConfigStore;
use super::lock::SwarmLock;
use super::target::{NodeRow, ServiceRow, SwarmTarget, TaskRow};
use crate::deploy::ledger::{Entry, History};
use crate::deploy::ledger_store::LedgerStore;
use crate::deploy::lock::Observed;
use crate::maintenance::MaintenanceState;

#[derive(Serialize)]
struct Report {
    engine: &'static str,
    stack: String,
    services: Vec<ServiceRow>,
    nodes: Vec<NodeRow>,
    /// Tasks meant to run (desired state Running), with their node: where each replica is.
    tasks: Vec<TaskRow>,
    live: Option<Entry>,
    last: Option<Entry>,
    lock: Option<Observed>,
    maintenance: Option<MaintenanceState>,
    /// Why the maintenance flag could not be read (then `maintenance` is null and means unknown, not off).
    #[serde(skip_serializing_if = "Option::is_none")]
    maintenance_unknown: Option<String>,
    warnings: Vec<String>,
}

pub fn print_services(services: &[ServiceRow]) {
    println!("{:<32} {:<10} {:<48} PORTS", "SERVICE", "REPLICAS", "IMAGE");
    for service in services {
        println!(
            "{:<32} {:<10} {:<48} {}",
            service.name, service.replicas, service.image, service.ports
        );
    }
}

pub fn status(project: &str, json: bool) -> anyhow::Result<()> {
    let target = SwarmTarget::new(project.to_owned());
    target.require_manager()?;
    let services = target.services()?;
    let nodes = target.nodes()?;
    let prefix = format!("{project}_");
    let mut tasks = Vec::new();
    for service in &services {
        let short = service.name.strip_prefix(&prefix).unwrap_or(&service.name);
        tasks.extend(
            target
                .tasks(short)?
                .into_iter()
                .filter(|task| task.desired_state == "Running"),
        );
    }
    let history = History::parse(&ConfigStore::new(project).read()?.jsonl);
    let lock = SwarmLock::observe(project)?;
    let (maintenance, maintenance_unknown) =
        match super::maintenance::flag(&target).and_then(|flag| flag.get()) {
            Ok(state) => (state, None),
            Err(err) => (None, Some(format!("{err:#}"))),
        };
    let mut warnings: Vec<String> = services
        .iter()
        .filter(|s| !s.converged())
        .map(|s| format!("{} runs {} replicas (running/desired)", s.name, s.replicas))
        .collect();
    warnings.extend(
        nodes
            .iter()
            .filter(|n| n.status != "Ready")
            .map(|n| format!("node {} is {}", n.hostname, n.status)),
    );
    if services.is_empty() {
        warnings.push(format!(
            "no stack {project} on this swarm (`cargo xtask up --engine swarm`)"
        ));
    }
    let report = Report {
        engine: "swarm",
        stack: project.to_owned(),
        services,
        nodes,
        tasks,
        live: history.live().cloned(),
        last: history.last().cloned(),
        lock,
        maintenance,
        maintenance_unknown,
        warnings,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("stack {} on the swarm (DOCKER_HOST)", report.stack);
    match &report.live {
        Some(live) => println!(
            "live release: {} (ledger #{})",
            live.release.version, live.seq
        ),
        None => println!("live release: none recorded"),
    }
    if let Some(last) = &report.last {
        println!(
            "last entry:   #{} {:?} {} {:?}",
            last.seq, last.event, last.release.version, last.outcome
        );
    }
    println!();
    print_services(&report.services);
    println!("\n{:<36} {:<16} {:<10} STATE", "TASK", "NODE", "DESIRED");
    for task in &report.tasks {
        println!(
            "{:<36} {:<16} {:<10} {}",
            task.name, task.node, task.desired_state, task.current_state
        );
    }
    println!(
        "\n{:<24} {:<10} {:<12} MANAGER",
        "NODE", "STATUS", "AVAILABILITY"
    );
    for node in &report.nodes {
        println!(
            "{:<24} {:<10} {:<12} {}",
            node.hostname, node.status, node.availability, node.manager_status
        );
    }
    println!(
        "\nlock: {}",
        report
            .lock
            .as_ref()
            .map_or("free".to_owned(), |held| format!(
                "{} ({:?})",
                held.describe(),
                held.liveness
            ))
    );
    println!(
        "maintenance: {}",
        maintenance_line(
            report.maintenance.as_ref(),
            report.maintenance_unknown.as_deref()
        )
    );
    for warning in &report.warnings {
        println!("WARNING: {warning}");
    }
    Ok(())
}

/// The maintenance line: a probe that failed is unknown, not "never set".
fn maintenance_line(state: Option<&MaintenanceState>, unknown: Option<&str>) -> String {
    match (state, unknown) {
        (_, Some(why)) => format!("unknown: {why}"),
        (Some(state), None) if state.enabled => "ON".to_owned(),
        (Some(_), None) => "off".to_owned(),
        (None, None) => "off (never set)".to_owned(),
    }
}

#[derive(Serialize)]
struct ReleasesReport<'a> {
    ledger: String,
    live: Option<&'a Entry>,
    previous_good: Option<&'a Entry>,
    entries: &'a [Entry],
    damaged_lines: Vec<usize>,
}

pub fn releases(project: &str, json: bool) -> anyhow::Result<()> {
    let store = ConfigStore::new(project);
    let history = History::parse(&store.read()?.jsonl);
    if json {
        let report = ReleasesReport {
            ledger: store.describe(),
            live: history.live(),
            previous_good: history.previous_good(),
            entries: &history.entries,
            damaged_lines: history.damaged.iter().map(|d| d.line_number).collect(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("ledger: {}", store.describe());
    print!(
        "{}",
        crate::deploy::releases::table(&history.entries, history.live().map(|e| e.seq))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_maintenance_probe_is_unknown_not_off() {
        assert_eq!(
            maintenance_line(None, Some("cannot reach the edge")),
            "unknown: cannot reach the edge"
        );
        assert_eq!(maintenance_line(None, None), "off (never set)");
    }
}
