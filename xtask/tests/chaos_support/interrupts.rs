//! Chaos phases of issue 15 (the deploy lock and interrupts), under the suite's load and players:
//! SIGINT and SIGKILL of `deploy` at each step (start, switch, verify, drain), driven by the step's own
//! line in deploy's output; two deploys started together; a deploy whose lease runs out while it is
//! stopped. After each case: what the edge serves was verified, nothing is left locked, and the next
//! command (resume, rollback, deploy) does the right thing. Each case prints requests failed, games
//! lost, the final live release and the time from the disruption to a consistent state.
//!
//! Nothing is assumed about what is live when the phase starts (the phase before ends with a rollback):
//! it is read from `status --json`, and every deploy takes a tag that is neither live nor the release
//! before it (v1…v4 are the same images, see `tag()` in chaos.rs).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Chaos, Figures, Players, phase, run, run_ok, tag, xtask_ok};

/// The five actions of a blue/green deploy as it prints them, by step.
const STEPS: [(&str, &str); 4] = [
    ("start", "[1/5] start slot"),
    ("switch", "[2/5] route"),
    ("verify", "[3/5] verify"),
    ("drain", "[5/5] drain"),
];

/// A deploy running in the background, its stdout and stderr lines as they come. It runs in a process
/// group of its own (its pgid is its pid), so that a SIGKILL takes its children (`docker compose up
/// --wait`, the edge helpers) with it, as an OOM kill of a CI job or a lost machine would.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    /// Set once the whole group was sent SIGKILL: `finish` then waits until none of it is left.
    group_killed: bool,
}

impl Running {
    fn start(chaos: &Chaos, args: &[&str]) -> Running {
        let mut child = chaos
            .xtask(args)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        let err_sender = sender.clone();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_sender.send(format!("(stderr) {line}"));
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
            group_killed: false,
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Waits for a line starting with `prefix` (never a bare timer: the step itself is the cue).
    fn wait_for_line(&mut self, prefix: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|err| {
                panic!(
                    "deploy printed no {prefix:?} line within {within:?} ({err}); it printed:\n{}",
                    self.seen.join("\n")
                )
            });
            println!("  deploy| {line}");
            let found = line.starts_with(prefix);
            self.seen.push(line);
            if found {
                return;
            }
        }
    }

    /// `signal` to the deploy's process only (SIGINT, SIGSTOP, SIGCONT: what it handles itself, or what
    /// freezes it); SIGKILL to its whole process group.
    fn signal(&mut self, signal: &str) {
        if signal == "KILL" {
            run_ok(Command::new("kill").args(["-KILL", "--", &format!("-{}", self.pid())]));
            self.group_killed = true;
        } else {
            run_ok(Command::new("kill").args([&format!("-{signal}"), &self.pid()]));
        }
    }

    /// Waits for the command to end (and, after a SIGKILL, for every process of its group to be gone);
    /// its success and everything it printed.
    fn finish(mut self, within: Duration) -> (bool, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "deploy did not end within {within:?}:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        if self.group_killed {
            let pgid = self.child.id();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let left = group_members(pgid);
                if left.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "processes of the killed deploy's group {pgid} are still there after 60 s: {left:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // The reader threads end with the pipes.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            println!("  deploy| {line}");
            self.seen.push(line);
        }
        (status.success(), self.seen.join("\n"))
    }
}

/// The live (not zombie) processes of process group `pgid`, as `<pid> <comm>`, from /proc.
fn group_members(pgid: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| {
            // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
            let (head, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let _ppid = fields.next()?;
            let pgrp: u32 = fields.next()?.parse().ok()?;
            (pgrp == pgid && state != "Z" && state != "X").then(|| head.replacen(" (", " ", 1))
        })
        .collect()
}

fn status(chaos: &Chaos) -> Value {
    serde_json::from_str(&run_ok(&mut chaos.xtask(&["status", "--json"]))).unwrap()
}

/// The version the edge serves, as `status --json` reads it.
fn serving_version(chaos: &Chaos) -> String {
    let status = status(chaos);
    status["serving"]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("the edge serves no slotted release: {}", status["serving"]))
        .to_owned()
}

/// The first of the suite's tags that is none of `avoid` (so never v4 while at most two are avoided).
fn tag_other_than(avoid: &[&str]) -> String {
    (1..=4)
        .map(tag)
        .find(|candidate| !avoid.contains(&candidate.as_str()))
        .unwrap()
}

/// Consistent: no lock, the edge serves `version` on one slot with all traffic and healthy containers,
/// and that is what the ledger verified.
fn assert_consistent(chaos: &Chaos, version: &str) {
    let output = run(&mut chaos.xtask(&["status", "--expect-live", version]));
    assert!(
        output.status.success(),
        "{version} is not live and healthy:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = status(chaos);
    assert!(
        status["lock"].is_null(),
        "a lock is left: {}",
        status["lock"]
    );
    assert_eq!(
        status["situation"]["state"], "consistent",
        "{}",
        status["situation"]
    );
    assert_eq!(
        status["serving"]["version"], version,
        "{}",
        status["serving"]
    );
}

/// The ledger's newest entry: a deploy of `version` ended `outcome` with `weight` on its slot.
fn assert_last(chaos: &Chaos, version: &str, outcome: &str, weight: u64) {
    let last = status(chaos)["last"].clone();
    assert_eq!(last["event"], "deploy", "{last}");
    assert_eq!(last["release"]["version"], version, "{last}");
    assert_eq!(last["outcome"], outcome, "{last}");
    assert_eq!(last["weight"], weight, "{last}");
}

/// `rollback --dry-run` has nothing to undo and offers no plan.
fn assert_nothing_to_undo(chaos: &Chaos) {
    let dry = xtask_ok(chaos, &["rollback", "--dry-run"]);
    assert!(dry.contains("rollback: nothing to undo"), "{dry}");
    assert!(!dry.contains("plan:"), "a dry run offered a plan: {dry}");
}

/// One interrupted deploy as a phase: `deploy --image-tag <to>` interrupted with `signal` at `step`, then
/// `recover` (given whether the deploy succeeded after all, and what it printed: the next commands)
/// until consistent on the release it returns; the figures. Only a SIGINT in the drain may come too late
/// to stop anything (the drain's wait is over), so only that deploy may succeed.
fn interrupted(
    players: &mut Players,
    chaos: &Chaos,
    token: &str,
    to: &str,
    signal: &str,
    step: &str,
    recover: impl FnOnce(&Chaos, bool, &str) -> String,
) -> Figures {
    let cue = STEPS.iter().find(|(name, _)| *name == step).unwrap().1;
    let name = format!("{signal} deploy at {step}");
    let figures = phase(players, chaos, token, &name, || {
        let mut deploy = Running::start(chaos, &["deploy", "--image-tag", to]);
        deploy.wait_for_line(cue, Duration::from_secs(180));
        let disrupted = Instant::now();
        deploy.signal(signal);
        let (succeeded, output) = deploy.finish(Duration::from_secs(120));
        assert!(
            !succeeded || (signal == "INT" && step == "drain"),
            "an interrupted deploy must fail:\n{output}"
        );
        let live = recover(chaos, succeeded, &output);
        format!(
            "consistent on {live} after {:.1} s",
            disrupted.elapsed().as_secs_f64()
        )
    });
    figures.assert_no_failed_requests();
    figures.assert_games_finished();
    figures
}

/// After a SIGKILL: the lock is stale (its process is gone), a deploy (of `other`, a release not live) is
/// refused naming `unlock`, and `unlock` breaks it.
fn unlock_after_kill(chaos: &Chaos, other: &str) {
    let status = status(chaos);
    assert_eq!(
        status["lock"]["liveness"]["state"], "stale",
        "{}",
        status["lock"]
    );
    let refused = run(&mut chaos.xtask(&["deploy", "--image-tag", other, "--dry-run"]));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("cargo xtask unlock") || said.contains("unverified"),
        "{said}"
    );
    let out = xtask_ok(chaos, &["unlock"]);
    assert!(out.contains("broke the stale deploy lock"), "{out}");
}

/// A deploy SIGKILLed after its switch may have reached the edge (it serves `new`, unverified) or not
/// (killed inside the route action before the swap: `old` still serves). Either way `rollback --dry-run`
/// proposes nothing wrong, and `deploy --resume` verifies and finishes the deploy of `new`.
fn resume_after_kill_past_switch(chaos: &Chaos, old: &str, new: &str, step: &str) {
    let now = status(chaos);
    let situation = now["situation"].clone();
    if situation["state"] == "unverified" {
        assert_eq!(now["serving"]["version"], new, "{}", now["serving"]);
        assert_last(chaos, new, "started", 0);
        let proposal = xtask_ok(chaos, &["rollback", "--dry-run"]);
        assert!(
            proposal.contains(&format!("rollback from {new} "))
                && proposal.contains(&format!(" to {old} ")),
            "rollback must propose the last verified release {old}: {proposal}"
        );
    } else {
        // Only a kill inside the route action can come before the swap reached the edge.
        assert_eq!(step, "switch", "killed at {step}: {situation}");
        assert_eq!(situation["state"], "consistent", "{situation}");
        assert_eq!(now["serving"]["version"], old, "{}", now["serving"]);
        assert_nothing_to_undo(chaos);
    }
    let out = xtask_ok(chaos, &["deploy", "--resume"]);
    assert!(out.contains("is live on slot"), "{out}");
    assert_consistent(chaos, new);
}

pub fn interrupted_deploys_and_a_contested_lock(
    players: &mut Players,
    chaos: &Chaos,
    token: &str,
    all: &mut Vec<Figures>,
) {
    // What serves now (the phase before ends with `rollback --to v1`), read from the edge.
    let before = serving_version(chaos);
    assert_consistent(chaos, &before);

    // SIGINT before the new release passed its verification (start, switch, verify): the deploy puts the
    // edge back on `before` and records `interrupted` at weight 0; rollback has nothing to undo.
    let refused = tag_other_than(&[&before]);
    for step in ["start", "switch", "verify"] {
        let (before, refused) = (before.clone(), refused.clone());
        all.push(interrupted(
            players,
            chaos,
            token,
            &refused.clone(),
            "INT",
            step,
            move |chaos, _, output| {
                // The switch is ~1 s of route action: a SIGINT meant for it may land in the verification
                // (the swap runs to its end first). What matters is below.
                let steps: &[&str] = if step == "switch" {
                    &["switch", "verify"]
                } else {
                    &[step]
                };
                assert!(
                    steps
                        .iter()
                        .any(|at| output.contains(&format!("interrupted at {at}"))),
                    "{output}"
                );
                assert_consistent(chaos, &before);
                assert_last(chaos, &refused, "interrupted", 0);
                assert_nothing_to_undo(chaos);
                before
            },
        ));
    }

    // SIGINT in the drain: the new release passed its verification (`interrupted` at weight 100) and
    // `deploy --resume` drains the old slot. Landing after the drain's wait, it stopped nothing: the
    // deploy succeeded, and there is nothing to resume.
    let drained = tag_other_than(&[&before]);
    {
        let drained = drained.clone();
        all.push(interrupted(
            players,
            chaos,
            token,
            &drained.clone(),
            "INT",
            "drain",
            move |chaos, succeeded, output| {
                if succeeded {
                    assert!(output.contains("is live on slot"), "{output}");
                    assert_last(chaos, &drained, "succeeded", 100);
                    let out = xtask_ok(chaos, &["deploy", "--resume"]);
                    assert!(out.contains("nothing to resume"), "{out}");
                } else {
                    assert!(output.contains("passed its verification"), "{output}");
                    assert_last(chaos, &drained, "interrupted", 100);
                    let out = xtask_ok(chaos, &["deploy", "--resume"]);
                    assert!(out.contains("is live on slot"), "{out}");
                }
                assert_consistent(chaos, &drained);
                drained
            },
        ));
    }
    let (mut previous, mut live) = (before, drained);

    // SIGKILL before the switch: the ledger entry stays `started`, the edge still serves the verified
    // release; after `unlock` rollback has nothing to undo, and `deploy --resume` deploys it from its start.
    let next = tag_other_than(&[&live, &previous]);
    {
        let (old, new) = (live.clone(), next.clone());
        all.push(interrupted(
            players,
            chaos,
            token,
            &next,
            "KILL",
            "start",
            move |chaos, _, _| {
                unlock_after_kill(chaos, &tag_other_than(&[&old, &new]));
                let now = status(chaos);
                assert_eq!(
                    now["situation"]["state"], "consistent",
                    "{}",
                    now["situation"]
                );
                assert_eq!(now["serving"]["version"], old, "{}", now["serving"]);
                assert_last(chaos, &new, "started", 0);
                assert_nothing_to_undo(chaos);
                let out = xtask_ok(chaos, &["deploy", "--resume"]);
                assert!(out.contains("is live on slot"), "{out}");
                assert_consistent(chaos, &new);
                new
            },
        ));
    }
    (previous, live) = (live, next);

    // SIGKILL after the switch (in the route action, in the verification): the edge serves the new
    // release unverified; rollback would return to the last verified one, `deploy --resume` verifies and
    // finishes instead.
    for step in ["switch", "verify"] {
        let next = tag_other_than(&[&live, &previous]);
        let (old, new) = (live.clone(), next.clone());
        all.push(interrupted(
            players,
            chaos,
            token,
            &next,
            "KILL",
            step,
            move |chaos, _, _| {
                unlock_after_kill(chaos, &tag_other_than(&[&old, &new]));
                resume_after_kill_past_switch(chaos, &old, &new, step);
                new
            },
        ));
        (previous, live) = (live, next);
    }

    // SIGKILL in the drain: the new release passed its verification but nothing recorded it; resume
    // verifies again and drains.
    let next = tag_other_than(&[&live, &previous]);
    {
        let (old, new) = (live.clone(), next.clone());
        all.push(interrupted(
            players,
            chaos,
            token,
            &next,
            "KILL",
            "drain",
            move |chaos, _, _| {
                unlock_after_kill(chaos, &tag_other_than(&[&old, &new]));
                let out = xtask_ok(chaos, &["deploy", "--resume"]);
                assert!(out.contains("is live on slot"), "{out}");
                assert_consistent(chaos, &new);
                new
            },
        ));
    }
    (previous, live) = (live, next);

    let both = tag_other_than(&[&live, &previous]);
    let contested = phase(players, chaos, token, "two deploys at once", || {
        let started = Instant::now();
        let first = Running::start(chaos, &["deploy", "--image-tag", &both]);
        let second = Running::start(chaos, &["deploy", "--image-tag", &both]);
        let (a, a_out) = first.finish(Duration::from_secs(240));
        let (b, b_out) = second.finish(Duration::from_secs(240));
        assert!(a ^ b, "exactly one deploy must run:\n{a_out}\n---\n{b_out}");
        let refused = if a { &b_out } else { &a_out };
        assert!(refused.contains("deploy lock"), "{refused}");
        assert!(
            !refused.contains("[1/5]"),
            "the refused deploy changed something:\n{refused}"
        );
        assert_consistent(chaos, &both);
        format!(
            "one ran, one refused; consistent on {both} after {:.1} s",
            started.elapsed().as_secs_f64()
        )
    });
    contested.assert_no_failed_requests();
    contested.assert_games_finished();
    all.push(contested);
    (previous, live) = (live, both);

    let stopped_tag = tag_other_than(&[&live, &previous]);
    let expired = phase(players, chaos, token, "lease expires mid-deploy", || {
        let mut deploy = Running::start(chaos, &["deploy", "--image-tag", &stopped_tag]);
        deploy.wait_for_line("[3/5] verify", Duration::from_secs(180));
        let stopped = Instant::now();
        deploy.signal("STOP");
        // The lease (10 s in deploy-chaos.toml) runs out while the holder is stopped.
        let deadline = Instant::now() + Duration::from_secs(60);
        while status(chaos)["lock"]["liveness"]["state"] != "stale" {
            assert!(
                Instant::now() < deadline,
                "the stopped holder's lock never went stale"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        xtask_ok(chaos, &["unlock"]);
        // Someone else takes over: the edge serves the stopped deploy's release unverified, rollback
        // returns to the last verified one (live before this phase).
        xtask_ok(chaos, &["rollback"]);
        let fence_after_takeover = status(chaos)["last"]["fence"].clone();
        deploy.signal("CONT");
        let (succeeded, output) = deploy.finish(Duration::from_secs(60));
        assert!(!succeeded, "{output}");
        assert!(output.contains("lost the deploy lock"), "{output}");
        // It changed nothing more: the takeover's entry is still the newest, the edge still on `live`.
        assert_eq!(status(chaos)["last"]["fence"], fence_after_takeover);
        assert_consistent(chaos, &live);
        format!(
            "holder stopped past its lease: changed nothing; consistent on {live} after {:.1} s",
            stopped.elapsed().as_secs_f64()
        )
    });
    expired.assert_no_failed_requests();
    expired.assert_games_finished();
    all.push(expired);
}
