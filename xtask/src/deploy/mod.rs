//! Blue/green deploys, canaries with automated judgment, rollback, the release ledger, maintenance,
//! status and healing for the Compose stack (docs/operations.md; design: design.md §4).
//!
//! Commands: `cargo xtask deploy | canary … | rollback | releases | status`; `heal` ([`crate::heal`]) and
//! `maintenance` ([`crate::maintenance`]) have homes of their own and reach the stack through this module's
//! context and target.
//! One file per concern: [`ledger`] + [`ledger_store`] (history on the target), [`config`]
//! (deploy/deploy.toml), [`plan`] (actions shown by --dry-run and run as shown), [`analysis`] (judgment from
//! the access log), [`probe`] (synthetic traffic, with [`probe_ws`] Socket.IO sessions signed in by
//! [`probe_token`]), [`game_metrics`] and [`analysis_ws`] (the game server's signals), [`lock`] (leased,
//! fenced) + [`unlock`], [`interrupt`] (SIGINT/SIGTERM and a lost lease), [`preflight`], [`target`] (the
//! stack through Docker: [`containers`] what a listing says, [`slot_overlay`] a slot's compose overlay,
//! [`edge`] nginx), [`undo`] and [`kept`] (what a rollback undoes, and whether it reuses a kept slot),
//! [`labels`].

mod analysis;
mod analysis_ws;
mod canary;
pub(crate) mod config;
mod containers;
mod context;
mod deploy_cmd;
mod edge;
mod execute;
mod game_metrics;
pub mod interrupt;
mod kept;
mod labels;
pub(crate) mod ledger;
pub(crate) mod ledger_store;
mod live;
pub(crate) mod lock;
mod plan;
mod preflight;
mod probe;
mod probe_token;
mod probe_ws;
pub(crate) mod releases;
mod rollback;
mod slot_overlay;
mod slots;
mod status;
mod target;
mod undo;
mod unlock;
mod watch;

pub use canary::Canary;
pub use deploy_cmd::Deploy;
pub use releases::Releases;
pub use rollback::Rollback;
pub use status::Status;
pub use unlock::Unlock;
// What `heal` and `maintenance` (crate::heal, crate::maintenance) read: the stack through the same target and
// context as every deploy command.
#[cfg(test)]
pub(crate) use containers::parse_inspect;
pub(crate) use context::{Ctx, ScaleDraft, TargetArgs, from, who};
// What `scale`, `edge follow` and `autoscale` (crate::scale, crate::autoscale) use.
pub(crate) use ledger::{Outcome, Release};
pub(crate) use lock::DeployLock;
pub(crate) use plan::Live;
pub(crate) use slots::{API_PORT, Slot, UNSLOTTED_SERVICES, WS_PORT, routing_of};
pub(crate) use target::{ContainerInfo, Snapshot, Target};

/// A ledger time as operators read it in tables: `2026-11-26 06:33:13` (UTC).
pub(crate) fn table_time(at: time::OffsetDateTime) -> String {
    at.format(&time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Which images a command deploys: `--version V` (tag V of avalon-api / avalon-ws), `--image-tag T`, or
/// explicit references.
#[derive(clap::Args, Debug, Clone)]
pub struct ReleaseArgs {
    /// Release version; the images are avalon-api:V and avalon-ws:V (as `cargo xtask image build` tags them).
    /// (One of --version, --image-tag or --api-image/--ws-image names the release; checked by `resolve`,
    /// so `deploy --resume` can take its release from the ledger instead.)
    #[arg(long)]
    pub version: Option<String>,
    /// Deploy this image tag of avalon-api / avalon-ws (recorded as the version when --version is absent).
    #[arg(long, value_name = "TAG")]
    pub image_tag: Option<String>,
    /// Explicit api image reference (tag or digest); needs --ws-image.
    #[arg(long, value_name = "REF", requires = "ws_image")]
    pub api_image: Option<String>,
    /// Explicit websocket image reference (tag or digest).
    #[arg(long, value_name = "REF", requires = "api_image")]
    pub ws_image: Option<String>,
    /// Pull an image the target does not have (by the reference given: a digest pins the bits) before
    /// anything else changes; printed as it runs. Without it a missing image fails the pre-flight.
    #[arg(long)]
    pub pull: bool,
}

impl ReleaseArgs {
    /// (version, api image, websocket image)
    pub fn resolve(&self) -> anyhow::Result<(String, String, String)> {
        let tag = self.image_tag.clone().or_else(|| self.version.clone());
        let version = self.version.clone().or_else(|| self.image_tag.clone());
        let api = self
            .api_image
            .clone()
            .or_else(|| tag.as_ref().map(|t| format!("avalon-api:{t}")));
        let ws = self
            .ws_image
            .clone()
            .or_else(|| tag.as_ref().map(|t| format!("avalon-ws:{t}")));
        match (version, api, ws) {
            (Some(version), Some(api), Some(ws)) => Ok((version, api, ws)),
            (None, Some(api), Some(ws)) => {
                let version = api
                    .rsplit([':', '@'])
                    .next()
                    .unwrap_or("unversioned")
                    .to_owned();
                Ok((version, api, ws))
            }
            _ => anyhow::bail!(
                "name the release: --version V, --image-tag T, or --api-image and --ws-image"
            ),
        }
    }
}

/// `KEY=VALUE` for `--set-env`.
pub fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!("variable names are A-Z, 0-9 and _, got {key:?}"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn release_arguments_name_images_and_version() {
        let args = |version: Option<&str>, tag: Option<&str>| ReleaseArgs {
            version: version.map(str::to_owned),
            image_tag: tag.map(str::to_owned),
            api_image: None,
            ws_image: None,
            pull: false,
        };
        assert_eq!(
            args(Some("1.2.0"), None).resolve().unwrap(),
            (
                "1.2.0".to_owned(),
                "avalon-api:1.2.0".to_owned(),
                "avalon-ws:1.2.0".to_owned()
            )
        );
        assert_eq!(args(None, Some("sha-abc")).resolve().unwrap().0, "sha-abc");
        assert_eq!(
            args(Some("1.2.0"), Some("1.2.0-abc")).resolve().unwrap().1,
            "avalon-api:1.2.0-abc"
        );
    }

    #[test]
    fn set_env_pairs_are_checked() {
        assert_eq!(
            parse_env_pair("FAULT_INJECT_5XX_RATE=0.5").unwrap(),
            ("FAULT_INJECT_5XX_RATE".to_owned(), "0.5".to_owned())
        );
        assert!(parse_env_pair("lower=1").is_err());
        assert!(parse_env_pair("NOEQUALS").is_err());
    }
}
