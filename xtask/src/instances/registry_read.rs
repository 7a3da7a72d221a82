//! The instance registry as the stack's Redis holds it, read through the engine: one `redis-cli EVAL`
//! (SCAN + MGET) in the stack's redis container, authenticated by REDIS_PASSWORD when xtask has it, else
//! by the container's own Compose secret — never a password on a command line.

use anyhow::Context;
use avalon_runtime::registry::{InstanceRecord, KEY_PREFIX};

use crate::container_exec::{ContainerRef, secret_from_env};
use crate::deploy::Target;

/// The Compose service that runs the stack's Redis.
pub const REDIS_SERVICE: &str = "redis";

/// Every record in the stack's registry, sorted by id.
pub fn read(target: &Target) -> anyhow::Result<Vec<InstanceRecord>> {
    let container = target
        .docker
        .resolve(&ContainerRef::ComposeService {
            project: target.project.clone(),
            service: REDIS_SERVICE.to_owned(),
        })
        .context("the instance registry lives in the stack's Redis")?;
    let password = secret_from_env("REDIS_PASSWORD")?;
    let output =
        crate::command::registry_records(&target.docker, &container, password.as_ref(), KEY_PREFIX)
            .capture(None)
            .context("reading the instance registry from the stack's Redis")?;
    parse_records(&output)
}

/// redis-cli's output of the scan script: one record of JSON per line (nothing when the registry is
/// empty). Anything else — an error reply such as `NOAUTH`, a record that is not the agreed JSON — is an
/// error naming what was found.
pub fn parse_records(output: &str) -> anyhow::Result<Vec<InstanceRecord>> {
    let mut records = output
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            if !line.starts_with('{') {
                anyhow::bail!("Redis answered {line:?} instead of instance records");
            }
            serde_json::from_str::<InstanceRecord>(line)
                .with_context(|| format!("a registry record is not the agreed JSON: {line}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    records.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(records)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const API: &str = r#"{"id":"api-0123456789ab-3000","service":"api","version":"0.3.0","revision":"abc","slot":null,"host":"0123456789ab","address":"172.20.0.4:3000","port":3000,"started_at":"2026-12-05T02:40:00Z","heartbeat_at":"2026-12-05T02:41:00Z","state":"ready","connections":1,"rooms":0,"live_games":0,"max_connections":10000}"#;

    #[test]
    fn one_record_per_line_sorted_by_id() {
        let ws = API
            .replace("api-0123", "websocket-0123")
            .replace("\"api\"", "\"websocket\"")
            .replace("\"ready\"", "\"draining\"");
        let records = parse_records(&format!("{ws}\n{API}\n")).unwrap();
        assert_eq!(
            records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["api-0123456789ab-3000", "websocket-0123456789ab-3000"]
        );
        assert_eq!(records[1].state.name(), "draining");
    }

    #[test]
    fn an_empty_registry_is_no_records() {
        assert!(parse_records("").unwrap().is_empty());
        assert!(parse_records("\n").unwrap().is_empty());
    }

    #[test]
    fn an_error_reply_or_a_foreign_value_is_an_error() {
        let err = parse_records("NOAUTH Authentication required.\n").unwrap_err();
        assert!(err.to_string().contains("NOAUTH"), "{err}");
        let err = parse_records(r#"{"id":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("agreed JSON"), "{err}");
    }
}
