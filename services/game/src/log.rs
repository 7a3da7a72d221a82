//! The public event log and the public records it carries. Nothing here may hold a secret that is
//! still secret when the event is emitted: votes appear only once all are in, quest cards only as
//! counts, Lady of the Lake results never, and roles only in the final event.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Seat;
use crate::roles::{Role, Side};

/// How a quest went. Only the counts are public, never who played which card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestResult {
    /// Quest number, 1 to 5.
    pub quest: usize,
    /// The seats that went on the quest.
    pub team: Vec<Seat>,
    /// Success cards played.
    pub successes: usize,
    /// Fail cards played.
    pub fails: usize,
    /// Fail cards that were needed to sink this quest.
    pub fails_required: usize,
    /// Whether the quest succeeded.
    pub succeeded: bool,
}

/// Why the game ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WinReason {
    /// Good completed three quests and the Assassin missed Merlin.
    MerlinSurvived,
    /// Good completed three quests but the Assassin named Merlin.
    MerlinAssassinated,
    /// Three quests failed.
    ThreeQuestsFailed,
    /// Five proposals in one round were rejected.
    FiveTeamsRejected,
}

impl WinReason {
    /// The side this reason hands the game to.
    pub const fn winner(self) -> Side {
        match self {
            WinReason::MerlinSurvived => Side::Good,
            WinReason::MerlinAssassinated
            | WinReason::ThreeQuestsFailed
            | WinReason::FiveTeamsRejected => Side::Evil,
        }
    }
}

impl fmt::Display for WinReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WinReason::MerlinSurvived => "three quests succeeded and Merlin survived the Assassin",
            WinReason::MerlinAssassinated => "the Assassin found Merlin",
            WinReason::ThreeQuestsFailed => "three quests failed",
            WinReason::FiveTeamsRejected => "five teams in a row were rejected",
        })
    }
}

/// The final result of a game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GameOutcome {
    /// The winning side.
    pub winner: Side,
    /// How it was won.
    pub reason: WinReason,
}

/// Something that happened at the table, visible to everyone. `quest` numbers are 1 to 5 and
/// `attempt` numbers 1 to 5 (the n-th proposal of the current quest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Roles were dealt and the first leader chosen.
    GameStarted {
        players: usize,
        first_leader: Seat,
        lady_holder: Option<Seat>,
    },
    /// The leader put a team up for a vote.
    TeamProposed {
        quest: usize,
        attempt: usize,
        leader: Seat,
        team: Vec<Seat>,
    },
    /// The fifth proposal of a round went through without a vote (room option).
    TeamAutoApproved { quest: usize, attempt: usize },
    /// A player locked in a vote; how they voted stays hidden until everyone has voted.
    VoteCast { seat: Seat },
    /// All votes are in: `votes[seat]` is that seat's approval. A tie rejects.
    VotesRevealed {
        quest: usize,
        attempt: usize,
        votes: Vec<bool>,
        approved: bool,
    },
    /// A team member played their card; which card stays secret forever.
    QuestCardPlayed { seat: Seat },
    /// All cards are in and were counted.
    QuestCompleted { result: QuestResult },
    /// The Lady of the Lake holder examined a player; only the holder learns the loyalty.
    LadyExamined { holder: Seat, target: Seat },
    /// The Assassin named a player.
    AssassinationAttempted {
        assassin: Seat,
        target: Seat,
        merlin_found: bool,
    },
    /// The game is over; every role is revealed (`roles[seat]`).
    GameEnded {
        winner: Side,
        reason: WinReason,
        roles: Vec<Role>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_by_type_in_json() {
        let event = Event::VoteCast { seat: 3 };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"type":"vote_cast","seat":3}"#
        );
        let quest = Event::QuestCompleted {
            result: QuestResult {
                quest: 1,
                team: vec![0, 1],
                successes: 1,
                fails: 1,
                fails_required: 1,
                succeeded: false,
            },
        };
        let json = serde_json::to_string(&quest).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), quest);
    }

    #[test]
    fn reasons_name_their_winner() {
        assert_eq!(WinReason::MerlinSurvived.winner(), Side::Good);
        for reason in [
            WinReason::MerlinAssassinated,
            WinReason::ThreeQuestsFailed,
            WinReason::FiveTeamsRejected,
        ] {
            assert_eq!(reason.winner(), Side::Evil);
            assert!(!reason.to_string().is_empty());
        }
    }
}
