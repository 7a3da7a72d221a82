//! Night-phase knowledge: what each character learns about the others before the first quest.

use serde::{Deserialize, Serialize};

use crate::Seat;
use crate::roles::{Role, Side};

/// What a player was shown about another seat. Deliberately never a role: even evil players only
/// learn that their allies are evil.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Insight {
    /// This seat is evil.
    Evil,
    /// This seat is Merlin or Morgana (Percival's view); which one is not revealed.
    MerlinOrMorgana,
}

/// One known fact about one seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeatKnowledge {
    /// The seat the fact is about.
    pub seat: Seat,
    /// What the viewer knows about that seat.
    pub insight: Insight,
}

/// What a `viewer` character is shown about an `other` character at night, if anything.
pub fn insight(viewer: Role, other: Role) -> Option<Insight> {
    match viewer {
        // Mordred's power is exactly to hide from Merlin; Oberon does not hide from him.
        Role::Merlin => {
            (other.side() == Side::Evil && other != Role::Mordred).then_some(Insight::Evil)
        }
        Role::Percival => {
            matches!(other, Role::Merlin | Role::Morgana).then_some(Insight::MerlinOrMorgana)
        }
        // Oberon keeps his eyes closed while the other evil players look around.
        Role::Oberon => None,
        Role::Assassin | Role::Morgana | Role::Mordred | Role::Minion => {
            (other.side() == Side::Evil && other != Role::Oberon).then_some(Insight::Evil)
        }
        Role::LoyalServant => None,
    }
}

/// Everything the player at `viewer` learned at night, in seat order. A seat never learns about
/// itself here: a player's own role is reported separately.
pub fn night_knowledge(roles: &[Role], viewer: Seat) -> Vec<SeatKnowledge> {
    let Some(&viewer_role) = roles.get(viewer) else {
        return Vec::new();
    };
    roles
        .iter()
        .enumerate()
        .filter(|(seat, _)| *seat != viewer)
        .filter_map(|(seat, &other)| {
            insight(viewer_role, other).map(|insight| SeatKnowledge { seat, insight })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::RoomOptions;
    use crate::testkit::{new_game, seat_of};

    #[test]
    fn insight_matrix() {
        use Insight::{Evil, MerlinOrMorgana};
        use Role::*;
        // Rows: viewer. Columns: Merlin, Percival, LoyalServant, Assassin, Morgana, Mordred,
        // Oberon, Minion.
        let expected: [(Role, [Option<Insight>; 8]); 8] = [
            (
                Merlin,
                [
                    None,
                    None,
                    None,
                    Some(Evil),
                    Some(Evil),
                    None,
                    Some(Evil),
                    Some(Evil),
                ],
            ),
            (
                Percival,
                [
                    Some(MerlinOrMorgana),
                    None,
                    None,
                    None,
                    Some(MerlinOrMorgana),
                    None,
                    None,
                    None,
                ],
            ),
            (LoyalServant, [None; 8]),
            (
                Assassin,
                [
                    None,
                    None,
                    None,
                    Some(Evil),
                    Some(Evil),
                    Some(Evil),
                    None,
                    Some(Evil),
                ],
            ),
            (
                Morgana,
                [
                    None,
                    None,
                    None,
                    Some(Evil),
                    Some(Evil),
                    Some(Evil),
                    None,
                    Some(Evil),
                ],
            ),
            (
                Mordred,
                [
                    None,
                    None,
                    None,
                    Some(Evil),
                    Some(Evil),
                    Some(Evil),
                    None,
                    Some(Evil),
                ],
            ),
            (Oberon, [None; 8]),
            (
                Minion,
                [
                    None,
                    None,
                    None,
                    Some(Evil),
                    Some(Evil),
                    Some(Evil),
                    None,
                    Some(Evil),
                ],
            ),
        ];
        for (viewer, row) in expected {
            for (other, want) in Role::ALL.into_iter().zip(row) {
                assert_eq!(
                    insight(viewer, other),
                    want,
                    "{viewer:?} looking at {other:?}"
                );
            }
        }
    }

    #[test]
    fn night_knowledge_per_role_for_a_fixed_seed() {
        let options = RoomOptions {
            percival: true,
            morgana: true,
            mordred: true,
            oberon: true,
            ..RoomOptions::default()
        };
        let game = new_game(10, options, 2024);
        let roles = game.roles.clone();
        let merlin = seat_of(&game, Role::Merlin);
        let percival = seat_of(&game, Role::Percival);
        let assassin = seat_of(&game, Role::Assassin);
        let morgana = seat_of(&game, Role::Morgana);
        let mordred = seat_of(&game, Role::Mordred);
        let oberon = seat_of(&game, Role::Oberon);
        let knows = |viewer: Seat| -> Vec<(Seat, Insight)> {
            let view = game.view_for(viewer).unwrap();
            assert_eq!(view.role, roles[viewer]);
            view.knowledge
                .iter()
                .map(|known| (known.seat, known.insight))
                .collect()
        };
        let sorted = |mut facts: Vec<(Seat, Insight)>| {
            facts.sort();
            facts
        };

        assert_eq!(
            sorted(knows(merlin)),
            sorted(vec![
                (assassin, Insight::Evil),
                (morgana, Insight::Evil),
                (oberon, Insight::Evil)
            ]),
            "Merlin sees evil except Mordred, Oberon included"
        );
        assert_eq!(
            sorted(knows(percival)),
            sorted(vec![
                (merlin, Insight::MerlinOrMorgana),
                (morgana, Insight::MerlinOrMorgana)
            ]),
        );
        for evil in [assassin, morgana, mordred] {
            let mut expected: Vec<(Seat, Insight)> = [assassin, morgana, mordred]
                .into_iter()
                .filter(|seat| *seat != evil)
                .map(|seat| (seat, Insight::Evil))
                .collect();
            expected.sort();
            assert_eq!(
                sorted(knows(evil)),
                expected,
                "evil seat {evil} misses only Oberon"
            );
        }
        assert!(knows(oberon).is_empty(), "Oberon sees nobody");
        for servant in (0..10).filter(|seat| roles[*seat] == Role::LoyalServant) {
            assert!(knows(servant).is_empty());
        }
    }

    #[test]
    fn unknown_viewer_knows_nothing() {
        assert!(night_knowledge(&[Role::Merlin, Role::Assassin], 7).is_empty());
    }
}
