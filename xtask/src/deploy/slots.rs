//! The two slots and what the edge should route to, given which slots are running.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::nginx::{EdgeModel, Slot as EdgeSlot};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    Blue,
    Green,
}

pub const ALL: [Slot; 2] = [Slot::Blue, Slot::Green];
/// The compose services of the stack before its first slotted deploy (`cargo xtask up`).
pub const UNSLOTTED_SERVICES: [&str; 2] = ["api", "websocket"];
pub const API_PORT: u16 = 3000;
pub const WS_PORT: u16 = 3001;

impl Slot {
    pub fn name(self) -> &'static str {
        match self {
            Slot::Blue => "blue",
            Slot::Green => "green",
        }
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::Blue => Slot::Green,
            Slot::Green => Slot::Blue,
        }
    }

    pub fn parse(name: &str) -> Option<Slot> {
        ALL.into_iter().find(|slot| slot.name() == name)
    }

    pub fn api_service(self) -> String {
        format!("api-{}", self.name())
    }

    pub fn ws_service(self) -> String {
        format!("websocket-{}", self.name())
    }

    pub fn services(self) -> [String; 2] {
        [self.api_service(), self.ws_service()]
    }

    /// The slot a compose service belongs to, from its name.
    pub fn of_service(service: &str) -> Option<Slot> {
        ALL.into_iter()
            .find(|slot| slot.services().iter().any(|s| s == service))
    }

    /// The edge's view of this slot: one upstream server per service (compose DNS names).
    pub fn edge_slot(self, weight: u8) -> EdgeSlot {
        EdgeSlot {
            name: self.name().to_owned(),
            api: vec![format!("{}:{API_PORT}", self.api_service())],
            websocket: vec![format!("{}:{WS_PORT}", self.ws_service())],
            weight,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The routing wanted: `primary` takes `100 - canary_weight`, `canary` (if any) the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Routing {
    pub primary: Slot,
    pub canary: Option<(Slot, u8)>,
}

impl Routing {
    pub fn all_to(slot: Slot) -> Self {
        Self {
            primary: slot,
            canary: None,
        }
    }

    pub fn weight_of(&self, slot: Slot) -> u8 {
        match self.canary {
            Some((canary, weight)) if canary == slot => weight,
            Some((_, weight)) if self.primary == slot => 100 - weight.min(100),
            None if self.primary == slot => 100,
            _ => 0,
        }
    }

    pub fn describe(&self) -> String {
        match self.canary {
            Some((canary, weight)) => format!(
                "{} {}% / {} {}%",
                self.primary,
                100 - weight,
                canary,
                weight
            ),
            None => format!("{} 100%", self.primary),
        }
    }
}

/// `base` (the live model: TLS, limits, maintenance…) with its slots replaced by `routing`. A slot that
/// takes 0 % stays in the model (reachable by the override cookie) only when `keep_idle` names it, because
/// nginx resolves upstream names when it loads: a stopped slot must leave the model before it stops.
pub fn edge_model(base: &EdgeModel, routing: Routing, keep_idle: Option<Slot>) -> EdgeModel {
    let mut model = base.clone();
    let mut slots = vec![
        routing
            .primary
            .edge_slot(routing.weight_of(routing.primary)),
    ];
    let second = routing
        .canary
        .map(|(slot, _)| slot)
        .or(keep_idle)
        .filter(|slot| *slot != routing.primary);
    if let Some(slot) = second {
        slots.push(slot.edge_slot(routing.weight_of(slot)));
    }
    model.slots = slots;
    model.canary.slot = second.map(|slot| slot.name().to_owned());
    // Members of a slot that stays are still its running instances; a slot that leaves takes its members
    // with it, so a slot that comes back starts on its DNS name until the follower fills them again.
    model.prune_members();
    model
}

/// The routing a live edge model describes, when its slots are ours. A slot counts as ours only when it
/// names our slot services: the stack's default model also calls its one slot `blue`, but that one points
/// at the unslotted `api`/`websocket` services `cargo xtask up` started.
pub fn routing_of(model: &EdgeModel) -> Option<Routing> {
    let mut slots: Vec<(Slot, u8)> = model
        .slots
        .iter()
        .filter_map(|s| {
            let slot = Slot::parse(&s.name)?;
            let ours = slot.edge_slot(s.weight);
            (s.api == ours.api && s.websocket == ours.websocket).then_some((slot, s.weight))
        })
        .collect();
    slots.sort_by_key(|(_, weight)| std::cmp::Reverse(*weight));
    let (primary, _) = *slots.first()?;
    let canary = model
        .canary
        .slot
        .as_deref()
        .and_then(Slot::parse)
        .filter(|slot| *slot != primary)
        .map(|slot| (slot, model.slot(slot.name()).map_or(0, |s| s.weight)));
    Some(Routing { primary, canary })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn services_and_names_map_both_ways() {
        assert_eq!(Slot::Blue.other(), Slot::Green);
        assert_eq!(Slot::Green.services(), ["api-green", "websocket-green"]);
        assert_eq!(Slot::of_service("websocket-blue"), Some(Slot::Blue));
        assert_eq!(Slot::of_service("api"), None);
    }

    #[test]
    fn a_canary_model_is_valid_and_reads_back_as_the_same_routing() {
        let routing = Routing {
            primary: Slot::Blue,
            canary: Some((Slot::Green, 25)),
        };
        let model = edge_model(&EdgeModel::default(), routing, None);
        model.validate().unwrap();
        assert_eq!(
            model.slots.iter().map(|s| s.weight).collect::<Vec<_>>(),
            [75, 25]
        );
        assert_eq!(model.slots[1].api, ["api-green:3000"]);
        assert_eq!(model.canary.slot.as_deref(), Some("green"));
        assert_eq!(routing_of(&model), Some(routing));
        assert_eq!(routing.describe(), "blue 75% / green 25%");
    }

    #[test]
    fn the_default_model_is_unslotted_although_its_slot_is_called_blue() {
        let model = EdgeModel::default();
        assert_eq!(model.slots[0].name, "blue");
        assert_eq!(routing_of(&model), None);
    }

    #[test]
    fn members_stay_with_their_slot_and_leave_with_it() {
        let mut live = edge_model(&EdgeModel::default(), Routing::all_to(Slot::Blue), None);
        live.members.insert(
            "websocket-blue".to_owned(),
            vec!["172.18.0.5:3001".to_owned()],
        );
        assert_eq!(routing_of(&live), Some(Routing::all_to(Slot::Blue)));
        let switching = edge_model(&live, Routing::all_to(Slot::Green), Some(Slot::Blue));
        switching.validate().unwrap();
        assert_eq!(switching.members.len(), 1, "blue still runs");
        let switched = edge_model(&switching, Routing::all_to(Slot::Green), None);
        switched.validate().unwrap();
        assert!(switched.members.is_empty(), "{:?}", switched.members);
        assert_eq!(switched.slots[0].websocket, ["websocket-green:3001"]);
    }

    #[test]
    fn an_idle_slot_is_kept_only_when_asked() {
        let all_green = Routing::all_to(Slot::Green);
        let alone = edge_model(&EdgeModel::default(), all_green, None);
        assert_eq!(alone.slots.len(), 1);
        alone.validate().unwrap();
        let with_idle = edge_model(&EdgeModel::default(), all_green, Some(Slot::Blue));
        with_idle.validate().unwrap();
        assert_eq!(
            with_idle
                .slots
                .iter()
                .map(|s| (s.name.as_str(), s.weight))
                .collect::<Vec<_>>(),
            [("green", 100), ("blue", 0)]
        );
        assert_eq!(routing_of(&with_idle).unwrap().primary, Slot::Green);
    }
}
