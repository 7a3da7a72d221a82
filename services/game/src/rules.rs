//! The rulebook's per-table numbers: how many players are evil, how big each quest team is and how
//! many Fail cards sink a quest.

use serde::{Deserialize, Serialize};

use crate::error::SetupError;

/// Smallest table the rulebook supports.
pub const MIN_PLAYERS: usize = 5;
/// Largest table the rulebook supports.
pub const MAX_PLAYERS: usize = 10;
/// Quests in a full game.
pub const QUEST_COUNT: usize = 5;
/// Quests one side must win (or lose) to decide the quest track.
pub const QUESTS_TO_DECIDE: usize = 3;
/// Rejected proposals in one round that hand Evil the game (unless the fifth proposal is
/// auto-approved).
pub const MAX_PROPOSALS_PER_ROUND: usize = 5;

/// Everything that depends only on the number of players.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRules {
    /// Number of seats.
    pub players: usize,
    /// Seats dealt a Good role.
    pub good: usize,
    /// Seats dealt an Evil role.
    pub evil: usize,
    /// Team size of quests 1 to 5.
    pub team_sizes: [usize; QUEST_COUNT],
    /// Fail cards needed to sink quests 1 to 5.
    pub fails_required: [usize; QUEST_COUNT],
}

impl TableRules {
    /// The rulebook table for `players` seats, or [`SetupError::BadPlayerCount`] outside 5–10.
    pub fn for_players(players: usize) -> Result<Self, SetupError> {
        let (evil, team_sizes) = match players {
            5 => (2, [2, 3, 2, 3, 3]),
            6 => (2, [2, 3, 4, 3, 4]),
            7 => (3, [2, 3, 3, 4, 4]),
            8 | 9 => (3, [3, 4, 4, 5, 5]),
            10 => (4, [3, 4, 4, 5, 5]),
            _ => return Err(SetupError::BadPlayerCount { count: players }),
        };
        // From seven players on, one spy on the big fourth team is not enough to sink it; the
        // rulebook asks for two Fail cards there so Evil has to commit two members.
        let fails_required = if players >= 7 {
            [1, 1, 1, 2, 1]
        } else {
            [1; QUEST_COUNT]
        };
        Ok(Self {
            players,
            good: players - evil,
            evil,
            team_sizes,
            fails_required,
        })
    }

    /// Team size of the quest at `quest_index` (0-based). Indices past the last quest clamp to it,
    /// so a finished game still answers with the last quest's numbers instead of panicking.
    pub fn team_size(&self, quest_index: usize) -> usize {
        self.team_sizes[quest_index.min(QUEST_COUNT - 1)]
    }

    /// Fail cards needed to sink the quest at `quest_index` (0-based, clamped like
    /// [`TableRules::team_size`]).
    pub fn fails_required(&self, quest_index: usize) -> usize {
        self.fails_required[quest_index.min(QUEST_COUNT - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_evil_split_matches_the_rulebook() {
        let expected = [
            (5, 3, 2),
            (6, 4, 2),
            (7, 4, 3),
            (8, 5, 3),
            (9, 6, 3),
            (10, 6, 4),
        ];
        for (players, good, evil) in expected {
            let rules = TableRules::for_players(players).unwrap();
            assert_eq!((rules.good, rules.evil), (good, evil), "{players} players");
            assert_eq!(rules.players, players);
        }
    }

    #[test]
    fn team_sizes_match_the_rulebook() {
        let expected: [(usize, [usize; 5]); 6] = [
            (5, [2, 3, 2, 3, 3]),
            (6, [2, 3, 4, 3, 4]),
            (7, [2, 3, 3, 4, 4]),
            (8, [3, 4, 4, 5, 5]),
            (9, [3, 4, 4, 5, 5]),
            (10, [3, 4, 4, 5, 5]),
        ];
        for (players, sizes) in expected {
            let rules = TableRules::for_players(players).unwrap();
            assert_eq!(rules.team_sizes, sizes, "{players} players");
            for (index, size) in sizes.iter().enumerate() {
                assert_eq!(rules.team_size(index), *size);
            }
        }
    }

    #[test]
    fn fourth_quest_needs_two_fails_from_seven_players() {
        for players in MIN_PLAYERS..=MAX_PLAYERS {
            let rules = TableRules::for_players(players).unwrap();
            let expected_fourth = if players >= 7 { 2 } else { 1 };
            assert_eq!(
                rules.fails_required(3),
                expected_fourth,
                "{players} players"
            );
            for other in [0, 1, 2, 4] {
                assert_eq!(
                    rules.fails_required(other),
                    1,
                    "{players} players quest {other}"
                );
            }
        }
    }

    #[test]
    fn player_counts_outside_five_to_ten_are_refused() {
        for players in [0, 1, 4, 11, 100] {
            let error = TableRules::for_players(players).unwrap_err();
            assert_eq!(error, SetupError::BadPlayerCount { count: players });
            assert_eq!(error.code(), "BAD_PLAYER_COUNT");
        }
    }

    #[test]
    fn quest_indices_past_the_end_clamp_to_the_last_quest() {
        let rules = TableRules::for_players(7).unwrap();
        assert_eq!(rules.team_size(5), rules.team_size(4));
        assert_eq!(rules.fails_required(9), rules.fails_required(4));
    }
}
