//! Characters, their loyalty, and the seeded deal.

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::rules::TableRules;
use crate::setup::RoomOptions;

/// Loyalty: which side a character wins with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Loyal servants of Arthur.
    Good,
    /// Minions of Mordred.
    Evil,
}

/// A character card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Good; knows the evil players except Mordred. Losing him to the Assassin loses the game.
    Merlin,
    /// Good; sees Merlin and Morgana as "Merlin or Morgana".
    Percival,
    /// Good; knows nothing.
    LoyalServant,
    /// Evil; names Merlin after three successful quests.
    Assassin,
    /// Evil; appears to Percival as a Merlin candidate.
    Morgana,
    /// Evil; hidden from Merlin.
    Mordred,
    /// Evil; neither knows nor is known by the other evil players.
    Oberon,
    /// Evil; knows the other evil players except Oberon.
    Minion,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 8] = [
        Role::Merlin,
        Role::Percival,
        Role::LoyalServant,
        Role::Assassin,
        Role::Morgana,
        Role::Mordred,
        Role::Oberon,
        Role::Minion,
    ];

    /// The side this character wins with.
    pub const fn side(self) -> Side {
        match self {
            Role::Merlin | Role::Percival | Role::LoyalServant => Side::Good,
            Role::Assassin | Role::Morgana | Role::Mordred | Role::Oberon | Role::Minion => {
                Side::Evil
            }
        }
    }
}

/// The unshuffled deck: mandatory characters first, then the chosen optional ones, then plain
/// servants and minions filling the remaining seats of each side. Callers validate that the
/// optional characters fit the side sizes first.
pub(crate) fn role_deck(rules: &TableRules, options: &RoomOptions) -> Vec<Role> {
    let mut good = vec![Role::Merlin];
    if options.percival {
        good.push(Role::Percival);
    }
    good.resize(rules.good, Role::LoyalServant);

    let mut evil = vec![Role::Assassin];
    for (chosen, role) in [
        (options.morgana, Role::Morgana),
        (options.mordred, Role::Mordred),
        (options.oberon, Role::Oberon),
    ] {
        if chosen {
            evil.push(role);
        }
    }
    evil.resize(rules.evil, Role::Minion);

    good.extend(evil);
    good
}

/// Deals the deck to the seats: `result[seat]` is that seat's role.
pub(crate) fn deal_roles<R: Rng + ?Sized>(
    rules: &TableRules,
    options: &RoomOptions,
    rng: &mut R,
) -> Vec<Role> {
    let mut deck = role_deck(rules, options);
    deck.shuffle(rng);
    deck
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::rules::{MAX_PLAYERS, MIN_PLAYERS};

    fn count(roles: &[Role], role: Role) -> usize {
        roles.iter().filter(|dealt| **dealt == role).count()
    }

    #[test]
    fn sides_of_every_role() {
        let good: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|role| role.side() == Side::Good)
            .collect();
        assert_eq!(good, vec![Role::Merlin, Role::Percival, Role::LoyalServant]);
    }

    #[test]
    fn deck_has_the_right_split_and_exactly_the_chosen_characters() {
        for players in MIN_PLAYERS..=MAX_PLAYERS {
            let rules = TableRules::for_players(players).unwrap();
            for mask in 0u8..16 {
                let options = RoomOptions {
                    percival: mask & 1 != 0,
                    morgana: mask & 2 != 0,
                    mordred: mask & 4 != 0,
                    oberon: mask & 8 != 0,
                    ..RoomOptions::default()
                };
                if options.optional_evil_roles() > rules.evil - 1 {
                    continue;
                }
                let deck = role_deck(&rules, &options);
                assert_eq!(deck.len(), players);
                let evil = deck.iter().filter(|role| role.side() == Side::Evil).count();
                assert_eq!(evil, rules.evil, "{players} players {options:?}");
                assert_eq!(count(&deck, Role::Merlin), 1);
                assert_eq!(count(&deck, Role::Assassin), 1);
                assert_eq!(count(&deck, Role::Percival), usize::from(options.percival));
                assert_eq!(count(&deck, Role::Morgana), usize::from(options.morgana));
                assert_eq!(count(&deck, Role::Mordred), usize::from(options.mordred));
                assert_eq!(count(&deck, Role::Oberon), usize::from(options.oberon));
            }
        }
    }

    #[test]
    fn deal_is_a_seeded_permutation_of_the_deck() {
        let rules = TableRules::for_players(10).unwrap();
        let options = RoomOptions {
            percival: true,
            morgana: true,
            ..RoomOptions::default()
        };
        let deal = |seed| deal_roles(&rules, &options, &mut ChaCha8Rng::seed_from_u64(seed));

        assert_eq!(deal(42), deal(42));
        let mut sorted = deal(42);
        sorted.sort();
        let mut deck = role_deck(&rules, &options);
        deck.sort();
        assert_eq!(sorted, deck);
        let distinct_deals: std::collections::HashSet<Vec<Role>> = (0..20).map(deal).collect();
        assert!(distinct_deals.len() > 1, "seeds must change the deal");
    }
}
