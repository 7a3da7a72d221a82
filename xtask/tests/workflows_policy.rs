//! The repository's GitHub Actions workflows obey the xtask-only policy and carry the release pipeline's
//! promises (least privilege, concurrency, environments, the MongoDB job). The policy itself is the one
//! `cargo xtask ci` enforces, compiled from the same source file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/workflows/policy.rs"]
#[allow(dead_code)]
mod policy;

use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

fn workflows_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows")
}

fn load(name: &str) -> Yaml {
    let text = std::fs::read_to_string(workflows_dir().join(name)).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

#[test]
fn every_workflow_step_is_xtask_or_pinned_setup() {
    let mut checked = 0;
    for entry in std::fs::read_dir(workflows_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let violations = policy::check(&path.display().to_string(), &text);
        assert!(violations.is_empty(), "{violations:#?}");
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected ci, release and deploy workflows, found {checked}"
    );
}

#[test]
fn ci_runs_xtask_ci_and_the_mongodb_contract_job() {
    let ci = load("ci.yml");
    assert!(!ci["on"]["pull_request"].is_badvalue());
    assert_eq!(ci["permissions"]["contents"].as_str(), Some("read"));
    let runs = run_lines(&ci["jobs"]["ci"]);
    assert_eq!(runs, ["cargo xtask ci --install-tools"]);
    let mongo = &ci["jobs"]["mongodb-contract"];
    assert_eq!(
        mongo["services"]["mongodb"]["image"].as_str(),
        Some("mongo:7")
    );
    assert!(
        mongo["env"]["MONGODB_URI"]
            .as_str()
            .unwrap()
            .starts_with("mongodb://")
    );
    assert_eq!(run_lines(mongo), ["cargo xtask ci --mongodb-contract"]);
    assert!(
        uses(&ci["jobs"]["ci"])
            .iter()
            .any(|u| u.starts_with("Swatinem/rust-cache@")),
        "cache"
    );
}

#[test]
fn ci_runs_the_kind_smoke_with_kind_installed_only() {
    let ci = load("ci.yml");
    let job = &ci["jobs"]["kind-smoke"];
    assert_eq!(job["runs-on"].as_str(), Some("ubuntu-latest"));
    assert_eq!(run_lines(job), ["cargo xtask k8s kind-smoke"]);
    let steps = job["steps"].as_vec().unwrap();
    let kind = steps
        .iter()
        .find(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|uses| uses.starts_with("helm/kind-action@"))
        })
        .expect("kind is installed by the pinned action");
    assert_eq!(kind["with"]["install_only"].as_bool(), Some(true));
    assert_eq!(
        kind["with"]["version"].as_str(),
        Some("v0.30.0"),
        "k8s/kind/cluster.yaml pins the node image of this kind release"
    );
    let cluster = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../k8s/kind/cluster.yaml"),
    )
    .unwrap();
    assert!(
        cluster.contains("kindest/node:v1.32.8@sha256:") && cluster.contains("kind v0.30.0"),
        "the node image is pinned by digest to the kind release the job installs"
    );
}

#[test]
fn release_is_least_privilege_and_serialized() {
    let release = load("release.yml");
    assert_eq!(
        release["permissions"].as_hash().map(|h| h.len()),
        Some(0),
        "workflow-level permissions: {{}}"
    );
    let job = &release["jobs"]["release"];
    let permissions = job["permissions"].as_hash().unwrap();
    assert_eq!(permissions.len(), 2);
    assert_eq!(job["permissions"]["contents"].as_str(), Some("write"));
    assert_eq!(job["permissions"]["packages"].as_str(), Some("write"));
    assert_eq!(release["concurrency"]["group"].as_str(), Some("release"));
    assert_eq!(
        release["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false)
    );
    let tags = release["on"]["push"]["tags"].as_vec().unwrap();
    assert_eq!(tags[0].as_str(), Some("v*"));
    assert!(run_lines(job).contains(&"cargo xtask release --push --install-tools".to_string()));
}

#[test]
fn deploy_goes_through_staging_then_production_and_rolls_back_only_what_it_moved() {
    let deploy = load("deploy.yml");
    assert!(!deploy["on"]["workflow_dispatch"].is_badvalue());
    assert_eq!(
        deploy["on"]["workflow_run"]["workflows"][0].as_str(),
        Some("release")
    );
    let resolve = &deploy["jobs"]["resolve"];
    assert_eq!(
        run_lines(resolve),
        [
            "cargo xtask version --resolve \"$REQUESTED_VERSION\" --release-outcome \"$RELEASE_OUTCOME\""
        ]
    );
    assert!(
        uses(resolve)
            .iter()
            .any(|u| u.starts_with("actions/download-artifact@")),
        "the release run's outcome is read from its artifact"
    );
    let staging = &deploy["jobs"]["staging"];
    let production = &deploy["jobs"]["production"];
    assert_eq!(staging["environment"].as_str(), Some("staging"));
    assert_eq!(production["environment"].as_str(), Some("production"));
    let needs: Vec<&str> = production["needs"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(needs.contains(&"staging"));
    for job in [staging, production] {
        assert_eq!(
            job["if"].as_str(),
            Some("needs.resolve.outputs.released == 'true'"),
            "nothing released, nothing deployed"
        );
        for variable in ["DOCKER_HOST", "WECHAT_APPID", "AVALON_SECRETS_DIR"] {
            assert!(
                job["env"][variable].as_str().unwrap().contains("${{"),
                "{variable} comes from the environment's secrets or variables"
            );
        }
        assert_eq!(job["permissions"]["packages"].as_str(), Some("read"));
        assert!(
            uses(job)
                .iter()
                .any(|u| u.starts_with("docker/login-action@")),
            "the runner's docker CLI logs in to pull"
        );
        let runs = run_lines(job);
        assert!(
            runs.iter().filter(|r| r.contains("--pull")).count() == 1,
            "{runs:?}"
        );
        assert!(
            !runs.iter().any(|r| r.contains("canary promote")),
            "canary start promotes by itself: {runs:?}"
        );
        let steps = job["steps"].as_vec().unwrap();
        let last = steps.last().unwrap();
        assert_eq!(
            last["if"].as_str(),
            Some("failure() && steps.before.outcome == 'success'")
        );
        assert_eq!(
            last["run"].as_str(),
            Some(
                "cargo xtask rollback --env \"$AVALON_STACK_ENV\" --to \"$BEFORE\" --only-if-live-changed"
            )
        );
    }
}

fn run_lines(job: &Yaml) -> Vec<String> {
    job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .map(str::to_string)
        .collect()
}

fn uses(job: &Yaml) -> Vec<String> {
    job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|s| s["uses"].as_str())
        .map(str::to_string)
        .collect()
}
