//! The edge of a stack as a deploy drives it: the nginx container, its state directory (through the
//! engine, see [`crate::nginx::EngineEdge`]) and its published plain-HTTP port; the model it runs, routes
//! staged and made live, and the URL probe traffic reaches it by.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use xshell::Shell;

use super::containers::Inspect;
use super::interrupt::Stopped;
use super::lock::{self, Holding};
use super::slots::{self, Routing, Slot};
use crate::container_exec::DockerCli;
use crate::nginx::{self, EdgeModel, LIVE, ReloadOptions};

/// Where the nginx container mounts its tree (see docker/compose.yml).
const EDGE_MOUNT: &str = "/etc/nginx";

/// The edge of a stack: its container and state directory (through the engine).
#[derive(Debug, Clone)]
pub struct Edge {
    pub container: String,
    /// The host port nginx's port 80 is published on, and the address it is bound to.
    http_port: String,
    http_host_ip: String,
    /// The engine endpoint, asked for once.
    endpoint: std::sync::OnceLock<String>,
    pub engine: nginx::EngineEdge,
    /// The deploy lock this command holds, if any: its fence goes with every swap.
    holding: Holding,
}

impl Edge {
    /// The edge of the running nginx container `raw` (its `docker container inspect` object).
    pub(super) fn from_inspect(
        docker: &DockerCli,
        raw: &serde_json::Value,
        holding: Holding,
    ) -> anyhow::Result<Edge> {
        let nginx = Inspect::deserialize(raw).context("unexpected `docker inspect` output")?;
        let container = nginx.name.trim_start_matches('/').to_owned();
        let engine = nginx::EngineEdge::from_inspect(
            docker.clone(),
            &container,
            Path::new(EDGE_MOUNT),
            raw,
        )?;
        let http_port = nginx
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut ports| ports.remove("80/tcp").flatten())
            .and_then(|bindings| bindings.into_iter().next())
            .with_context(|| format!("the edge container {container} publishes no port 80"))?;
        Ok(Edge {
            container,
            http_port: http_port.host_port,
            http_host_ip: http_port.host_ip,
            endpoint: std::sync::OnceLock::new(),
            engine,
            holding,
        })
    }

    /// The model the edge runs now: the live tree's, or the flat tree an older `cargo xtask up` rendered.
    pub fn model(&self) -> anyhow::Result<EdgeModel> {
        match self.engine.read_model(LIVE)? {
            Some(model) => Ok(model),
            None => self
                .engine
                .read_model("")?
                .context("the edge's state directory holds no model.json"),
        }
    }

    /// Renders `model`, checks it with the edge's nginx, swaps it in and reloads gracefully (see
    /// [`Self::finish`]).
    pub fn apply(&self, sh: &Shell, model: &EdgeModel) -> anyhow::Result<nginx::ReloadReport> {
        self.finish(sh, self.stage(model)?)
    }

    /// Renders `model` and checks it with the edge's nginx; nothing changes until [`Self::finish`].
    /// Under the deploy lock the model carries the lock's fence.
    pub fn stage(&self, model: &EdgeModel) -> anyhow::Result<nginx::PendingReload> {
        let mut model = model.clone();
        let lost = |why| anyhow::Error::new(Stopped::LeaseLost(why));
        if let Some(fence) = self.holding.fence().map_err(lost)? {
            // Every staged model is derived from the live one as read (`model()`), which carries the fence
            // of its writer: checked here without another round trip on a rollback's clock; `finish`
            // checks the lease again.
            lock::edge_fence_allows(Some(fence), model.fence).map_err(lost)?;
            model.fence = Some(fence);
        }
        nginx::stage_reload(&nginx::Target::Container(self.engine.clone()), &model)
    }

    /// Swaps a staged tree in and reloads gracefully. The reload is verified through the published port
    /// when the engine is on this machine (what users reach, and no `docker exec` round trips on a
    /// rollback's clock), else from inside the edge container.
    pub fn finish(
        &self,
        sh: &Shell,
        pending: nginx::PendingReload,
    ) -> anyhow::Result<nginx::ReloadReport> {
        // Fenced: a holder that lost its lease swaps nothing (the live model's fence was checked when
        // this tree was staged).
        self.holding
            .fence()
            .map_err(|why| anyhow::Error::new(Stopped::LeaseLost(why)))?;
        // Not base_url(): AVALON_EDGE_URL may name a load balancer, and /.avalon/config answers
        // internal addresses only.
        let verify_url = endpoint_host(self.endpoint())
            .is_none()
            .then(|| format!("http://127.0.0.1:{}", self.http_port));
        let options = ReloadOptions {
            verify_url,
            ..ReloadOptions::default()
        };
        pending.finish(sh, &options)
    }

    pub fn route(
        &self,
        sh: &Shell,
        routing: Routing,
        keep_idle: Option<Slot>,
    ) -> anyhow::Result<nginx::ReloadReport> {
        self.finish(sh, self.stage_route(routing, keep_idle)?)
    }

    /// The edge model for `routing` (from the live one), staged.
    pub fn stage_route(
        &self,
        routing: Routing,
        keep_idle: Option<Slot>,
    ) -> anyhow::Result<nginx::PendingReload> {
        self.stage(&slots::edge_model(&self.model()?, routing, keep_idle))
    }

    /// The published plain-HTTP port as this machine reaches it (probe traffic of a judgment).
    pub fn base_url(&self) -> anyhow::Result<String> {
        // A port bound to the engine host's loopback is out of reach from any other machine.
        let elsewhere = endpoint_host(self.endpoint()).is_some_and(|host| {
            !matches!(host.as_str(), "localhost" | "[::1]") && !host.starts_with("127.")
        });
        let overridden = std::env::var("AVALON_EDGE_URL").is_ok_and(|url| !url.is_empty());
        if elsewhere && !overridden && self.http_host_ip.starts_with("127.") {
            bail!(
                "the edge publishes port {} on the engine host's loopback only ({}): set AVALON_EDGE_URL \
                 to a URL this machine reaches it by (an ssh tunnel, say)",
                self.http_port,
                self.http_host_ip
            );
        }
        Ok(edge_url(&self.http_port, self.endpoint()))
    }

    /// The engine's endpoint, asked once (a `docker context inspect`).
    pub fn endpoint(&self) -> &str {
        self.endpoint.get_or_init(|| self.engine.docker.endpoint())
    }
}

/// The edge URL for the published `port`: on this machine for a local engine, on the engine's host for
/// `tcp://` and `ssh://` endpoints. `AVALON_EDGE_URL` overrides (a load balancer or DNS name in front of
/// the host).
fn edge_url(port: &str, endpoint: &str) -> String {
    if let Some(url) = std::env::var("AVALON_EDGE_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        return url.trim_end_matches('/').to_owned();
    }
    let host = endpoint_host(endpoint).unwrap_or_else(|| "127.0.0.1".to_owned());
    format!("http://{host}:{port}")
}

/// The host of a remote engine endpoint; `None` for a local socket.
pub(super) fn endpoint_host(endpoint: &str) -> Option<String> {
    let rest = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("ssh://"))?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next()?),
        None => host_port.split(':').next()?.to_owned(),
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_edge_url_is_on_the_engine_host_for_remote_endpoints() {
        assert_eq!(
            edge_url("8080", "unix:///var/run/docker.sock"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            edge_url("80", "ssh://ops@game.example.com"),
            "http://game.example.com:80"
        );
        assert_eq!(
            edge_url("8080", "tcp://10.0.0.5:2376"),
            "http://10.0.0.5:8080"
        );
        assert_eq!(
            endpoint_host("ssh://ops@[2001:db8::1]:22"),
            Some("[2001:db8::1]".to_owned())
        );
        assert_eq!(endpoint_host("npipe:////./pipe/docker_engine"), None);
    }
}
