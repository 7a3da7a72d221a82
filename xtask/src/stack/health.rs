//! What `docker compose ps` says about a stack's containers, and the log lines of the unhealthy ones.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::compose::Stack;

/// Lines of log printed for each service that failed to become healthy.
const FAILURE_LOG_LINES: u32 = 40;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceState {
    #[serde(rename(deserialize = "Service"))]
    pub service: String,
    #[serde(rename(deserialize = "Name"))]
    pub container: String,
    #[serde(rename(deserialize = "State"))]
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or empty for a container without a healthcheck.
    #[serde(rename(deserialize = "Health"), default)]
    pub health: String,
    #[serde(rename(deserialize = "Image"), default)]
    pub image: String,
}

impl ServiceState {
    pub fn is_healthy(&self) -> bool {
        self.state == "running" && (self.health == "healthy" || self.health.is_empty())
    }
}

/// Every container of the stack, running or not.
pub fn services(stack: &Stack) -> anyhow::Result<Vec<ServiceState>> {
    let output = stack.ps_json().context("docker compose ps")?;
    parse_ps(&output)
}

/// Compose v2 prints one JSON object per line (older v2 releases printed one array).
fn parse_ps(output: &str) -> anyhow::Result<Vec<ServiceState>> {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).context("parsing docker compose ps");
    }
    trimmed
        .lines()
        .map(|line| serde_json::from_str(line).context("parsing docker compose ps"))
        .collect()
}

pub fn print_table(services: &[ServiceState]) {
    println!("{:<12} {:<10} {:<10} IMAGE", "SERVICE", "STATE", "HEALTH");
    for service in services {
        let health = if service.health.is_empty() {
            "-"
        } else {
            &service.health
        };
        println!(
            "{:<12} {:<10} {:<10} {}",
            service.service, service.state, health, service.image
        );
    }
}

/// The last log lines of every service that is not healthy, so a failed `up` explains itself.
pub fn print_unhealthy(stack: &Stack, services: &[ServiceState]) {
    print_table(services);
    for service in services.iter().filter(|service| !service.is_healthy()) {
        eprintln!(
            "\n--- {} is {} ({}); its last {FAILURE_LOG_LINES} log lines:",
            service.service,
            service.state,
            if service.health.is_empty() {
                "no healthcheck"
            } else {
                &service.health
            }
        );
        let _ = stack.print_service_logs(&service.service, FAILURE_LOG_LINES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ps_output_shapes_parse() {
        let line = r#"{"Service":"api","Name":"p-api-1","State":"running","Health":"healthy","Image":"avalon-api:1"}"#;
        let lines = format!("{line}\n{}", line.replace("api", "redis"));
        assert_eq!(parse_ps(&lines).unwrap().len(), 2);
        assert_eq!(parse_ps(&format!("[{line}]")).unwrap()[0].service, "api");
        assert!(parse_ps("").unwrap().is_empty());
    }

    #[test]
    fn a_starting_or_exited_container_is_not_healthy() {
        let state = |state: &str, health: &str| ServiceState {
            service: "api".into(),
            container: "c".into(),
            state: state.into(),
            health: health.into(),
            image: String::new(),
        };
        assert!(state("running", "healthy").is_healthy());
        assert!(!state("running", "starting").is_healthy());
        assert!(!state("exited", "").is_healthy());
    }
}
