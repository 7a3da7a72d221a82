//! What is live, for a scale: the slot the edge's primary route names (or the stack `cargo xtask up`
//! started, before any slotted deploy), its compose service for api or websocket, and the release its
//! containers run (so added replicas run the very same images).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::deploy::{ContainerInfo, Live, Release, Slot};
use crate::nginx::EdgeModel;

/// The two services that scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    Api,
    Websocket,
}

impl ServiceKind {
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Api => "api",
            ServiceKind::Websocket => "websocket",
        }
    }
}

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The live stack of a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LiveStack {
    /// The edge's primary slot; `None` for the unslotted stack of `cargo xtask up`.
    pub slot: Option<Slot>,
    /// Its share of users.
    pub weight: u8,
}

impl LiveStack {
    /// From the live edge model and the containers; refuses a stack nothing serves.
    pub fn of(model: &EdgeModel, live: Live) -> anyhow::Result<Self> {
        match live {
            Live::Slot(slot) => Ok(Self {
                slot: Some(slot),
                weight: model.slot(slot.name()).map_or(100, |s| s.weight),
            }),
            Live::Unslotted => Ok(Self {
                slot: None,
                weight: 100,
            }),
            Live::Nothing => bail!(
                "nothing is live: no slot in the edge's routes and no running api/websocket; start the \
                 stack (`cargo xtask up`) or deploy first"
            ),
        }
    }

    /// The compose service that runs `kind` here.
    pub fn service(self, kind: ServiceKind) -> String {
        match (self.slot, kind) {
            (Some(slot), ServiceKind::Api) => slot.api_service(),
            (Some(slot), ServiceKind::Websocket) => slot.ws_service(),
            (None, kind) => kind.name().to_owned(),
        }
    }

    /// The ledger's name for it: the slot, or `unslotted`.
    pub fn slot_name(self) -> String {
        self.slot
            .map_or_else(|| "unslotted".to_owned(), |slot| slot.name().to_owned())
    }

    /// The release the live containers run: their release label (else image reference) and image ids.
    pub fn release(self, containers: &[ContainerInfo]) -> anyhow::Result<Release> {
        let mut images = BTreeMap::new();
        let mut version = None;
        for kind in [ServiceKind::Api, ServiceKind::Websocket] {
            let service = self.service(kind);
            let running = containers
                .iter()
                .find(|c| c.service == service && c.running())
                .with_context(|| {
                    format!("no running {service} container to take the release from")
                })?;
            images.insert(kind.name().to_owned(), running.image_id.clone());
            if kind == ServiceKind::Api {
                version = Some(
                    running
                        .release
                        .clone()
                        .unwrap_or_else(|| running.image.clone()),
                );
            }
        }
        Ok(Release {
            version: version.unwrap_or_default(),
            images,
            config_digest: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_live_slot_or_the_unslotted_stack_names_the_service_to_scale() {
        let model = EdgeModel {
            slots: vec![Slot::Green.edge_slot(100)],
            ..EdgeModel::default()
        };
        let green = LiveStack::of(&model, Live::Slot(Slot::Green)).unwrap();
        assert_eq!(green.service(ServiceKind::Websocket), "websocket-green");
        assert_eq!(green.slot_name(), "green");
        let unslotted = LiveStack::of(&EdgeModel::default(), Live::Unslotted).unwrap();
        assert_eq!(unslotted.service(ServiceKind::Api), "api");
        assert_eq!(unslotted.slot_name(), "unslotted");
        assert!(LiveStack::of(&model, Live::Nothing).is_err());
    }
}
