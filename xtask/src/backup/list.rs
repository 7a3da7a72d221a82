//! `backup list`: what the manifests in the backup directory say, oldest first.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::destinations::BackupConfig;
use super::fetch::{open_one, remote_manifests};
use super::manifest::Manifest;
use super::{BackupDirArg, human_bytes};

#[derive(Args, Debug)]
pub struct List {
    /// Print the manifests as a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// List the backups in this off-site destination instead of the backup directory.
    #[arg(long = "dest", value_name = "NAME", conflicts_with = "dir")]
    destination: Option<String>,
    /// Backup config file [default: config/backup.toml when present].
    #[arg(long, value_name = "FILE", env = "AVALON_BACKUP_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    dir: BackupDirArg,
}

impl List {
    pub fn run(self) -> anyhow::Result<()> {
        let config = BackupConfig::load(self.config.as_deref())?;
        if let Some(name) = &self.destination {
            return self.list_remote(&config, name);
        }
        let dir = self.dir.open_with(&config);
        let scan = dir.load_all()?;
        let manifests: Vec<&Manifest> =
            scan.backups.iter().map(|backup| &backup.manifest).collect();
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&manifests).context("serializing the backup list")?
            );
        } else if manifests.is_empty() {
            println!("no backups in {}", dir.path().display());
        } else {
            print!("{}", table(&manifests));
        }
        // Readable backups are listed first; the unreadable ones still make the command fail.
        for (path, error) in &scan.broken {
            eprintln!("warning: skipped {}: {error:#}", path.display());
        }
        if !scan.broken.is_empty() {
            bail!(
                "{} manifest(s) in {} could not be read",
                scan.broken.len(),
                dir.path().display()
            );
        }
        Ok(())
    }

    fn list_remote(&self, config: &BackupConfig, name: &str) -> anyhow::Result<()> {
        let destination = open_one(config, name)?;
        let (manifests, broken) = remote_manifests(&destination)?;
        let manifests: Vec<&Manifest> = manifests.iter().collect();
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&manifests).context("serializing the backup list")?
            );
        } else if manifests.is_empty() {
            println!("no backups in destination {name}");
        } else {
            print!("{}", table(&manifests));
        }
        for problem in &broken {
            eprintln!("warning: skipped {problem}");
        }
        if !broken.is_empty() {
            bail!(
                "{} manifest(s) in destination {name} could not be read",
                broken.len()
            );
        }
        Ok(())
    }
}

fn table(manifests: &[&Manifest]) -> String {
    let header = ["ID", "CREATED", "SIZE", "DOCUMENTS", "SERVER", "FLAGS"].map(str::to_owned);
    let rows: Vec<[String; 6]> = manifests.iter().map(|manifest| row(manifest)).collect();
    let mut widths = header.clone().map(|cell| cell.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn row(manifest: &Manifest) -> [String; 6] {
    let created = manifest
        .created
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| manifest.created.to_string());
    // A total is only honest when every namespace's count is known.
    let documents = manifest
        .namespaces
        .iter()
        .map(|namespace| namespace.documents)
        .sum::<Option<u64>>()
        .map_or_else(|| "?".to_owned(), |total| total.to_string());
    let flags: Vec<&str> = [(manifest.gzip, "gzip"), (manifest.encrypted, "encrypted")]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, flag)| flag)
        .collect();
    [
        manifest.id.clone(),
        created,
        human_bytes(manifest.size_bytes),
        documents,
        manifest
            .server_version
            .clone()
            .unwrap_or_else(|| "?".to_owned()),
        flags.join(","),
    ]
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::backup::manifest::tests::sample_manifest;

    #[test]
    fn table_aligns_columns_and_marks_unknown_counts() {
        let mut complete = sample_manifest("b-complete", datetime!(2025-03-01 02:00 UTC));
        complete
            .namespaces
            .iter_mut()
            .for_each(|namespace| namespace.documents = Some(10));
        let partial = sample_manifest("b-partial-counts", datetime!(2025-03-02 02:00 UTC));
        let text = table(&[&complete, &partial]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID                CREATED"), "{text}");
        assert!(
            lines[1].contains("2025-03-01T02:00:00Z") && lines[1].contains(" 20 "),
            "{text}"
        );
        assert!(lines[2].contains(" ? "), "{text}");
        assert!(lines[2].ends_with("gzip"), "{text}");
    }
}
