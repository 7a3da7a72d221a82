//! The whole game as one serializable value, and the read-only questions the server asks it.

use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::Seat;
use crate::error::{IntegrityError, SetupError};
use crate::log::{Event, GameOutcome, QuestResult};
use crate::roles::{Role, Side, deal_roles};
use crate::rules::TableRules;
use crate::setup::{GameSetup, PlayerId, RoomOptions};

/// Where the game stands, i.e. what kind of action it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The leader must propose a team.
    TeamProposal,
    /// Everyone must vote on the proposed team.
    TeamVote,
    /// The approved team must play quest cards.
    Quest,
    /// The Lady of the Lake holder must examine a player.
    LadyOfTheLake,
    /// The Assassin must name Merlin.
    Assassination,
    /// A winner is known.
    GameOver,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::TeamProposal => "team proposal",
            Phase::TeamVote => "team vote",
            Phase::Quest => "quest",
            Phase::LadyOfTheLake => "Lady of the Lake",
            Phase::Assassination => "assassination",
            Phase::GameOver => "game over",
        })
    }
}

/// The team currently proposed (during the vote) or approved (during the quest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Who proposed it.
    pub leader: Seat,
    /// Team seats in ascending order.
    pub team: Vec<Seat>,
    /// 1 for the first proposal of the current quest, up to 5.
    pub attempt: usize,
}

/// One use of the Lady of the Lake, including the secret result. Stays inside the engine; views
/// expose it to the holder only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LadyExamination {
    /// Who held the token and looked.
    pub holder: Seat,
    /// Who was examined (and received the token).
    pub target: Seat,
    /// The examined player's loyalty.
    pub seen: Side,
}

/// The Lady of the Lake token (only when the room option is on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LadyState {
    /// Current holder.
    pub(crate) holder: Seat,
    /// Everyone who ever held the token, the current holder included, in order.
    pub(crate) holders: Vec<Seat>,
    /// Every examination so far, in order.
    pub(crate) examinations: Vec<LadyExamination>,
}

/// The Assassin's guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assassination {
    /// The Assassin's seat.
    pub assassin: Seat,
    /// The named seat.
    pub target: Seat,
    /// Whether the named seat was Merlin.
    pub merlin_found: bool,
}

/// A complete Avalon game: deterministic, free of I/O, and round-trippable through serde.
///
/// Deserialization re-checks the structural invariants (see [`GameState::check_integrity`]) so a
/// corrupted stored state is refused instead of panicking later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredGameState")]
pub struct GameState {
    pub(crate) players: Vec<PlayerId>,
    pub(crate) options: RoomOptions,
    pub(crate) seed: u64,
    pub(crate) rules: TableRules,
    /// `roles[seat]`; secret until the game ends.
    pub(crate) roles: Vec<Role>,
    pub(crate) first_leader: Seat,
    pub(crate) phase: Phase,
    /// Who proposes next (or is proposing now).
    pub(crate) leader: Seat,
    /// Rejected proposals in the current quest round.
    pub(crate) rejections: usize,
    pub(crate) proposal: Option<Proposal>,
    /// `ballots[seat]`, hidden until every seat has voted, then cleared.
    pub(crate) ballots: Vec<Option<bool>>,
    /// `quest_cards[seat]` (`true` = Success), never revealed individually, cleared after counting.
    pub(crate) quest_cards: Vec<Option<bool>>,
    pub(crate) quests: Vec<QuestResult>,
    pub(crate) lady: Option<LadyState>,
    pub(crate) assassination: Option<Assassination>,
    pub(crate) outcome: Option<GameOutcome>,
    pub(crate) log: Vec<Event>,
}

/// Same shape as [`GameState`]; exists so deserialization can check integrity before a
/// `GameState` exists.
#[derive(Deserialize)]
struct StoredGameState {
    players: Vec<PlayerId>,
    options: RoomOptions,
    seed: u64,
    rules: TableRules,
    roles: Vec<Role>,
    first_leader: Seat,
    phase: Phase,
    leader: Seat,
    rejections: usize,
    proposal: Option<Proposal>,
    ballots: Vec<Option<bool>>,
    quest_cards: Vec<Option<bool>>,
    quests: Vec<QuestResult>,
    lady: Option<LadyState>,
    assassination: Option<Assassination>,
    outcome: Option<GameOutcome>,
    log: Vec<Event>,
}

impl TryFrom<StoredGameState> for GameState {
    type Error = IntegrityError;

    fn try_from(stored: StoredGameState) -> Result<Self, Self::Error> {
        let state = GameState {
            players: stored.players,
            options: stored.options,
            seed: stored.seed,
            rules: stored.rules,
            roles: stored.roles,
            first_leader: stored.first_leader,
            phase: stored.phase,
            leader: stored.leader,
            rejections: stored.rejections,
            proposal: stored.proposal,
            ballots: stored.ballots,
            quest_cards: stored.quest_cards,
            quests: stored.quests,
            lady: stored.lady,
            assassination: stored.assassination,
            outcome: stored.outcome,
            log: stored.log,
        };
        state.check_integrity()?;
        Ok(state)
    }
}

impl GameState {
    /// Validates the setup, deals roles and picks the first leader with a
    /// `ChaCha8Rng` seeded from `setup.seed`.
    pub fn new(setup: GameSetup) -> Result<Self, SetupError> {
        let rules = setup.table_rules()?;
        let seats = rules.players;
        let mut rng = ChaCha8Rng::seed_from_u64(setup.seed);
        let roles = deal_roles(&rules, &setup.options, &mut rng);
        let first_leader = rng.random_range(0..seats);
        // The token starts to the leader's right, i.e. one seat counter-clockwise.
        let lady = setup.options.lady_of_the_lake.then(|| {
            let holder = (first_leader + seats - 1) % seats;
            LadyState {
                holder,
                holders: vec![holder],
                examinations: Vec::new(),
            }
        });
        let started = Event::GameStarted {
            players: seats,
            first_leader,
            lady_holder: lady.as_ref().map(|lady| lady.holder),
        };
        Ok(Self {
            players: setup.players,
            options: setup.options,
            seed: setup.seed,
            rules,
            roles,
            first_leader,
            phase: Phase::TeamProposal,
            leader: first_leader,
            rejections: 0,
            proposal: None,
            ballots: vec![None; seats],
            quest_cards: vec![None; seats],
            quests: Vec::new(),
            lady,
            assassination: None,
            outcome: None,
            log: vec![started],
        })
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Seats that must act before the game can move on, in seat order. Empty once the game is over.
    pub fn pending_actors(&self) -> Vec<Seat> {
        match self.phase {
            Phase::TeamProposal => vec![self.leader],
            Phase::TeamVote => self.seats_without(&self.ballots, |_| true),
            Phase::Quest => match &self.proposal {
                Some(proposal) => {
                    self.seats_without(&self.quest_cards, |seat| proposal.team.contains(&seat))
                }
                None => Vec::new(),
            },
            Phase::LadyOfTheLake => self.lady.iter().map(|lady| lady.holder).collect(),
            Phase::Assassination => self.assassin().into_iter().collect(),
            Phase::GameOver => Vec::new(),
        }
    }

    /// Current quest number, 1 to 5 (the last one played once the game is over).
    pub fn quest_number(&self) -> usize {
        self.quest_index() + 1
    }

    /// Players in seat order.
    pub fn players(&self) -> &[PlayerId] {
        &self.players
    }

    /// The seat of a player id, if they are at this table.
    pub fn seat_of(&self, player: &str) -> Option<Seat> {
        self.players.iter().position(|id| id.as_str() == player)
    }

    /// The room options the game was created with.
    pub fn options(&self) -> &RoomOptions {
        &self.options
    }

    /// The seed the game was created with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The rulebook numbers of this table.
    pub fn rules(&self) -> &TableRules {
        &self.rules
    }

    /// The public event log.
    pub fn log(&self) -> &[Event] {
        &self.log
    }

    /// The winner and reason, once the game is over.
    pub fn outcome(&self) -> Option<GameOutcome> {
        self.outcome
    }

    /// Whether a winner is known.
    pub fn is_over(&self) -> bool {
        self.outcome.is_some()
    }

    /// 0-based index of the quest being played (or last played, once all are done).
    pub(crate) fn quest_index(&self) -> usize {
        self.quests.len().min(self.rules.team_sizes.len() - 1)
    }

    pub(crate) fn assassin(&self) -> Option<Seat> {
        self.roles.iter().position(|role| *role == Role::Assassin)
    }

    pub(crate) fn quests_with(&self, succeeded: bool) -> usize {
        self.quests
            .iter()
            .filter(|quest| quest.succeeded == succeeded)
            .count()
    }

    /// Seats passing `include` whose slot in `slots` is still empty.
    fn seats_without(&self, slots: &[Option<bool>], include: impl Fn(Seat) -> bool) -> Vec<Seat> {
        slots
            .iter()
            .enumerate()
            .filter(|(seat, slot)| slot.is_none() && include(*seat))
            .map(|(seat, _)| seat)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{new_game, options_with_lady};

    #[test]
    fn first_leader_is_seeded_and_lady_starts_to_the_leaders_right() {
        let mut leaders = std::collections::HashSet::new();
        for seed in 0..40 {
            for players in 5..=10 {
                let game = new_game(players, options_with_lady(), seed);
                let again = new_game(players, options_with_lady(), seed);
                assert_eq!(game, again, "same seed, same game");
                assert_eq!(game.leader, game.first_leader);
                assert!(game.first_leader < players);
                let holder = game.lady.as_ref().unwrap().holder;
                assert_eq!(holder, (game.first_leader + players - 1) % players);
                assert_eq!(
                    game.log,
                    vec![Event::GameStarted {
                        players,
                        first_leader: game.first_leader,
                        lady_holder: Some(holder),
                    }]
                );
                if players == 10 {
                    leaders.insert(game.first_leader);
                }
            }
        }
        assert!(
            leaders.len() > 3,
            "the first leader must depend on the seed"
        );
    }

    #[test]
    fn lady_wraps_from_seat_zero_to_the_last_seat() {
        let game = (0..200)
            .map(|seed| new_game(7, options_with_lady(), seed))
            .find(|game| game.first_leader == 0)
            .unwrap();
        assert_eq!(game.lady.as_ref().unwrap().holder, 6);
    }

    #[test]
    fn no_lady_without_the_option() {
        let game = new_game(5, RoomOptions::default(), 3);
        assert!(game.lady.is_none());
        assert_eq!(
            game.log,
            vec![Event::GameStarted {
                players: 5,
                first_leader: game.first_leader,
                lady_holder: None
            }]
        );
    }

    #[test]
    fn a_new_game_waits_for_the_first_leader() {
        let game = new_game(8, RoomOptions::default(), 9);
        assert_eq!(game.phase(), Phase::TeamProposal);
        assert_eq!(game.pending_actors(), vec![game.first_leader]);
        assert!(!game.is_over());
        assert_eq!(game.seat_of("p3"), Some(3));
        assert_eq!(game.seat_of("nobody"), None);
        assert_eq!(game.players().len(), 8);
        assert_eq!(game.seed(), 9);
        assert_eq!(game.rules().players, 8);
        assert_eq!(game.options(), &RoomOptions::default());
    }

    #[test]
    fn setup_errors_surface_from_new() {
        let setup = GameSetup::new(["a", "b", "c"], RoomOptions::default(), 1);
        assert_eq!(
            GameState::new(setup).unwrap_err(),
            SetupError::BadPlayerCount { count: 3 }
        );
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;
    use crate::actions::Action;
    use crate::testkit::{new_game, play_quest, propose, reach_assassination};

    fn round_trip(game: &GameState) {
        let json = serde_json::to_string(game).unwrap();
        let back: GameState = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, game);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn state_round_trips_through_json_in_every_phase() {
        let options = RoomOptions {
            percival: true,
            morgana: true,
            oberon: true,
            lady_of_the_lake: true,
            auto_approve_fifth: true,
            ..RoomOptions::default()
        };
        let mut game = new_game(9, options, 40);
        round_trip(&game);
        propose(&mut game, &[0, 1, 2]);
        game.apply(4, Action::Vote { approve: true }).unwrap();
        round_trip(&game);
        for seat in (0..9).filter(|seat| *seat != 4) {
            game.apply(seat, Action::Vote { approve: true }).unwrap();
        }
        game.apply(1, Action::PlayQuestCard { success: true })
            .unwrap();
        round_trip(&game);
        for seat in [0, 2] {
            game.apply(seat, Action::PlayQuestCard { success: true })
                .unwrap();
        }
        play_quest(&mut game, 1);
        assert_eq!(game.phase(), Phase::LadyOfTheLake);
        round_trip(&game);
        reach_assassination(&mut game);
        round_trip(&game);
        let assassin = game.assassin().unwrap();
        let oberon = game
            .roles
            .iter()
            .position(|role| *role == Role::Oberon)
            .unwrap();
        game.apply(assassin, Action::Assassinate { target: oberon })
            .unwrap();
        assert_eq!(game.phase(), Phase::GameOver);
        round_trip(&game);
    }

    #[test]
    fn inconsistent_stored_state_is_refused() {
        let game = new_game(5, RoomOptions::default(), 41);
        let mut json = serde_json::to_value(&game).unwrap();
        json["leader"] = serde_json::json!(12);
        let error = serde_json::from_value::<GameState>(json).unwrap_err();
        assert!(error.to_string().contains("inconsistent"), "{error}");

        let mut json = serde_json::to_value(&game).unwrap();
        json["phase"] = serde_json::json!("quest");
        assert!(serde_json::from_value::<GameState>(json).is_err());
    }
}
