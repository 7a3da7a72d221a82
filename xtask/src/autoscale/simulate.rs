//! `cargo xtask autoscale simulate --policy FILE --trace FILE [--start N] [--json]`: replays a demand
//! trace through the policy engine — the same [`Scaler`] the live autoscaler runs — evaluating at every
//! row and printing each change: with `--json` one line
//! `{"t":…,"service":…,"from":…,"to":…,"reason":…}` per change and nothing else, without it a table.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::{Serialize, Serializer};

use super::policy::{Policy, Scaler, Service};
use super::policy_file::{self, DEFAULT_POLICY};
use super::trace::{self, Row};

#[derive(Args, Debug)]
pub struct Simulate {
    /// The scaling policy.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_POLICY)]
    policy: PathBuf,
    /// The demand trace: CSV with header t,service,cpu_millicores,memory_mib,connections (docs/scaling.md).
    #[arg(long, value_name = "FILE")]
    trace: PathBuf,
    /// Replicas every service of the trace starts with [default: the service's `min`].
    #[arg(long, value_name = "N")]
    start: Option<u32>,
    /// One JSON object per change, one per line.
    #[arg(long)]
    json: bool,
}

/// One change of replicas, as printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    #[serde(serialize_with = "whole_as_integer")]
    pub t: f64,
    pub service: Service,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

impl Simulate {
    pub fn run(&self) -> anyhow::Result<()> {
        let policy = policy_file::load(&self.policy)?;
        let rows = trace::load(&self.trace)?;
        let changes = simulate(&policy, &rows, self.start);
        if self.json {
            for line in json_lines(&changes)? {
                println!("{line}");
            }
        } else {
            print!("{}", table(&changes));
        }
        Ok(())
    }
}

/// Every service of the trace starts at `start` (else its `min`) and is evaluated at each of its rows;
/// a decision that changes the count applies at once.
pub fn simulate(policy: &Policy, rows: &[Row], start: Option<u32>) -> Vec<Change> {
    let mut services: BTreeMap<Service, (Scaler, u32)> = BTreeMap::new();
    let mut changes = Vec::new();
    for row in rows {
        let (scaler, replicas) = services.entry(row.service).or_insert_with(|| {
            let p = policy.get(row.service);
            (Scaler::new(row.service, p.clone()), start.unwrap_or(p.min))
        });
        let decision = scaler.evaluate(row.t, *replicas, &row.demand);
        if decision.to != decision.from {
            *replicas = decision.to;
            changes.push(Change {
                t: row.t,
                service: decision.service,
                from: decision.from,
                to: decision.to,
                reason: decision.reason,
            });
        }
    }
    changes
}

pub fn json_lines(changes: &[Change]) -> anyhow::Result<Vec<String>> {
    changes
        .iter()
        .map(|c| serde_json::to_string(c).map_err(Into::into))
        .collect()
}

/// The readable form: one aligned row per change, or a line saying there was none.
pub fn table(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes\n".to_owned();
    }
    let mut out = format!(
        "{:>8}  {:<9}  {:>4}  {:>4}  reason\n",
        "t", "service", "from", "to"
    );
    for c in changes {
        out.push_str(&format!(
            "{:>8}  {:<9}  {:>4}  {:>4}  {}\n",
            shown_t(c.t),
            // A &str: `Display` of the enum ignores the column width.
            c.service.name(),
            c.from,
            c.to,
            c.reason
        ));
    }
    out
}

fn shown_t(t: f64) -> String {
    if t.fract() == 0.0 && t.abs() < 1e15 {
        format!("{t:.0}")
    } else {
        t.to_string()
    }
}

/// `"t":60`, not `"t":60.0`: trace times are usually whole seconds, and print as the trace wrote them.
fn whole_as_integer<S: Serializer>(t: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if t.fract() == 0.0 && t.abs() < 9.0e15 {
        serializer.serialize_i64(*t as i64)
    } else {
        serializer.serialize_f64(*t)
    }
}

#[cfg(test)]
mod tests;
