//! Player actions and the transitions they cause. Every handler checks everything first and only
//! then mutates, so a refused action leaves the state exactly as it was.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Seat;
use crate::error::RuleError;
use crate::knowledge::{Insight, insight};
use crate::log::{Event, GameOutcome, QuestResult, WinReason};
use crate::roles::{Role, Side};
use crate::rules::{MAX_PROPOSALS_PER_ROUND, QUESTS_TO_DECIDE};
use crate::state::{Assassination, GameState, LadyExamination, Phase, Proposal};

/// Something a player does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// The leader proposes a team (any order; stored sorted).
    Propose { team: Vec<Seat> },
    /// Approve or reject the proposed team.
    Vote { approve: bool },
    /// A team member plays Success (`true`) or Fail (`false`).
    PlayQuestCard { success: bool },
    /// The Assassin names the player they believe is Merlin.
    Assassinate { target: Seat },
    /// The Lady of the Lake holder examines a player.
    LadyExamine { target: Seat },
}

/// The kind of an [`Action`], without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// [`Action::Propose`].
    Propose,
    /// [`Action::Vote`].
    Vote,
    /// [`Action::PlayQuestCard`].
    PlayQuestCard,
    /// [`Action::Assassinate`].
    Assassinate,
    /// [`Action::LadyExamine`].
    LadyExamine,
}

impl ActionKind {
    /// The only phase in which this kind of action is accepted.
    pub const fn phase(self) -> Phase {
        match self {
            ActionKind::Propose => Phase::TeamProposal,
            ActionKind::Vote => Phase::TeamVote,
            ActionKind::PlayQuestCard => Phase::Quest,
            ActionKind::Assassinate => Phase::Assassination,
            ActionKind::LadyExamine => Phase::LadyOfTheLake,
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActionKind::Propose => "propose a team",
            ActionKind::Vote => "vote",
            ActionKind::PlayQuestCard => "play a quest card",
            ActionKind::Assassinate => "name Merlin",
            ActionKind::LadyExamine => "use the Lady of the Lake",
        })
    }
}

impl Action {
    /// This action's kind.
    pub const fn kind(&self) -> ActionKind {
        match self {
            Action::Propose { .. } => ActionKind::Propose,
            Action::Vote { .. } => ActionKind::Vote,
            Action::PlayQuestCard { .. } => ActionKind::PlayQuestCard,
            Action::Assassinate { .. } => ActionKind::Assassinate,
            Action::LadyExamine { .. } => ActionKind::LadyExamine,
        }
    }
}

impl GameState {
    /// Applies `action` on behalf of the player at `actor`. On success returns the public events
    /// it caused (also appended to the log); on refusal returns why and changes nothing.
    pub fn apply(&mut self, actor: Seat, action: Action) -> Result<Vec<Event>, RuleError> {
        self.ensure_seat(actor)?;
        if self.phase == Phase::GameOver {
            return Err(RuleError::GameOver);
        }
        let kind = action.kind();
        if kind.phase() != self.phase {
            return Err(RuleError::WrongPhase {
                action: kind,
                phase: self.phase,
            });
        }
        let events = match action {
            Action::Propose { team } => self.propose(actor, team)?,
            Action::Vote { approve } => self.vote(actor, approve)?,
            Action::PlayQuestCard { success } => self.play_quest_card(actor, success)?,
            Action::Assassinate { target } => self.assassinate(actor, target)?,
            Action::LadyExamine { target } => self.lady_examine(actor, target)?,
        };
        self.log.extend(events.iter().cloned());
        Ok(events)
    }

    pub(crate) fn ensure_seat(&self, seat: Seat) -> Result<(), RuleError> {
        if seat < self.players.len() {
            Ok(())
        } else {
            Err(RuleError::UnknownSeat { seat })
        }
    }

    fn propose(&mut self, actor: Seat, mut team: Vec<Seat>) -> Result<Vec<Event>, RuleError> {
        if actor != self.leader {
            return Err(RuleError::NotYourTurn {
                actor,
                waiting_for: self.leader,
            });
        }
        let mut named = HashSet::new();
        for &seat in &team {
            self.ensure_seat(seat)?;
            if !named.insert(seat) {
                return Err(RuleError::DuplicateTeamMember { seat });
            }
        }
        let quest = self.quest_index() + 1;
        let expected = self.rules.team_size(self.quest_index());
        if team.len() != expected {
            return Err(RuleError::BadTeamSize {
                quest,
                expected,
                got: team.len(),
            });
        }

        team.sort_unstable();
        let attempt = self.rejections + 1;
        let mut events = vec![Event::TeamProposed {
            quest,
            attempt,
            leader: actor,
            team: team.clone(),
        }];
        self.proposal = Some(Proposal {
            leader: actor,
            team,
            attempt,
        });
        if self.options.auto_approve_fifth && attempt == MAX_PROPOSALS_PER_ROUND {
            events.push(Event::TeamAutoApproved { quest, attempt });
            self.pass_leadership();
            self.start_quest();
        } else {
            self.phase = Phase::TeamVote;
        }
        Ok(events)
    }

    fn vote(&mut self, actor: Seat, approve: bool) -> Result<Vec<Event>, RuleError> {
        if self.ballots[actor].is_some() {
            return Err(RuleError::AlreadyVoted { seat: actor });
        }
        self.ballots[actor] = Some(approve);
        let mut events = vec![Event::VoteCast { seat: actor }];
        let Some(votes) = self.ballots.iter().copied().collect::<Option<Vec<bool>>>() else {
            return Ok(events);
        };

        let approvals = votes.iter().filter(|approve| **approve).count();
        // A strict majority is needed; a tie rejects.
        let approved = approvals * 2 > votes.len();
        let attempt = self.rejections + 1;
        events.push(Event::VotesRevealed {
            quest: self.quest_index() + 1,
            attempt,
            votes,
            approved,
        });
        self.ballots.fill(None);
        self.pass_leadership();
        if approved {
            self.start_quest();
        } else {
            self.rejections += 1;
            self.proposal = None;
            if self.rejections >= MAX_PROPOSALS_PER_ROUND {
                events.push(self.end_game(WinReason::FiveTeamsRejected));
            } else {
                self.phase = Phase::TeamProposal;
            }
        }
        Ok(events)
    }

    fn play_quest_card(&mut self, actor: Seat, success: bool) -> Result<Vec<Event>, RuleError> {
        let on_team = self
            .proposal
            .as_ref()
            .is_some_and(|proposal| proposal.team.contains(&actor));
        if !on_team {
            return Err(RuleError::NotOnTeam { seat: actor });
        }
        if self.quest_cards[actor].is_some() {
            return Err(RuleError::AlreadyPlayed { seat: actor });
        }
        if !success && self.roles[actor].side() == Side::Good {
            return Err(RuleError::GoodCannotFail);
        }
        self.quest_cards[actor] = Some(success);
        let mut events = vec![Event::QuestCardPlayed { seat: actor }];
        if self.pending_actors().is_empty() {
            events.extend(self.complete_quest());
        }
        Ok(events)
    }

    fn lady_examine(&mut self, actor: Seat, target: Seat) -> Result<Vec<Event>, RuleError> {
        let Some(lady) = &self.lady else {
            return Err(RuleError::WrongPhase {
                action: ActionKind::LadyExamine,
                phase: self.phase,
            });
        };
        if lady.holder != actor {
            return Err(RuleError::NotYourTurn {
                actor,
                waiting_for: lady.holder,
            });
        }
        self.ensure_seat(target)?;
        if target == actor {
            return Err(RuleError::LadyExaminesSelf);
        }
        if lady.holders.contains(&target) {
            return Err(RuleError::LadyPreviousHolder { seat: target });
        }
        let seen = self.roles[target].side();
        if let Some(lady) = self.lady.as_mut() {
            lady.examinations.push(LadyExamination {
                holder: actor,
                target,
                seen,
            });
            lady.holders.push(target);
            lady.holder = target;
        }
        self.phase = Phase::TeamProposal;
        Ok(vec![Event::LadyExamined {
            holder: actor,
            target,
        }])
    }

    fn assassinate(&mut self, actor: Seat, target: Seat) -> Result<Vec<Event>, RuleError> {
        if self.roles[actor] != Role::Assassin {
            return Err(RuleError::NotAssassin);
        }
        self.ensure_seat(target)?;
        if target == actor {
            return Err(RuleError::AssassinTargetsSelf);
        }
        // Refusing only allies the Assassin already sees keeps the refusal from revealing Oberon.
        if insight(Role::Assassin, self.roles[target]) == Some(Insight::Evil) {
            return Err(RuleError::AssassinTargetsKnownEvil { seat: target });
        }
        let merlin_found = self.roles[target] == Role::Merlin;
        self.assassination = Some(Assassination {
            assassin: actor,
            target,
            merlin_found,
        });
        let reason = if merlin_found {
            WinReason::MerlinAssassinated
        } else {
            WinReason::MerlinSurvived
        };
        Ok(vec![
            Event::AssassinationAttempted {
                assassin: actor,
                target,
                merlin_found,
            },
            self.end_game(reason),
        ])
    }

    /// Leadership moves one seat clockwise after every proposal, whatever its fate.
    fn pass_leadership(&mut self) {
        self.leader = (self.leader + 1) % self.players.len();
    }

    fn start_quest(&mut self) {
        self.rejections = 0;
        self.quest_cards.fill(None);
        self.phase = Phase::Quest;
    }

    fn complete_quest(&mut self) -> Vec<Event> {
        let team = self
            .proposal
            .take()
            .map(|proposal| proposal.team)
            .unwrap_or_default();
        let fails = team
            .iter()
            .filter(|seat| self.quest_cards[**seat] == Some(false))
            .count();
        let index = self.quest_index();
        let fails_required = self.rules.fails_required(index);
        let result = QuestResult {
            quest: index + 1,
            successes: team.len() - fails,
            fails,
            fails_required,
            succeeded: fails < fails_required,
            team,
        };
        self.quest_cards.fill(None);
        self.quests.push(result.clone());
        let mut events = vec![Event::QuestCompleted { result }];

        let quests_played = self.quests.len();
        if self.quests_with(false) >= QUESTS_TO_DECIDE {
            events.push(self.end_game(WinReason::ThreeQuestsFailed));
        } else if self.quests_with(true) >= QUESTS_TO_DECIDE {
            // Lady of the Lake is skipped here: nothing is left to investigate for.
            self.phase = Phase::Assassination;
        } else if self.lady.is_some() && (2..=4).contains(&quests_played) {
            self.phase = Phase::LadyOfTheLake;
        } else {
            self.phase = Phase::TeamProposal;
        }
        events
    }

    fn end_game(&mut self, reason: WinReason) -> Event {
        let winner = reason.winner();
        self.outcome = Some(GameOutcome { winner, reason });
        self.phase = Phase::GameOver;
        self.proposal = None;
        self.ballots.fill(None);
        self.quest_cards.fill(None);
        Event::GameEnded {
            winner,
            reason,
            roles: self.roles.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
