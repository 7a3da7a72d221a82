//! Chaos phases of issue 15 (the deploy lock and interrupts), under the suite's load and players:
//! SIGINT and SIGKILL of `deploy` at each step (start, switch, verify, drain), driven by the step's own
//! line in deploy's output; two deploys started together; a deploy whose lease runs out while it is
//! stopped. After each case: what the edge serves was verified, nothing is left locked, and the next
//! command (resume, rollback, deploy) does the right thing. Each case prints requests failed, games
//! lost, the final live release and the time from the disruption to a consistent state.

use std::io::{BufRead, BufReader};
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

/// A deploy running in the background, its stdout and stderr lines as they come.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(chaos: &Chaos, args: &[&str]) -> Running {
        let mut child = chaos
            .xtask(args)
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

    fn signal(&self, signal: &str) {
        run_ok(Command::new("kill").args([&format!("-{signal}"), &self.pid()]));
    }

    /// Waits for the command to end; its success and everything it printed.
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
        // The reader threads end with the pipes.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            println!("  deploy| {line}");
            self.seen.push(line);
        }
        (status.success(), self.seen.join("\n"))
    }
}

fn status(chaos: &Chaos) -> Value {
    serde_json::from_str(&run_ok(&mut chaos.xtask(&["status", "--json"]))).unwrap()
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

/// One interrupted deploy as a phase: `deploy --image-tag <to>` interrupted with `signal` at `step`, then
/// `recover` (the next commands) until consistent on the release it returns; the figures.
fn interrupted(
    players: &mut Players,
    chaos: &Chaos,
    token: &str,
    to: u32,
    signal: &str,
    step: &str,
    recover: impl FnOnce(&Chaos, bool, &str) -> String,
) -> Figures {
    let cue = STEPS.iter().find(|(name, _)| *name == step).unwrap().1;
    let name = format!("{signal} deploy at {step}");
    let figures = phase(players, chaos, token, &name, || {
        let mut deploy = Running::start(chaos, &["deploy", "--image-tag", &tag(to)]);
        deploy.wait_for_line(cue, Duration::from_secs(180));
        let disrupted = Instant::now();
        deploy.signal(signal);
        let (succeeded, output) = deploy.finish(Duration::from_secs(120));
        assert!(!succeeded, "an interrupted deploy must fail:\n{output}");
        let live = recover(chaos, signal == "INT", &output);
        format!(
            "consistent on {live} after {:.1} s",
            disrupted.elapsed().as_secs_f64()
        )
    });
    figures.assert_no_failed_requests();
    figures.assert_games_finished();
    figures
}

/// After a SIGKILL: the lock is stale (its process is gone), a deploy is refused naming `unlock`, and
/// `unlock` breaks it.
fn unlock_after_kill(chaos: &Chaos) {
    let status = status(chaos);
    assert_eq!(
        status["lock"]["liveness"]["state"], "stale",
        "{}",
        status["lock"]
    );
    let refused = run(&mut chaos.xtask(&["deploy", "--image-tag", &tag(3), "--dry-run"]));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("cargo xtask unlock") || said.contains("unverified"),
        "{said}"
    );
    let out = xtask_ok(chaos, &["unlock"]);
    assert!(out.contains("broke the stale deploy lock"), "{out}");
}

pub fn interrupted_deploys_and_a_contested_lock(
    players: &mut Players,
    chaos: &Chaos,
    token: &str,
    all: &mut Vec<Figures>,
) {
    // Live before: v3 (the promoted canary). SIGINT at start, switch and verify returns to it.
    let before = tag(3);
    for step in ["start", "switch", "verify"] {
        all.push(interrupted(
            players,
            chaos,
            token,
            1,
            "INT",
            step,
            |chaos, _, output| {
                assert!(
                    output.contains(&format!("interrupted at {step}")),
                    "{output}"
                );
                assert_consistent(chaos, &before);
                let last = status(chaos)["last"].clone();
                assert_eq!(last["outcome"], "interrupted", "{last}");
                // The interrupted deploy is not what rollback undoes: it starts from v3, which serves.
                let proposal = xtask_ok(chaos, &["rollback", "--dry-run"]);
                assert!(
                    proposal.contains(&format!("rollback from {before} ")),
                    "{proposal}"
                );
                before.clone()
            },
        ));
    }
    // SIGINT in the drain: v1 passed its verification; resume drains the old slot.
    all.push(interrupted(
        players,
        chaos,
        token,
        1,
        "INT",
        "drain",
        |chaos, _, output| {
            assert!(output.contains("passed its verification"), "{output}");
            let out = xtask_ok(chaos, &["deploy", "--resume"]);
            assert!(out.contains("is live on slot"), "{out}");
            assert_consistent(chaos, &tag(1));
            tag(1)
        },
    ));
    // SIGKILL before the switch: v1 still serves; unlock, then resume deploys v2 from its start.
    all.push(interrupted(
        players,
        chaos,
        token,
        2,
        "KILL",
        "start",
        |chaos, _, _| {
            unlock_after_kill(chaos);
            let out = xtask_ok(chaos, &["deploy", "--resume"]);
            assert!(out.contains("is live on slot"), "{out}");
            assert_consistent(chaos, &tag(2));
            tag(2)
        },
    ));
    // SIGKILL after the switch (in the verification): the edge serves v1 unverified. Rollback proposes
    // the verified v2 and returns to it.
    for step in ["switch", "verify"] {
        all.push(interrupted(
            players,
            chaos,
            token,
            1,
            "KILL",
            step,
            |chaos, _, _| {
                unlock_after_kill(chaos);
                let situation = status(chaos)["situation"].clone();
                if situation["state"] == "unverified" {
                    let proposal = xtask_ok(chaos, &["rollback", "--dry-run"]);
                    assert!(proposal.contains(&format!("to {}", tag(2))), "{proposal}");
                    xtask_ok(chaos, &["rollback"]);
                } else {
                    // Killed before its swap reached the edge: nothing moved.
                    assert_eq!(situation["state"], "consistent", "{situation}");
                }
                assert_consistent(chaos, &tag(2));
                tag(2)
            },
        ));
    }
    // SIGKILL in the drain: v1 passed its verification but nothing recorded it; resume verifies again
    // and drains.
    all.push(interrupted(
        players,
        chaos,
        token,
        1,
        "KILL",
        "drain",
        |chaos, _, _| {
            unlock_after_kill(chaos);
            let out = xtask_ok(chaos, &["deploy", "--resume"]);
            assert!(out.contains("is live on slot"), "{out}");
            assert_consistent(chaos, &tag(1));
            tag(1)
        },
    ));

    let contested = phase(players, chaos, token, "two deploys at once", || {
        let started = Instant::now();
        let first = Running::start(chaos, &["deploy", "--image-tag", &tag(2)]);
        let second = Running::start(chaos, &["deploy", "--image-tag", &tag(2)]);
        let (a, a_out) = first.finish(Duration::from_secs(240));
        let (b, b_out) = second.finish(Duration::from_secs(240));
        assert!(a ^ b, "exactly one deploy must run:\n{a_out}\n---\n{b_out}");
        let refused = if a { &b_out } else { &a_out };
        assert!(refused.contains("deploy lock"), "{refused}");
        assert!(
            !refused.contains("[1/5]"),
            "the refused deploy changed something:\n{refused}"
        );
        assert_consistent(chaos, &tag(2));
        format!(
            "one ran, one refused; consistent on {} after {:.1} s",
            tag(2),
            started.elapsed().as_secs_f64()
        )
    });
    contested.assert_no_failed_requests();
    contested.assert_games_finished();
    all.push(contested);

    let expired = phase(players, chaos, token, "lease expires mid-deploy", || {
        let mut deploy = Running::start(chaos, &["deploy", "--image-tag", &tag(1)]);
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
        // Someone else takes over: the edge serves v1 unverified, rollback returns to v2.
        xtask_ok(chaos, &["rollback"]);
        let fence_after_takeover = status(chaos)["last"]["fence"].clone();
        deploy.signal("CONT");
        let (succeeded, output) = deploy.finish(Duration::from_secs(60));
        assert!(!succeeded, "{output}");
        assert!(output.contains("lost the deploy lock"), "{output}");
        // It changed nothing more: the takeover's entry is still the newest, the edge still on v2.
        assert_eq!(status(chaos)["last"]["fence"], fence_after_takeover);
        assert_consistent(chaos, &tag(2));
        format!(
            "holder stopped past its lease: changed nothing; consistent on {} after {:.1} s",
            tag(2),
            stopped.elapsed().as_secs_f64()
        )
    });
    expired.assert_no_failed_requests();
    expired.assert_games_finished();
    all.push(expired);
}
