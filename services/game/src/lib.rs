//! A pure, deterministic rules engine for *The Resistance: Avalon*.
//!
//! # Model
//!
//! A game is one value, [`GameState`], created from a [`GameSetup`] (player ids in clockwise seat
//! order, [`RoomOptions`], and a `u64` seed). The seed drives a `ChaCha8Rng` that deals the roles
//! and picks the first leader; nothing else is random, so the same setup and the same actions
//! always produce the same state. The engine does no I/O and has no clock: the caller supplies
//! timestamps where they matter ([`GameState::summary`]).
//!
//! Players act through [`GameState::apply`] with a seat index and an [`Action`]. An accepted
//! action returns the public [`Event`]s it caused (also appended to the log); a refused one
//! returns a [`RuleError`] with a stable [`RuleError::code`] and leaves the state untouched.
//! [`GameState::phase`] and [`GameState::pending_actors`] tell the server whom it is waiting
//! for, e.g. to drive timeouts.
//!
//! The game flows through [`Phase`]s: the leader proposes a team, everybody votes at once (a tie
//! rejects; leadership moves one seat clockwise after every proposal), an approved team plays
//! quest cards, and after quests 2–4 the Lady of the Lake may examine someone. Three failed
//! quests or five rejected proposals in one round win for Evil; three successful quests lead to
//! the Assassin's single guess at Merlin.
//!
//! ```
//! use avalon_game::{Action, GameSetup, GameState, Phase, RoomOptions};
//!
//! let options = RoomOptions { percival: true, morgana: true, ..RoomOptions::default() };
//! let setup = GameSetup::new(["ann", "bob", "cat", "dan", "eve"], options, 42);
//! let mut game = GameState::new(setup)?;
//!
//! let leader = game.pending_actors()[0];
//! game.apply(leader, Action::Propose { team: vec![0, 1] })?;
//! assert_eq!(game.phase(), Phase::TeamVote);
//!
//! // A refused action explains itself and changes nothing.
//! game.apply(leader, Action::Vote { approve: true })?;
//! let refused = game.apply(leader, Action::Vote { approve: false }).unwrap_err();
//! assert_eq!(refused.code(), "ALREADY_VOTED");
//!
//! let view = game.view_for_player("bob")?;
//! assert_eq!(view.seat, 1);
//! assert!(view.table.roles.is_none(), "roles stay secret until the game ends");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Secrets
//!
//! The state holds every secret (roles, ballots before the reveal, quest cards, Lady results), so
//! it must never be sent to players as is. The only ways out are [`GameState::view_for`] /
//! [`GameState::view_for_player`] (what one player may know), [`GameState::public_view`] (what a
//! spectator may know) and [`GameState::summary`] (available once the game is over).
//!
//! # Storage
//!
//! [`GameState`] round-trips through serde (e.g. JSON in Redis) exactly; deserialization checks
//! the structural invariants ([`GameState::check_integrity`]) and refuses inconsistent input.
//!
//! # Decisions where the rulebook is silent
//!
//! * Morgana without Percival is allowed and reported as [`SetupWarning::MorganaWithoutPercival`]
//!   by [`GameSetup::validate`]; she then plays like a plain Minion.
//! * The Assassin may name any player except themselves and the evil players they can see.
//!   Oberon is hidden from them, so naming Oberon is accepted (and misses) rather than refused,
//!   which would reveal him.
//! * With `auto_approve_fifth`, the fifth proposal of a round becomes the quest team without a
//!   vote and still passes leadership on.
//! * The Lady of the Lake is not used after a quest that decides the quest track (third success
//!   or third failure): the game is heading to the assassination or already over.
//! * A proposal's team is stored and shown in ascending seat order.

mod actions;
mod error;
mod integrity;
mod knowledge;
mod log;
mod record;
mod roles;
mod rules;
mod setup;
mod state;
#[cfg(test)]
mod testkit;
mod view;

/// A seat index, `0..players`, clockwise.
pub type Seat = usize;

pub use actions::{Action, ActionKind};
pub use error::{IntegrityError, RuleError, SetupError};
pub use knowledge::{Insight, SeatKnowledge, insight, night_knowledge};
pub use log::{Event, GameOutcome, QuestResult, WinReason};
pub use record::{FINISHED_GAMES_FIELD, FINISHED_GAMES_SPOOL, FINISHED_GAMES_STREAM, FinishedGame};
pub use roles::{Role, Side};
pub use rules::{
    MAX_PLAYERS, MAX_PROPOSALS_PER_ROUND, MIN_PLAYERS, QUEST_COUNT, QUESTS_TO_DECIDE, TableRules,
};
pub use setup::{GameSetup, PlayerId, RoomOptions, SetupWarning};
pub use state::{Assassination, GameState, LadyExamination, Phase, Proposal};
pub use view::{
    GameSummary, LadyPublic, LadyResult, LadyUse, PlayerView, PublicView, QuestSlot, SummaryPlayer,
};
