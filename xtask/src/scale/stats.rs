//! What the engine says instances use: `docker container stats --no-stream --format {{json .}}` parsed
//! into CPU millicores (100 % = one core = 1000 m) and memory MiB, summed over a service's instances — the
//! CPU and memory demand of the live autoscaler.

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::deploy::Ctx;

/// One container's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// The id or name `docker stats` printed (`ID` is the 12-character id).
    pub id: String,
    pub cpu_millicores: f64,
    pub memory_mib: f64,
}

#[derive(Deserialize)]
struct StatsLine {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "CPUPerc")]
    cpu: String,
    #[serde(rename = "MemUsage")]
    memory: String,
}

/// Parses the output (one JSON object per line).
pub fn parse(output: &str) -> anyhow::Result<Vec<Usage>> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let stats: StatsLine = serde_json::from_str(line)
                .with_context(|| format!("unexpected `docker stats` line: {line}"))?;
            Ok(Usage {
                id: stats.id,
                cpu_millicores: percent(&stats.cpu)? * 10.0,
                memory_mib: mebibytes(stats.memory.split('/').next().unwrap_or_default())?,
            })
        })
        .collect()
}

/// `12.34%` → 12.34; `--` (a container that just stopped) → 0.
fn percent(text: &str) -> anyhow::Result<f64> {
    let text = text.trim();
    if text == "--" {
        return Ok(0.0);
    }
    text.trim_end_matches('%')
        .parse()
        .with_context(|| format!("CPUPerc is not a percentage: {text:?}"))
}

/// `45.2MiB`, `512KiB`, `1.5GiB`, `800B`, and the decimal `kB`/`MB`/`GB` some engines print → MiB.
fn mebibytes(text: &str) -> anyhow::Result<f64> {
    let text = text.trim();
    if text == "--" || text.is_empty() {
        return Ok(0.0);
    }
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("MemUsage is not a size: {text:?}"))?;
    let bytes = match unit {
        "B" | "" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => bail!("MemUsage has an unknown unit {other:?}: {text:?}"),
    };
    Ok(value * bytes / (1024.0 * 1024.0))
}

/// The figures of `ids` right now (one engine round trip, about two seconds: stats samples twice).
pub fn usage(ctx: &Ctx, ids: &[String]) -> anyhow::Result<Vec<Usage>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let output = ctx
        .target
        .docker
        .stats_json(ids)
        .capture(None)
        .context("docker stats")?;
    parse(&output)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn stats_lines_become_millicores_and_mebibytes() {
        let output = r#"{"BlockIO":"0B / 0B","CPUPerc":"12.50%","Container":"a1","ID":"a1b2c3d4e5f6","MemPerc":"0.57%","MemUsage":"45.5MiB / 7.7GiB","Name":"p-websocket-1","NetIO":"1kB / 2kB","PIDs":"9"}
{"CPUPerc":"150.00%","ID":"b2","MemUsage":"1.5GiB / 7.7GiB"}
{"CPUPerc":"--","ID":"c3","MemUsage":"-- / --"}
{"CPUPerc":"0.00%","ID":"d4","MemUsage":"2MB / 1GB"}
"#;
        let usage = parse(output).unwrap();
        assert_eq!(usage.len(), 4);
        assert_eq!(usage[0].id, "a1b2c3d4e5f6");
        assert!((usage[0].cpu_millicores - 125.0).abs() < 1e-9);
        assert!((usage[0].memory_mib - 45.5).abs() < 1e-9);
        assert!((usage[1].cpu_millicores - 1500.0).abs() < 1e-9);
        assert!((usage[1].memory_mib - 1536.0).abs() < 1e-9);
        assert_eq!((usage[2].cpu_millicores, usage[2].memory_mib), (0.0, 0.0));
        assert!((usage[3].memory_mib - 2e6 / 1048576.0).abs() < 1e-9);
        assert!(parse(r#"{"CPUPerc":"x%","ID":"e","MemUsage":"1MiB / 2MiB"}"#).is_err());
        assert!(parse(r#"{"CPUPerc":"1%","ID":"e","MemUsage":"1PiB / 2PiB"}"#).is_err());
    }
}
