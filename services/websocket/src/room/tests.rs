use std::time::Duration;

use avalon_game::{Action, Phase, RoomOptions};

use super::*;

fn user(id: &str) -> User {
    User {
        id: id.to_owned(),
        name: format!("Player {id}"),
    }
}

fn lobby(players: usize) -> Room {
    let mut room = Room::new(
        "ABCD23".into(),
        &user("u0"),
        "c0",
        RoomOptions::default(),
        1_000,
    );
    for index in 1..players {
        room.join(&user(&format!("u{index}")), &format!("c{index}"), 1_000)
            .unwrap();
    }
    room
}

fn start(room: &mut Room) -> Result<Effects, WsError> {
    room.start(
        "u0",
        GameStart {
            seed: 7,
            game_id: "g1".into(),
            now_ms: 2_000,
            maintenance: None,
        },
    )
}

fn ready_all(room: &mut Room) {
    let ids: Vec<String> = room.members.iter().map(|m| m.user_id.clone()).collect();
    for id in ids {
        room.set_ready(&id, true).unwrap();
    }
}

#[test]
fn a_game_starts_only_when_everyone_is_ready_and_the_host_asks() {
    let mut room = lobby(5);
    assert_eq!(start(&mut room).unwrap_err().code, "NOT_ALL_READY");
    ready_all(&mut room);
    let not_host = room.start(
        "u1",
        GameStart {
            seed: 1,
            game_id: "g".into(),
            now_ms: 0,
            maintenance: None,
        },
    );
    assert_eq!(not_host.unwrap_err().code, "NOT_HOST");
    let effects = start(&mut room).unwrap();
    assert!(matches!(
        effects.events[0],
        Event::GameStarted { players: 5, .. }
    ));
    assert_eq!(room.stage(), Stage::Playing);
    assert_eq!(
        room.join(&user("late"), "c9", 3_000).unwrap_err().code,
        "GAME_IN_PROGRESS"
    );
    assert!(
        room.join(&user("u3"), "c3b", 3_000).unwrap(),
        "a player takes their seat back"
    );
}

#[test]
fn maintenance_and_player_count_refuse_a_start() {
    let mut room = lobby(4);
    ready_all(&mut room);
    assert_eq!(start(&mut room).unwrap_err().code, "BAD_PLAYER_COUNT");
    let mut room = lobby(5);
    ready_all(&mut room);
    let refused = room.start(
        "u0",
        GameStart {
            seed: 1,
            game_id: "g".into(),
            now_ms: 0,
            maintenance: Some("back soon".into()),
        },
    );
    assert_eq!(refused.unwrap_err().code, "MAINTENANCE");
}

#[test]
fn playing_members_cannot_leave_but_lobby_members_can_and_the_host_passes_on() {
    let mut room = lobby(5);
    room.leave("u0").unwrap();
    assert_eq!(room.host, "u1");
    room.join(&user("u5"), "c5", 1_000).unwrap();
    ready_all(&mut room);
    room.start(
        "u1",
        GameStart {
            seed: 3,
            game_id: "g".into(),
            now_ms: 0,
            maintenance: None,
        },
    )
    .unwrap();
    assert_eq!(room.leave("u2").unwrap_err().code, "GAME_IN_PROGRESS");
}

#[test]
fn absent_lobby_members_expire_after_the_window_but_players_keep_their_seats() {
    let mut room = lobby(5);
    assert!(
        !room.disconnect("u4", "stale", 10_000).unwrap(),
        "another socket's disconnect"
    );
    assert!(room.disconnect("u4", "c4", 10_000).unwrap());
    assert!(
        room.expire_absent(10_500, Duration::from_secs(1))
            .is_empty()
    );
    assert_eq!(
        room.expire_absent(12_000, Duration::from_secs(1)),
        vec!["u4".to_owned()]
    );
    room.join(&user("u4"), "c4b", 12_000).unwrap();
    ready_all(&mut room);
    start(&mut room).unwrap();
    room.disconnect("u4", "c4b", 13_000).unwrap();
    assert!(
        room.expire_absent(99_000, Duration::from_secs(1))
            .is_empty()
    );
}

#[test]
fn a_finished_game_yields_its_record_once() {
    let mut room = lobby(5);
    room.options.auto_approve_fifth = false;
    ready_all(&mut room);
    start(&mut room).unwrap();
    let mut finished = None;
    // Everyone rejects every team: the fifth rejection is an Evil win.
    for _ in 0..200 {
        let Some(game) = room.game.as_ref() else {
            break;
        };
        if game.state.is_over() {
            break;
        }
        let pending = game.state.pending_actors();
        let players = game.state.players().to_vec();
        let size = game.state.rules().team_sizes[game.state.quest_number() - 1];
        for seat in pending {
            let action = match room.game.as_ref().unwrap().state.phase() {
                Phase::TeamProposal => Action::Propose {
                    team: (0..size).collect(),
                },
                Phase::TeamVote => Action::Vote { approve: false },
                other => panic!("unexpected phase {other}"),
            };
            let effects = room.act(players[seat].as_str(), action, 5_000).unwrap();
            if effects.finished.is_some() {
                finished = effects.finished;
            }
        }
    }
    let record = finished.expect("a record");
    assert_eq!(record.game_id, "g1");
    assert_eq!(record.room_code, "ABCD23");
    assert_eq!(record.summary.duration_ms, 3_000);
    assert_eq!(room.stage(), Stage::Finished);
    assert!(room.members.iter().all(|member| !member.ready));
    let again = room.act("u0", Action::Vote { approve: true }, 6_000);
    assert_eq!(again.unwrap_err().code, "GAME_OVER");
}

#[test]
fn chat_is_trimmed_bounded_and_kept_short() {
    let mut room = lobby(2);
    assert_eq!(
        room.chat("u1", "   ", 10, 0).unwrap_err().code,
        "CHAT_EMPTY"
    );
    assert_eq!(
        room.chat("u1", "x".repeat(11).as_str(), 10, 0)
            .unwrap_err()
            .code,
        "CHAT_TOO_LONG"
    );
    assert_eq!(
        room.chat("nobody", "hi", 10, 0).unwrap_err().code,
        "NOT_IN_ROOM"
    );
    for index in 0..(CHAT_HISTORY + 5) {
        room.version += 1;
        room.chat("u1", &format!("m{index}"), 10, 0).unwrap();
    }
    assert_eq!(room.chat.len(), CHAT_HISTORY);
    assert_eq!(
        room.view().chat.last().unwrap().text,
        format!("m{}", CHAT_HISTORY + 4)
    );
}

#[test]
fn the_room_view_carries_no_roles_while_playing() {
    let mut room = lobby(5);
    ready_all(&mut room);
    start(&mut room).unwrap();
    let json = serde_json::to_string(&room.view()).unwrap();
    for role in ["merlin", "assassin", "loyal_servant", "minion"] {
        assert!(!json.contains(role), "room view leaks {role}: {json}");
    }
    assert!(room.player_view("u2").is_some());
    assert!(room.player_view("stranger").is_none());
}
