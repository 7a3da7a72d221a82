//! The release and deploy workflows, replayed from their files against a stack on this machine: every
//! `run:` step of `.github/workflows/release.yml` and `deploy.yml` runs in order as GitHub's runner would
//! run it (see `workflow_support::replay`), so the files themselves are what is tested — the harness
//! substitutes `${{ … }}` expressions from the context it supplies and never edits a step.
//!
//! The story, on two stacks (the `staging` and `production` GitHub environments, each its own Compose
//! project):
//! 1. release #1 cuts 0.81.0; both stacks are brought up and deployed with it (setup, not replayed);
//! 2. release #2 fails (origin refuses the push) → deploy runs no job;
//! 3. release #3 resumes and releases 0.82.0 → staging deploys it, production canaries and promotes it once;
//! 4. release #4 has nothing to release → deploy runs no deploy;
//! 5. a manual deploy of an image the target does not have → pre-flight fails → the failure step changes
//!    nothing;
//! 6. a deploy whose release breaks after traffic moved (a container of the new slot stops) → the check
//!    fails → the failure step rolls back to exactly the release before;
//! 7. a canary whose api crashes under its share of traffic → judged bad, aborted → production unchanged,
//!    and the failure step changes nothing.
//!
//! How the release job's real step runs without recursing into the whole CI: the step is
//! `cargo xtask release --push --install-tools`, run as written in a clone of this repository whose
//! `origin` is a local bare repository. The runner environment carries `AVALON_RELEASE_SKIP_CI=1` (ci is
//! the suite this test is part of, `--skip-ci`'s documented meaning; `--install-tools` only applies to
//! the ci step) and `AVALON_RELEASE_EXPORT_IMAGES=1` (this machine has no registry: the git refs are
//! pushed for real, the images are exported as tarballs and stay in the engine, which is also the
//! target's), and the repository variable `AVALON_IMAGE_FROM=host` (the `source` build path needs a
//! registry for its builder image). `cargo xtask` in a step runs this build's xtask binary (a `cargo`
//! shim on PATH; `cargo xtask` is only an alias of `cargo run -p xtask`), so no step compiles xtask
//! again; the release's own `cargo build --release` of the services runs in the clone.
//!
//! The target is the shipped prod overlay and TLS edge model (see `TargetStack`), prepared as a host is:
//! - `cargo xtask host init --root` makes the secrets directory and a self-signed certificate; the
//!   environment variables `WECHAT_APPID` and `AVALON_SECRETS_DIR` point at them, and the secret
//!   `DEPLOY_DOCKER_HOST` at this engine;
//! - the images this machine can have stand in for the official ones (`NGINX_IMAGE`, `REDIS_IMAGE`, and
//!   `MONGO_IMAGE` = the MongoDB wire-protocol stand-in), part of the runner's environment as they would
//!   be on a self-hosted runner of an air-gapped host, with one replica per slot (two stacks share 2 cores);
//! - per GitHub environment, the runner environment `AVALON_STACK_PROJECT`, `AVALON_HTTP_PORT` and
//!   `AVALON_HTTPS_PORT` (a real host has one stack per engine on 80/443: two environments share this one);
//! - the stacks are brought up (setup, not replayed) with `cargo xtask up --env prod` and release 0.81.0's
//!   images, as the docs' first install does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod stack_support;
mod workflow_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stack_support::top_level_binaries::TopLevelBinaries;
use stack_support::{docker, docker_with_compose_v2, run, run_ok, workspace_root};
use workflow_support::actions::LocalActions;
use workflow_support::replay::{self, Outcome, RunRecord, Runner, StepRecord, Trigger, UsesCall};

/// The xtask binary under test. `AVALON_TEST_XTASK` may name a private copy of it: where several checkouts
/// share one target directory, the binary cargo places at its top is whichever checkout built last.
fn xtask_bin() -> String {
    std::env::var("AVALON_TEST_XTASK")
        .ok()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_xtask").to_owned())
}

fn workflow(name: &str) -> PathBuf {
    workspace_root().join(".github/workflows").join(name)
}

/// The harness itself, on a workflow written for the purpose: order, outputs across steps and jobs,
/// `if:` with status functions, and a job skipped when the job it needs failed. No Docker needed.
#[test]
fn the_replay_follows_github_semantics_for_steps_outputs_conditions_and_needs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.yml");
    std::fs::write(
        &file,
        r#"name: w
on: push
env:
  TOP: top
jobs:
  first:
    runs-on: x
    outputs:
      greeting: ${{ steps.say.outputs.greeting }}
    env:
      WHO: ${{ vars.WHO || 'nobody' }}
    steps:
      - uses: actions/checkout@0000000000000000000000000000000000000000
      - id: say
        run: echo "greeting=hello $WHO from $TOP" >> "$GITHUB_OUTPUT"
      - if: steps.say.outputs.greeting == 'hello world from top'
        run: echo matched > matched.txt
      - run: test "$(cat matched.txt)" = matched
  second:
    needs: first
    runs-on: x
    env:
      GREETING: ${{ needs.first.outputs.greeting }}
    steps:
      - run: test "$GREETING" = "hello world from top"
      - run: exit 3
      - run: echo never > never.txt
      - if: failure()
        run: echo cleaned > cleaned.txt
      - if: always()
        run: echo always >> cleaned.txt
  third:
    needs: second
    runs-on: x
    steps:
      - run: echo skipped > third.txt
"#,
    )
    .unwrap();
    let runner = Runner {
        workdir: dir.path().to_path_buf(),
        env: BTreeMap::from([("PATH".to_owned(), std::env::var("PATH").unwrap())]),
        per_environment: BTreeMap::new(),
    };
    let trigger = Trigger {
        github: json!({"event_name": "push"}),
        vars: json!({"WHO": "world"}),
        ..Trigger::default()
    };
    let actions = LocalActions {
        store: dir.path().join("artifacts"),
        run_id: "1".to_owned(),
    };
    let record = replay::replay(
        &file,
        &runner,
        &trigger,
        &mut |call: &UsesCall| actions.perform(call),
        &mut |_: &StepRecord| {},
    );
    assert_eq!(record.job("first").result, Outcome::Success);
    assert_eq!(
        record.job("first").outputs["greeting"],
        "hello world from top"
    );
    let second = record.job("second");
    assert_eq!(second.result, Outcome::Failure);
    let outcomes: Vec<Outcome> = second.steps.iter().map(|s| s.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Success,
            Outcome::Failure,
            Outcome::Skipped,
            Outcome::Success,
            Outcome::Success
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cleaned.txt")).unwrap(),
        "cleaned\nalways\n"
    );
    assert!(!dir.path().join("never.txt").exists());
    assert_eq!(record.job("third").result, Outcome::Skipped);
    assert!(!dir.path().join("third.txt").exists());
    assert_eq!(record.counts(), (8, 7, 1));
    assert_eq!(record.conclusion(), "failure");
}

/// The stacks a replay deploys to, and what their host supplies. See the file's doc comment.
struct TargetStack {
    /// `vars.AVALON_STACK_ENV`: the compose overlay (`prod`, the workflow's default).
    stack_env: &'static str,
    /// Per GitHub environment: its Compose project and edge ports (HTTP, HTTPS).
    environments: BTreeMap<&'static str, (String, u16, u16)>,
    /// `vars.WECHAT_APPID` / `vars.AVALON_SECRETS_DIR` of the environments.
    wechat_appid: String,
    secrets_dir: PathBuf,
    /// `secrets.DEPLOY_DOCKER_HOST`.
    docker_host: String,
    /// What the host supplies to every compose command (host init's secrets and certificate, the images
    /// this machine can have for nginx, redis and MongoDB); the release's api/ws images come on top for `up`.
    host_env: Vec<(String, String)>,
    _host: stack_support::prod::ProdHost,
}

impl TargetStack {
    /// Two prod-overlay stacks (the `staging` and `production` environments) on this engine, prepared by
    /// `host init --root` as a real host would be.
    fn prod(scratch: &Path) -> Self {
        let pid = std::process::id();
        let ports = avalon_testkit::free_ports::<4>();
        let environments = ["staging", "production"]
            .into_iter()
            .enumerate()
            .map(|(i, env)| {
                (
                    env,
                    (
                        format!("avalon-replay-{env}-{pid}"),
                        ports[2 * i],
                        ports[2 * i + 1],
                    ),
                )
            })
            .collect();
        let host = stack_support::prod::ProdHost::init(scratch);
        let mut host_env = host.env();
        host_env.extend(stack_support::prod::store_and_edge_images());
        // One replica per slot: two stacks and their deploys share this machine's two cores.
        host_env.push(("AVALON_API_REPLICAS".to_owned(), "1".to_owned()));
        host_env.push(("AVALON_WS_REPLICAS".to_owned(), "1".to_owned()));
        Self {
            stack_env: "prod",
            environments,
            wechat_appid: stack_support::prod::WECHAT_APPID.to_owned(),
            secrets_dir: host.secrets.clone(),
            docker_host: docker_host(),
            host_env,
            _host: host,
        }
    }

    fn project(&self, environment: &str) -> &str {
        &self.environments[environment].0
    }
}

fn docker_host() -> String {
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        return host;
    }
    let output = Command::new("docker")
        .args([
            "context",
            "inspect",
            "--format",
            "{{.Endpoints.docker.Host}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The cargo the shim hands everything but `xtask` to: the one running this test, else the first on PATH
/// (never the shim itself, which would call itself).
fn real_cargo() -> String {
    if let Ok(cargo) = std::env::var("CARGO") {
        return cargo;
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("cargo"))
        .find(|candidate| candidate.is_file())
        .map(|path| path.display().to_string())
        .expect("cargo on PATH")
}

/// target/ of this build.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xtask"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Everything the scenario created, removed whatever happened.
struct Cleanup {
    stack_env: &'static str,
    projects: Vec<String>,
    clone: PathBuf,
    image_tags: std::cell::RefCell<Vec<String>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for project in &self.projects {
            let _ = run(Command::new(xtask_bin())
                .args([
                    "down",
                    "--env",
                    self.stack_env,
                    "--project",
                    project,
                    "--volumes",
                ])
                .env("AVALON_PROJECT_ROOT", &self.clone));
            let _ = run(&mut docker(&[
                "volume",
                "rm",
                "--force",
                &format!("{project}-releases"),
            ]));
        }
        for reference in self.image_tags.borrow().iter() {
            let _ = run(&mut docker(&["image", "rm", reference]));
        }
    }
}

/// The scenario's world: the release clone, origin, the deploy checkout, the stacks, the artifact store.
struct World {
    clone: PathBuf,
    origin: PathBuf,
    deploy_checkout: PathBuf,
    artifacts: PathBuf,
    shim_dir: PathBuf,
    stack: TargetStack,
    next_run: u32,
    replayed: usize,
    passed: usize,
}

impl World {
    fn runner_env(&self, workdir: &Path) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| {
                [
                    "HOME",
                    "USER",
                    "LANG",
                    "TMPDIR",
                    "CARGO_HOME",
                    "RUSTUP_HOME",
                    "RUSTUP_TOOLCHAIN",
                    "DOCKER_CONFIG",
                ]
                .contains(&k.as_str())
            })
            .collect();
        let path = std::env::var("PATH").unwrap_or_default();
        env.insert(
            "PATH".to_owned(),
            format!("{}:{path}", self.shim_dir.display()),
        );
        env.insert(
            "CARGO_TARGET_DIR".to_owned(),
            target_dir().display().to_string(),
        );
        env.insert(
            "AVALON_PROJECT_ROOT".to_owned(),
            workdir.display().to_string(),
        );
        env.insert("AVALON_REPLAY_XTASK".to_owned(), xtask_bin());
        env.insert("AVALON_REPLAY_CARGO".to_owned(), real_cargo());
        // See the file's doc comment: why ci is skipped and the images exported.
        env.insert("AVALON_RELEASE_SKIP_CI".to_owned(), "1".to_owned());
        env.insert("AVALON_RELEASE_EXPORT_IMAGES".to_owned(), "1".to_owned());
        // The deploy jobs' runner drives the host's engine: the host's settings are its environment.
        env.extend(self.stack.host_env.iter().cloned());
        env
    }

    fn trigger(&self, run_id: u32, event_name: &str, event: Value, inputs: Value) -> Trigger {
        let environment_vars = self
            .stack
            .environments
            .keys()
            .map(|env| {
                (
                    (*env).to_owned(),
                    json!({
                        "WECHAT_APPID": self.stack.wechat_appid,
                        "AVALON_SECRETS_DIR": self.stack.secrets_dir.display().to_string(),
                    }),
                )
            })
            .collect();
        let environment_secrets = self
            .stack
            .environments
            .keys()
            .map(|env| {
                (
                    (*env).to_owned(),
                    json!({
                        "DEPLOY_DOCKER_HOST": self.stack.docker_host,
                        "DEPLOY_SSH_KEY": "unused: the engine is local",
                        "DEPLOY_SSH_KNOWN_HOSTS": "unused",
                    }),
                )
            })
            .collect();
        Trigger {
            github: json!({
                "event_name": event_name,
                "event": event,
                "repository": "octo/avalon-ops",
                "repository_owner": "octo",
                "actor": "replay",
                "run_id": run_id.to_string(),
                "token": "replay-token",
            }),
            inputs,
            secrets: json!({"GITHUB_TOKEN": "replay-token"}),
            // A manual deploy names `<AVALON_IMAGE_REGISTRY>/avalon-api:V`; this machine reaches no registry, and
            // a closed local port refuses the pull at once instead of waiting on a network timeout.
            vars: json!({
                "AVALON_IMAGE_FROM": "host",
                "AVALON_STACK_ENV": self.stack.stack_env,
                "AVALON_IMAGE_REGISTRY": "127.0.0.1:1/octo",
            }),
            environment_secrets,
            environment_vars,
        }
    }

    fn replay(
        &mut self,
        file: &str,
        workdir: &Path,
        event_name: &str,
        event: Value,
        inputs: Value,
        after_step: &mut dyn FnMut(&StepRecord),
    ) -> (u32, RunRecord) {
        self.next_run += 1;
        let run_id = self.next_run;
        let runner = Runner {
            workdir: workdir.to_path_buf(),
            env: self.runner_env(workdir),
            per_environment: self
                .stack
                .environments
                .iter()
                .map(|(env, (project, port, https_port))| {
                    (
                        (*env).to_owned(),
                        BTreeMap::from([
                            ("AVALON_STACK_PROJECT".to_owned(), project.clone()),
                            ("AVALON_HTTP_PORT".to_owned(), port.to_string()),
                            ("AVALON_HTTPS_PORT".to_owned(), https_port.to_string()),
                        ]),
                    )
                })
                .collect(),
        };
        let trigger = self.trigger(run_id, event_name, event, inputs);
        let actions = LocalActions {
            store: self.artifacts.clone(),
            run_id: run_id.to_string(),
        };
        let record = replay::replay(
            &workflow(file),
            &runner,
            &trigger,
            &mut |call: &UsesCall| actions.perform(call),
            after_step,
        );
        let (replayed, passed, failed) = record.counts();
        println!(
            "replay {file} (run {run_id}, {event_name}): workflow steps replayed / passed: {replayed} / {passed} ({failed} failed)"
        );
        self.replayed += replayed;
        self.passed += passed;
        (run_id, record)
    }

    /// release.yml on a push to the clone's branch.
    fn release(&mut self) -> (u32, RunRecord) {
        let clone = self.clone.clone();
        let _binaries =
            TopLevelBinaries::save(&target_dir(), &["release/avalon-api", "release/avalon-ws"]);
        self.replay(
            "release.yml",
            &clone,
            "push",
            json!({}),
            json!({}),
            &mut |_| {},
        )
    }

    /// deploy.yml after release run `release_run` ended with `conclusion`.
    fn deploy_after(
        &mut self,
        release_run: u32,
        conclusion: &str,
        after_step: &mut dyn FnMut(&StepRecord),
    ) -> RunRecord {
        self.fresh_deploy_checkout();
        let checkout = self.deploy_checkout.clone();
        self.replay(
            "deploy.yml",
            &checkout,
            "workflow_run",
            json!({"workflow_run": {"id": release_run, "conclusion": conclusion}}),
            json!({}),
            after_step,
        )
        .1
    }

    fn deploy_dispatch(&mut self, version: &str) -> RunRecord {
        self.fresh_deploy_checkout();
        let checkout = self.deploy_checkout.clone();
        self.replay(
            "deploy.yml",
            &checkout,
            "workflow_dispatch",
            json!({"inputs": {"version": version}}),
            json!({"version": version}),
            &mut |_| {},
        )
        .1
    }

    /// What a deploy job's checkout is: main as origin has it now, on a fresh runner.
    fn fresh_deploy_checkout(&self) {
        if !self.deploy_checkout.exists() {
            git(
                self.origin.parent().unwrap(),
                &[
                    "clone",
                    "--quiet",
                    self.origin.to_str().unwrap(),
                    self.deploy_checkout.to_str().unwrap(),
                ],
            );
        }
        git(
            &self.deploy_checkout,
            &["pull", "--quiet", "--tags", "--ff-only"],
        );
        let _ = std::fs::remove_dir_all(self.deploy_checkout.join(".avalon/release"));
    }

    fn xtask(&self, args: &[&str]) -> Command {
        let mut command = Command::new(xtask_bin());
        command
            .args(args)
            .current_dir(&self.clone)
            .env("AVALON_PROJECT_ROOT", &self.clone)
            .env_remove("AVALON_STACK_PROJECT")
            .envs(self.stack.host_env.iter().cloned());
        command
    }

    fn xtask_ok(&self, args: &[&str]) -> String {
        let output = run(&mut self.xtask(args));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "xtask {args:?} failed:\n{stdout}");
        stdout
    }

    /// The release the edge of `environment`'s stack serves, per `status --json`.
    fn serving(&self, environment: &str) -> Value {
        let project = self.stack.project(environment);
        let text = self.xtask_ok(&[
            "status",
            "--env",
            self.stack.stack_env,
            "--project",
            project,
            "--json",
        ]);
        serde_json::from_str::<Value>(&text).unwrap()["serving"].clone()
    }

    fn ledger(&self, environment: &str) -> Vec<Value> {
        let project = self.stack.project(environment);
        let text = self.xtask_ok(&[
            "releases",
            "--env",
            self.stack.stack_env,
            "--project",
            project,
            "--json",
        ]);
        serde_json::from_str::<Value>(&text).unwrap()["entries"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn commit(&self, file: &str, message: &str) {
        std::fs::write(self.clone.join(file), format!("{message}\n")).unwrap();
        git(&self.clone, &["add", file]);
        git(&self.clone, &["commit", "--quiet", "-m", message]);
    }
}

fn outcome(world: &World) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(world.clone.join(".avalon/release/outcome.json")).unwrap(),
    )
    .unwrap()
}

fn image_tags(outcome: &Value) -> Vec<String> {
    outcome["images"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["tags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect()
}

fn event_summary(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["event"].as_str().unwrap(),
                e["release"]["version"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

/// A deploy.toml with the repository's thresholds and shorter waits, so a canary step is judged in
/// seconds (still ≥ `min_requests` from the probe at 10 requests/s).
fn fast_deploy_config(text: &str) -> String {
    let default_plan = text
        .find("[plans.default]")
        .and_then(|start| {
            text[start..]
                .find("]\n\n")
                .map(|end| (start, start + end + 3))
        })
        .expect("deploy.toml has [plans.default]");
    let mut fast = text.to_owned();
    fast.replace_range(
        default_plan.0..default_plan.1,
        "[plans.default]\nsteps = [\n  { weight = 50, pause = \"8s\" },\n  { weight = 100, pause = \"8s\" },\n]\n\n",
    );
    fast.replace("drain = \"10s\"", "drain = \"2s\"")
        .replace("verify_window = \"30s\"", "verify_window = \"8s\"")
}

/// Kills the canary's api container as soon as the edge gives the canary a share of users (waiting on
/// that condition, with a deadline): the canary "crashes under its traffic".
fn crash_the_canary_once_it_takes_traffic(
    root: PathBuf,
    stack_env: &'static str,
    project: String,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(240);
        while Instant::now() < deadline {
            let output = Command::new(xtask_bin())
                .args([
                    "canary",
                    "status",
                    "--env",
                    stack_env,
                    "--project",
                    &project,
                ])
                .args(["--json", "--window", "1"])
                .env("AVALON_PROJECT_ROOT", &root)
                .output()
                .unwrap();
            let status: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
            if let Some(canary) = status["routing"]["canary"].as_array()
                && canary.get(1).and_then(Value::as_u64).unwrap_or(0) > 0
            {
                let service = format!("api-{}", canary[0].as_str().unwrap_or_default());
                for id in service_containers(&project, &service) {
                    let _ = docker(&["kill", &id]).output();
                }
                eprintln!("induced: killed {service} of {project} under its canary share");
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        false
    })
}

fn service_containers(project: &str, service: &str) -> Vec<String> {
    let output = docker(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
    ])
    .output()
    .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Stops the running containers of one service of the stack.
fn stop_service(project: &str, service: &str) {
    for id in service_containers(project, service) {
        assert!(run(&mut docker(&["stop", &id])).status.success());
    }
}

#[test]
fn release_and_deploy_workflows_replayed_against_a_stack_with_a_failure_in_each_job() {
    if !docker_with_compose_v2() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let clone = scratch.path().join("avalon-ops");
    let origin = scratch.path().join("origin.git");
    git(
        scratch.path(),
        &[
            "clone",
            "--quiet",
            "--no-hardlinks",
            workspace_root().to_str().unwrap(),
            "avalon-ops",
        ],
    );
    for (key, value) in [
        ("user.name", "Replay"),
        ("user.email", "replay@example.invalid"),
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
    ] {
        git(&clone, &["config", key, value]);
    }
    git(scratch.path(), &["init", "--quiet", "--bare", "origin.git"]);
    git(
        &clone,
        &["remote", "set-url", "origin", origin.to_str().unwrap()],
    );
    let config = std::fs::read_to_string(clone.join("deploy/deploy.toml")).unwrap();
    std::fs::write(
        clone.join("deploy/deploy.toml"),
        fast_deploy_config(&config),
    )
    .unwrap();
    git(&clone, &["add", "deploy/deploy.toml"]);
    git(
        &clone,
        &[
            "commit",
            "--quiet",
            "-m",
            "chore: seconds-long canary steps for the replay",
        ],
    );
    // Unusual versions, so image tags cannot collide with the project's own or other tests'.
    git(
        &clone,
        &["tag", "--annotate", "v0.80.0", "-m", "replay base"],
    );
    let branch = git(&clone, &["rev-parse", "--abbrev-ref", "HEAD"]);
    git(
        &clone,
        &[
            "push",
            "--quiet",
            "origin",
            &format!("HEAD:refs/heads/{branch}"),
            "v0.80.0",
        ],
    );
    git(
        &origin,
        &["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")],
    );

    let shim_dir = scratch.path().join("bin");
    std::fs::create_dir_all(&shim_dir).unwrap();
    let shim = shim_dir.join("cargo");
    std::fs::write(
        &shim,
        "#!/usr/bin/env bash\n# `cargo xtask` runs the xtask binary under test; anything else is cargo.\n\
         if [ \"${1:-}\" = xtask ]; then shift; exec \"$AVALON_REPLAY_XTASK\" \"$@\"; fi\n\
         exec \"$AVALON_REPLAY_CARGO\" \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();

    let stack = TargetStack::prod(scratch.path());
    let cleanup = Cleanup {
        stack_env: stack.stack_env,
        projects: stack
            .environments
            .values()
            .map(|(p, _, _)| p.clone())
            .collect(),
        clone: clone.clone(),
        image_tags: std::cell::RefCell::new(Vec::new()),
    };
    let mut world = World {
        deploy_checkout: scratch.path().join("deploy-checkout"),
        artifacts: scratch.path().join("artifacts"),
        clone,
        origin,
        shim_dir,
        stack,
        next_run: 100,
        replayed: 0,
        passed: 0,
    };

    // 1. Release #1 (0.81.0), then both stacks up and live on it (setup).
    world.commit("REPLAY_ONE.md", "feat: replay release one");
    let (first_run, first) = world.release();
    assert_eq!(
        first.job("release").result,
        Outcome::Success,
        "{}",
        first.describe()
    );
    let first_outcome = outcome(&world);
    assert_eq!(first_outcome["released"], true, "{first_outcome}");
    assert_eq!(first_outcome["version"], "0.81.0");
    cleanup
        .image_tags
        .borrow_mut()
        .extend(image_tags(&first_outcome));
    assert_eq!(
        git(&world.origin, &["tag", "--list", "v0.81.0"]),
        "v0.81.0",
        "the tag reached origin"
    );
    for environment in ["staging", "production"] {
        let (project, port, https_port) = world.stack.environments[environment].clone();
        let release_image = |repository: &str| {
            image_tags(&first_outcome)
                .into_iter()
                .find(|tag| tag == &format!("{repository}:0.81.0"))
                .unwrap_or_else(|| panic!("release 0.81.0 made no {repository} image"))
        };
        run_ok(
            world
                .xtask(&[
                    "up",
                    "--env",
                    world.stack.stack_env,
                    "--project",
                    &project,
                    "--http-port",
                    &port.to_string(),
                    "--https-port",
                    &https_port.to_string(),
                    "--timeout",
                    "240",
                ])
                .env("AVALON_API_IMAGE", release_image("avalon-api"))
                .env("AVALON_WS_IMAGE", release_image("avalon-ws")),
        );
        world.xtask_ok(&[
            "deploy",
            "--env",
            world.stack.stack_env,
            "--project",
            &project,
            "--version",
            "0.81.0",
        ]);
        assert_eq!(world.serving(environment)["version"], "0.81.0");
    }

    // 2. Release #2 fails: origin refuses the push. The deploy after it runs no job.
    world.commit("REPLAY_TWO.md", "feat: replay release two");
    let hook = world.origin.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'origin: pushes refused (induced)' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (failed_run, failed) = world.release();
    let release_job = failed.job("release");
    assert_eq!(release_job.result, Outcome::Failure);
    assert_eq!(
        release_job.step("cargo xtask release").outcome,
        Outcome::Failure
    );
    assert_eq!(
        release_job.step("actions/upload-artifact").outcome,
        Outcome::Success,
        "uploaded always()"
    );
    let deploy = world.deploy_after(failed_run, failed.conclusion(), &mut |_| {});
    for job in ["resolve", "staging", "production"] {
        assert_eq!(deploy.job(job).result, Outcome::Skipped, "{job}");
    }
    assert_eq!(world.serving("production")["version"], "0.81.0");
    std::fs::remove_file(&hook).unwrap();

    // 3. Release #3 resumes 0.82.0; staging deploys it, production canaries it and promotes it once.
    let (second_run, second) = world.release();
    assert_eq!(
        second.job("release").result,
        Outcome::Success,
        "{}",
        second.describe()
    );
    let second_outcome = outcome(&world);
    assert_eq!(second_outcome["version"], "0.82.0");
    cleanup
        .image_tags
        .borrow_mut()
        .extend(image_tags(&second_outcome));
    let production_before = world.ledger("production").len();
    let deploy = world.deploy_after(second_run, second.conclusion(), &mut |_| {});
    assert_eq!(deploy.job("resolve").outputs["released"], "true");
    assert_eq!(
        deploy.job("resolve").outputs["api_image"],
        "avalon-api:0.82.0"
    );
    assert_eq!(
        deploy.job("staging").result,
        Outcome::Success,
        "{}",
        deploy.describe()
    );
    assert_eq!(
        deploy.job("production").result,
        Outcome::Success,
        "{}",
        deploy.describe()
    );
    assert!(
        !deploy.job("production").steps.last().unwrap().ran(),
        "no failure step"
    );
    for environment in ["staging", "production"] {
        let serving = world.serving(environment);
        assert_eq!(serving["version"], "0.82.0", "{environment}: {serving}");
        assert!(serving["canary"].is_null());
    }
    let production = event_summary(&world.ledger("production")[production_before..]);
    assert_eq!(
        production
            .iter()
            .filter(|e| e.starts_with("canary_promote 0.82.0 succeeded"))
            .count(),
        1,
        "promoted exactly once: {production:?}"
    );
    assert!(
        !production.iter().any(|e| e.starts_with("rollback")),
        "{production:?}"
    );

    // 4. A re-run of the deploy after release #3: the release is already live, no deploy step runs.
    let before = (
        world.ledger("staging").len(),
        world.ledger("production").len(),
    );
    let deploy = world.deploy_after(second_run, second.conclusion(), &mut |_| {});
    for job in ["staging", "production"] {
        let record = deploy.job(job);
        assert_eq!(record.result, Outcome::Success, "{}", deploy.describe());
        assert!(
            !record.step("--pull").ran(),
            "{job}: 0.82.0 is live already"
        );
        assert_eq!(record.step("--expect-live").outcome, Outcome::Success);
    }
    assert_eq!(
        before,
        (
            world.ledger("staging").len(),
            world.ledger("production").len()
        )
    );

    // Release #4 has nothing to release (a docs commit): the deploy after it deploys nothing.
    world.commit("REPLAY_DOCS.md", "docs: replay note");
    let (idle_run, idle) = world.release();
    assert_eq!(idle.job("release").result, Outcome::Success);
    assert_eq!(outcome(&world)["released"], false);
    let before = (
        world.ledger("staging").len(),
        world.ledger("production").len(),
    );
    let deploy = world.deploy_after(idle_run, idle.conclusion(), &mut |_| {});
    assert_eq!(deploy.job("resolve").result, Outcome::Success);
    assert_eq!(deploy.job("resolve").outputs["released"], "false");
    assert_eq!(deploy.job("staging").result, Outcome::Skipped);
    assert_eq!(deploy.job("production").result, Outcome::Skipped);
    assert_eq!(
        before,
        (
            world.ledger("staging").len(),
            world.ledger("production").len()
        )
    );

    // 5. A manual deploy of 0.81.0 from the registry: not on the target, and no registry to pull from →
    //    pre-flight fails before anything changes → the failure step must change nothing.
    let staging_before = world.ledger("staging").len();
    let deploy = world.deploy_dispatch("0.81.0");
    let staging = deploy.job("staging");
    assert_eq!(staging.result, Outcome::Failure, "{}", deploy.describe());
    let deploy_step = staging.step("cargo xtask deploy");
    assert_eq!(deploy_step.outcome, Outcome::Failure);
    assert!(
        deploy_step.output.contains("could not pull it"),
        "{}",
        deploy_step.output
    );
    let failure_step = staging.steps.last().unwrap();
    assert_eq!(failure_step.outcome, Outcome::Success);
    assert!(
        failure_step.output.contains("nothing to do"),
        "{}",
        failure_step.output
    );
    assert_eq!(deploy.job("production").result, Outcome::Skipped);
    assert_eq!(world.serving("staging")["version"], "0.82.0");
    assert_eq!(
        world.ledger("staging").len(),
        staging_before,
        "nothing recorded, nothing moved"
    );

    // 6. Staging deploys 0.81.0 (release #1's artifact) and a container of the new slot stops right after
    //    the switch → the check fails → the failure step returns to exactly 0.82.0.
    let staging_project = world.stack.project("staging").to_owned();
    let staging_before = world.ledger("staging").len();
    let (clone, stack_env) = (world.clone.clone(), world.stack.stack_env);
    let deploy = world.deploy_after(first_run, "success", &mut |step: &StepRecord| {
        if step.job == "staging"
            && step.label.starts_with("cargo xtask deploy")
            && step.outcome == Outcome::Success
        {
            let live = String::from_utf8(
                Command::new(xtask_bin())
                    .args(["status", "--env", stack_env, "--project"])
                    .args([&staging_project, "--json"])
                    .env("AVALON_PROJECT_ROOT", &clone)
                    .output()
                    .unwrap()
                    .stdout,
            )
            .unwrap();
            let slot = serde_json::from_str::<Value>(&live).unwrap()["serving"]["slot"]
                .as_str()
                .unwrap()
                .to_owned();
            eprintln!("induced: stopping websocket-{slot} of {staging_project} after the switch");
            stop_service(&staging_project, &format!("websocket-{slot}"));
        }
    });
    let staging = deploy.job("staging");
    assert_eq!(staging.result, Outcome::Failure, "{}", deploy.describe());
    assert_eq!(staging.step("cargo xtask deploy").outcome, Outcome::Success);
    assert_eq!(staging.step("--expect-live").outcome, Outcome::Failure);
    let failure_step = staging.steps.last().unwrap();
    assert_eq!(
        failure_step.outcome,
        Outcome::Success,
        "{}",
        failure_step.output
    );
    assert_eq!(world.serving("staging")["version"], "0.82.0");
    let staging_entries = event_summary(&world.ledger("staging")[staging_before..]);
    assert_eq!(
        staging_entries,
        [
            "deploy 0.81.0 started",
            "deploy 0.81.0 succeeded",
            "rollback 0.82.0 succeeded"
        ]
    );
    assert_eq!(deploy.job("production").result, Outcome::Skipped);

    // 7. Staging deploys 0.81.0 cleanly; production canaries it and the canary's api crashes under its
    //    share → judged bad, aborted → production still serves 0.82.0 and the failure step does nothing.
    let production_project = world.stack.project("production").to_owned();
    let production_before = world.ledger("production").len();
    let mut crash = None;
    let deploy = world.deploy_after(first_run, "success", &mut |step: &StepRecord| {
        if step.job == "production" && step.label == "before" {
            crash = Some(crash_the_canary_once_it_takes_traffic(
                clone.clone(),
                stack_env,
                production_project.clone(),
            ));
        }
    });
    let crashed = crash.map(|c| c.join().unwrap());
    assert_eq!(
        crashed,
        Some(true),
        "the canary took traffic and was crashed"
    );
    assert_eq!(
        deploy.job("staging").result,
        Outcome::Success,
        "{}",
        deploy.describe()
    );
    assert_eq!(world.serving("staging")["version"], "0.81.0");
    let production = deploy.job("production");
    assert_eq!(production.result, Outcome::Failure);
    // Two outcomes are right, depending on how much traffic the crashed slot still answered within the
    // judgment window: the canary's own judgment fails and it aborts itself; or the judgment has too few
    // requests ("no data is not a pass"), the canary pauses, `status --expect-live` fails the job and the
    // failure step aborts the canary it left open. Either way production never leaves 0.82.0.
    let canary_step = production.step("cargo xtask canary start");
    let failure_step = production.steps.last().unwrap();
    assert_eq!(failure_step.outcome, Outcome::Success);
    match canary_step.outcome {
        Outcome::Failure => assert!(
            canary_step.output.contains("ABORTED automatically"),
            "{}",
            canary_step.output
        ),
        _ => {
            assert!(
                canary_step.output.contains("PAUSED at"),
                "{}",
                canary_step.output
            );
            assert_eq!(production.step("--expect-live").outcome, Outcome::Failure);
            assert!(
                failure_step
                    .output
                    .contains("the run left a canary open; aborting it"),
                "{}",
                failure_step.output
            );
        }
    }
    assert!(
        failure_step.output.contains("nothing to do"),
        "{}",
        failure_step.output
    );
    let serving = world.serving("production");
    assert_eq!(serving["version"], "0.82.0", "{serving}");
    assert!(serving["canary"].is_null());
    let entries = event_summary(&world.ledger("production")[production_before..]);
    assert!(
        entries.iter().any(|e| e == "canary_abort 0.81.0 aborted"),
        "{entries:?}"
    );
    assert!(
        !entries.iter().any(|e| e.starts_with("rollback")),
        "{entries:?}"
    );

    avalon_testkit::figures::figure(
        "workflow replay",
        &format!(
            "workflow steps replayed / passed: {} / {} against the prod overlay (the rest failed where a \
             failure was induced)",
            world.replayed, world.passed
        ),
    );
    drop(cleanup);
}
