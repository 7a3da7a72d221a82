//! The human form of `cargo xtask instances`: one line per instance, then the disagreements.

use std::fmt::Write as _;

use super::view::InstancesView;

const HEADERS: [&str; 11] = [
    "CONTAINER",
    "SERVICE",
    "SLOT",
    "VERSION",
    "STATE",
    "HEALTH",
    "BACKEND IP",
    "CONN",
    "ROOMS",
    "GAMES",
    "HEARTBEAT",
];

fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

pub fn render(view: &InstancesView) -> String {
    let rows: Vec<[String; 11]> = view
        .instances
        .iter()
        .map(|instance| {
            [
                instance
                    .container
                    .clone()
                    .unwrap_or_else(|| "(no container)".to_owned()),
                instance.service.clone(),
                or_dash(instance.slot.as_ref()),
                or_dash(instance.version.as_ref()),
                instance.state.map_or_else(
                    || {
                        format!(
                            "unregistered ({})",
                            or_dash(instance.container_state.as_ref())
                        )
                    },
                    |state| state.to_string(),
                ),
                or_dash(instance.health.as_ref()),
                or_dash(instance.backend_ip.as_ref()),
                match (instance.connections, instance.max_connections) {
                    (Some(open), Some(max)) => format!("{open}/{max}"),
                    _ => "-".to_owned(),
                },
                or_dash(instance.rooms),
                or_dash(instance.live_games),
                or_dash(instance.heartbeat_at.as_ref()),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&HEADERS.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    if view.instances.is_empty() {
        let _ = writeln!(
            out,
            "(no api or websocket instance in project {})",
            view.project
        );
    }
    if view.disagreements.is_empty() {
        let _ = writeln!(out, "\nengine and registry agree");
    } else {
        let _ = writeln!(out, "\nDISAGREEMENTS ({}):", view.disagreements.len());
        for disagreement in &view.disagreements {
            let _ = writeln!(out, "  {}: {}", disagreement.kind, disagreement.detail);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::view::{Disagreement, Instance};
    use avalon_runtime::registry::InstanceState;

    #[test]
    fn the_table_lines_up_and_lists_the_disagreements() {
        let registered = Instance {
            id: Some("websocket-aaaaaaaaaaaa-3001".to_owned()),
            container: Some("avalon-offline-websocket-blue-1".to_owned()),
            service: "websocket".to_owned(),
            slot: Some("blue".to_owned()),
            version: Some("0.3.0".to_owned()),
            state: Some(InstanceState::Draining),
            container_state: Some("running".to_owned()),
            health: Some("healthy".to_owned()),
            backend_ip: Some("172.20.0.5".to_owned()),
            address: Some("172.21.0.5:3001".to_owned()),
            connections: Some(12),
            rooms: Some(3),
            live_games: Some(2),
            max_connections: Some(10000),
            heartbeat_at: Some("2026-12-05T02:41:00.250Z".to_owned()),
        };
        let unregistered = Instance {
            id: None,
            container: Some("avalon-offline-api-1".to_owned()),
            service: "api".to_owned(),
            slot: None,
            version: None,
            state: None,
            container_state: Some("running".to_owned()),
            health: Some("healthy".to_owned()),
            backend_ip: Some("172.20.0.6".to_owned()),
            address: None,
            connections: None,
            rooms: None,
            live_games: None,
            max_connections: None,
            heartbeat_at: None,
        };
        let view = InstancesView {
            project: "avalon-offline".to_owned(),
            instances: vec![registered, unregistered],
            disagreements: vec![Disagreement {
                kind: "unregistered",
                container: Some("avalon-offline-api-1".to_owned()),
                id: None,
                detail:
                    "avalon-offline-api-1 is running (healthy) but has no record in the registry"
                        .to_owned(),
            }],
        };
        let text = render(&view);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("CONTAINER"), "{text}");
        let state_at = lines[0].find("STATE").unwrap();
        assert_eq!(&lines[1][state_at..state_at + 8], "draining", "{text}");
        assert_eq!(&lines[2][state_at..state_at + 12], "unregistered", "{text}");
        assert!(lines[1].contains("12/10000"), "{text}");
        assert!(
            text.contains("DISAGREEMENTS (1):\n  unregistered: avalon-offline-api-1 is running"),
            "{text}"
        );
    }
}
