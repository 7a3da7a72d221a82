//! Replays a GitHub Actions workflow file on this machine: its jobs in `needs` order, every step in order,
//! `run:` steps through `bash --noprofile --norc -e -o pipefail` as the hosted runners run them, with the
//! workflow's, the job's and the step's `env:` (expressions substituted from the context the caller
//! supplies), `$GITHUB_OUTPUT` read back into `steps.<id>.outputs` and job `outputs:`, and `if:` decided
//! with GitHub's status rules (a step after a failure runs only under `failure()`/`always()`; a job
//! whose needed job did not succeed is skipped unless its `if:` says otherwise). `uses:` steps go to the
//! caller, which does locally what the action does (or documents why nothing needs doing).
//!
//! Not modelled (the repository's workflows do not rely on them): matrices, `continue-on-error`,
//! `timeout-minutes`, `working-directory`, `shell:`, services, `GITHUB_ENV`/`GITHUB_PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};
use yaml_rust2::{Yaml, YamlLoader};

use super::expr::{self, Status};

/// Where and with what a replay runs.
pub struct Runner {
    /// The checkout: every step's working directory (what `actions/checkout` gives a job).
    pub workdir: PathBuf,
    /// The runner's own environment (PATH, HOME, …), below every `env:` of the workflow.
    pub env: BTreeMap<String, String>,
    /// Extra runner environment per GitHub environment (`environment:` of a job): on GitHub each
    /// environment's jobs reach their own host; here that is, e.g., their own Compose project.
    pub per_environment: BTreeMap<String, BTreeMap<String, String>>,
}

/// The expression contexts a run starts from.
#[derive(Clone, Default)]
pub struct Trigger {
    /// `github` context: `event_name`, `event`, `repository_owner`, `actor`, `token`, `run_id`.
    pub github: Value,
    pub inputs: Value,
    /// Repository secrets and variables, and per GitHub environment the environment's own (which win).
    pub secrets: Value,
    pub vars: Value,
    pub environment_secrets: BTreeMap<String, Value>,
    pub environment_vars: BTreeMap<String, Value>,
}

/// A `uses:` step as the caller sees it: the action without its pin, its `with:` (substituted).
pub struct UsesCall<'a> {
    pub job: &'a str,
    pub action: String,
    pub with: BTreeMap<String, String>,
    pub workdir: &'a Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Skipped,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepRecord {
    pub job: String,
    pub index: usize,
    /// `id`, else the `run:` line, else the action.
    pub label: String,
    pub run: Option<String>,
    pub uses: Option<String>,
    pub outcome: Outcome,
    pub output: String,
    pub outputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct JobRecord {
    pub name: String,
    pub result: Outcome,
    pub outputs: BTreeMap<String, String>,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub workflow: String,
    pub jobs: Vec<JobRecord>,
}

impl RunRecord {
    pub fn job(&self, name: &str) -> &JobRecord {
        self.jobs
            .iter()
            .find(|j| j.name == name)
            .unwrap_or_else(|| panic!("{}: no job {name}", self.workflow))
    }

    /// The run's conclusion as `workflow_run` reports it to a workflow it triggers.
    pub fn conclusion(&self) -> &'static str {
        if self.jobs.iter().any(|j| j.result == Outcome::Failure) {
            "failure"
        } else {
            "success"
        }
    }

    /// (replayed, passed, failed): steps that ran, and how they ended.
    pub fn counts(&self) -> (usize, usize, usize) {
        let steps = self.jobs.iter().flat_map(|j| &j.steps);
        let ran: Vec<_> = steps.filter(|s| s.outcome != Outcome::Skipped).collect();
        let passed = ran.iter().filter(|s| s.outcome == Outcome::Success).count();
        (ran.len(), passed, ran.len() - passed)
    }

    pub fn describe(&self) -> String {
        let mut out = format!("{}:\n", self.workflow);
        for job in &self.jobs {
            out.push_str(&format!("  job {} → {}\n", job.name, job.result.name()));
            for step in &job.steps {
                out.push_str(&format!(
                    "    {:>2}. {:<8} {}\n",
                    step.index + 1,
                    step.outcome.name(),
                    step.label
                ));
            }
        }
        out
    }
}

impl StepRecord {
    pub fn ran(&self) -> bool {
        self.outcome != Outcome::Skipped
    }
}

impl JobRecord {
    /// The step whose label (id, run line or action) contains `text`.
    pub fn step(&self, text: &str) -> &StepRecord {
        self.steps
            .iter()
            .find(|s| s.label.contains(text))
            .unwrap_or_else(|| panic!("job {}: no step like {text:?}", self.name))
    }
}

pub fn load(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not YAML: {err}", path.display()))
        .remove(0)
}

fn text(yaml: &Yaml) -> Option<String> {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn map_of(yaml: &Yaml) -> Vec<(String, String)> {
    yaml.as_hash()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
        .collect()
}

fn needs_of(job: &Yaml) -> Vec<String> {
    match &job["needs"] {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Array(items) => items.iter().filter_map(text).collect(),
        _ => Vec::new(),
    }
}

/// Replays `workflow` (a file of .github/workflows) with `trigger`; `uses` performs `uses:` steps and
/// `after_step` sees each step as it ends (where a test induces a failure).
pub fn replay(
    workflow: &Path,
    runner: &Runner,
    trigger: &Trigger,
    uses: &mut dyn FnMut(&UsesCall) -> Result<String, String>,
    after_step: &mut dyn FnMut(&StepRecord),
) -> RunRecord {
    let doc = load(workflow);
    let name = workflow
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut record = RunRecord {
        workflow: name.clone(),
        jobs: Vec::new(),
    };
    let jobs: Vec<(String, Yaml)> = doc["jobs"]
        .as_hash()
        .unwrap_or_else(|| panic!("{name} has no jobs"))
        .iter()
        .filter_map(|(k, v)| Some((text(k)?, v.clone())))
        .collect();
    let mut pending = jobs;
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|(_, job)| {
                needs_of(job)
                    .iter()
                    .all(|n| record.jobs.iter().any(|done| &done.name == n))
            })
            .unwrap_or_else(|| panic!("{name}: a job needs a job that does not exist"));
        let (job_name, job) = pending.remove(ready);
        let result = run_job(
            &doc, &job_name, &job, runner, trigger, &record, uses, after_step,
        );
        eprintln!("replay {name}: job {job_name} → {}", result.result.name());
        record.jobs.push(result);
    }
    eprintln!("{}", record.describe());
    record
}

#[allow(clippy::too_many_arguments)]
fn run_job(
    doc: &Yaml,
    job_name: &str,
    job: &Yaml,
    runner: &Runner,
    trigger: &Trigger,
    done: &RunRecord,
    uses: &mut dyn FnMut(&UsesCall) -> Result<String, String>,
    after_step: &mut dyn FnMut(&StepRecord),
) -> JobRecord {
    let environment = text(&job["environment"]).or_else(|| text(&job["environment"]["name"]));
    let mut secrets = trigger.secrets.clone();
    let mut vars = trigger.vars.clone();
    if let Some(env_name) = &environment {
        merge(&mut secrets, trigger.environment_secrets.get(env_name));
        merge(&mut vars, trigger.environment_vars.get(env_name));
    }
    let mut needs = Map::new();
    let mut needs_failed = false;
    for need in needs_of(job) {
        let need_record = done.job(&need);
        needs_failed |= need_record.result != Outcome::Success;
        needs.insert(
            need.clone(),
            json!({"result": need_record.result.name(), "outputs": need_record.outputs}),
        );
    }
    let mut context = json!({
        "github": trigger.github,
        "inputs": trigger.inputs,
        "secrets": secrets,
        "vars": vars,
        "needs": needs,
        "steps": {},
        "env": {},
    });
    let mut record = JobRecord {
        name: job_name.to_owned(),
        result: Outcome::Skipped,
        outputs: BTreeMap::new(),
        steps: Vec::new(),
    };
    let status = Status {
        failed: needs_failed,
    };
    let job_if = text(&job["if"]).unwrap_or_else(|| "success()".to_owned());
    match expr::condition(&job_if, &context, status) {
        Ok(true) => {}
        Ok(false) => return record,
        Err(err) => panic!("job {job_name}: if: {err}"),
    }
    // The runner's environment, then the workflow's and the job's `env:`.
    let mut env = runner.env.clone();
    if let Some(extra) = environment
        .as_ref()
        .and_then(|e| runner.per_environment.get(e))
    {
        env.extend(extra.clone());
    }
    for (key, value) in [
        ("CI", "true"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_WORKFLOW", doc["name"].as_str().unwrap_or("")),
        ("GITHUB_JOB", job_name),
    ] {
        env.insert(key.to_owned(), value.to_owned());
    }
    for (key, field) in [
        ("GITHUB_EVENT_NAME", "event_name"),
        ("GITHUB_RUN_ID", "run_id"),
        ("GITHUB_ACTOR", "actor"),
        ("GITHUB_REPOSITORY", "repository"),
    ] {
        env.insert(key.to_owned(), expr::to_text(&trigger.github[field]));
    }
    let mut declared = Map::new();
    for scope in [&doc["env"], &job["env"]] {
        for (key, value) in map_of(scope) {
            context["env"] = Value::Object(declared.clone());
            let value = expr::substitute(&value, &context, status)
                .unwrap_or_else(|err| panic!("job {job_name}: env {key}: {err}"));
            declared.insert(key, Value::String(value));
        }
    }
    context["env"] = Value::Object(declared.clone());
    let mut failed = false;
    let steps = job["steps"].as_vec().cloned().unwrap_or_default();
    for (index, step) in steps.iter().enumerate() {
        let status = Status { failed };
        let run = text(&step["run"]);
        let action = text(&step["uses"]);
        let label = text(&step["id"])
            .or_else(|| run.clone())
            .or_else(|| action.clone())
            .unwrap_or_default();
        let mut step_record = StepRecord {
            job: job_name.to_owned(),
            index,
            label,
            run: run.clone(),
            uses: action.clone(),
            outcome: Outcome::Skipped,
            output: String::new(),
            outputs: BTreeMap::new(),
        };
        let mut step_env = declared.clone();
        for (key, value) in map_of(&step["env"]) {
            let value = expr::substitute(&value, &context, status).unwrap_or_else(|err| {
                panic!("job {job_name} step {}: env {key}: {err}", index + 1)
            });
            step_env.insert(key, Value::String(value));
        }
        context["env"] = Value::Object(step_env.clone());
        let step_if = text(&step["if"]).unwrap_or_else(|| "success()".to_owned());
        let wanted = expr::condition(&step_if, &context, status)
            .unwrap_or_else(|err| panic!("job {job_name} step {}: if: {err}", index + 1));
        if wanted {
            let (ok, output, outputs) = match (&run, &action) {
                (Some(script), _) => {
                    let mut full_env = env.clone();
                    for (k, v) in &step_env {
                        full_env.insert(k.clone(), expr::to_text(v));
                    }
                    run_script(script, &runner.workdir, &full_env, job_name, index)
                }
                (None, Some(action)) => {
                    let with = map_of(&step["with"])
                        .into_iter()
                        .map(|(k, v)| {
                            let v = expr::substitute(&v, &context, status).unwrap_or_else(|err| {
                                panic!("job {job_name} step {}: with {k}: {err}", index + 1)
                            });
                            (k, v)
                        })
                        .collect();
                    let call = UsesCall {
                        job: job_name,
                        action: action.split('@').next().unwrap_or_default().to_owned(),
                        with,
                        workdir: &runner.workdir,
                    };
                    match uses(&call) {
                        Ok(what) => (true, what, BTreeMap::new()),
                        Err(why) => (false, why, BTreeMap::new()),
                    }
                }
                _ => panic!("job {job_name} step {}: neither run nor uses", index + 1),
            };
            step_record.outcome = if ok {
                Outcome::Success
            } else {
                Outcome::Failure
            };
            step_record.output = output;
            step_record.outputs = outputs;
            failed |= !ok;
            eprintln!(
                "replay: job {job_name} step {} ({}) → {}",
                index + 1,
                step_record.label,
                step_record.outcome.name()
            );
            after_step(&step_record);
        } else {
            eprintln!(
                "replay: job {job_name} step {} ({}) skipped by `if: {step_if}`",
                index + 1,
                step_record.label
            );
        }
        if let Some(id) = text(&step["id"]) {
            context["steps"][&id] = json!({
                "outcome": step_record.outcome.name(),
                "conclusion": step_record.outcome.name(),
                "outputs": step_record.outputs,
            });
        }
        context["env"] = Value::Object(declared.clone());
        record.steps.push(step_record);
    }
    record.result = if failed {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    for (key, value) in map_of(&job["outputs"]) {
        let value = expr::substitute(&value, &context, Status { failed })
            .unwrap_or_else(|err| panic!("job {job_name}: output {key}: {err}"));
        record.outputs.insert(key, value);
    }
    record
}

fn merge(into: &mut Value, from: Option<&Value>) {
    if let (Some(into), Some(Value::Object(from))) = (into.as_object_mut(), from) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// One `run:` step: `bash --noprofile --norc -e -o pipefail <script>` in the checkout with exactly the
/// step's environment and a fresh `$GITHUB_OUTPUT`, read back afterwards.
fn run_script(
    script: &str,
    workdir: &Path,
    env: &BTreeMap<String, String>,
    job: &str,
    index: usize,
) -> (bool, String, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().expect("a temporary directory for the step");
    let script_path = dir.path().join("step.sh");
    std::fs::write(&script_path, script).expect("writing the step's script");
    let output_path = dir.path().join("github_output");
    std::fs::write(&output_path, "").expect("creating $GITHUB_OUTPUT");
    eprintln!("replay: job {job} step {}: $ {}", index + 1, script.trim());
    let output = Command::new("bash")
        .args(["--noprofile", "--norc", "-e", "-o", "pipefail"])
        .arg(&script_path)
        .current_dir(workdir)
        .env_clear()
        .envs(env)
        .env("GITHUB_OUTPUT", &output_path)
        .output()
        .expect("running bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{text}");
    let outputs = parse_github_output(&std::fs::read_to_string(&output_path).unwrap_or_default());
    (output.status.success(), text, outputs)
}

/// `name=value` lines and `name<<DELIMITER` blocks, as the runner reads `$GITHUB_OUTPUT`.
pub fn parse_github_output(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for next in lines.by_ref() {
                if next == delimiter {
                    break;
                }
                value.push(next);
            }
            outputs.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            outputs.insert(name.to_owned(), value.to_owned());
        }
    }
    outputs
}
