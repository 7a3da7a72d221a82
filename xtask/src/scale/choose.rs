//! Which instances a scale-in drains (pure). Like Agones, which never removes an allocated game server,
//! the instances with the fewest live games go first; then the fewest connections; an instance not
//! registered or already draining before any ready one; the newest (highest-numbered) on a tie.

use std::cmp::Reverse;

use super::membership::Instance;

/// `count` instances of `candidates` to remove, in the order they should go.
pub fn scale_in_victims(candidates: &[Instance], count: usize) -> Vec<Instance> {
    let mut ordered: Vec<&Instance> = candidates.iter().collect();
    ordered.sort_by_key(|i| {
        (
            i.ready,
            i.live_games,
            i.connections,
            Reverse(replica_number(&i.container_name)),
        )
    });
    ordered.into_iter().take(count).cloned().collect()
}

/// Compose names replicas `<project>-<service>-<n>`.
fn replica_number(name: &str) -> u32 {
    name.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, ready: bool, live_games: u64, connections: u64) -> Instance {
        Instance {
            container_id: name.to_owned(),
            container_name: name.to_owned(),
            service: "websocket-blue".to_owned(),
            address: None,
            ready,
            registered: true,
            connections,
            live_games,
        }
    }

    #[test]
    fn the_fewest_live_games_go_first_then_connections_then_the_newest() {
        let candidates = [
            instance("p-websocket-blue-1", true, 3, 40),
            instance("p-websocket-blue-2", true, 0, 12),
            instance("p-websocket-blue-3", true, 0, 12),
            instance("p-websocket-blue-4", true, 1, 2),
        ];
        let names = |victims: Vec<Instance>| {
            victims
                .into_iter()
                .map(|v| v.container_name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(scale_in_victims(&candidates, 3)),
            [
                "p-websocket-blue-3",
                "p-websocket-blue-2",
                "p-websocket-blue-4"
            ]
        );
        let mut with_draining = candidates.to_vec();
        with_draining.push(instance("p-websocket-blue-5", false, 9, 90));
        assert_eq!(
            names(scale_in_victims(&with_draining, 1)),
            ["p-websocket-blue-5"]
        );
    }
}
