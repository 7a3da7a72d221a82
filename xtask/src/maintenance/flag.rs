//! The stack-wide maintenance flag, as agreed between the services and xtask: the Redis key
//! `avalon:maintenance` holds `{"enabled":true,"message":"…","retry_after":N}` (both services
//! honour it, reading it every `avalon_runtime::maintenance_flag::POLL_EVERY`), and every change is
//! also announced on `avalon:maintenance:changed` for subscribers (the services do not subscribe yet).
//!
//! xtask sets it with `redis-cli` inside the redis container through the Docker CLI; the password
//! travels as `REDISCLI_AUTH` in the environment (redis-cli reads it there), never on a command line.
//! Callers: `backup restore` (through [`MaintenanceGuard`]); the deploy commands may use the same.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::container_exec::{ContainerRef, DockerCli, Invocation, SecretValue, secret_from_env};

pub const FLAG_KEY: &str = avalon_runtime::maintenance_flag::KEY;
pub const CHANGED_CHANNEL: &str = "avalon:maintenance:changed";

/// The value stored under [`FLAG_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceState {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Seconds, for the `Retry-After` header of the 503 answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
}

impl MaintenanceState {
    pub fn on(message: impl Into<String>, retry_after: u32) -> Self {
        Self {
            enabled: true,
            message: Some(message.into()),
            retry_after: Some(retry_after),
        }
    }

    pub fn off() -> Self {
        Self {
            enabled: false,
            message: None,
            retry_after: None,
        }
    }
}

/// How to reach Redis: `redis-cli` in a container of the stack.
#[derive(Debug, Clone)]
pub struct MaintenanceFlag {
    docker: DockerCli,
    container: ContainerRef,
    password: Option<SecretValue>,
}

impl MaintenanceFlag {
    /// The password comes from REDIS_PASSWORD or REDIS_PASSWORD_FILE, as for the services.
    pub fn new(docker: DockerCli, container: ContainerRef) -> anyhow::Result<Self> {
        Ok(Self {
            docker,
            container,
            password: secret_from_env("REDIS_PASSWORD")?,
        })
    }

    pub fn set(&self, state: &MaintenanceState) -> anyhow::Result<()> {
        let value = serde_json::to_string(state).context("serializing the maintenance flag")?;
        let container = self.docker.resolve(&self.container)?;
        let reply = self
            .redis_cli(&container, ["SET", FLAG_KEY, &value])
            .capture(None)?;
        if reply.trim() != "OK" {
            bail!("redis refused to set {FLAG_KEY}: {}", reply.trim());
        }
        // The key is the truth; a lost announcement only delays the switch until the next poll.
        let published = self
            .redis_cli(&container, ["PUBLISH", CHANGED_CHANNEL, &value])
            .capture(None)?;
        if published.trim().parse::<u64>().is_err() {
            eprintln!(
                "warning: announcing the maintenance change on {CHANGED_CHANNEL} failed: {}",
                published.trim()
            );
        }
        eprintln!("maintenance {}", if state.enabled { "ON" } else { "OFF" });
        Ok(())
    }

    /// The flag as stored; None when the key was never set (`cargo xtask maintenance status`).
    pub fn get(&self) -> anyhow::Result<Option<MaintenanceState>> {
        let container = self.docker.resolve(&self.container)?;
        let reply = self
            .redis_cli(&container, ["GET", FLAG_KEY])
            .read_only()
            .capture(None)?;
        let reply = reply.trim();
        if reply.is_empty() {
            return Ok(None);
        }
        serde_json::from_str(reply).map(Some).with_context(|| {
            format!("{FLAG_KEY} holds something other than the agreed JSON: {reply}")
        })
    }

    /// `redis-cli` in the container (replies print bare when not on a terminal). The password is
    /// REDIS_PASSWORD when xtask has one, else the container's own Compose secret file.
    pub fn redis_cli<const N: usize>(&self, container: &str, command: [&str; N]) -> Invocation {
        crate::command::redis_cli(
            &self.docker,
            container,
            self.password.as_ref(),
            Invocation::new("redis-cli").args(command),
        )
    }

    /// Turns maintenance on and returns a guard that turns it off again when dropped, whether the
    /// work in between succeeded, failed or panicked.
    pub fn enable_for(
        &self,
        message: &str,
        retry_after: u32,
    ) -> anyhow::Result<MaintenanceGuard<'_>> {
        self.set(&MaintenanceState::on(message, retry_after))?;
        Ok(MaintenanceGuard {
            flag: self,
            released: false,
        })
    }
}

/// Holds maintenance on; see [`MaintenanceFlag::enable_for`].
#[must_use = "maintenance is switched off when the guard is dropped"]
pub struct MaintenanceGuard<'a> {
    flag: &'a MaintenanceFlag,
    released: bool,
}

impl MaintenanceGuard<'_> {
    /// Switches maintenance off and reports whether that worked.
    pub fn release(mut self) -> anyhow::Result<()> {
        self.released = true;
        self.flag.set(&MaintenanceState::off())
    }
}

impl Drop for MaintenanceGuard<'_> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Err(error) = self.flag.set(&MaintenanceState::off()) {
            eprintln!(
                "ERROR: maintenance is still ON and could not be switched off: {error:#}\n\
                 switch it off by hand: redis-cli SET {FLAG_KEY} '{{\"enabled\":false}}'"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_the_agreed_json() {
        let on = serde_json::to_value(MaintenanceState::on("restoring", 120)).unwrap();
        assert_eq!(
            on,
            serde_json::json!({"enabled": true, "message": "restoring", "retry_after": 120})
        );
        let off = serde_json::to_string(&MaintenanceState::off()).unwrap();
        assert_eq!(off, r#"{"enabled":false}"#);
    }

    #[test]
    fn set_then_get_through_the_docker_cli() {
        let fake = crate::backup::fake_docker::FakeDocker::new();
        let flag = MaintenanceFlag {
            docker: fake.docker(),
            container: ContainerRef::ComposeService {
                project: "avalon".to_owned(),
                service: "redis".to_owned(),
            },
            password: None,
        };
        {
            let _guard = flag.enable_for("upgrading", 60).unwrap();
            assert_eq!(
                flag.get().unwrap(),
                Some(MaintenanceState::on("upgrading", 60))
            );
        }
        assert_eq!(flag.get().unwrap(), Some(MaintenanceState::off()));
        let calls = fake.calls();
        assert!(
            calls[0].contains("label=com.docker.compose.service=redis"),
            "{calls:?}"
        );
        assert!(
            calls.iter().any(|call| call
                .ends_with(" redis-cli PUBLISH avalon:maintenance:changed {\"enabled\":false}")),
            "{calls:#?}"
        );
    }

    #[test]
    fn redis_password_travels_by_name() {
        let flag = MaintenanceFlag {
            docker: DockerCli::default(),
            container: ContainerRef::Named("r1".to_owned()),
            password: Some(SecretValue::new("pw-123".to_owned())),
        };
        let invocation = flag.redis_cli("r1", ["GET", FLAG_KEY]);
        assert_eq!(
            invocation.args,
            [
                "exec",
                "-i",
                "-e",
                "REDISCLI_AUTH",
                "r1",
                "redis-cli",
                "GET",
                FLAG_KEY
            ]
        );
        assert!(!invocation.to_string().contains("pw-123"));
        assert_eq!(invocation.secret_values().collect::<Vec<_>>(), ["pw-123"]);
    }
}
