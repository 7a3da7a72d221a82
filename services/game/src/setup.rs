//! What the caller hands the engine to start a game: who sits where, which optional rules the room
//! chose, and the seed that makes the deal reproducible.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::SetupError;
use crate::rules::TableRules;

/// Opaque player identifier chosen by the caller (account id, session id…). The engine only
/// compares and echoes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlayerId(String);

impl PlayerId {
    /// Wraps a caller-chosen identifier.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The identifier as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for PlayerId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<String> for PlayerId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl AsRef<str> for PlayerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Optional rules a room can switch on. Merlin and the Assassin are always in play; each optional
/// character replaces a plain Loyal Servant or Minion. Missing fields mean "off" so older clients
/// keep working, while unknown fields are refused so a typo does not silently play another game.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomOptions {
    /// Deal Percival (good; sees Merlin and Morgana without telling them apart).
    pub percival: bool,
    /// Deal Morgana (evil; appears to Percival as a Merlin candidate).
    pub morgana: bool,
    /// Deal Mordred (evil; hidden from Merlin).
    pub mordred: bool,
    /// Deal Oberon (evil; unknown to the other evil players and blind to them).
    pub oberon: bool,
    /// Use the Lady of the Lake token after quests 2, 3 and 4.
    pub lady_of_the_lake: bool,
    /// Approve the fifth proposal of a round without a vote instead of handing Evil the game.
    pub auto_approve_fifth: bool,
}

impl RoomOptions {
    /// How many evil seats besides the Assassin's the chosen optional characters take.
    pub fn optional_evil_roles(&self) -> usize {
        [self.morgana, self.mordred, self.oberon]
            .into_iter()
            .filter(|chosen| *chosen)
            .count()
    }

    /// Legal but probably unintended combinations, for the room UI to point out.
    pub fn warnings(&self) -> Vec<SetupWarning> {
        let mut warnings = Vec::new();
        if self.morgana && !self.percival {
            warnings.push(SetupWarning::MorganaWithoutPercival);
        }
        warnings
    }
}

/// A combination the engine plays as asked but that a room host may not have meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SetupWarning {
    /// Morgana's only power is fooling Percival; without Percival she plays as a plain Minion.
    MorganaWithoutPercival,
}

impl SetupWarning {
    /// Stable machine code, in the same style as the error codes.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MorganaWithoutPercival => "MORGANA_WITHOUT_PERCIVAL",
        }
    }
}

impl fmt::Display for SetupWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MorganaWithoutPercival => f.write_str(
                "Morgana is in play without Percival, so she has nobody to deceive and acts as \
                 a plain Minion",
            ),
        }
    }
}

/// Everything needed to start a game. The seat of each player is their index in `players`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameSetup {
    /// Players in clockwise seat order.
    pub players: Vec<PlayerId>,
    /// The room's optional rules.
    pub options: RoomOptions,
    /// Seed for the role deal and the first leader; same seed, same game.
    pub seed: u64,
}

impl GameSetup {
    /// Convenience constructor accepting anything that converts into player ids.
    pub fn new<P: Into<PlayerId>>(
        players: impl IntoIterator<Item = P>,
        options: RoomOptions,
        seed: u64,
    ) -> Self {
        Self {
            players: players.into_iter().map(Into::into).collect(),
            options,
            seed,
        }
    }

    /// Checks the setup without starting a game; returns the warnings a host may want to see.
    pub fn validate(&self) -> Result<Vec<SetupWarning>, SetupError> {
        self.table_rules().map(|_| self.options.warnings())
    }

    /// Validates the setup and returns the table's rulebook numbers.
    pub(crate) fn table_rules(&self) -> Result<TableRules, SetupError> {
        let rules = TableRules::for_players(self.players.len())?;
        let mut seen = HashSet::new();
        for (seat, id) in self.players.iter().enumerate() {
            if id.as_str().is_empty() {
                return Err(SetupError::EmptyPlayerId { seat });
            }
            if !seen.insert(id.as_str()) {
                return Err(SetupError::DuplicatePlayerId {
                    id: id.as_str().to_owned(),
                });
            }
        }
        let available = rules.evil - 1;
        let requested = self.options.optional_evil_roles();
        if requested > available {
            return Err(SetupError::TooManyEvilRoles {
                requested,
                available,
                players: rules.players,
            });
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seats(count: usize) -> Vec<String> {
        (0..count).map(|seat| format!("p{seat}")).collect()
    }

    fn all_evil_options() -> RoomOptions {
        RoomOptions {
            morgana: true,
            mordred: true,
            oberon: true,
            ..RoomOptions::default()
        }
    }

    #[test]
    fn five_and_six_players_fit_only_one_optional_evil_role() {
        for players in [5, 6] {
            for (morgana, mordred, oberon) in [
                (true, false, false),
                (false, true, false),
                (false, false, true),
            ] {
                let options = RoomOptions {
                    morgana,
                    mordred,
                    oberon,
                    percival: true,
                    ..RoomOptions::default()
                };
                assert!(
                    GameSetup::new(seats(players), options, 1)
                        .validate()
                        .is_ok()
                );
            }
            let two = RoomOptions {
                morgana: true,
                mordred: true,
                ..RoomOptions::default()
            };
            let error = GameSetup::new(seats(players), two, 1)
                .validate()
                .unwrap_err();
            assert_eq!(
                error,
                SetupError::TooManyEvilRoles {
                    requested: 2,
                    available: 1,
                    players
                }
            );
            assert_eq!(error.code(), "TOO_MANY_EVIL_ROLES");
        }
    }

    #[test]
    fn seven_to_nine_players_fit_two_and_ten_fit_all_three() {
        for players in 7..=9 {
            let two = RoomOptions {
                mordred: true,
                oberon: true,
                ..RoomOptions::default()
            };
            assert!(GameSetup::new(seats(players), two, 1).validate().is_ok());
            let error = GameSetup::new(seats(players), all_evil_options(), 1)
                .validate()
                .unwrap_err();
            assert_eq!(error.code(), "TOO_MANY_EVIL_ROLES");
        }
        assert!(
            GameSetup::new(seats(10), all_evil_options(), 1)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn player_ids_must_be_present_and_unique() {
        let mut players = seats(6);
        players[3] = String::new();
        let error = GameSetup::new(players, RoomOptions::default(), 1)
            .validate()
            .unwrap_err();
        assert_eq!(error, SetupError::EmptyPlayerId { seat: 3 });
        assert_eq!(error.code(), "EMPTY_PLAYER_ID");

        let mut players = seats(6);
        players[4] = "p1".into();
        let error = GameSetup::new(players, RoomOptions::default(), 1)
            .validate()
            .unwrap_err();
        assert_eq!(error, SetupError::DuplicatePlayerId { id: "p1".into() });
        assert_eq!(error.code(), "DUPLICATE_PLAYER_ID");
    }

    #[test]
    fn bad_player_counts_are_refused() {
        for count in [0, 4, 11] {
            let error = GameSetup::new(seats(count), RoomOptions::default(), 1)
                .validate()
                .unwrap_err();
            assert_eq!(error, SetupError::BadPlayerCount { count });
        }
    }

    #[test]
    fn morgana_without_percival_is_allowed_but_flagged() {
        let options = RoomOptions {
            morgana: true,
            ..RoomOptions::default()
        };
        let warnings = GameSetup::new(seats(5), options, 1).validate().unwrap();
        assert_eq!(warnings, vec![SetupWarning::MorganaWithoutPercival]);
        assert_eq!(warnings[0].code(), "MORGANA_WITHOUT_PERCIVAL");
        assert!(!warnings[0].to_string().is_empty());

        let with_percival = RoomOptions {
            morgana: true,
            percival: true,
            ..RoomOptions::default()
        };
        assert!(
            GameSetup::new(seats(5), with_percival, 1)
                .validate()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn room_options_default_missing_fields_and_refuse_unknown_ones() {
        let options: RoomOptions = serde_json::from_str(r#"{"percival":true}"#).unwrap();
        assert_eq!(
            options,
            RoomOptions {
                percival: true,
                ..RoomOptions::default()
            }
        );
        assert!(serde_json::from_str::<RoomOptions>(r#"{"percivale":true}"#).is_err());
    }

    #[test]
    fn player_id_serializes_as_a_plain_string() {
        let id = PlayerId::new("alice");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""alice""#);
        assert_eq!(id.to_string(), "alice");
        assert_eq!(PlayerId::from("alice"), id);
    }
}
