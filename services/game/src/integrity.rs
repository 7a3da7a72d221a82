//! Structural invariants of a [`GameState`]. The engine upholds them by construction; checking them
//! again on deserialization means a corrupted or hand-edited stored game is refused at the door
//! instead of making a later seat lookup go out of bounds.

use std::collections::HashSet;

use crate::Seat;
use crate::error::IntegrityError;
use crate::roles::role_deck;
use crate::rules::{MAX_PROPOSALS_PER_ROUND, QUEST_COUNT, QUESTS_TO_DECIDE, TableRules};
use crate::state::{GameState, Phase};

fn ensure(condition: bool, reason: impl FnOnce() -> String) -> Result<(), IntegrityError> {
    if condition {
        Ok(())
    } else {
        Err(IntegrityError::new(reason()))
    }
}

fn all_distinct(seats: &[Seat]) -> bool {
    let unique: HashSet<&Seat> = seats.iter().collect();
    unique.len() == seats.len()
}

impl GameState {
    /// Checks every structural invariant the engine maintains. Called on deserialization; useful
    /// to callers that build states some other way (and to tests).
    pub fn check_integrity(&self) -> Result<(), IntegrityError> {
        let seats = self.players.len();
        let rules = TableRules::for_players(seats)
            .map_err(|error| IntegrityError::new(error.to_string()))?;
        ensure(self.rules == rules, || {
            "rules do not match the player count".into()
        })?;
        let ids: HashSet<&str> = self.players.iter().map(|id| id.as_str()).collect();
        ensure(ids.len() == seats && !ids.contains(""), || {
            "player ids must be unique and non-empty".into()
        })?;

        let mut dealt = self.roles.clone();
        dealt.sort();
        let mut deck = role_deck(&rules, &self.options);
        deck.sort();
        ensure(dealt == deck && deck.len() == seats, || {
            "roles do not match the room options".into()
        })?;

        let in_table = |seat: Seat| seat < seats;
        ensure(in_table(self.first_leader) && in_table(self.leader), || {
            "leader seat out of range".into()
        })?;
        ensure(
            self.ballots.len() == seats && self.quest_cards.len() == seats,
            || "ballot or quest card slots do not match the seats".into(),
        )?;
        ensure(
            self.phase == Phase::TeamVote || self.ballots.iter().all(Option::is_none),
            || "ballots outside the vote phase".into(),
        )?;
        ensure(
            self.phase == Phase::Quest || self.quest_cards.iter().all(Option::is_none),
            || "quest cards outside the quest phase".into(),
        )?;
        ensure(self.rejections <= MAX_PROPOSALS_PER_ROUND, || {
            "too many rejections".into()
        })?;

        self.check_quests(&rules, seats)?;
        self.check_proposal(&rules, seats)?;
        self.check_lady(seats)?;

        if let Some(assassination) = &self.assassination {
            ensure(
                in_table(assassination.assassin) && in_table(assassination.target),
                || "assassination seat out of range".into(),
            )?;
        }
        ensure(
            (self.phase == Phase::GameOver) == self.outcome.is_some(),
            || "game over phase and outcome disagree".into(),
        )?;
        Ok(())
    }

    fn check_quests(&self, rules: &TableRules, seats: usize) -> Result<(), IntegrityError> {
        ensure(self.quests.len() <= QUEST_COUNT, || {
            "too many quests".into()
        })?;
        for (index, quest) in self.quests.iter().enumerate() {
            let consistent = quest.quest == index + 1
                && quest.team.len() == rules.team_size(index)
                && quest.team.iter().all(|seat| *seat < seats)
                && all_distinct(&quest.team)
                && quest.successes + quest.fails == quest.team.len()
                && quest.fails_required == rules.fails_required(index)
                && quest.succeeded == (quest.fails < quest.fails_required);
            ensure(consistent, || {
                format!("quest {} is inconsistent", index + 1)
            })?;
        }
        ensure(
            self.quests_with(true) <= QUESTS_TO_DECIDE
                && self.quests_with(false) <= QUESTS_TO_DECIDE,
            || "more than three quests won by one side".into(),
        )
    }

    fn check_proposal(&self, rules: &TableRules, seats: usize) -> Result<(), IntegrityError> {
        let needs_proposal = matches!(self.phase, Phase::TeamVote | Phase::Quest);
        ensure(needs_proposal == self.proposal.is_some(), || {
            "proposal present in the wrong phase".into()
        })?;
        if let Some(proposal) = &self.proposal {
            let consistent = proposal.leader < seats
                && proposal.team.len() == rules.team_size(self.quest_index())
                && proposal.team.iter().all(|seat| *seat < seats)
                && all_distinct(&proposal.team)
                && (1..=MAX_PROPOSALS_PER_ROUND).contains(&proposal.attempt);
            ensure(consistent, || "proposal is inconsistent".into())?;
            let stray_card = self
                .quest_cards
                .iter()
                .enumerate()
                .any(|(seat, card)| card.is_some() && !proposal.team.contains(&seat));
            ensure(!stray_card, || "quest card from a seat off the team".into())?;
        }
        Ok(())
    }

    fn check_lady(&self, seats: usize) -> Result<(), IntegrityError> {
        ensure(self.options.lady_of_the_lake == self.lady.is_some(), || {
            "Lady of the Lake token does not match the room options".into()
        })?;
        let Some(lady) = &self.lady else {
            return ensure(self.phase != Phase::LadyOfTheLake, || {
                "Lady of the Lake phase without the token".into()
            });
        };
        let consistent = lady.holders.last() == Some(&lady.holder)
            && lady.holders.iter().all(|seat| *seat < seats)
            && all_distinct(&lady.holders)
            && lady.examinations.len() + 1 == lady.holders.len()
            && lady
                .examinations
                .iter()
                .all(|exam| exam.holder < seats && exam.target < seats);
        ensure(consistent, || {
            "Lady of the Lake token is inconsistent".into()
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::roles::Role;
    use crate::setup::RoomOptions;
    use crate::testkit::{new_game, options_with_lady};

    #[test]
    fn fresh_games_are_consistent() {
        for players in 5..=10 {
            new_game(players, options_with_lady(), 5)
                .check_integrity()
                .unwrap();
        }
    }

    #[test]
    fn tampering_is_detected() {
        let game = new_game(6, RoomOptions::default(), 5);
        let mut wrong_roles = game.clone();
        wrong_roles.roles[0] = Role::Oberon;
        wrong_roles.roles[1] = Role::Oberon;
        assert!(wrong_roles.check_integrity().is_err());

        let mut short_ballots = game.clone();
        short_ballots.ballots.pop();
        assert!(short_ballots.check_integrity().is_err());

        let mut leader_off_table = game.clone();
        leader_off_table.leader = 6;
        assert!(leader_off_table.check_integrity().is_err());

        let mut lady_without_option = game.clone();
        lady_without_option.options.lady_of_the_lake = true;
        assert!(lady_without_option.check_integrity().is_err());
    }
}
