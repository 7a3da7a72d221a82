//! `cargo xtask k8s kind-smoke`: the manifests of k8s/ on a real, throwaway Kubernetes — what `k8s check`
//! cannot show offline (scheduling, the ingress controller, probes against running pods, the network
//! policies of a CNI that enforces them). One run: build the images, create a kind cluster
//! (k8s/kind/cluster.yaml), load the images, install ingress-nginx from its pinned kind manifest, create
//! the namespace and Secrets as an operator does, run Redis and MongoDB stand-ins behind the names the
//! manifests expect (k8s/kind/datastores.yaml), `kubectl apply -k` the overlay as committed, wait for the
//! rollouts, then through the Ingress: `/health` is 200, a Socket.IO handshake opens a session, `/metrics`,
//! `/livez` and `/readyz` are not reachable, plain HTTP is redirected. The cluster is deleted however the
//! run ends (Ctrl-C included); a failed run first prints what the cluster says about why.
//!
//! GitHub Actions runs it (.github/workflows/ci.yml, job `kind-smoke`); it needs kind, kubectl, docker,
//! curl and openssl, and refuses, naming the missing one, without them. `--dry-run` prints every step.

mod checks;
mod overlay;
mod plan;
mod secrets;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xshell::Shell;

use crate::command::{DockerCli, Invocation, Kind, Kubectl};
use crate::image::build::{Build, BuildPath, identity};
use crate::image::service::ServiceChoice;
use crate::project;
use checks::{Check, split_status};
use overlay::OverlayFacts;
use plan::{Action, Inputs, Plan};

pub const CLUSTER_CONFIG: &str = "k8s/kind/cluster.yaml";
pub const DATASTORES_MANIFEST: &str = "k8s/kind/datastores.yaml";
pub const DEFAULT_OVERLAY: &str = "k8s/overlays/staging";
pub const DEFAULT_CLUSTER: &str = "avalon-smoke";
/// What a real run needs on PATH (`--dry-run` needs only kubectl, to render the overlay).
pub const TOOLS: [&str; 5] = ["kind", "kubectl", "docker", "curl", "openssl"];

pub struct Options {
    /// The overlay, relative to the project root.
    pub overlay: PathBuf,
    pub cluster: String,
    pub dry_run: bool,
}

pub fn run(sh: &Shell, options: &Options) -> anyhow::Result<()> {
    let root = project::root();
    let missing: Vec<&str> = TOOLS
        .into_iter()
        .filter(|tool| crate::nginx::which(tool).is_none())
        .collect();
    if !options.dry_run && !missing.is_empty() {
        bail!(refusal(&missing));
    }
    if missing.contains(&"kubectl") {
        bail!(
            "kind-smoke reads the overlay with `kubectl kustomize`, even for --dry-run: {}",
            refusal(&["kubectl"])
        );
    }
    let rendered = Kubectl::kustomize(&options.overlay)
        .current_dir(&root)
        .capture(None)
        .with_context(|| format!("kustomize cannot build {}", options.overlay.display()))?;
    let facts = OverlayFacts::from_rendered(&rendered)
        .with_context(|| format!("in {}", options.overlay.display()))?;
    let tls_secret = facts.tls_secret.clone().with_context(|| {
        format!(
            "the Ingress of {} has no TLS; `cargo xtask k8s check` refuses such an overlay",
            options.overlay.display()
        )
    })?;
    let config_path = root.join(CLUSTER_CONFIG);
    let config = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let ports = overlay::mapped_ports(&config).with_context(|| format!("in {CLUSTER_CONFIG}"))?;
    let identity = identity(sh)?;
    let built_tag = format!("{}-{}", identity.version, identity.revision());
    // Private (0700): it holds the kubeconfig and the Secrets' files.
    let scratch = tempfile::Builder::new()
        .prefix("avalon-kind-smoke-")
        .tempdir()
        .context("cannot create a scratch directory")?;
    let plan = plan::plan(&Inputs {
        cluster: &options.cluster,
        overlay: &options.overlay,
        cluster_config: Path::new(CLUSTER_CONFIG),
        datastores: Path::new(DATASTORES_MANIFEST),
        facts: &facts,
        tls_secret: &tls_secret,
        ports,
        built_tag: &built_tag,
        scratch: scratch.path(),
    });
    println!(
        "kind-smoke: cluster {}, overlay {} (namespace {}, Ingress host {}, TLS Secret {tls_secret}), \
         ingress on 127.0.0.1:{} (http) and :{} (https)",
        options.cluster,
        options.overlay.display(),
        facts.namespace,
        facts.host,
        ports.http,
        ports.https
    );
    if options.dry_run {
        print_plan(&plan);
        if !missing.is_empty() {
            println!("a real run would refuse here: {}", refusal(&missing));
        }
        return Ok(());
    }
    crate::image::docker::require_engine(sh)?;
    refuse_leftover_cluster(&options.cluster)?;
    let started = Instant::now();
    let outcome = execute(sh, &plan, &root);
    match outcome {
        Ok(passed) => {
            println!(
                "kind-smoke: passed in {:.0}s",
                started.elapsed().as_secs_f64()
            );
            for (check, detail) in passed {
                println!("  ok  {}: {detail}", check.describe());
            }
            Ok(())
        }
        Err(error) => Err(error.context(format!(
            "kind-smoke failed after {:.0}s (cluster deleted)",
            started.elapsed().as_secs_f64()
        ))),
    }
}

/// The refusal when tools are missing: which, and where they come from.
pub fn refusal(missing: &[&str]) -> String {
    format!(
        "kind-smoke needs {} on PATH, and {} not found. kind and kubectl: install them from the \
         Kubernetes project's releases (GitHub Actions: helm/kind-action with `install_only`, job \
         `kind-smoke` of .github/workflows/ci.yml); docker, curl and openssl from the system's packages",
        TOOLS.join(", "),
        match missing {
            [one] => format!("{one} is"),
            more => format!("{} are", more.join(", ")),
        }
    )
}

fn refuse_leftover_cluster(cluster: &str) -> anyhow::Result<()> {
    let listed = Kind::list_clusters()
        .capture(None)
        .context("`kind get clusters` failed")?;
    if listed.lines().any(|line| line.trim() == cluster) {
        bail!(
            "a kind cluster named {cluster} exists already (left by an interrupted run?): delete it with \
             `kind delete cluster --name {cluster}` (another --name would not help: the host ports 18080 \
             and 18443 are fixed in k8s/kind/cluster.yaml, so only one smoke cluster can run)"
        );
    }
    Ok(())
}

fn print_plan(plan: &Plan) {
    for (index, step) in plan.steps.iter().enumerate() {
        println!("{:>3}. {}", index + 1, step.why);
        match &step.action {
            Action::BuildImages => println!("       $ cargo xtask image build"),
            Action::Tag { source, target } => println!(
                "       $ {}",
                DockerCli::default().tag_image(source, target)
            ),
            Action::CreateCluster(invocation) | Action::Run(invocation) => {
                println!("       $ {invocation}");
            }
            Action::Retry(invocation, patience) => println!(
                "       $ {invocation}   (until it succeeds, at most {}s)",
                patience.as_secs()
            ),
            Action::WriteSecrets(dir) => println!(
                "       write {} (0600 each, {}/…)",
                secrets::AVALON_SECRET_KEYS.join(", "),
                dir.display()
            ),
            Action::Probe(_, probe, patience) => println!(
                "       $ {}   (until it passes, at most {}s)",
                probe.invocation(),
                patience.as_secs()
            ),
        }
    }
    println!("on failure, what the cluster says (read-only):");
    for invocation in &plan.diagnostics {
        println!("       $ {invocation}");
    }
    println!("always, once the cluster was asked for:");
    println!("       $ {}", plan.delete_cluster);
    println!("       $ docker image rm <each name the run tagged>");
}

/// Ctrl-C/SIGTERM: the step running fails (its child got the signal too) or the next one is not started,
/// and the clean-up runs. Installed once per process.
fn interrupted() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&flag);
        let installed = ctrlc::set_handler(move || {
            seen.store(true, Ordering::SeqCst);
            eprintln!("\ninterrupt: stopping, then deleting the cluster");
        });
        if let Err(error) = installed {
            eprintln!(
                "kind-smoke: no interrupt handler ({error}); Ctrl-C may leave the cluster behind"
            );
        }
        flag
    }))
}

/// What has to be undone, recorded as it is done.
#[derive(Default)]
struct Made {
    cluster: bool,
    names: Vec<String>,
}

fn execute(sh: &Shell, plan: &Plan, root: &Path) -> anyhow::Result<Vec<(Check, String)>> {
    let stop = interrupted();
    let mut made = Made::default();
    let outcome = run_steps(sh, plan, root, &stop, &mut made);
    if outcome.is_err() && made.cluster {
        diagnose(plan, root);
    }
    let cleaned = clean_up(plan, root, &made);
    match (outcome, cleaned) {
        (Ok(passed), Ok(())) => Ok(passed),
        (Ok(_), Err(error)) => Err(error),
        (Err(error), Ok(())) => Err(error),
        (Err(error), Err(cleanup)) => {
            Err(error.context(format!("and the clean-up failed: {cleanup:#}")))
        }
    }
}

fn run_steps(
    sh: &Shell,
    plan: &Plan,
    root: &Path,
    stop: &AtomicBool,
    made: &mut Made,
) -> anyhow::Result<Vec<(Check, String)>> {
    let mut passed = Vec::new();
    let total = plan.steps.len();
    for (index, step) in plan.steps.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            bail!("interrupted before step {}: {}", index + 1, step.why);
        }
        eprintln!("==> kind-smoke {}/{total}: {}", index + 1, step.why);
        let context = || format!("step {}/{total} ({})", index + 1, step.why);
        match &step.action {
            Action::BuildImages => Build {
                service: ServiceChoice::All,
                from: BuildPath::Host,
                registry: None,
                max_size_mb: 20,
                dry_run: false,
                json: false,
            }
            .run(sh)
            .with_context(context)?,
            Action::Tag { source, target } => {
                tag(source, target, made).with_context(context)?;
            }
            Action::CreateCluster(invocation) => {
                // Armed before it runs: a create that fails half-way leaves a node container behind.
                made.cluster = true;
                stream(invocation, root).with_context(context)?;
            }
            Action::Run(invocation) => stream(invocation, root).with_context(context)?,
            Action::Retry(invocation, patience) => {
                retry(invocation, root, *patience, stop).with_context(context)?;
            }
            Action::WriteSecrets(dir) => {
                std::fs::create_dir(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))
                    .and_then(|()| secrets::write(dir))
                    .with_context(context)?;
            }
            Action::Probe(check, probe, patience) => {
                let detail = probe_until(*check, &probe.invocation(), *patience, stop)
                    .with_context(context)?;
                eprintln!("    ok: {detail}");
                passed.push((*check, detail));
            }
        }
    }
    Ok(passed)
}

fn in_root(invocation: &Invocation, root: &Path) -> Invocation {
    match invocation.dir {
        Some(_) => invocation.clone(),
        None => invocation.clone().current_dir(root),
    }
}

fn stream(invocation: &Invocation, root: &Path) -> anyhow::Result<()> {
    in_root(invocation, root).stream(None, &mut io::stdout())
}

/// Tags SOURCE as TARGET unless TARGET names an image already: that name belongs to someone else (or to
/// an interrupted run, which the message says how to clear).
fn tag(source: &str, target: &str, made: &mut Made) -> anyhow::Result<()> {
    let docker = DockerCli::default();
    let existing = docker.image_id(target).output(None)?;
    if existing.success() {
        bail!(
            "{target} already names an image here; the smoke tags its own build with that name and removes \
             the name afterwards, so it will not move one it did not make (`docker image rm {target}` if an \
             interrupted smoke left it)"
        );
    }
    docker.tag_image(source, target).capture(None)?;
    made.names.push(target.to_owned());
    Ok(())
}

fn retry(
    invocation: &Invocation,
    root: &Path,
    patience: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    loop {
        let attempt = in_root(invocation, root).output(None)?;
        io::stdout().write_all(&attempt.stdout).ok();
        if attempt.success() {
            return Ok(());
        }
        let why = attempt.stderr.trim();
        if Instant::now() >= deadline || stop.load(Ordering::SeqCst) {
            bail!(
                "`{invocation}` kept failing for {}s: {why}",
                patience.as_secs()
            );
        }
        eprintln!(
            "    not yet: {}",
            why.lines().next().unwrap_or("(no message)")
        );
        std::thread::sleep(Duration::from_secs(5));
    }
}

fn probe_until(
    check: Check,
    invocation: &Invocation,
    patience: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + patience;
    loop {
        let attempt = invocation.output(None)?;
        let stdout = attempt.stdout_text();
        let verdict = match split_status(&stdout) {
            Some((status, body)) if attempt.success() => check.judge(status, body),
            _ => Err(format!(
                "no answer ({})",
                attempt
                    .stderr
                    .trim()
                    .lines()
                    .next()
                    .unwrap_or("curl failed")
            )),
        };
        match verdict {
            Ok(detail) => return Ok(detail),
            Err(why) if Instant::now() >= deadline || stop.load(Ordering::SeqCst) => {
                bail!("{}: {why} (`{invocation}`)", check.describe());
            }
            Err(why) => eprintln!("    not yet: {why}"),
        }
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Read-only, best effort: a command that fails here says so and the next one runs.
fn diagnose(plan: &Plan, root: &Path) {
    eprintln!("==> kind-smoke: what the cluster says");
    for invocation in &plan.diagnostics {
        eprintln!("$ {invocation}");
        match in_root(invocation, root).output(None) {
            Ok(captured) => {
                io::stderr().write_all(&captured.stdout).ok();
                if !captured.success() {
                    eprintln!("{}", captured.stderr.trim());
                }
            }
            Err(error) => eprintln!("{error:#}"),
        }
    }
}

/// Deletes the cluster and removes the names this run tagged; runs whatever happened before, and tries
/// every item even when one fails.
fn clean_up(plan: &Plan, root: &Path, made: &Made) -> anyhow::Result<()> {
    eprintln!("==> kind-smoke: clean-up");
    let mut failures = Vec::new();
    if made.cluster
        && let Err(error) = stream(&plan.delete_cluster, root)
    {
        failures.push(format!("{error:#}"));
    }
    let docker = DockerCli::default();
    for name in &made.names {
        if let Err(error) = docker.remove_image_name(name).capture(None) {
            failures.push(format!("{error:#}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("clean-up: {}", failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use plan::Step;

    fn sh_step(why: &str, script: &str) -> Step {
        Step {
            why: why.to_owned(),
            action: Action::Run(Invocation::new("sh").args(["-c", script])),
        }
    }

    /// A plan of shell one-liners whose clean-up and diagnostics leave marker files in `dir`.
    fn plan_of(dir: &Path, steps: Vec<Step>) -> Plan {
        let mark = |name: &str| {
            Invocation::new("sh").args([
                "-c".to_owned(),
                format!("echo x >> {}", dir.join(name).display()),
            ])
        };
        Plan {
            steps,
            diagnostics: vec![mark("diagnosed").read_only()],
            delete_cluster: mark("deleted"),
        }
    }

    fn create() -> Step {
        Step {
            why: "create".to_owned(),
            action: Action::CreateCluster(Invocation::new("true")),
        }
    }

    #[test]
    fn a_failed_step_prints_the_diagnostics_and_deletes_the_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_of(dir.path(), vec![create(), sh_step("apply", "exit 3")]);
        let error = execute(&Shell::new().unwrap(), &plan, dir.path()).unwrap_err();
        assert!(
            format!("{error:#}").contains("step 2/2 (apply)"),
            "{error:#}"
        );
        assert!(dir.path().join("diagnosed").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("deleted")).unwrap(),
            "x\n"
        );
    }

    #[test]
    fn a_create_that_fails_half_way_is_still_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let failing_create = Step {
            why: "create".to_owned(),
            action: Action::CreateCluster(Invocation::new("false")),
        };
        let plan = plan_of(dir.path(), vec![failing_create]);
        assert!(execute(&Shell::new().unwrap(), &plan, dir.path()).is_err());
        assert!(dir.path().join("deleted").exists());
    }

    #[test]
    fn nothing_is_deleted_when_no_cluster_was_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_of(dir.path(), vec![sh_step("build", "exit 1"), create()]);
        assert!(execute(&Shell::new().unwrap(), &plan, dir.path()).is_err());
        assert!(!dir.path().join("deleted").exists());
        assert!(!dir.path().join("diagnosed").exists());
    }

    #[test]
    fn a_passing_run_deletes_the_cluster_without_diagnostics() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_of(dir.path(), vec![create(), sh_step("apply", "true")]);
        execute(&Shell::new().unwrap(), &plan, dir.path()).unwrap();
        assert!(dir.path().join("deleted").exists());
        assert!(!dir.path().join("diagnosed").exists());
    }

    #[test]
    fn the_refusal_names_what_is_missing_and_where_it_comes_from() {
        let one = refusal(&["kind"]);
        assert!(one.contains("kind is not found"), "{one}");
        assert!(one.contains("helm/kind-action"), "{one}");
        let two = refusal(&["kind", "kubectl"]);
        assert!(two.contains("kind, kubectl are not found"), "{two}");
    }
}
