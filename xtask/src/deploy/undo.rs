//! What a plain `cargo xtask rollback` (no `--to`) undoes: the last change that put a release in front of
//! users, and only while that change stands. A change that already undid itself (an aborted canary, a
//! deploy or promotion its verification rolled back, a failed start) leaves nothing to undo; a rollback
//! whose own verification failed is not undone by another automatic rollback (that would ping-pong
//! between two releases): the operator names the release.

use super::ledger::{Entry, Event, History, Outcome};
use super::live::{LiveRelease, Situation, rollback_target, situation};

#[derive(Debug, Clone, PartialEq)]
pub enum Undo<'a> {
    /// Return to this good release.
    To(&'a Entry),
    /// A canary is open (taking a share, or started and not yet ended): aborting it is the undo.
    AbortCanary(&'a Entry),
    /// Nothing changes; why, and what the operator can do instead.
    Nothing(String),
}

/// The undo for `history`, given what the edge serves now.
pub fn what_to_undo<'a>(history: &'a History, serving: &LiveRelease) -> anyhow::Result<Undo<'a>> {
    if let Some(canary) = history.canary_in_progress() {
        return Ok(Undo::AbortCanary(canary));
    }
    let live = history.live();
    // A deploy stopped after its switch (interrupted, or killed) left the edge on a release no verification
    // passed: the undo is the last verified release, whatever the ledger's last intent says. Any other
    // disagreement (a rollback left unverified on purpose, a hand-made change) is not guessed at below.
    if matches!(
        situation(history, serving),
        Situation::Unverified {
            unfinished: Some(_),
            ..
        }
    ) && let Some(verified) = rollback_target(history, serving)
    {
        return Ok(Undo::To(verified));
    }
    let further = || {
        history.previous_good().map_or_else(
            || "the ledger has no earlier good release".to_owned(),
            |e| {
                format!(
                    "to return to an earlier release anyway: `cargo xtask rollback --to {}`",
                    e.release.version
                )
            },
        )
    };
    // A deploy killed before its switch (its entry still `started`, the edge on the verified release) changed
    // nothing users get, exactly like one interrupted there: nothing to undo either way.
    if let Situation::Consistent {
        unfinished: Some(unfinished),
    } = situation(history, serving)
        && unfinished.outcome == Outcome::Started
        && let Some(live) = live
    {
        return Ok(Undo::Nothing(format!(
            "the last change, {}, did not finish (no outcome recorded: killed before its switch, or still \
             running); {}, live before it, is still live (the edge serves {}). `cargo xtask deploy --resume` \
             finishes it; {}",
            change(&unfinished),
            live.release.version,
            serving.describe(),
            further()
        )));
    }
    // The newest entry that ended something; a `started` entry of a command still running (or
    // interrupted) says nothing about what users got.
    let last = history
        .entries
        .iter()
        .rev()
        .find(|e| e.outcome != Outcome::Started && e.event != Event::Scale);
    if let Some(last) = last.filter(|e| undid_itself(e)) {
        let Some(live) = live else {
            return Ok(Undo::Nothing(format!(
                "the last change, {}, {}; no slotted release was ever live",
                change(last),
                ending(last)
            )));
        };
        if serving.version.as_deref() == Some(live.release.version.as_str()) {
            return Ok(Undo::Nothing(format!(
                "the last change, {}, {}; {}, live before it, is still live (the edge serves {}); {}",
                change(last),
                ending(last),
                live.release.version,
                serving.describe(),
                further()
            )));
        }
        anyhow::bail!(
            "the last change, {}, {}, yet the edge serves {} while the ledger's last live release is {}: \
             see `cargo xtask status`, then name the release to serve: `cargo xtask rollback --to VERSION`",
            change(last),
            ending(last),
            serving.describe(),
            live.release.version
        );
    }
    if let Some(last) =
        last.filter(|e| e.event == Event::Rollback && e.outcome == Outcome::VerifyFailed)
    {
        return Ok(Undo::Nothing(format!(
            "the last rollback, to {} on slot {}, failed its verification and was left in place \
             ({}); another automatic rollback would ping-pong between releases. Name the release to \
             serve: `cargo xtask rollback --to VERSION`, or deploy a fix",
            last.release.version,
            last.slot,
            last.note.as_deref().unwrap_or("no note")
        )));
    }
    let Some(live) = live else {
        anyhow::bail!("the ledger records no live release to roll back from");
    };
    match history.previous_good() {
        Some(previous) => Ok(Undo::To(previous)),
        None => anyhow::bail!(
            "the ledger has no good release before {} to return to",
            live.release.version
        ),
    }
}

/// Whether `entry` ended a change that put traffic back where it was by itself.
fn undid_itself(entry: &Entry) -> bool {
    // Interrupted before its verification passed: the edge was put back on the release before it.
    let interrupted_and_put_back =
        entry.event == Event::Deploy && entry.outcome == Outcome::Interrupted && entry.weight == 0;
    interrupted_and_put_back
        || matches!(
            (entry.event, entry.outcome),
            (Event::CanaryAbort, _)
                | (_, Outcome::Aborted | Outcome::RolledBack)
                | (
                    Event::Deploy | Event::CanaryStart | Event::CanaryPromote | Event::Rollback,
                    Outcome::Failed
                )
        )
}

fn change(entry: &Entry) -> String {
    let what = match entry.event {
        Event::Deploy => "the deploy of",
        Event::CanaryStart | Event::CanaryStep | Event::CanaryAbort => "the canary of",
        Event::CanaryPromote => "the promotion of",
        Event::Rollback => "the rollback to",
        Event::Scale => "the scaling of",
    };
    format!("{what} {} on slot {}", entry.release.version, entry.slot)
}

fn ending(entry: &Entry) -> String {
    let how = match entry.outcome {
        Outcome::RolledBack => "was rolled back by its verification",
        Outcome::Failed => "failed before it took traffic",
        Outcome::Interrupted => "was interrupted and put back on the release before it",
        _ => "was aborted",
    };
    format!(
        "{how} at {} UTC{}",
        super::table_time(entry.at),
        entry
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::deploy::ledger::Release;
    use crate::deploy::slots::Slot;

    fn entry(seq: u64, event: Event, version: &str, slot: &str, outcome: Outcome) -> Entry {
        Entry {
            seq,
            at: time::OffsetDateTime::from_unix_timestamp(1_700_000_000 + seq as i64).unwrap(),
            event,
            release: Release {
                version: version.to_owned(),
                images: BTreeMap::new(),
                config_digest: "sha256:c".to_owned(),
            },
            slot: slot.to_owned(),
            weight: 0,
            outcome,
            who: "ops@host".to_owned(),
            from: "test".to_owned(),
            note: None,
            plan: None,
            fence: None,
        }
    }

    fn history(entries: Vec<Entry>) -> History {
        History {
            entries,
            damaged: Vec::new(),
        }
    }

    fn serving(slot: Slot, version: &str) -> LiveRelease {
        LiveRelease {
            slot: Some(slot),
            version: Some(version.to_owned()),
            canary: None,
        }
    }

    fn deployed() -> Vec<Entry> {
        vec![
            entry(1, Event::Deploy, "1.0.0", "blue", Outcome::Succeeded),
            entry(2, Event::Deploy, "1.1.0", "green", Outcome::Started),
            entry(3, Event::Deploy, "1.1.0", "green", Outcome::Succeeded),
        ]
    }

    #[test]
    fn after_a_deploy_the_undo_is_the_previous_good_release() {
        let history = history(deployed());
        let Undo::To(to) = what_to_undo(&history, &serving(Slot::Green, "1.1.0")).unwrap() else {
            panic!()
        };
        assert_eq!(to.release.version, "1.0.0");
    }

    #[test]
    fn after_an_aborted_canary_there_is_nothing_to_undo_and_the_stable_release_stays() {
        // The case: a canary of the older 1.0.0 (with a fault switch) aborted itself on blue.
        let mut entries = deployed();
        entries.push(entry(
            4,
            Event::CanaryStart,
            "1.0.0",
            "blue",
            Outcome::Started,
        ));
        entries.push(entry(
            5,
            Event::CanaryStep,
            "1.0.0",
            "blue",
            Outcome::Succeeded,
        ));
        let mut abort = entry(6, Event::CanaryAbort, "1.0.0", "blue", Outcome::Aborted);
        abort.note = Some("judgment at 50%: 5xx rate 48.2 %".to_owned());
        entries.push(abort);
        let history = history(entries);
        let undo = what_to_undo(&history, &serving(Slot::Green, "1.1.0")).unwrap();
        let Undo::Nothing(why) = undo else {
            panic!("{undo:?}")
        };
        assert!(
            why.contains("the canary of 1.0.0 on slot blue") && why.contains("was aborted"),
            "{why}"
        );
        assert!(why.contains("5xx rate 48.2 %"), "{why}");
        assert!(
            why.contains("1.1.0, live before it, is still live"),
            "{why}"
        );
        assert!(why.contains("`cargo xtask rollback --to 1.0.0`"), "{why}");
    }

    #[test]
    fn a_deploy_or_promotion_its_verification_undid_leaves_nothing_to_undo() {
        for (event, outcome) in [
            (Event::Deploy, Outcome::RolledBack),
            (Event::Deploy, Outcome::Failed),
            (Event::CanaryPromote, Outcome::RolledBack),
        ] {
            let mut entries = deployed();
            entries.push(entry(4, event, "1.2.0", "blue", outcome));
            let history = history(entries);
            let undo = what_to_undo(&history, &serving(Slot::Green, "1.1.0")).unwrap();
            assert!(
                matches!(undo, Undo::Nothing(_)),
                "{event:?} {outcome:?}: {undo:?}"
            );
        }
    }

    #[test]
    fn an_edge_that_contradicts_the_ledger_is_not_guessed_at() {
        let mut entries = deployed();
        entries.push(entry(
            4,
            Event::CanaryAbort,
            "1.2.0",
            "blue",
            Outcome::Aborted,
        ));
        let history = history(entries);
        let err = what_to_undo(&history, &serving(Slot::Blue, "1.2.0")).unwrap_err();
        assert!(format!("{err}").contains("rollback --to VERSION"), "{err}");
    }

    #[test]
    fn an_open_canary_is_undone_by_aborting_it() {
        let mut entries = deployed();
        entries.push(entry(
            4,
            Event::CanaryStart,
            "1.2.0",
            "blue",
            Outcome::Started,
        ));
        let history = history(entries);
        let undo = what_to_undo(&history, &serving(Slot::Green, "1.1.0")).unwrap();
        assert!(
            matches!(undo, Undo::AbortCanary(e) if e.seq == 4),
            "{undo:?}"
        );
    }

    #[test]
    fn a_rollback_that_failed_its_verification_is_not_rolled_back_again() {
        let mut entries = deployed();
        entries.push(entry(
            4,
            Event::Rollback,
            "1.0.0",
            "blue",
            Outcome::VerifyFailed,
        ));
        let history = history(entries);
        let undo = what_to_undo(&history, &serving(Slot::Blue, "1.0.0")).unwrap();
        let Undo::Nothing(why) = undo else {
            panic!("{undo:?}")
        };
        assert!(why.contains("ping-pong"), "{why}");
    }

    #[test]
    fn a_deploy_killed_before_its_switch_leaves_nothing_to_undo() {
        let mut entries = deployed();
        entries.push(entry(4, Event::Deploy, "1.2.0", "blue", Outcome::Started));
        let history = history(entries);
        let undo = what_to_undo(&history, &serving(Slot::Green, "1.1.0")).unwrap();
        let Undo::Nothing(why) = undo else {
            panic!("{undo:?}")
        };
        assert!(why.contains("did not finish"), "{why}");
        // Killed after its switch: the edge serves 1.2.0 unverified; the undo is the verified 1.1.0.
        let undo = what_to_undo(&history, &serving(Slot::Blue, "1.2.0")).unwrap();
        assert!(
            matches!(undo, Undo::To(e) if e.release.version == "1.1.0"),
            "{undo:?}"
        );
    }
}
