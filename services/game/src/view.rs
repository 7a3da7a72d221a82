//! Everything that leaves the engine for people: per-player views, the spectator view and the
//! finished-game summary. Secrets (roles, individual votes before the reveal, quest cards, Lady
//! of the Lake results) are filtered here and nowhere else.

use serde::{Deserialize, Serialize};

use crate::Seat;
use crate::error::RuleError;
use crate::knowledge::{SeatKnowledge, night_knowledge};
use crate::log::{Event, GameOutcome, QuestResult};
use crate::roles::{Role, Side};
use crate::rules::QUEST_COUNT;
use crate::setup::{PlayerId, RoomOptions};
use crate::state::{Assassination, GameState, LadyExamination, Phase, Proposal};

/// One quest on the quest track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestSlot {
    /// Quest number, 1 to 5.
    pub quest: usize,
    /// Required team size.
    pub team_size: usize,
    /// Fail cards needed to sink it.
    pub fails_required: usize,
    /// The result, once played.
    pub result: Option<QuestResult>,
}

/// One examination as everyone sees it: who looked at whom, not what they saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LadyUse {
    /// The holder who examined.
    pub holder: Seat,
    /// The examined player.
    pub target: Seat,
}

/// The Lady of the Lake token as everyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LadyPublic {
    /// Current holder.
    pub holder: Seat,
    /// Everyone who has held the token (current holder included); none of them can be examined.
    pub previous_holders: Vec<Seat>,
    /// Every examination so far.
    pub uses: Vec<LadyUse>,
}

/// What a holder learned with the Lady of the Lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LadyResult {
    /// The examined player.
    pub target: Seat,
    /// Their loyalty (never their role).
    pub side: Side,
}

/// What anyone at or around the table may see: the spectator view, and the shared part of every
/// player's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicView {
    /// Current phase.
    pub phase: Phase,
    /// Players in seat order.
    pub players: Vec<PlayerId>,
    /// The room's options.
    pub options: RoomOptions,
    /// Who proposes next (or is proposing now).
    pub leader: Seat,
    /// Current quest number, 1 to 5 (the last one played once the game is over).
    pub quest: usize,
    /// The team being voted on or on its quest.
    pub proposal: Option<Proposal>,
    /// Seats that have voted on the current proposal (not how).
    pub voted: Vec<Seat>,
    /// Team members who have played their quest card (not which).
    pub played: Vec<Seat>,
    /// The five quests with their requirements and results so far.
    pub quest_track: Vec<QuestSlot>,
    /// Rejected proposals in the current round.
    pub rejections: usize,
    /// The Lady of the Lake token, when in use.
    pub lady: Option<LadyPublic>,
    /// Seats the game is waiting for.
    pub pending: Vec<Seat>,
    /// The public event log.
    pub log: Vec<Event>,
    /// Winner and reason, once over.
    pub outcome: Option<GameOutcome>,
    /// Every role (`roles[seat]`), once over.
    pub roles: Option<Vec<Role>>,
}

/// Everything one player may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerView {
    /// The viewer's seat.
    pub seat: Seat,
    /// The viewer's id.
    pub player_id: PlayerId,
    /// The viewer's role.
    pub role: Role,
    /// The viewer's side.
    pub side: Side,
    /// What the viewer learned at night, in seat order.
    pub knowledge: Vec<SeatKnowledge>,
    /// What the viewer learned as Lady of the Lake holder; kept after the token moves on.
    pub lady_results: Vec<LadyResult>,
    /// The viewer's own vote on the current proposal, before the reveal.
    pub my_vote: Option<bool>,
    /// The viewer's own card on the current quest.
    pub my_quest_card: Option<bool>,
    /// The shared part.
    pub table: PublicView,
}

/// One seat in a finished game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryPlayer {
    /// Seat index.
    pub seat: Seat,
    /// Player id.
    pub player_id: PlayerId,
    /// Role they played.
    pub role: Role,
    /// Their side.
    pub side: Side,
    /// Whether their side won.
    pub won: bool,
}

/// A finished game, for history. The engine has no clock, so the timestamps are the caller's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameSummary {
    /// The seed the game was dealt with.
    pub seed: u64,
    /// The room's options.
    pub options: RoomOptions,
    /// Every seat with its role.
    pub players: Vec<SummaryPlayer>,
    /// Winner and reason.
    pub outcome: GameOutcome,
    /// Every quest played.
    pub quests: Vec<QuestResult>,
    /// Proposals made over the whole game.
    pub proposals: usize,
    /// Every Lady of the Lake use with its result (no longer secret).
    pub lady_examinations: Vec<LadyExamination>,
    /// The Assassin's guess, if it came to that.
    pub assassination: Option<Assassination>,
    /// Caller-provided start time (milliseconds since the Unix epoch).
    pub started_at_ms: u64,
    /// Caller-provided end time (milliseconds since the Unix epoch).
    pub finished_at_ms: u64,
    /// `finished_at_ms - started_at_ms`, zero if the clock went backwards.
    pub duration_ms: u64,
}

impl GameState {
    /// The view of the player at `seat`.
    pub fn view_for(&self, seat: Seat) -> Result<PlayerView, RuleError> {
        self.ensure_seat(seat)?;
        let role = self.roles[seat];
        let lady_results = self
            .lady
            .iter()
            .flat_map(|lady| &lady.examinations)
            .filter(|exam| exam.holder == seat)
            .map(|exam| LadyResult {
                target: exam.target,
                side: exam.seen,
            })
            .collect();
        Ok(PlayerView {
            seat,
            player_id: self.players[seat].clone(),
            role,
            side: role.side(),
            knowledge: night_knowledge(&self.roles, seat),
            lady_results,
            my_vote: self.ballots[seat],
            my_quest_card: self.quest_cards[seat],
            table: self.public_view(),
        })
    }

    /// The view of the player with id `player`.
    pub fn view_for_player(&self, player: &str) -> Result<PlayerView, RuleError> {
        let seat = self
            .seat_of(player)
            .ok_or_else(|| RuleError::UnknownPlayer {
                id: player.to_owned(),
            })?;
        self.view_for(seat)
    }

    /// What spectators see; also the shared part of every player's view.
    pub fn public_view(&self) -> PublicView {
        let seats_with = |slots: &[Option<bool>]| -> Vec<Seat> {
            slots
                .iter()
                .enumerate()
                .filter(|(_, slot)| slot.is_some())
                .map(|(seat, _)| seat)
                .collect()
        };
        let quest_track = (0..QUEST_COUNT)
            .map(|index| QuestSlot {
                quest: index + 1,
                team_size: self.rules.team_size(index),
                fails_required: self.rules.fails_required(index),
                result: self.quests.get(index).cloned(),
            })
            .collect();
        let lady = self.lady.as_ref().map(|lady| LadyPublic {
            holder: lady.holder,
            previous_holders: lady.holders.clone(),
            uses: lady
                .examinations
                .iter()
                .map(|exam| LadyUse {
                    holder: exam.holder,
                    target: exam.target,
                })
                .collect(),
        });
        PublicView {
            phase: self.phase,
            players: self.players.clone(),
            options: self.options,
            leader: self.leader,
            quest: self.quest_number(),
            proposal: self.proposal.clone(),
            voted: seats_with(&self.ballots),
            played: seats_with(&self.quest_cards),
            quest_track,
            rejections: self.rejections,
            lady,
            pending: self.pending_actors(),
            log: self.log.clone(),
            outcome: self.outcome,
            roles: self.is_over().then(|| self.roles.clone()),
        }
    }

    /// The record of a finished game, or `None` while it is still being played.
    pub fn summary(&self, started_at_ms: u64, finished_at_ms: u64) -> Option<GameSummary> {
        let outcome = self.outcome?;
        let players = self
            .players
            .iter()
            .zip(&self.roles)
            .enumerate()
            .map(|(seat, (player_id, role))| SummaryPlayer {
                seat,
                player_id: player_id.clone(),
                role: *role,
                side: role.side(),
                won: role.side() == outcome.winner,
            })
            .collect();
        let proposals = self
            .log
            .iter()
            .filter(|event| matches!(event, Event::TeamProposed { .. }))
            .count();
        Some(GameSummary {
            seed: self.seed,
            options: self.options,
            players,
            outcome,
            quests: self.quests.clone(),
            proposals,
            lady_examinations: self
                .lady
                .as_ref()
                .map(|lady| lady.examinations.clone())
                .unwrap_or_default(),
            assassination: self.assassination,
            started_at_ms,
            finished_at_ms,
            duration_ms: finished_at_ms.saturating_sub(started_at_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::Action;
    use crate::log::WinReason;
    use crate::testkit::{new_game, options_with_lady, play_quest, reach_assassination, seat_of};

    const ROLE_NAMES: [&str; 8] = [
        "merlin",
        "percival",
        "loyal_servant",
        "assassin",
        "morgana",
        "mordred",
        "oberon",
        "minion",
    ];

    /// Every string value (not key) in a JSON document.
    fn string_values(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::String(text) => into.push(text.clone()),
            serde_json::Value::Array(items) => {
                items.iter().for_each(|item| string_values(item, into))
            }
            serde_json::Value::Object(fields) => {
                fields.values().for_each(|item| string_values(item, into))
            }
            _ => {}
        }
    }

    fn role_names_in<T: Serialize>(view: &T) -> Vec<String> {
        let mut strings = Vec::new();
        string_values(&serde_json::to_value(view).unwrap(), &mut strings);
        strings.retain(|text| ROLE_NAMES.contains(&text.as_str()));
        strings
    }

    #[test]
    fn roles_stay_secret_until_the_game_ends() {
        let options = RoomOptions {
            percival: true,
            morgana: true,
            ..options_with_lady()
        };
        let mut game = new_game(7, options, 30);
        play_quest(&mut game, 0);
        play_quest(&mut game, 1);
        assert!(role_names_in(&game.public_view()).is_empty());
        for seat in 0..7 {
            let view = game.view_for(seat).unwrap();
            assert_eq!(view.role, game.roles[seat]);
            assert_eq!(view.side, game.roles[seat].side());
            assert_eq!(view.table.roles, None);
            let own = serde_json::to_value(view.role).unwrap();
            assert_eq!(role_names_in(&view), vec![own.as_str().unwrap().to_owned()]);
        }
        reach_assassination(&mut game);
        let assassin = seat_of(&game, Role::Assassin);
        let merlin = seat_of(&game, Role::Merlin);
        game.apply(assassin, Action::Assassinate { target: merlin })
            .unwrap();
        assert_eq!(game.public_view().roles, Some(game.roles.clone()));
        assert_eq!(
            game.public_view().outcome.unwrap().reason,
            WinReason::MerlinAssassinated
        );
    }

    #[test]
    fn views_are_found_by_seat_or_player_id() {
        let game = new_game(5, RoomOptions::default(), 31);
        assert_eq!(
            game.view_for_player("p2").unwrap(),
            game.view_for(2).unwrap()
        );
        assert_eq!(game.view_for(2).unwrap().player_id, PlayerId::new("p2"));
        let error = game.view_for(5).unwrap_err();
        assert_eq!(error.code(), "UNKNOWN_SEAT");
        let error = game.view_for_player("stranger").unwrap_err();
        assert_eq!(
            error,
            RuleError::UnknownPlayer {
                id: "stranger".into()
            }
        );
        assert_eq!(error.code(), "UNKNOWN_PLAYER");
    }

    #[test]
    fn quest_track_shows_requirements_and_results() {
        let mut game = new_game(8, RoomOptions::default(), 32);
        play_quest(&mut game, 1);
        let view = game.public_view();
        assert_eq!(view.quest, 2);
        let sizes: Vec<(usize, usize, usize)> = view
            .quest_track
            .iter()
            .map(|slot| (slot.quest, slot.team_size, slot.fails_required))
            .collect();
        assert_eq!(
            sizes,
            vec![(1, 3, 1), (2, 4, 1), (3, 4, 1), (4, 5, 2), (5, 5, 1)]
        );
        assert_eq!(view.quest_track[0].result.as_ref().unwrap().fails, 1);
        assert!(
            view.quest_track[1..]
                .iter()
                .all(|slot| slot.result.is_none())
        );
    }

    #[test]
    fn summary_is_only_available_once_the_game_is_over() {
        let mut game = new_game(5, options_with_lady(), 33);
        assert_eq!(game.summary(1_000, 2_000), None);
        reach_assassination(&mut game);
        let assassin = seat_of(&game, Role::Assassin);
        let merlin = seat_of(&game, Role::Merlin);
        let target = (0..5)
            .find(|seat| *seat != merlin && game.roles[*seat].side() == Side::Good)
            .unwrap();
        game.apply(assassin, Action::Assassinate { target })
            .unwrap();

        let summary = game.summary(1_000, 61_000).unwrap();
        assert_eq!(summary.duration_ms, 60_000);
        assert_eq!(summary.outcome.winner, Side::Good);
        assert_eq!(summary.quests.len(), 3);
        assert_eq!(summary.proposals, 3);
        assert_eq!(summary.lady_examinations.len(), 1);
        assert_eq!(
            summary.assassination,
            Some(Assassination {
                assassin,
                target,
                merlin_found: false
            })
        );
        for player in &summary.players {
            assert_eq!(player.role, game.roles[player.seat]);
            assert_eq!(player.won, player.side == Side::Good);
        }
        assert_eq!(game.summary(5_000, 1_000).unwrap().duration_ms, 0);
    }
}
