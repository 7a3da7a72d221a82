//! Helpers for driving games to a chosen situation in unit tests.

use crate::Seat;
use crate::actions::Action;
use crate::log::Event;
use crate::roles::{Role, Side};
use crate::setup::{GameSetup, RoomOptions};
use crate::state::{GameState, Phase};

pub(crate) fn new_game(players: usize, options: RoomOptions, seed: u64) -> GameState {
    let ids: Vec<String> = (0..players).map(|seat| format!("p{seat}")).collect();
    GameState::new(GameSetup::new(ids, options, seed)).unwrap()
}

pub(crate) fn options_with_lady() -> RoomOptions {
    RoomOptions {
        lady_of_the_lake: true,
        ..RoomOptions::default()
    }
}

pub(crate) fn seat_of(game: &GameState, role: Role) -> Seat {
    game.roles.iter().position(|dealt| *dealt == role).unwrap()
}

pub(crate) fn seats_on(game: &GameState, side: Side) -> Vec<Seat> {
    (0..game.players.len())
        .filter(|seat| game.roles[*seat].side() == side)
        .collect()
}

/// The leader proposes `team`.
pub(crate) fn propose(game: &mut GameState, team: &[Seat]) -> Vec<Event> {
    let leader = game.leader;
    game.apply(
        leader,
        Action::Propose {
            team: team.to_vec(),
        },
    )
    .unwrap()
}

/// Every seat votes; `approvals` decides who approves.
pub(crate) fn vote_all(game: &mut GameState, approves: impl Fn(Seat) -> bool) -> Vec<Event> {
    let mut events = Vec::new();
    for seat in 0..game.players.len() {
        events.extend(
            game.apply(
                seat,
                Action::Vote {
                    approve: approves(seat),
                },
            )
            .unwrap(),
        );
    }
    events
}

/// A team of the current quest's size holding exactly `evil_members` evil players (evil first).
pub(crate) fn team_with_evil(game: &GameState, evil_members: usize) -> Vec<Seat> {
    let size = game.rules.team_size(game.quest_index());
    let evil = seats_on(game, Side::Evil);
    let good = seats_on(game, Side::Good);
    let mut team: Vec<Seat> = evil.into_iter().take(evil_members).collect();
    team.extend(good.into_iter().take(size - team.len()));
    team
}

/// Proposes a team with `fails` evil members, approves it unanimously, and plays it with exactly
/// `fails` Fail cards.
pub(crate) fn play_quest(game: &mut GameState, fails: usize) -> Vec<Event> {
    let team = team_with_evil(game, fails);
    propose(game, &team);
    vote_all(game, |_| true);
    assert_eq!(game.phase(), Phase::Quest);
    let mut events = Vec::new();
    for seat in team {
        let success = game.roles[seat].side() == Side::Good;
        events.extend(game.apply(seat, Action::PlayQuestCard { success }).unwrap());
    }
    events
}

/// Examines the first eligible seat if the game waits for the Lady of the Lake.
pub(crate) fn use_lady_if_due(game: &mut GameState) {
    if game.phase() != Phase::LadyOfTheLake {
        return;
    }
    let lady = game.lady.as_ref().unwrap();
    let holder = lady.holder;
    let target = (0..game.players.len())
        .find(|seat| !lady.holders.contains(seat))
        .unwrap();
    game.apply(holder, Action::LadyExamine { target }).unwrap();
}

/// Plays quests until three have succeeded, leaving the game in the assassination phase.
pub(crate) fn reach_assassination(game: &mut GameState) {
    use_lady_if_due(game);
    while game.phase() != Phase::Assassination {
        play_quest(game, 0);
        use_lady_if_due(game);
    }
}
