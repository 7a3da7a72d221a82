//! Property tests over random legal games, driven only through the public API.
//!
//! Each case deals a random table (5–10 players, random room options, random seed) and plays it
//! by picking, at every step, a random legal action for one of `pending_actors()`. The test keeps
//! its own record of what each player is entitled to know (computed from the rules here, not from
//! the engine) and compares every view against it.

// `allow-unwrap-in-tests` only covers `#[test]` functions, but this whole file is test code and
// its helpers panic on purpose when the engine misbehaves.
#![allow(clippy::unwrap_used, reason = "test-only crate")]

use std::collections::BTreeSet;

use avalon_game::{
    Action, Event, GameSetup, GameState, Insight, MAX_PLAYERS, MAX_PROPOSALS_PER_ROUND, Phase,
    PlayerView, QUEST_COUNT, QUESTS_TO_DECIDE, Role, RoomOptions, Seat, SeatKnowledge, Side,
    TableRules, WinReason,
};
use proptest::prelude::*;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Most actions a legal game can take: five quests, each with up to five proposals (one
/// proposal plus a vote from every seat) and up to five quest cards, plus three Lady of the Lake
/// uses and the assassination.
const MAX_STEPS: usize = QUEST_COUNT * (MAX_PROPOSALS_PER_ROUND * (1 + MAX_PLAYERS) + 5) + 3 + 1;

#[derive(Debug, Clone)]
struct Scenario {
    setup: GameSetup,
    /// Chance (percent) that a random vote approves; varied so some games die of rejections.
    approve_percent: u32,
    /// One random number per step, used to pick that step's action.
    choices: Vec<u64>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        5usize..=10,
        any::<[bool; 6]>(),
        any::<u64>(),
        20u32..=100,
        proptest::collection::vec(any::<u64>(), MAX_STEPS),
    )
        .prop_map(|(players, flags, seed, approve_percent, choices)| {
            let [
                percival,
                morgana,
                mordred,
                oberon,
                lady_of_the_lake,
                auto_approve_fifth,
            ] = flags;
            let mut options = RoomOptions {
                percival,
                morgana,
                mordred,
                oberon,
                lady_of_the_lake,
                auto_approve_fifth,
            };
            let available = TableRules::for_players(players).unwrap().evil - 1;
            // Drop optional evil roles that do not fit this table, rotating which one goes first
            // (by seed) so every fitting combination stays reachable.
            let mut drop_order = [0, 1, 2];
            drop_order.rotate_left((seed % 3) as usize);
            for which in drop_order {
                if options.optional_evil_roles() <= available {
                    break;
                }
                match which {
                    0 => options.morgana = false,
                    1 => options.mordred = false,
                    _ => options.oberon = false,
                }
            }
            let ids: Vec<String> = (0..players).map(|seat| format!("player-{seat}")).collect();
            Scenario {
                setup: GameSetup::new(ids, options, seed),
                approve_percent,
                choices,
            }
        })
}

fn is_evil(role: Role) -> bool {
    matches!(
        role,
        Role::Assassin | Role::Morgana | Role::Mordred | Role::Oberon | Role::Minion
    )
}

/// Night knowledge straight from the rulebook, independently of the engine's implementation.
fn allowed_knowledge(roles: &[Role], viewer: Seat) -> Vec<SeatKnowledge> {
    let me = roles[viewer];
    (0..roles.len())
        .filter(|seat| *seat != viewer)
        .filter_map(|seat| {
            let other = roles[seat];
            let insight = match me {
                Role::Merlin if is_evil(other) && other != Role::Mordred => Some(Insight::Evil),
                Role::Percival if matches!(other, Role::Merlin | Role::Morgana) => {
                    Some(Insight::MerlinOrMorgana)
                }
                Role::Assassin | Role::Morgana | Role::Mordred | Role::Minion
                    if is_evil(other) && other != Role::Oberon =>
                {
                    Some(Insight::Evil)
                }
                _ => None,
            };
            insight.map(|insight| SeatKnowledge { seat, insight })
        })
        .collect()
}

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

fn role_name(role: Role) -> String {
    serde_json::to_value(role)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// Role names appearing as string values anywhere in a JSON document.
fn role_names_in(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) if ROLE_NAMES.contains(&text.as_str()) => {
            found.push(text.clone());
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| role_names_in(item, found)),
        serde_json::Value::Object(fields) => {
            fields.values().for_each(|item| role_names_in(item, found));
        }
        _ => {}
    }
}

/// A game in progress plus what the test itself knows about it.
struct Table {
    game: GameState,
    roles: Vec<Role>,
    /// Every accepted action, for replay.
    history: Vec<(Seat, Action)>,
    /// Hidden ballots on the current proposal.
    ballots: Vec<Option<bool>>,
    /// Hidden cards on the current quest.
    cards: Vec<Option<bool>>,
    /// (holder, target) of every Lady of the Lake use.
    lady_uses: Vec<(Seat, Seat)>,
    assassinated: Option<Seat>,
}

impl Table {
    fn new(setup: &GameSetup) -> Self {
        let game = GameState::new(setup.clone()).unwrap();
        let seats = setup.players.len();
        // Each player learns their own role from their own view; together they are the deal.
        let roles = (0..seats)
            .map(|seat| game.view_for(seat).unwrap().role)
            .collect();
        Self {
            game,
            roles,
            history: Vec::new(),
            ballots: vec![None; seats],
            cards: vec![None; seats],
            lady_uses: Vec::new(),
            assassinated: None,
        }
    }

    fn seats(&self) -> usize {
        self.roles.len()
    }

    /// A random legal action for a random pending actor.
    fn legal_action(&self, choice: u64, approve_percent: u32) -> (Seat, Action) {
        let mut rng = ChaCha8Rng::seed_from_u64(choice);
        let pending = self.game.pending_actors();
        let actor = *pending.choose(&mut rng).unwrap();
        let action = match self.game.phase() {
            Phase::TeamProposal => {
                let size = self.game.rules().team_size(self.game.quest_number() - 1);
                let mut seats: Vec<Seat> = (0..self.seats()).collect();
                seats.shuffle(&mut rng);
                seats.truncate(size);
                Action::Propose { team: seats }
            }
            Phase::TeamVote => Action::Vote {
                approve: rng.random_range(0..100) < approve_percent,
            },
            Phase::Quest => Action::PlayQuestCard {
                success: !is_evil(self.roles[actor]) || rng.random_bool(0.5),
            },
            Phase::LadyOfTheLake => {
                let lady = self.game.public_view().lady.unwrap();
                let eligible: Vec<Seat> = (0..self.seats())
                    .filter(|seat| !lady.previous_holders.contains(seat))
                    .collect();
                Action::LadyExamine {
                    target: *eligible.choose(&mut rng).unwrap(),
                }
            }
            Phase::Assassination => {
                let candidates: Vec<Seat> = (0..self.seats())
                    .filter(|seat| *seat != actor)
                    .filter(|seat| !is_evil(self.roles[*seat]) || self.roles[*seat] == Role::Oberon)
                    .collect();
                Action::Assassinate {
                    target: *candidates.choose(&mut rng).unwrap(),
                }
            }
            Phase::GameOver => unreachable!("no pending actors once the game is over"),
        };
        (actor, action)
    }

    /// Applies an action the test believes legal and updates the test's own records.
    fn apply_legal(&mut self, actor: Seat, action: Action) -> Vec<Event> {
        let events = self
            .game
            .apply(actor, action.clone())
            .unwrap_or_else(|error| panic!("legal {action:?} by {actor} refused: {error}"));
        match &action {
            Action::Vote { approve } => self.ballots[actor] = Some(*approve),
            Action::PlayQuestCard { success } => self.cards[actor] = Some(*success),
            Action::LadyExamine { target } => self.lady_uses.push((actor, *target)),
            Action::Assassinate { target } => self.assassinated = Some(*target),
            Action::Propose { .. } => {}
        }
        for event in &events {
            match event {
                Event::VotesRevealed { votes, .. } => {
                    let expected: Vec<bool> =
                        self.ballots.iter().map(|vote| vote.unwrap()).collect();
                    assert_eq!(votes, &expected, "revealed votes must be the votes cast");
                    self.ballots.fill(None);
                }
                Event::QuestCompleted { result } => {
                    let fails = self
                        .cards
                        .iter()
                        .filter(|card| **card == Some(false))
                        .count();
                    assert_eq!(
                        result.fails, fails,
                        "fail count must match the cards played"
                    );
                    self.cards.fill(None);
                }
                _ => {}
            }
        }
        self.history.push((actor, action));
        events
    }

    /// Plays the whole scenario, calling `inspect` before every step and once at the end.
    fn play(scenario: &Scenario, mut inspect: impl FnMut(&mut Table, u64)) -> Table {
        let mut table = Table::new(&scenario.setup);
        for &choice in &scenario.choices {
            inspect(&mut table, choice);
            if table.game.is_over() {
                return table;
            }
            let (actor, action) = table.legal_action(choice, scenario.approve_percent);
            table.apply_legal(actor, action);
        }
        inspect(&mut table, 0);
        assert!(
            table.game.is_over(),
            "a legal game must end within {MAX_STEPS} actions"
        );
        table
    }

    fn check_counts(&self) {
        let view = self.game.public_view();
        let rules = self.game.rules();
        let played: Vec<_> = view
            .quest_track
            .iter()
            .filter_map(|slot| slot.result.as_ref())
            .collect();
        assert!(played.len() <= QUEST_COUNT);
        let completed_events = view
            .log
            .iter()
            .filter(|event| matches!(event, Event::QuestCompleted { .. }))
            .count();
        assert_eq!(played.len(), completed_events);
        let successes = played.iter().filter(|quest| quest.succeeded).count();
        let failures = played.iter().filter(|quest| !quest.succeeded).count();
        assert_eq!(successes + failures, played.len());
        assert!(successes <= QUESTS_TO_DECIDE && failures <= QUESTS_TO_DECIDE);
        for (index, quest) in played.iter().enumerate() {
            assert_eq!(quest.quest, index + 1);
            assert_eq!(quest.team.len(), rules.team_size(index));
            assert_eq!(quest.successes + quest.fails, quest.team.len());
            assert_eq!(quest.fails_required, rules.fails_required(index));
            assert_eq!(quest.succeeded, quest.fails < quest.fails_required);
        }
        assert!(view.rejections <= MAX_PROPOSALS_PER_ROUND);
        if !self.game.is_over() {
            assert!(view.rejections < MAX_PROPOSALS_PER_ROUND);
            assert!(!view.pending.is_empty());
        }
        if let Some(proposal) = &view.proposal {
            assert_eq!(proposal.team.len(), rules.team_size(view.quest - 1));
            assert!(proposal.attempt <= MAX_PROPOSALS_PER_ROUND);
        }
        for event in &view.log {
            if let Event::TeamProposed { team, quest, .. } = event {
                assert_eq!(team.len(), rules.team_size(quest - 1));
            }
        }
    }

    fn check_outcome(&self) {
        let outcome = self.game.outcome().unwrap();
        let quests = self.game.public_view().quest_track;
        let count = |succeeded: bool| {
            quests
                .iter()
                .filter(|slot| {
                    slot.result
                        .as_ref()
                        .is_some_and(|quest| quest.succeeded == succeeded)
                })
                .count()
        };
        match outcome.reason {
            WinReason::ThreeQuestsFailed => assert_eq!(count(false), QUESTS_TO_DECIDE),
            WinReason::FiveTeamsRejected => {
                assert_eq!(self.game.public_view().rejections, MAX_PROPOSALS_PER_ROUND);
                assert!(!self.game.options().auto_approve_fifth);
            }
            WinReason::MerlinAssassinated | WinReason::MerlinSurvived => {
                assert_eq!(count(true), QUESTS_TO_DECIDE);
                let target = self.assassinated.unwrap();
                let found = self.roles[target] == Role::Merlin;
                assert_eq!(outcome.reason == WinReason::MerlinAssassinated, found);
            }
        }
        assert_eq!(outcome.winner, outcome.reason.winner());
        assert!(self.game.pending_actors().is_empty());
    }

    fn check_views(&self) {
        let over = self.game.is_over();
        let public = serde_json::to_value(self.game.public_view()).unwrap();
        let mut leaked = Vec::new();
        role_names_in(&public, &mut leaked);
        if !over {
            assert!(leaked.is_empty(), "public view shows roles {leaked:?}");
        }
        for seat in 0..self.seats() {
            let view = self.game.view_for(seat).unwrap();
            self.check_view(seat, &view);
        }
    }

    fn check_view(&self, seat: Seat, view: &PlayerView) {
        let role = self.roles[seat];
        assert_eq!(view.seat, seat);
        assert_eq!(view.role, role);
        assert_eq!(
            view.side,
            if is_evil(role) {
                Side::Evil
            } else {
                Side::Good
            }
        );
        assert_eq!(view.knowledge, allowed_knowledge(&self.roles, seat));
        let lady_results: Vec<(Seat, Side)> = self
            .lady_uses
            .iter()
            .filter(|(holder, _)| *holder == seat)
            .map(|(_, target)| {
                let side = if is_evil(self.roles[*target]) {
                    Side::Evil
                } else {
                    Side::Good
                };
                (*target, side)
            })
            .collect();
        let shown: Vec<(Seat, Side)> = view
            .lady_results
            .iter()
            .map(|result| (result.target, result.side))
            .collect();
        assert_eq!(
            shown, lady_results,
            "only the holder learns, and learns the true side"
        );
        assert_eq!(view.my_vote, self.ballots[seat]);
        assert_eq!(view.my_quest_card, self.cards[seat]);
        let voted: BTreeSet<Seat> = (0..self.seats())
            .filter(|s| self.ballots[*s].is_some())
            .collect();
        assert_eq!(
            view.table.voted.iter().copied().collect::<BTreeSet<_>>(),
            voted
        );

        if self.game.is_over() {
            assert_eq!(view.table.roles.as_deref(), Some(self.roles.as_slice()));
        } else {
            assert_eq!(view.table.roles, None);
            // Apart from the shared (already checked) table, the only role a player may see
            // named is their own.
            let mut private = view.clone();
            private.table.log.clear();
            let mut named = Vec::new();
            role_names_in(&serde_json::to_value(&private).unwrap(), &mut named);
            assert_eq!(named, vec![role_name(role)]);
        }
    }

    /// Actions that break a rule in a way the test can tell for sure, given the current state.
    fn surely_illegal_actions(&self, choice: u64) -> Vec<(Seat, Action)> {
        let mut rng = ChaCha8Rng::seed_from_u64(choice ^ 0x5eed);
        let seats = self.seats();
        let pending = self.game.pending_actors();
        let phase = self.game.phase();
        let mut illegal = vec![
            (
                seats + rng.random_range(0..5),
                Action::Vote { approve: true },
            ),
            (
                rng.random_range(0..seats),
                Action::Propose { team: Vec::new() },
            ),
        ];
        if phase == Phase::GameOver {
            illegal.push((0, Action::Vote { approve: true }));
            return illegal;
        }
        if let Some(idle) = (0..seats).find(|seat| !pending.contains(seat)) {
            let (_, action) = self.legal_action(choice, 50);
            illegal.push((idle, action));
        }
        let wrong_phase = [
            Action::Propose { team: vec![0] },
            Action::Vote { approve: false },
            Action::PlayQuestCard { success: true },
            Action::Assassinate { target: 0 },
            Action::LadyExamine { target: 0 },
        ];
        illegal.extend(
            wrong_phase
                .into_iter()
                .filter(|action| action.kind().phase() != phase)
                .map(|action| (rng.random_range(0..seats), action)),
        );
        let actor = pending[rng.random_range(0..pending.len())];
        match phase {
            Phase::TeamProposal => {
                let size = self.game.rules().team_size(self.game.quest_number() - 1);
                let wrong_size = if rng.random_bool(0.5) {
                    size - 1
                } else {
                    size + 1
                };
                illegal.push((
                    actor,
                    Action::Propose {
                        team: (0..wrong_size).collect(),
                    },
                ));
                illegal.push((
                    actor,
                    Action::Propose {
                        team: vec![actor; size],
                    },
                ));
            }
            Phase::TeamVote => {
                if let Some(voted) = (0..seats).find(|seat| self.ballots[*seat].is_some()) {
                    illegal.push((voted, Action::Vote { approve: true }));
                }
            }
            Phase::Quest => {
                if !is_evil(self.roles[actor]) {
                    illegal.push((actor, Action::PlayQuestCard { success: false }));
                }
                if let Some(played) = (0..seats).find(|seat| self.cards[*seat].is_some()) {
                    illegal.push((played, Action::PlayQuestCard { success: true }));
                }
            }
            Phase::LadyOfTheLake => {
                let lady = self.game.public_view().lady.unwrap();
                illegal.push((actor, Action::LadyExamine { target: actor }));
                for previous in lady.previous_holders {
                    illegal.push((actor, Action::LadyExamine { target: previous }));
                }
            }
            Phase::Assassination => {
                illegal.push((actor, Action::Assassinate { target: actor }));
                let allies = (0..seats)
                    .filter(|seat| is_evil(self.roles[*seat]) && self.roles[*seat] != Role::Oberon);
                for ally in allies {
                    illegal.push((actor, Action::Assassinate { target: ally }));
                }
            }
            Phase::GameOver => {}
        }
        illegal
    }

    /// Any actor, any action, any payload: may or may not be legal.
    fn random_action(&self, choice: u64) -> (Seat, Action) {
        let mut rng = ChaCha8Rng::seed_from_u64(choice ^ 0xa11);
        let seat_or_beyond = |rng: &mut ChaCha8Rng| rng.random_range(0..self.seats() + 2);
        let actor = seat_or_beyond(&mut rng);
        let action = match rng.random_range(0..5) {
            0 => {
                let size = rng.random_range(0..7);
                Action::Propose {
                    team: (0..size).map(|_| seat_or_beyond(&mut rng)).collect(),
                }
            }
            1 => Action::Vote {
                approve: rng.random_bool(0.5),
            },
            2 => Action::PlayQuestCard {
                success: rng.random_bool(0.5),
            },
            3 => Action::Assassinate {
                target: seat_or_beyond(&mut rng),
            },
            _ => Action::LadyExamine {
                target: seat_or_beyond(&mut rng),
            },
        };
        (actor, action)
    }
}

/// Applies an action that must be refused; checks the refusal is explained and changes nothing.
fn assert_refused(game: &mut GameState, actor: Seat, action: Action) {
    let before = game.clone();
    let before_json = serde_json::to_string(game).unwrap();
    let error = game.apply(actor, action.clone()).expect_err(&format!(
        "{action:?} by seat {actor} in {:?} must be refused",
        before.phase()
    ));
    assert!(!error.code().is_empty());
    assert!(!error.to_string().is_empty());
    assert_eq!(*game, before, "refused {} changed the state", error.code());
    assert_eq!(serde_json::to_string(game).unwrap(), before_json);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn legal_games_terminate_with_consistent_counts(scenario in scenario()) {
        let table = Table::play(&scenario, |table, _| {
            table.game.check_integrity().unwrap();
            table.check_counts();
        });
        table.check_outcome();
        prop_assert!(table.history.len() <= MAX_STEPS);
    }

    #[test]
    fn views_never_show_more_than_the_rules_grant(scenario in scenario()) {
        Table::play(&scenario, |table, _| table.check_views());
    }

    #[test]
    fn illegal_actions_are_refused_and_change_nothing(scenario in scenario()) {
        Table::play(&scenario, |table, choice| {
            for (actor, action) in table.surely_illegal_actions(choice) {
                assert_refused(&mut table.game, actor, action);
            }
            // A fully random action may happen to be legal; then it is simply played.
            let (actor, action) = table.random_action(choice);
            let before = table.game.clone();
            match before.clone().apply(actor, action.clone()) {
                Ok(_) => {
                    table.apply_legal(actor, action);
                }
                Err(_) => assert_refused(&mut table.game, actor, action),
            }
        });
    }

    #[test]
    fn replaying_the_same_seed_and_actions_gives_the_same_game(scenario in scenario()) {
        let table = Table::play(&scenario, |_, _| {});
        let mut replay = GameState::new(scenario.setup.clone()).unwrap();
        for (actor, action) in &table.history {
            replay.apply(*actor, action.clone()).unwrap();
        }
        prop_assert_eq!(&replay, &table.game);
        prop_assert_eq!(
            serde_json::to_string(&replay).unwrap(),
            serde_json::to_string(&table.game).unwrap()
        );
    }

    #[test]
    fn state_round_trips_through_json_at_every_step(scenario in scenario()) {
        Table::play(&scenario, |table, _| {
            let json = serde_json::to_string(&table.game).unwrap();
            let back: GameState = serde_json::from_str(&json).unwrap();
            assert_eq!(back, table.game);
        });
    }
}
