//! The workflow policy: every step is toolchain setup from an allow-listed action pinned by commit SHA, or a
//! single `cargo xtask …` command. So what CI does is what a developer runs, and nothing hides in YAML.
//!
//! Self-contained (no `crate::` paths) so `xtask/tests/workflows_policy.rs` can compile it directly.

use std::fmt;

use yaml_rust2::{Yaml, YamlLoader};

/// Actions a step may use: checkout, toolchain and cache setup, registry login, ssh key, artifacts, and
/// kind's installer (as a tool only: see [`INSTALL_ONLY_ACTIONS`]).
pub const ALLOWED_ACTIONS: &[&str] = &[
    "actions/checkout",
    "actions/setup-python",
    "dtolnay/rust-toolchain",
    "Swatinem/rust-cache",
    "docker/login-action",
    "shimataro/ssh-key-action",
    "actions/upload-artifact",
    "actions/download-artifact",
    "helm/kind-action",
];

/// Actions that could do more than install a tool, allowed only with `with: install_only: true`: a kind
/// cluster is made (and always deleted) by `cargo xtask k8s kind-smoke`, so what CI runs is what a developer
/// runs, and no cluster outlives the command that made it.
pub const INSTALL_ONLY_ACTIONS: &[&str] = &["helm/kind-action"];

/// One rule broken, located by job and step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub workflow: String,
    pub location: String,
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.workflow, self.location, self.rule)
    }
}

/// Checks one workflow file's text; `name` only labels the violations.
pub fn check(name: &str, text: &str) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut flag = |location: String, rule: String| {
        found.push(Violation {
            workflow: name.to_string(),
            location,
            rule,
        })
    };
    let documents = match YamlLoader::load_from_str(text) {
        Ok(documents) => documents,
        Err(error) => {
            flag("file".into(), format!("not valid YAML: {error}"));
            return found;
        }
    };
    let Some(jobs) = documents.first().and_then(|doc| doc["jobs"].as_hash()) else {
        flag("file".into(), "has no `jobs` mapping".into());
        return found;
    };
    for (job_name, job) in jobs {
        let job_name = job_name.as_str().unwrap_or("?");
        if !job["uses"].is_badvalue() {
            flag(
                format!("job {job_name}"),
                "calls a reusable workflow; jobs must run their own `cargo xtask` steps".into(),
            );
            continue;
        }
        let Some(steps) = job["steps"].as_vec() else {
            flag(format!("job {job_name}"), "has no `steps` list".into());
            continue;
        };
        for (index, step) in steps.iter().enumerate() {
            let label = step["name"]
                .as_str()
                .or_else(|| step["id"].as_str())
                .map(|name| format!(" ({name})"))
                .unwrap_or_default();
            let location = format!("job {job_name}, step {}{label}", index + 1);
            if let Some(rule) = check_step(step) {
                flag(location, rule);
            }
        }
    }
    found
}

fn check_step(step: &Yaml) -> Option<String> {
    match (step["run"].as_str(), step["uses"].as_str()) {
        (Some(_), Some(_)) => Some("has both `run` and `uses`".into()),
        (Some(run), None) => check_run(run),
        (None, Some(uses)) => check_uses(uses).or_else(|| check_install_only(uses, step)),
        (None, None) => Some("has neither a `run` string nor a `uses` action".into()),
    }
}

/// A run step is one `cargo xtask` command line: no shell operators, substitutions or extra lines.
/// Arguments may reference environment variables (`"$VERSION"`), never `${{ … }}` expressions, which
/// GitHub pastes into the script unescaped.
fn check_run(run: &str) -> Option<String> {
    let command = run.trim();
    if command.lines().count() > 1 {
        return Some(format!(
            "`run` must be a single `cargo xtask …` line, found {} lines",
            command.lines().count()
        ));
    }
    if command != "cargo xtask" && !command.starts_with("cargo xtask ") {
        return Some(format!("`run: {command}` is not a `cargo xtask …` command"));
    }
    if command.contains("${{") {
        return Some(
            "`run` interpolates a `${{ … }}` expression; pass it through `env:` and use \"$NAME\""
                .into(),
        );
    }
    const SHELL_SYNTAX: [&str; 9] = [";", "&&", "||", "|", "`", "$(", ">", "<", "&"];
    if let Some(operator) = SHELL_SYNTAX.iter().find(|op| command.contains(*op)) {
        return Some(format!(
            "`run: {command}` uses shell syntax `{operator}`; one xtask command per step"
        ));
    }
    None
}

fn check_install_only(uses: &str, step: &Yaml) -> Option<String> {
    let action = uses.split_once('@').map_or(uses, |(action, _)| action);
    let installs_only = match &step["with"]["install_only"] {
        Yaml::Boolean(flag) => *flag,
        Yaml::String(text) => text == "true",
        _ => false,
    };
    (INSTALL_ONLY_ACTIONS.contains(&action) && !installs_only).then(|| {
        format!(
            "`uses: {action}` must only install its tool (`with: install_only: true`); the `cargo xtask` step \
             makes and removes what it needs"
        )
    })
}

fn check_uses(uses: &str) -> Option<String> {
    let Some((action, reference)) = uses.split_once('@') else {
        return Some(format!(
            "`uses: {uses}` is not pinned (`owner/repo@<40-hex commit sha>`)"
        ));
    };
    if !ALLOWED_ACTIONS.contains(&action) {
        return Some(format!(
            "`uses: {action}` is not an allowed toolchain-setup action ({})",
            ALLOWED_ACTIONS.join(", ")
        ));
    }
    let pinned = reference.len() == 40
        && reference
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    if !pinned {
        return Some(format!(
            "`uses: {uses}` must be pinned by a full 40-hex commit SHA, not `{reference}`"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "11bd71901bbe5b1630ceea73d27597364c9af683";

    fn workflow(steps: &str) -> String {
        format!("on: push\njobs:\n  build:\n    runs-on: ubuntu-24.04\n    steps:\n{steps}")
    }

    fn rules(steps: &str) -> Vec<String> {
        check("test.yml", &workflow(steps))
            .into_iter()
            .map(|v| v.rule)
            .collect()
    }

    #[test]
    fn xtask_and_pinned_setup_pass() {
        let steps = format!(
            "      - uses: actions/checkout@{SHA}\n      - run: cargo xtask ci\n      - run: cargo xtask deploy --version \"$VERSION\" --env staging\n"
        );
        assert_eq!(rules(&steps), Vec::<String>::new());
    }

    #[test]
    fn other_commands_fail() {
        for run in [
            "cargo test",
            "make release",
            "npm ci",
            "./scripts/deploy.sh",
        ] {
            let found = rules(&format!("      - run: {run}\n"));
            assert_eq!(found.len(), 1, "{run}: {found:?}");
            assert!(found[0].contains("is not a `cargo xtask"), "{found:?}");
        }
    }

    #[test]
    fn chained_or_multi_line_commands_fail() {
        assert!(
            rules("      - run: cargo xtask ci && curl evil.example\n")[0].contains("shell syntax")
        );
        assert!(rules("      - run: cargo xtask ci; rm -rf /\n")[0].contains("shell syntax"));
        assert!(
            rules("      - run: |\n          cargo xtask ci\n          cargo xtask release\n")[0]
                .contains("single")
        );
        assert!(
            rules("      - run: cargo xtask deploy --version ${{ github.event.inputs.v }}\n")[0]
                .contains("expression")
        );
    }

    #[test]
    fn unpinned_or_unknown_actions_fail() {
        assert!(rules("      - uses: actions/checkout@v4\n")[0].contains("40-hex"));
        assert!(
            rules(&format!("      - uses: some/deployer@{SHA}\n"))[0].contains("not an allowed")
        );
        assert!(rules("      - uses: docker://alpine:3\n")[0].contains("not pinned"));
    }

    #[test]
    fn the_kind_installer_may_only_install() {
        let pinned = format!("helm/kind-action@{SHA}");
        assert_eq!(
            rules(&format!(
                "      - uses: {pinned}\n        with:\n          install_only: true\n"
            )),
            Vec::<String>::new()
        );
        for with in ["", "        with:\n          install_only: false\n"] {
            let found = rules(&format!("      - uses: {pinned}\n{with}"));
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].contains("install_only"), "{found:?}");
        }
        assert!(
            rules(
                "      - uses: helm/kind-action@v1\n        with:\n          install_only: true\n"
            )[0]
            .contains("40-hex")
        );
    }

    #[test]
    fn reusable_workflow_jobs_and_empty_steps_fail() {
        let text = "on: push\njobs:\n  other:\n    uses: org/repo/.github/workflows/x.yml@main\n  empty:\n    runs-on: x\n";
        let found = check("x.yml", text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].to_string().starts_with("x.yml: job other:"));
    }

    #[test]
    fn invalid_yaml_is_reported() {
        assert!(
            check("bad.yml", "jobs: [")[0]
                .rule
                .contains("not valid YAML")
        );
    }
}
