//! The release ledger: an append-only history of what ran where, kept on the target (see
//! [`super::ledger_store`]) so rollback works from any checkout and from CI.
//!
//! Each line of the JSONL history is one [`Entry`]; nothing is ever rewritten. A release's fate is
//! recorded by appending a later entry (a canary abort, a rollback), so the history also answers "what
//! happened and when", not only "what runs now".

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What was deployed: the version plus the exact images and configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Semver plus git revision, e.g. `0.3.0-1a2b3c4`, or the image tag deployed.
    pub version: String,
    /// Image reference per service (`api`, `websocket`) as started: a repo digest when the image has one,
    /// else the image id, so the very same bits can be started again.
    pub images: BTreeMap<String, String>,
    /// sha256 of the effective configuration the slot was started with (compose model + edge model).
    pub config_digest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A blue/green deploy: the release took all traffic.
    Deploy,
    /// A canary began on the idle slot.
    CanaryStart,
    /// A canary weight step was judged.
    CanaryStep,
    /// The canary took all traffic.
    CanaryPromote,
    /// The canary was stopped (by judgment or by hand): weight 0, drained.
    CanaryAbort,
    /// Traffic went back to an earlier release.
    Rollback,
    /// The live slot's replicas of one service changed (`cargo xtask scale`, or `autoscale` with its
    /// reason); the note says which service, from how many to how many, and why. Routes nothing: the
    /// rollback and deploy logic skips these entries.
    Scale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Started; a later entry says how it ended (a crash leaves it like this, which `status` shows).
    Started,
    Succeeded,
    Failed,
    /// Reverted automatically by a failed judgment or verification.
    RolledBack,
    Aborted,
    /// The route changed and its verification failed, and the command left traffic there on purpose
    /// (a rollback: switching back would ping-pong between releases); the note says what is live.
    VerifyFailed,
    /// Stopped by SIGINT/SIGTERM (the note names the step) after putting the edge back on the last
    /// verified route. Weight 100: the release had passed its verification and only the drain of the old
    /// slot was left (it counts as live); weight 0: traffic is back on the release before it.
    Interrupted,
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// 1, 2, 3 … in append order.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub event: Event,
    pub release: Release,
    /// `blue` or `green`.
    pub slot: String,
    /// Share of users on `slot` after this entry (0–100).
    pub weight: u8,
    pub outcome: Outcome,
    /// `user@host` of the operator or CI job.
    pub who: String,
    /// Where the command ran from: the checkout's revision, or the CI run.
    pub from: String,
    /// Why: a failed judgment's reasons, a rollback's target, an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The canary plan, for canary entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The deploy lock's fencing number the entry was written under (see `lock.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
}

impl Entry {
    /// Whether this entry put its release in front of all users.
    pub fn made_live(&self) -> bool {
        let verified = self.outcome == Outcome::Succeeded
            || (self.outcome == Outcome::Interrupted && self.weight == 100);
        verified
            && matches!(
                self.event,
                Event::Deploy | Event::CanaryPromote | Event::Rollback
            )
    }
}

/// A line that did not parse: reported loudly, never silently dropped or repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedLine {
    pub line_number: usize,
    pub error: String,
}

/// The whole history, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub entries: Vec<Entry>,
    pub damaged: Vec<DamagedLine>,
}

impl History {
    pub fn parse(jsonl: &str) -> Self {
        let mut history = Self::default();
        for (index, line) in jsonl.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Entry>(line) {
                Ok(entry) => history.entries.push(entry),
                Err(err) => history.damaged.push(DamagedLine {
                    line_number: index + 1,
                    error: err.to_string(),
                }),
            }
        }
        history.entries.sort_by_key(|entry| entry.seq);
        history
    }

    pub fn next_seq(&self) -> u64 {
        self.entries.last().map_or(1, |entry| entry.seq + 1)
    }

    /// The release all users are on: the last entry that made a release live.
    pub fn live(&self) -> Option<&Entry> {
        self.entries.iter().rev().find(|entry| entry.made_live())
    }

    /// The last good release before the live one with a different version: the default rollback target.
    pub fn previous_good(&self) -> Option<&Entry> {
        let live = self.live()?;
        self.entries
            .iter()
            .rev()
            .filter(|entry| entry.seq < live.seq && entry.made_live())
            .find(|entry| entry.release.version != live.release.version)
    }

    /// The newest entry that made `version` live.
    pub fn find_good(&self, version: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|entry| entry.made_live() && entry.release.version == version)
    }

    /// The newest entry of any kind: the last thing that happened.
    pub fn last(&self) -> Option<&Entry> {
        self.entries.last()
    }

    /// The newest fence the history knows: the highest an entry was written under, or the mark the
    /// store keeps of the last fence issued (a lock taken that has written nothing yet).
    pub fn newest_fence(&self, mark: u64) -> u64 {
        self.entries
            .iter()
            .filter_map(|entry| entry.fence)
            .chain(std::iter::once(mark))
            .max()
            .unwrap_or(mark)
    }

    /// The fence a new lock holder takes: from the sequence, above every fence issued before.
    pub fn next_fence(&self, mark: u64) -> u64 {
        self.next_seq().max(self.newest_fence(mark) + 1)
    }

    /// A deploy that never finished: the newest deploy-like entry (deploy, rollback, canary) is a deploy
    /// left `started` (killed) or `interrupted` at weight 0 or before its drain.
    pub fn unfinished_deploy(&self) -> Option<&Entry> {
        let newest = self.entries.iter().rev().find(|entry| {
            matches!(
                entry.event,
                Event::Deploy | Event::Rollback | Event::CanaryStart | Event::CanaryPromote
            )
        })?;
        (newest.event == Event::Deploy
            && matches!(newest.outcome, Outcome::Started | Outcome::Interrupted))
        .then_some(newest)
    }

    /// The canary in progress, if the newest canary entry is a start or a step that did not end it.
    pub fn canary_in_progress(&self) -> Option<&Entry> {
        let last_canary = self.entries.iter().rev().find(|entry| {
            matches!(
                entry.event,
                Event::CanaryStart | Event::CanaryStep | Event::CanaryPromote | Event::CanaryAbort
            ) || (entry.event == Event::Deploy || entry.event == Event::Rollback)
        })?;
        let open = matches!(last_canary.event, Event::CanaryStart | Event::CanaryStep)
            && matches!(last_canary.outcome, Outcome::Started | Outcome::Succeeded);
        open.then_some(last_canary)
    }
}

/// Whether an entry written under `ours` may be appended: never under a fence older than the newest the
/// ledger knows. `None`: the command holds no lock (nothing to compare).
pub fn fence_allows(ours: Option<u64>, newest: u64) -> Result<(), String> {
    match ours {
        Some(ours) if ours < newest => Err(format!(
            "the ledger refuses an entry under fence {ours}: fence {newest} was issued since (the deploy \
             lock was broken and taken by another command); this command changes nothing more"
        )),
        _ => Ok(()),
    }
}

/// One entry as one JSONL line (no trailing newline).
pub fn to_line(entry: &Entry) -> anyhow::Result<String> {
    serde_json::to_string(entry).context("cannot serialise a ledger entry")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    pub fn entry(seq: u64, event: Event, version: &str, slot: &str, outcome: Outcome) -> Entry {
        Entry {
            seq,
            at: OffsetDateTime::from_unix_timestamp(1_700_000_000 + seq as i64).unwrap(),
            event,
            release: Release {
                version: version.to_owned(),
                images: BTreeMap::from([(
                    "api".to_owned(),
                    format!("avalon-api@sha256:{version}"),
                )]),
                config_digest: "sha256:c".to_owned(),
            },
            slot: slot.to_owned(),
            weight: if outcome == Outcome::Succeeded {
                100
            } else {
                0
            },
            outcome,
            who: "ops@host".to_owned(),
            from: "abc1234".to_owned(),
            note: None,
            plan: None,
            fence: None,
        }
    }

    fn history(entries: &[Entry]) -> History {
        History::parse(
            &entries
                .iter()
                .map(|e| to_line(e).unwrap())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }

    #[test]
    fn fences_rise_with_the_sequence_and_above_every_one_issued() {
        let mut entries = vec![entry(1, Event::Deploy, "1.0.0", "blue", Outcome::Started)];
        entries[0].fence = Some(1);
        let h = history(&entries);
        assert_eq!(h.newest_fence(0), 1);
        assert_eq!(h.next_fence(0), 2);
        // A lock taken (fence 5 issued) that wrote nothing: the next one is above it all the same.
        assert_eq!(h.next_fence(5), 6);
        assert!(fence_allows(Some(6), h.newest_fence(6)).is_ok());
        assert!(
            fence_allows(Some(5), h.newest_fence(6))
                .unwrap_err()
                .contains("fence 6 was issued since")
        );
        assert!(fence_allows(None, 9).is_ok());
        assert_eq!(History::default().next_fence(0), 1);
    }

    #[test]
    fn an_interrupted_or_killed_deploy_is_unfinished_until_something_else_lands() {
        let mut entries = vec![
            entry(1, Event::Deploy, "1.0.0", "blue", Outcome::Succeeded),
            entry(2, Event::Deploy, "1.1.0", "green", Outcome::Started),
        ];
        // Killed: `started` is the newest.
        assert_eq!(history(&entries).unfinished_deploy().unwrap().seq, 2);
        assert_eq!(history(&entries).live().unwrap().release.version, "1.0.0");
        // Interrupted before its verification passed: traffic back on 1.0.0.
        entries.push(entry(
            3,
            Event::Deploy,
            "1.1.0",
            "green",
            Outcome::Interrupted,
        ));
        assert_eq!(history(&entries).unfinished_deploy().unwrap().seq, 3);
        assert_eq!(history(&entries).live().unwrap().release.version, "1.0.0");
        // Interrupted in the drain, after its verification: 1.1.0 counts as live.
        entries[2].weight = 100;
        assert_eq!(history(&entries).live().unwrap().release.version, "1.1.0");
        // A rollback (or a later deploy) closes it.
        entries.push(entry(
            4,
            Event::Rollback,
            "1.0.0",
            "blue",
            Outcome::Succeeded,
        ));
        assert!(history(&entries).unfinished_deploy().is_none());
    }

    #[test]
    fn entries_round_trip_through_one_line_each() {
        let original = entry(1, Event::Deploy, "1.0.0", "blue", Outcome::Succeeded);
        let line = to_line(&original).unwrap();
        assert!(!line.contains('\n'));
        assert!(
            line.contains(r#""event":"deploy""#) && line.contains(r#""outcome":"succeeded""#),
            "{line}"
        );
        let history = History::parse(&format!("{line}\n"));
        assert_eq!(history.entries, [original]);
        assert!(history.damaged.is_empty());
    }

    #[test]
    fn damaged_lines_are_reported_with_their_number_and_the_rest_kept() {
        let good = to_line(&entry(
            1,
            Event::Deploy,
            "1.0.0",
            "blue",
            Outcome::Succeeded,
        ))
        .unwrap();
        let history = History::parse(&format!("{good}\n{{\"seq\": 2, \"trunc\n\n"));
        assert_eq!(history.entries.len(), 1);
        assert_eq!(history.damaged.len(), 1);
        assert_eq!(history.damaged[0].line_number, 2);
        assert_eq!(history.next_seq(), 2);
    }

    #[test]
    fn live_and_previous_good_skip_failed_and_aborted_releases() {
        let lines: Vec<String> = [
            entry(1, Event::Deploy, "1.0.0", "blue", Outcome::Succeeded),
            entry(2, Event::Deploy, "1.1.0", "green", Outcome::Succeeded),
            entry(3, Event::Deploy, "1.2.0", "blue", Outcome::RolledBack),
            entry(4, Event::CanaryStart, "1.3.0", "blue", Outcome::Started),
            entry(5, Event::CanaryAbort, "1.3.0", "blue", Outcome::Aborted),
        ]
        .iter()
        .map(|e| to_line(e).unwrap())
        .collect();
        let history = History::parse(&lines.join("\n"));
        assert_eq!(history.live().unwrap().release.version, "1.1.0");
        assert_eq!(history.previous_good().unwrap().release.version, "1.0.0");
        assert_eq!(history.find_good("1.0.0").unwrap().seq, 1);
        assert!(history.find_good("1.2.0").is_none());
        assert!(history.canary_in_progress().is_none());
    }

    #[test]
    fn a_rollback_makes_the_older_release_live_and_the_newer_one_previous() {
        let lines: Vec<String> = [
            entry(1, Event::Deploy, "1.0.0", "blue", Outcome::Succeeded),
            entry(2, Event::Deploy, "1.1.0", "green", Outcome::Succeeded),
            entry(3, Event::Rollback, "1.0.0", "blue", Outcome::Succeeded),
        ]
        .iter()
        .map(|e| to_line(e).unwrap())
        .collect();
        let history = History::parse(&lines.join("\n"));
        assert_eq!(history.live().unwrap().release.version, "1.0.0");
        assert_eq!(history.previous_good().unwrap().release.version, "1.1.0");
    }

    #[test]
    fn an_open_canary_is_found_until_promoted_or_aborted() {
        let mut entries = vec![
            entry(1, Event::Deploy, "1.0.0", "blue", Outcome::Succeeded),
            entry(2, Event::CanaryStart, "1.1.0", "green", Outcome::Started),
            entry(3, Event::CanaryStep, "1.1.0", "green", Outcome::Succeeded),
        ];
        let parse = |entries: &[Entry]| {
            History::parse(
                &entries
                    .iter()
                    .map(|e| to_line(e).unwrap())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        };
        assert_eq!(parse(&entries).canary_in_progress().unwrap().seq, 3);
        entries.push(entry(
            4,
            Event::CanaryPromote,
            "1.1.0",
            "green",
            Outcome::Succeeded,
        ));
        assert!(parse(&entries).canary_in_progress().is_none());
    }
}
