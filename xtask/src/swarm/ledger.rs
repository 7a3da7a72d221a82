//! The release ledger as Swarm configs, so every operator who reaches a manager sees the same history
//! (configs live in the cluster's Raft store, replicated on every manager, outliving `stack rm`).
//!
//! An implementation of [`LedgerStore`]: the ledger's rules (sequence, fences, what is live) stay in
//! `deploy::ledger`. Each entry is one immutable config `<project>-ledger-<seq>` holding its JSON line;
//! each fence issued is a config `<project>-ledger-fence-<n>`. A config name is unique in the cluster and
//! its create is one Raft write, so two writers of the same sequence number cannot both succeed: the loser
//! is refused, never merged.

use anyhow::{Context, bail};
use base64::Engine as _;

use crate::command::DockerCli;
use crate::command::swarm as argv;
use crate::deploy::ledger_store::{LedgerStore, Stored};

/// Every ledger config carries `avalon.ledger=<project>`.
pub const LEDGER_LABEL: &str = "avalon.ledger";
const KIND_LABEL: &str = "avalon.ledger.kind";

pub struct ConfigStore {
    pub docker: DockerCli,
    pub project: String,
}

/// One ledger config as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    pub name: String,
    pub data: String,
}

pub fn entry_name(project: &str, seq: u64) -> String {
    format!("{project}-ledger-{seq}")
}

pub fn fence_name(project: &str, fence: u64) -> String {
    format!("{project}-ledger-fence-{fence}")
}

/// The history (entries in sequence order, one line each) and the highest fence, from the configs.
pub fn assemble(project: &str, configs: &[LedgerConfig]) -> Stored {
    let entry_prefix = format!("{project}-ledger-");
    let fence_prefix = format!("{project}-ledger-fence-");
    let mut entries: Vec<(u64, &str)> = Vec::new();
    let mut fence_mark = 0;
    for config in configs {
        if let Some(n) = config.name.strip_prefix(&fence_prefix) {
            fence_mark = fence_mark.max(n.parse().unwrap_or(0));
        } else if let Some(seq) = config
            .name
            .strip_prefix(&entry_prefix)
            .and_then(|n| n.parse().ok())
        {
            entries.push((seq, config.data.trim_end()));
        }
    }
    entries.sort_by_key(|(seq, _)| *seq);
    let mut jsonl = String::new();
    for (_, line) in entries {
        jsonl.push_str(line);
        jsonl.push('\n');
    }
    Stored { jsonl, fence_mark }
}

/// `docker config inspect` output → name and decoded data of each.
pub fn parse_inspect(text: &str) -> anyhow::Result<Vec<LedgerConfig>> {
    let inspected: Vec<serde_json::Value> =
        serde_json::from_str(text).context("unexpected `docker config inspect` output")?;
    inspected
        .iter()
        .map(|config| {
            let name = config["Spec"]["Name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let data = base64::engine::general_purpose::STANDARD
                .decode(config["Spec"]["Data"].as_str().unwrap_or_default())
                .with_context(|| format!("config {name}: data is not base64"))?;
            let data =
                String::from_utf8(data).with_context(|| format!("config {name}: not UTF-8"))?;
            Ok(LedgerConfig { name, data })
        })
        .collect()
}

impl ConfigStore {
    pub fn new(project: &str) -> Self {
        Self {
            docker: DockerCli::default(),
            project: project.to_owned(),
        }
    }

    fn read_configs(&self) -> anyhow::Result<Vec<LedgerConfig>> {
        let listing = argv::config_ls(&self.docker, &[format!("{LEDGER_LABEL}={}", self.project)])
            .capture(None)
            .context("listing the ledger's configs")?;
        let ids: Vec<String> = listing
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        parse_inspect(&argv::config_inspect(&self.docker, &ids).capture(None)?)
    }

    fn create(&self, name: &str, kind: &str, body: &str) -> anyhow::Result<()> {
        let labels = [
            (LEDGER_LABEL.to_owned(), self.project.clone()),
            (KIND_LABEL.to_owned(), kind.to_owned()),
        ];
        let created =
            argv::config_create(&self.docker, name, &labels).output(Some(body.as_bytes()))?;
        if !created.success() {
            bail!(
                "the ledger refused {name}: {} (another command wrote it first?)",
                created.stderr.trim()
            );
        }
        Ok(())
    }
}

impl LedgerStore for ConfigStore {
    fn read(&self) -> anyhow::Result<Stored> {
        Ok(assemble(&self.project, &self.read_configs()?))
    }

    fn append(&self, seq: u64, line: &str) -> anyhow::Result<()> {
        if line.contains('\n') {
            bail!("a ledger entry must be one line");
        }
        self.create(&entry_name(&self.project, seq), "entry", line)
    }

    fn raise_fence(&self, fence: u64) -> anyhow::Result<()> {
        self.create(
            &fence_name(&self.project, fence),
            "fence",
            &format!("{fence}\n"),
        )
    }

    fn describe(&self) -> String {
        format!(
            "Swarm configs {}-ledger-* (label {LEDGER_LABEL}={})",
            self.project, self.project
        )
    }

    fn read_aside(&self, _name: &str) -> anyhow::Result<Option<String>> {
        Ok(None)
    }

    fn write_aside(&self, name: &str, _body: &str) -> anyhow::Result<()> {
        bail!("{name}: nothing is kept beside the ledger on a Swarm (autoscale is Compose-only)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(name: &str, data: &str) -> LedgerConfig {
        LedgerConfig {
            name: name.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn entries_come_back_in_sequence_order_with_the_highest_fence() {
        let stored = assemble(
            "p",
            &[
                config("p-ledger-10", "{\"seq\":10}"),
                config("p-ledger-fence-11", "11\n"),
                config("p-ledger-2", "{\"seq\":2}\n"),
                config("p-ledger-fence-3", "3\n"),
                config("other-ledger-1", "{}"),
            ],
        );
        assert_eq!(stored.jsonl, "{\"seq\":2}\n{\"seq\":10}\n");
        assert_eq!(stored.fence_mark, 11);
    }

    #[test]
    fn inspect_output_is_decoded() {
        let text = r#"[{"ID":"x","Spec":{"Name":"p-ledger-1","Labels":{},"Data":"eyJzZXEiOjF9"}}]"#;
        assert_eq!(
            parse_inspect(text).unwrap(),
            vec![config("p-ledger-1", "{\"seq\":1}")]
        );
    }

    #[test]
    fn names_are_per_project() {
        assert_eq!(entry_name("avalon-offline", 7), "avalon-offline-ledger-7");
        assert_eq!(
            fence_name("avalon-offline", 8),
            "avalon-offline-ledger-fence-8"
        );
    }
}
