//! Typed refusals. Every error carries a stable machine code (`code()`, SCREAMING_SNAKE_CASE,
//! equal to the variant name) for clients and a human reason in its `Display`.

use thiserror::Error;

use crate::Seat;
use crate::actions::ActionKind;
use crate::state::Phase;

/// Why a [`crate::GameSetup`] cannot start a game.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SetupError {
    /// Avalon is played by 5 to 10 players.
    #[error("Avalon needs 5 to 10 players, this room has {count}")]
    BadPlayerCount { count: usize },
    /// Player ids must be non-empty so they can be told apart in logs and views.
    #[error("the player id at seat {seat} is empty")]
    EmptyPlayerId { seat: Seat },
    /// Player ids must be unique so `view_for_player` is unambiguous.
    #[error("player id {id:?} appears at more than one seat")]
    DuplicatePlayerId { id: String },
    /// Morgana, Mordred and Oberon each take an evil seat besides the Assassin's.
    #[error(
        "{requested} optional evil roles were chosen but a {players}-player game has only \
         {available} evil seats besides the Assassin"
    )]
    TooManyEvilRoles {
        requested: usize,
        available: usize,
        players: usize,
    },
}

impl SetupError {
    /// Stable machine code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadPlayerCount { .. } => "BAD_PLAYER_COUNT",
            Self::EmptyPlayerId { .. } => "EMPTY_PLAYER_ID",
            Self::DuplicatePlayerId { .. } => "DUPLICATE_PLAYER_ID",
            Self::TooManyEvilRoles { .. } => "TOO_MANY_EVIL_ROLES",
        }
    }
}

/// Why an action (or a view request) was refused. A refused action leaves the game untouched.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleError {
    /// The seat index is not at this table.
    #[error("there is no seat {seat} at this table")]
    UnknownSeat { seat: Seat },
    /// The player id is not at this table.
    #[error("no player with id {id:?} sits at this table")]
    UnknownPlayer { id: String },
    /// Nothing can be done once a winner is known.
    #[error("the game is over")]
    GameOver,
    /// The action belongs to another phase of the game.
    #[error("cannot {action} during the {phase} phase")]
    WrongPhase { action: ActionKind, phase: Phase },
    /// Only the leader proposes and only the Lady of the Lake holder examines.
    #[error("it is not seat {actor}'s turn: waiting for seat {waiting_for}")]
    NotYourTurn { actor: Seat, waiting_for: Seat },
    /// The proposed team does not have the size this quest requires.
    #[error("quest {quest} needs a team of {expected}, the proposal has {got}")]
    BadTeamSize {
        quest: usize,
        expected: usize,
        got: usize,
    },
    /// A seat was named twice in a proposal.
    #[error("seat {seat} is named more than once in the proposed team")]
    DuplicateTeamMember { seat: Seat },
    /// Each player votes once per proposal.
    #[error("seat {seat} has already voted on this team")]
    AlreadyVoted { seat: Seat },
    /// Only team members play quest cards.
    #[error("seat {seat} is not on the quest team")]
    NotOnTeam { seat: Seat },
    /// Each team member plays one card per quest.
    #[error("seat {seat} has already played a card on this quest")]
    AlreadyPlayed { seat: Seat },
    /// Loyal players must play Success.
    #[error("a good player can only play Success")]
    GoodCannotFail,
    /// Only the Assassin names Merlin.
    #[error("only the Assassin can name Merlin")]
    NotAssassin,
    /// The Assassin is not a Merlin candidate.
    #[error("the Assassin must name another player")]
    AssassinTargetsSelf,
    /// The Assassin already knows this player is evil, so naming them is not a guess at Merlin.
    #[error("seat {seat} is a known evil ally; name a player who could be Merlin")]
    AssassinTargetsKnownEvil { seat: Seat },
    /// The holder already knows their own loyalty.
    #[error("the Lady of the Lake holder cannot examine themselves")]
    LadyExaminesSelf,
    /// A player who has held the token can never be examined.
    #[error("seat {seat} has already held the Lady of the Lake and cannot be examined")]
    LadyPreviousHolder { seat: Seat },
}

impl RuleError {
    /// Stable machine code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownSeat { .. } => "UNKNOWN_SEAT",
            Self::UnknownPlayer { .. } => "UNKNOWN_PLAYER",
            Self::GameOver => "GAME_OVER",
            Self::WrongPhase { .. } => "WRONG_PHASE",
            Self::NotYourTurn { .. } => "NOT_YOUR_TURN",
            Self::BadTeamSize { .. } => "BAD_TEAM_SIZE",
            Self::DuplicateTeamMember { .. } => "DUPLICATE_TEAM_MEMBER",
            Self::AlreadyVoted { .. } => "ALREADY_VOTED",
            Self::NotOnTeam { .. } => "NOT_ON_TEAM",
            Self::AlreadyPlayed { .. } => "ALREADY_PLAYED",
            Self::GoodCannotFail => "GOOD_CANNOT_FAIL",
            Self::NotAssassin => "NOT_ASSASSIN",
            Self::AssassinTargetsSelf => "ASSASSIN_TARGETS_SELF",
            Self::AssassinTargetsKnownEvil { .. } => "ASSASSIN_TARGETS_KNOWN_EVIL",
            Self::LadyExaminesSelf => "LADY_EXAMINES_SELF",
            Self::LadyPreviousHolder { .. } => "LADY_PREVIOUS_HOLDER",
        }
    }
}

/// A deserialized [`crate::GameState`] that could not have been produced by the engine (for
/// example hand-edited JSON). Refusing it at the door keeps every later lookup in bounds.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("stored game state is inconsistent: {reason}")]
pub struct IntegrityError {
    /// What was found to be inconsistent.
    pub reason: String,
}

impl IntegrityError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn every_rule_error() -> Vec<RuleError> {
        vec![
            RuleError::UnknownSeat { seat: 11 },
            RuleError::UnknownPlayer { id: "x".into() },
            RuleError::GameOver,
            RuleError::WrongPhase {
                action: ActionKind::Vote,
                phase: Phase::Quest,
            },
            RuleError::NotYourTurn {
                actor: 1,
                waiting_for: 2,
            },
            RuleError::BadTeamSize {
                quest: 1,
                expected: 2,
                got: 3,
            },
            RuleError::DuplicateTeamMember { seat: 0 },
            RuleError::AlreadyVoted { seat: 0 },
            RuleError::NotOnTeam { seat: 0 },
            RuleError::AlreadyPlayed { seat: 0 },
            RuleError::GoodCannotFail,
            RuleError::NotAssassin,
            RuleError::AssassinTargetsSelf,
            RuleError::AssassinTargetsKnownEvil { seat: 0 },
            RuleError::LadyExaminesSelf,
            RuleError::LadyPreviousHolder { seat: 0 },
        ]
    }

    fn every_setup_error() -> Vec<SetupError> {
        vec![
            SetupError::BadPlayerCount { count: 3 },
            SetupError::EmptyPlayerId { seat: 0 },
            SetupError::DuplicatePlayerId { id: "a".into() },
            SetupError::TooManyEvilRoles {
                requested: 3,
                available: 1,
                players: 5,
            },
        ]
    }

    fn is_screaming_snake(code: &str) -> bool {
        !code.is_empty()
            && code
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    }

    #[test]
    fn codes_are_unique_screaming_snake_and_every_error_has_a_reason() {
        let rule_codes: Vec<(&str, String)> = every_rule_error()
            .iter()
            .map(|error| (error.code(), error.to_string()))
            .collect();
        let setup_codes: Vec<(&str, String)> = every_setup_error()
            .iter()
            .map(|error| (error.code(), error.to_string()))
            .collect();
        let all: Vec<_> = rule_codes.iter().chain(setup_codes.iter()).collect();
        let unique: HashSet<&str> = all.iter().map(|(code, _)| *code).collect();
        assert_eq!(unique.len(), all.len(), "codes must be unique");
        for (code, reason) in all {
            assert!(is_screaming_snake(code), "{code}");
            assert!(!reason.is_empty(), "{code} has no reason");
        }
    }

    #[test]
    fn wrong_phase_reason_names_the_action_and_phase() {
        let error = RuleError::WrongPhase {
            action: ActionKind::Propose,
            phase: Phase::TeamVote,
        };
        assert_eq!(
            error.to_string(),
            "cannot propose a team during the team vote phase"
        );
    }
}
