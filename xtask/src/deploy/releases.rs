//! `cargo xtask releases`: the ledger's history, newest first.

use clap::Args;
use serde::Serialize;

use super::context::{Ctx, TargetArgs};
use super::ledger::Entry;

#[derive(Args, Debug)]
pub struct Releases {
    #[command(flatten)]
    target: TargetArgs,
    /// Print the entries as JSON (oldest first) with the live and previous good release.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    ledger: String,
    live: Option<&'a Entry>,
    previous_good: Option<&'a Entry>,
    entries: &'a [Entry],
    damaged_lines: Vec<usize>,
}

impl Releases {
    pub fn run(self) -> anyhow::Result<()> {
        if self.target.engine.is_swarm() {
            let project = crate::swarm::stack_name(self.target.env, &self.target.project);
            return crate::swarm::status::releases(&project, self.json);
        }
        let ctx = Ctx::new(&self.target)?;
        let containers = ctx.target.containers()?;
        let store = ctx.store(&containers)?;
        let history = ctx.history(&containers)?;
        if self.json {
            let report = Report {
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
        print!("{}", table(&history.entries, history.live().map(|e| e.seq)));
        Ok(())
    }
}

pub fn table(entries: &[Entry], live_seq: Option<u64>) -> String {
    let mut out = format!(
        "{:<2}{:>4} {:<20} {:<14} {:<16} {:<6} {:>4} {:<13} {:<20} NOTE\n",
        "", "SEQ", "WHEN (UTC)", "EVENT", "VERSION", "SLOT", "W%", "OUTCOME", "WHO"
    );
    for entry in entries.iter().rev() {
        let when = super::table_time(entry.at);
        let event = serde_json::to_value(entry.event)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let outcome = serde_json::to_value(entry.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<2}{:>4} {:<20} {:<14} {:<16} {:<6} {:>4} {:<13} {:<20} {}\n",
            if Some(entry.seq) == live_seq { "*" } else { "" },
            entry.seq,
            when,
            event,
            entry.release.version,
            entry.slot,
            entry.weight,
            outcome,
            entry.who,
            entry.note.as_deref().unwrap_or("")
        ));
    }
    out
}
