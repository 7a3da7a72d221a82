use super::*;
use crate::setup::RoomOptions;
use crate::testkit::{
    new_game, options_with_lady, play_quest, propose, reach_assassination, seat_of, seats_on,
    team_with_evil, use_lady_if_due, vote_all,
};
use crate::view::{LadyResult, LadyUse};

/// Applies an action that must be refused and checks that nothing changed.
fn refused(game: &mut GameState, actor: Seat, action: Action) -> RuleError {
    let before = game.clone();
    let error = game.apply(actor, action).unwrap_err();
    assert_eq!(
        *game, before,
        "refused {error:?} must leave the state unchanged"
    );
    assert!(!error.to_string().is_empty());
    error
}

fn first_team(game: &GameState) -> Vec<Seat> {
    (0..game.rules.team_size(game.quest_index())).collect()
}

fn reject_proposal(game: &mut GameState) {
    let team = first_team(game);
    propose(game, &team);
    vote_all(game, |_| false);
}

#[test]
fn leadership_passes_clockwise_after_rejected_and_approved_proposals() {
    let mut game = new_game(5, RoomOptions::default(), 11);
    let first = game.leader;
    reject_proposal(&mut game);
    assert_eq!(game.leader, (first + 1) % 5);
    assert_eq!(game.phase(), Phase::TeamProposal);

    let team = first_team(&game);
    propose(&mut game, &team);
    vote_all(&mut game, |_| true);
    assert_eq!(game.phase(), Phase::Quest);
    assert_eq!(
        game.leader,
        (first + 2) % 5,
        "approval passes leadership too"
    );
    assert_eq!(game.proposal.as_ref().unwrap().leader, (first + 1) % 5);
}

#[test]
fn leadership_wraps_around_the_table() {
    let mut game = (0..100)
        .map(|seed| new_game(6, RoomOptions::default(), seed))
        .find(|game| game.leader == 5)
        .unwrap();
    reject_proposal(&mut game);
    assert_eq!(game.leader, 0);
}

#[test]
fn proposals_are_checked() {
    let mut game = new_game(7, RoomOptions::default(), 3);
    let leader = game.leader;
    let other = (leader + 1) % 7;
    let team = vec![0, 1];

    let error = refused(&mut game, other, Action::Propose { team: team.clone() });
    assert_eq!(
        error,
        RuleError::NotYourTurn {
            actor: other,
            waiting_for: leader
        }
    );
    assert_eq!(error.code(), "NOT_YOUR_TURN");

    let error = refused(
        &mut game,
        leader,
        Action::Propose {
            team: vec![0, 1, 2],
        },
    );
    assert_eq!(
        error,
        RuleError::BadTeamSize {
            quest: 1,
            expected: 2,
            got: 3
        }
    );
    assert_eq!(error.code(), "BAD_TEAM_SIZE");

    let error = refused(&mut game, leader, Action::Propose { team: vec![4, 4] });
    assert_eq!(error, RuleError::DuplicateTeamMember { seat: 4 });
    assert_eq!(error.code(), "DUPLICATE_TEAM_MEMBER");

    let error = refused(&mut game, leader, Action::Propose { team: vec![0, 7] });
    assert_eq!(error, RuleError::UnknownSeat { seat: 7 });
    assert_eq!(error.code(), "UNKNOWN_SEAT");

    let error = refused(&mut game, 9, Action::Propose { team });
    assert_eq!(error, RuleError::UnknownSeat { seat: 9 });

    let error = refused(&mut game, leader, Action::Vote { approve: true });
    assert_eq!(
        error,
        RuleError::WrongPhase {
            action: ActionKind::Vote,
            phase: Phase::TeamProposal
        }
    );
    assert_eq!(error.code(), "WRONG_PHASE");
}

#[test]
fn proposed_team_is_announced_sorted_and_voting_opens() {
    let mut game = new_game(5, RoomOptions::default(), 4);
    let leader = game.leader;
    let events = propose(&mut game, &[3, 1]);
    assert_eq!(
        events,
        vec![Event::TeamProposed {
            quest: 1,
            attempt: 1,
            leader,
            team: vec![1, 3]
        }]
    );
    assert_eq!(game.phase(), Phase::TeamVote);
    assert_eq!(game.pending_actors(), vec![0, 1, 2, 3, 4]);
    let error = refused(&mut game, leader, Action::Propose { team: vec![0, 1] });
    assert_eq!(error.code(), "WRONG_PHASE");
}

#[test]
fn votes_stay_hidden_until_everyone_has_voted() {
    let mut game = new_game(5, RoomOptions::default(), 5);
    propose(&mut game, &[0, 1]);
    for seat in 0..4 {
        let events = game
            .apply(
                seat,
                Action::Vote {
                    approve: seat % 2 == 0,
                },
            )
            .unwrap();
        assert_eq!(events, vec![Event::VoteCast { seat }]);
    }
    assert_eq!(game.pending_actors(), vec![4]);
    let spectator = game.public_view();
    assert_eq!(spectator.voted, vec![0, 1, 2, 3]);
    assert!(
        !spectator
            .log
            .iter()
            .any(|event| matches!(event, Event::VotesRevealed { .. }))
    );
    assert_eq!(game.view_for(2).unwrap().my_vote, Some(true));
    assert_eq!(game.view_for(1).unwrap().my_vote, Some(false));
    assert_eq!(game.view_for(4).unwrap().my_vote, None);

    let error = refused(&mut game, 2, Action::Vote { approve: false });
    assert_eq!(error, RuleError::AlreadyVoted { seat: 2 });
    assert_eq!(error.code(), "ALREADY_VOTED");

    let events = game.apply(4, Action::Vote { approve: true }).unwrap();
    assert_eq!(
        events[1],
        Event::VotesRevealed {
            quest: 1,
            attempt: 1,
            votes: vec![true, false, true, false, true],
            approved: true,
        }
    );
    assert!(game.public_view().voted.is_empty());
    assert_eq!(
        game.view_for(2).unwrap().my_vote,
        None,
        "ballots are cleared after the reveal"
    );
}

#[test]
fn a_tie_rejects_and_a_strict_majority_approves() {
    for (players, approvals, approved) in [
        (6, 3, false),
        (6, 4, true),
        (10, 5, false),
        (10, 6, true),
        (5, 3, true),
        (5, 2, false),
    ] {
        let mut game = new_game(players, RoomOptions::default(), 6);
        let team = first_team(&game);
        propose(&mut game, &team);
        let events = vote_all(&mut game, |seat| seat < approvals);
        let revealed = events
            .iter()
            .find_map(|event| match event {
                Event::VotesRevealed { approved, .. } => Some(*approved),
                _ => None,
            })
            .unwrap();
        assert_eq!(revealed, approved, "{approvals} of {players}");
        let phase = if approved {
            Phase::Quest
        } else {
            Phase::TeamProposal
        };
        assert_eq!(game.phase(), phase);
    }
}

#[test]
fn the_fifth_rejected_proposal_hands_evil_the_game() {
    let mut game = new_game(8, RoomOptions::default(), 7);
    for rejected in 1..=4 {
        reject_proposal(&mut game);
        assert_eq!(game.rejections, rejected);
        assert_eq!(game.public_view().rejections, rejected);
        assert_eq!(game.phase(), Phase::TeamProposal);
    }
    let team = first_team(&game);
    let events = propose(&mut game, &team);
    assert_eq!(
        events,
        vec![Event::TeamProposed {
            quest: 1,
            attempt: 5,
            leader: game.proposal.as_ref().unwrap().leader,
            team
        }]
    );
    let events = vote_all(&mut game, |_| false);
    assert_eq!(
        events.last().unwrap(),
        &Event::GameEnded {
            winner: Side::Evil,
            reason: WinReason::FiveTeamsRejected,
            roles: game.roles.clone(),
        }
    );
    assert_eq!(game.phase(), Phase::GameOver);
    assert_eq!(game.outcome().unwrap().reason, WinReason::FiveTeamsRejected);
    assert!(game.pending_actors().is_empty());
}

#[test]
fn auto_approve_turns_the_fifth_proposal_into_the_quest_team() {
    let options = RoomOptions {
        auto_approve_fifth: true,
        ..RoomOptions::default()
    };
    let mut game = new_game(6, options, 8);
    for _ in 0..4 {
        reject_proposal(&mut game);
    }
    let leader = game.leader;
    let team = first_team(&game);
    let events = propose(&mut game, &team);
    assert_eq!(
        events,
        vec![
            Event::TeamProposed {
                quest: 1,
                attempt: 5,
                leader,
                team: team.clone()
            },
            Event::TeamAutoApproved {
                quest: 1,
                attempt: 5
            },
        ]
    );
    assert_eq!(game.phase(), Phase::Quest);
    assert_eq!(game.pending_actors(), team);
    assert_eq!(game.rejections, 0);
    assert_eq!(game.leader, (leader + 1) % 6);
}

#[test]
fn rejections_reset_when_a_team_is_approved() {
    let mut game = new_game(5, RoomOptions::default(), 9);
    reject_proposal(&mut game);
    reject_proposal(&mut game);
    assert_eq!(game.rejections, 2);
    play_quest(&mut game, 0);
    assert_eq!(game.rejections, 0);
    let team = first_team(&game);
    let events = propose(&mut game, &team);
    assert!(matches!(
        events[0],
        Event::TeamProposed {
            quest: 2,
            attempt: 1,
            ..
        }
    ));
}

#[test]
fn quest_cards_are_checked() {
    let mut game = new_game(5, RoomOptions::default(), 10);
    let team = team_with_evil(&game, 1);
    propose(&mut game, &team);
    vote_all(&mut game, |_| true);
    let evil = team[0];
    let good = team[1];
    let outsider = (0..5).find(|seat| !team.contains(seat)).unwrap();

    let error = refused(&mut game, outsider, Action::PlayQuestCard { success: true });
    assert_eq!(error, RuleError::NotOnTeam { seat: outsider });
    assert_eq!(error.code(), "NOT_ON_TEAM");

    let error = refused(&mut game, good, Action::PlayQuestCard { success: false });
    assert_eq!(error, RuleError::GoodCannotFail);
    assert_eq!(error.code(), "GOOD_CANNOT_FAIL");

    game.apply(evil, Action::PlayQuestCard { success: false })
        .unwrap();
    let error = refused(&mut game, evil, Action::PlayQuestCard { success: true });
    assert_eq!(error, RuleError::AlreadyPlayed { seat: evil });
    assert_eq!(error.code(), "ALREADY_PLAYED");
    assert_eq!(game.pending_actors(), vec![good]);
    assert_eq!(game.view_for(evil).unwrap().my_quest_card, Some(false));
    assert_eq!(game.public_view().played, vec![evil]);
}

#[test]
fn a_quest_reveals_only_its_counts() {
    let mut game = new_game(5, RoomOptions::default(), 12);
    let events = play_quest(&mut game, 1);
    let team = game.quests[0].team.clone();
    let expected: Vec<Event> = team
        .iter()
        .map(|seat| Event::QuestCardPlayed { seat: *seat })
        .chain([Event::QuestCompleted {
            result: QuestResult {
                quest: 1,
                team: team.clone(),
                successes: 1,
                fails: 1,
                fails_required: 1,
                succeeded: false,
            },
        }])
        .collect();
    assert_eq!(events, expected);
    assert!(
        game.quest_cards.iter().all(Option::is_none),
        "cards are discarded after counting"
    );
    let public = serde_json::to_value(game.public_view())
        .unwrap()
        .to_string();
    assert!(
        !public.contains("success\":"),
        "no individual card may leak: {public}"
    );
}

#[test]
fn a_single_fail_sinks_an_ordinary_quest() {
    for players in 5..=10 {
        let mut game = new_game(players, RoomOptions::default(), 13);
        play_quest(&mut game, 1);
        assert!(!game.quests[0].succeeded, "{players} players");
        assert_eq!(game.phase(), Phase::TeamProposal);
    }
}

#[test]
fn the_fourth_quest_needs_two_fails_from_seven_players() {
    for players in 5..=10 {
        let two_fail_rule = players >= 7;
        let mut one_fail = new_game(players, RoomOptions::default(), 14);
        for fails in [0, 1, 0] {
            play_quest(&mut one_fail, fails);
        }
        let mut two_fails = one_fail.clone();

        play_quest(&mut one_fail, 1);
        let fourth = &one_fail.quests[3];
        assert_eq!(
            (fourth.fails, fourth.fails_required),
            (1, if two_fail_rule { 2 } else { 1 })
        );
        assert_eq!(
            fourth.succeeded, two_fail_rule,
            "{players} players, one fail"
        );
        let next = if two_fail_rule {
            Phase::Assassination
        } else {
            Phase::TeamProposal
        };
        assert_eq!(one_fail.phase(), next);

        play_quest(&mut two_fails, 2);
        assert!(
            !two_fails.quests[3].succeeded,
            "{players} players, two fails"
        );
    }
}

#[test]
fn three_failed_quests_hand_evil_the_game_and_reveal_every_role() {
    let mut game = new_game(7, RoomOptions::default(), 15);
    play_quest(&mut game, 1);
    play_quest(&mut game, 0);
    play_quest(&mut game, 1);
    let events = play_quest(&mut game, 2);
    assert_eq!(
        events.last().unwrap(),
        &Event::GameEnded {
            winner: Side::Evil,
            reason: WinReason::ThreeQuestsFailed,
            roles: game.roles.clone(),
        }
    );
    assert_eq!(game.phase(), Phase::GameOver);
    for seat in 0..7 {
        assert_eq!(
            game.view_for(seat).unwrap().table.roles,
            Some(game.roles.clone())
        );
    }
    assert_eq!(game.public_view().roles, Some(game.roles.clone()));

    let error = refused(&mut game, 0, Action::Vote { approve: true });
    assert_eq!(error, RuleError::GameOver);
    assert_eq!(error.code(), "GAME_OVER");
    let error = refused(&mut game, 70, Action::Vote { approve: true });
    assert_eq!(error.code(), "UNKNOWN_SEAT");
}

#[test]
fn three_successes_lead_to_the_assassination() {
    let mut game = new_game(5, RoomOptions::default(), 16);
    reach_assassination(&mut game);
    assert_eq!(game.quests.len(), 3);
    let assassin = seat_of(&game, Role::Assassin);
    assert_eq!(game.pending_actors(), vec![assassin]);

    let bystander = seats_on(&game, Side::Good)[0];
    let merlin = seat_of(&game, Role::Merlin);
    let error = refused(&mut game, bystander, Action::Assassinate { target: merlin });
    assert_eq!(error, RuleError::NotAssassin);
    assert_eq!(error.code(), "NOT_ASSASSIN");

    let error = refused(
        &mut game,
        assassin,
        Action::Assassinate { target: assassin },
    );
    assert_eq!(error, RuleError::AssassinTargetsSelf);
    assert_eq!(error.code(), "ASSASSIN_TARGETS_SELF");

    let minion = seat_of(&game, Role::Minion);
    let error = refused(&mut game, assassin, Action::Assassinate { target: minion });
    assert_eq!(error, RuleError::AssassinTargetsKnownEvil { seat: minion });
    assert_eq!(error.code(), "ASSASSIN_TARGETS_KNOWN_EVIL");

    let error = refused(&mut game, assassin, Action::Assassinate { target: 5 });
    assert_eq!(error.code(), "UNKNOWN_SEAT");
    let error = refused(&mut game, assassin, Action::Propose { team: vec![0, 1] });
    assert_eq!(error.code(), "WRONG_PHASE");
}

#[test]
fn naming_merlin_wins_for_evil() {
    let mut game = new_game(6, RoomOptions::default(), 17);
    reach_assassination(&mut game);
    let assassin = seat_of(&game, Role::Assassin);
    let merlin = seat_of(&game, Role::Merlin);
    let events = game
        .apply(assassin, Action::Assassinate { target: merlin })
        .unwrap();
    assert_eq!(
        events,
        vec![
            Event::AssassinationAttempted {
                assassin,
                target: merlin,
                merlin_found: true
            },
            Event::GameEnded {
                winner: Side::Evil,
                reason: WinReason::MerlinAssassinated,
                roles: game.roles.clone(),
            },
        ]
    );
    assert_eq!(
        game.outcome(),
        Some(GameOutcome {
            winner: Side::Evil,
            reason: WinReason::MerlinAssassinated
        })
    );
}

#[test]
fn missing_merlin_wins_for_good() {
    let mut game = new_game(
        6,
        RoomOptions {
            percival: true,
            ..RoomOptions::default()
        },
        18,
    );
    reach_assassination(&mut game);
    let assassin = seat_of(&game, Role::Assassin);
    let percival = seat_of(&game, Role::Percival);
    let events = game
        .apply(assassin, Action::Assassinate { target: percival })
        .unwrap();
    assert_eq!(
        events[0],
        Event::AssassinationAttempted {
            assassin,
            target: percival,
            merlin_found: false
        }
    );
    assert_eq!(
        game.outcome(),
        Some(GameOutcome {
            winner: Side::Good,
            reason: WinReason::MerlinSurvived
        })
    );
    assert_eq!(game.phase(), Phase::GameOver);
}

#[test]
fn the_assassin_may_name_oberon_whom_they_cannot_see() {
    let options = RoomOptions {
        oberon: true,
        ..RoomOptions::default()
    };
    let mut game = new_game(5, options, 19);
    reach_assassination(&mut game);
    let assassin = seat_of(&game, Role::Assassin);
    let oberon = seat_of(&game, Role::Oberon);
    game.apply(assassin, Action::Assassinate { target: oberon })
        .unwrap();
    assert_eq!(game.outcome().unwrap().winner, Side::Good);
}

/// A game with the Lady of the Lake whose first holder is not `avoid`.
fn lady_game(players: usize, options: RoomOptions, avoid: &[Role]) -> GameState {
    (0..500)
        .map(|seed| new_game(players, options, seed))
        .find(|game| !avoid.contains(&game.roles[game.lady.as_ref().unwrap().holder]))
        .unwrap()
}

#[test]
fn lady_is_used_after_quests_two_three_and_four() {
    let mut game = new_game(7, options_with_lady(), 20);
    let mut lady_phases = Vec::new();
    for fails in [0, 1, 0, 2] {
        play_quest(&mut game, fails);
        if game.phase() == Phase::LadyOfTheLake {
            lady_phases.push(game.quests.len());
        }
        use_lady_if_due(&mut game);
    }
    assert_eq!(lady_phases, vec![2, 3, 4]);
    let lady = game.public_view().lady.unwrap();
    assert_eq!(lady.uses.len(), 3);
    assert_eq!(lady.previous_holders.len(), 4);
}

#[test]
fn lady_is_skipped_once_the_quest_track_is_decided() {
    let mut game = new_game(5, options_with_lady(), 21);
    play_quest(&mut game, 0);
    assert_eq!(
        game.phase(),
        Phase::TeamProposal,
        "never after the first quest"
    );
    play_quest(&mut game, 0);
    assert_eq!(game.phase(), Phase::LadyOfTheLake);
    use_lady_if_due(&mut game);
    play_quest(&mut game, 0);
    assert_eq!(game.phase(), Phase::Assassination);
}

#[test]
fn lady_examination_is_checked_passes_the_token_and_informs_only_the_holder() {
    let options = RoomOptions {
        lady_of_the_lake: true,
        mordred: true,
        oberon: true,
        ..RoomOptions::default()
    };
    let mut game = lady_game(7, options, &[Role::Mordred, Role::Oberon]);
    let first_holder = game.lady.as_ref().unwrap().holder;
    let mordred = seat_of(&game, Role::Mordred);
    let oberon = seat_of(&game, Role::Oberon);

    let error = refused(
        &mut game,
        first_holder,
        Action::LadyExamine { target: mordred },
    );
    assert_eq!(error.code(), "WRONG_PHASE", "not before the second quest");
    play_quest(&mut game, 0);
    play_quest(&mut game, 1);
    assert_eq!(game.phase(), Phase::LadyOfTheLake);
    assert_eq!(game.pending_actors(), vec![first_holder]);

    let other = (first_holder + 1) % 7;
    let error = refused(&mut game, other, Action::LadyExamine { target: mordred });
    assert_eq!(
        error,
        RuleError::NotYourTurn {
            actor: other,
            waiting_for: first_holder
        }
    );
    let error = refused(
        &mut game,
        first_holder,
        Action::LadyExamine {
            target: first_holder,
        },
    );
    assert_eq!(error, RuleError::LadyExaminesSelf);
    assert_eq!(error.code(), "LADY_EXAMINES_SELF");
    let error = refused(&mut game, first_holder, Action::LadyExamine { target: 7 });
    assert_eq!(error.code(), "UNKNOWN_SEAT");

    let events = game
        .apply(first_holder, Action::LadyExamine { target: mordred })
        .unwrap();
    assert_eq!(
        events,
        vec![Event::LadyExamined {
            holder: first_holder,
            target: mordred
        }]
    );
    assert_eq!(game.phase(), Phase::TeamProposal);
    assert_eq!(
        game.lady.as_ref().unwrap().holder,
        mordred,
        "the token passes to the examined"
    );
    let result = LadyResult {
        target: mordred,
        side: Side::Evil,
    };
    assert_eq!(
        game.view_for(first_holder).unwrap().lady_results,
        vec![result]
    );
    for seat in (0..7).filter(|seat| *seat != first_holder) {
        assert!(
            game.view_for(seat).unwrap().lady_results.is_empty(),
            "seat {seat}"
        );
    }

    play_quest(&mut game, 0);
    assert_eq!(game.phase(), Phase::LadyOfTheLake);
    let error = refused(
        &mut game,
        mordred,
        Action::LadyExamine {
            target: first_holder,
        },
    );
    assert_eq!(error, RuleError::LadyPreviousHolder { seat: first_holder });
    assert_eq!(error.code(), "LADY_PREVIOUS_HOLDER");
    game.apply(mordred, Action::LadyExamine { target: oberon })
        .unwrap();
    assert_eq!(
        game.view_for(mordred).unwrap().lady_results,
        vec![LadyResult {
            target: oberon,
            side: Side::Evil
        }]
    );
    assert_eq!(
        game.view_for(first_holder).unwrap().lady_results,
        vec![result],
        "results stay with the holder after the token moves on"
    );
    let public = game.public_view().lady.unwrap();
    assert_eq!(
        public.uses,
        vec![
            LadyUse {
                holder: first_holder,
                target: mordred
            },
            LadyUse {
                holder: mordred,
                target: oberon
            },
        ]
    );
    assert_eq!(public.previous_holders, vec![first_holder, mordred, oberon]);
    assert_eq!(public.holder, oberon);
}

#[test]
fn lady_shows_good_players_as_good() {
    let mut game = lady_game(5, options_with_lady(), &[]);
    let holder = game.lady.as_ref().unwrap().holder;
    let target = seats_on(&game, Side::Good)
        .into_iter()
        .find(|seat| *seat != holder)
        .unwrap();
    play_quest(&mut game, 0);
    play_quest(&mut game, 1);
    game.apply(holder, Action::LadyExamine { target }).unwrap();
    assert_eq!(
        game.view_for(holder).unwrap().lady_results,
        vec![LadyResult {
            target,
            side: Side::Good
        }]
    );
}

#[test]
fn pending_actors_follow_the_phase() {
    let mut game = new_game(5, options_with_lady(), 22);
    assert_eq!(game.pending_actors(), vec![game.leader]);
    propose(&mut game, &[1, 3]);
    assert_eq!(game.pending_actors(), vec![0, 1, 2, 3, 4]);
    game.apply(3, Action::Vote { approve: true }).unwrap();
    assert_eq!(game.pending_actors(), vec![0, 1, 2, 4]);
    for seat in [0, 1, 2, 4] {
        game.apply(seat, Action::Vote { approve: true }).unwrap();
    }
    assert_eq!(game.pending_actors(), vec![1, 3]);
    for seat in [1, 3] {
        game.apply(seat, Action::PlayQuestCard { success: true })
            .unwrap();
    }
    play_quest(&mut game, 0);
    assert_eq!(
        game.pending_actors(),
        vec![game.lady.as_ref().unwrap().holder]
    );
}

#[test]
fn accepted_events_are_appended_to_the_log() {
    let mut game = new_game(6, options_with_lady(), 23);
    let mut expected = game.log.clone();
    let leader = game.leader;
    expected.extend(
        game.apply(leader, Action::Propose { team: vec![0, 1] })
            .unwrap(),
    );
    for seat in 0..6 {
        expected.extend(game.apply(seat, Action::Vote { approve: false }).unwrap());
    }
    assert_eq!(game.log, expected);
}
