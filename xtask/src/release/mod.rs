//! `cargo xtask release`: ci → version (commit + tag) → image build with the release tags → push to a
//! registry (`--push`) or `image export` → release notes; resumable, with a JSON summary on stdout.
//!
//! Progress is saved per version in `.avalon/release/v<version>/state.json`; a rerun after an interruption
//! skips the finished steps (a HEAD already tagged `v<version>` means the version step is done).

mod images;
mod notes;
mod state;

use std::path::Path;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use xshell::{Shell, cmd};

use crate::version::{self, BumpRequest, git};
use state::{State, Step};

#[derive(Args)]
pub struct Release {
    /// Print the plan (steps, commands, what is already done) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Push the version commit and tag to `origin` and the images to the registry; without it the images
    /// are exported as tarballs under .avalon/release/v<version>/images.
    #[arg(long)]
    push: bool,
    /// Registry prefix for `--push`, e.g. ghcr.io/avalon-ops.
    #[arg(long, env = "AVALON_IMAGE_REGISTRY")]
    registry: Option<String>,
    /// How to bump when cutting the version (see `cargo xtask version`).
    #[arg(long, value_enum, default_value = "auto")]
    bump: BumpRequest,
    /// Run scripts/ci/install-tools.sh before ci (fresh CI runners).
    #[arg(long)]
    install_tools: bool,
    /// Do not run `cargo xtask ci` (the caller already ran it on this commit); recorded as skipped.
    #[arg(long, env = "AVALON_RELEASE_SKIP_CI", value_parser = clap::builder::FalseyValueParser::new())]
    skip_ci: bool,
    /// With `--push`: push the version commit and tag, but export the images as tarballs instead of
    /// pushing them (hosts without a registry import them with `cargo xtask image import`).
    #[arg(long, env = "AVALON_RELEASE_EXPORT_IMAGES", value_parser = clap::builder::FalseyValueParser::new())]
    export_images: bool,
}

/// Written by every run, released or not, so a pipeline reading the release's artifact (the deploy
/// workflow) learns whether anything was released and, if so, which images: the run's summary.
pub const OUTCOME_FILE: &str = ".avalon/release/outcome.json";

fn write_outcome(root: &Path, summary: &serde_json::Value) -> anyhow::Result<()> {
    let path = root.join(OUTCOME_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(summary)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Which version this run releases.
enum Target {
    /// HEAD already carries `v<version>`: a resumed release or a run started by pushing the tag.
    Tagged(semver::Version),
    /// A new version to cut from the commits since the last release.
    Cut(version::Plan),
}

impl Release {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let root = crate::project::root();
        if self.pushes_images() && self.registry.as_deref().is_none_or(str::is_empty) {
            bail!("--push needs a registry: --registry ghcr.io/<owner> or AVALON_IMAGE_REGISTRY");
        }
        git::ensure_repository(sh)?;
        git::ensure_clean(sh)?;
        let target = match git::release_tags_at_head(sh)?.into_iter().next() {
            Some(tag) => Target::Tagged(tag.version),
            None => {
                let plan = version::Plan::compute(sh, &root, self.bump)?;
                if let Some(reason) = &plan.nothing_to_release {
                    eprintln!("release: {reason}");
                    let summary = json!({"released": false, "reason": reason, "current": plan.current.to_string()});
                    if !self.dry_run {
                        write_outcome(&root, &summary)?;
                    }
                    println!("{}", serde_json::to_string_pretty(&summary)?);
                    return Ok(());
                }
                Target::Cut(plan)
            }
        };
        let release_version = match &target {
            Target::Tagged(version) => version.clone(),
            Target::Cut(plan) => plan.next.clone().context("plan without a next version")?,
        };
        let mut state = State::load(&root, &release_version)?;
        if self.dry_run {
            return self.print_plan(&root, &target, &state);
        }
        self.execute(sh, &root, &target, &mut state)?;
        let summary = summary(&root, &state, self.pushes_images())?;
        write_outcome(&root, &summary)?;
        std::fs::write(
            State::dir(&root, &release_version).join("summary.json"),
            serde_json::to_vec_pretty(&summary)?,
        )
        .context("writing summary.json")?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        Ok(())
    }

    fn execute(
        &self,
        sh: &Shell,
        root: &Path,
        target: &Target,
        state: &mut State,
    ) -> anyhow::Result<()> {
        let version = semver::Version::parse(&state.version)?;
        let dir = State::dir(root, &version);
        for step in Step::ALL {
            if state.is_done(step) {
                eprintln!(
                    "==> release {}: {} already done, skipping",
                    state.tag,
                    step.name()
                );
                continue;
            }
            eprintln!("==> release {}: {}", state.tag, step.name());
            let report = match step {
                Step::Ci if self.skip_ci => json!({"skipped": "--skip-ci"}),
                Step::Ci => {
                    crate::ci::Ci::full(self.install_tools).run(sh)?;
                    json!({"commit": git::head(sh)?})
                }
                Step::Version => match target {
                    Target::Cut(plan) => {
                        version::apply(sh, root, plan)?;
                        json!({"created": true, "commit": git::head(sh)?, "bump": plan.bump, "commits": plan.commit_count})
                    }
                    Target::Tagged(_) => json!({"created": false, "commit": git::head(sh)?}),
                },
                Step::Images => images::build(sh, &version)?,
                Step::Publish if self.push && self.export_images => {
                    self.push_git_refs(sh, state)?;
                    images::export(sh, &dir.join("images"))?
                }
                Step::Publish if self.push => self.publish(sh, state)?,
                Step::Publish => images::export(sh, &dir.join("images"))?,
                Step::Notes => {
                    let notes_path = dir.join("RELEASE_NOTES.md");
                    let changelog = std::fs::read_to_string(root.join(version::changelog::FILE))
                        .unwrap_or_default();
                    let section = notes::changelog_section(&changelog, &version);
                    let text = notes::render(
                        &state.tag,
                        section.as_deref(),
                        state
                            .report(Step::Images)
                            .unwrap_or(&serde_json::Value::Null),
                        &state
                            .report(Step::Publish)
                            .map(|r| r["images"].clone())
                            .unwrap_or_default(),
                        self.pushes_images(),
                    );
                    std::fs::write(&notes_path, text)
                        .with_context(|| format!("writing {}", notes_path.display()))?;
                    json!({"file": notes_path.display().to_string()})
                }
            };
            state.complete(root, step, report)?;
        }
        Ok(())
    }

    fn pushes_images(&self) -> bool {
        self.push && !self.export_images
    }

    /// Git refs first (a version is only published once its tag is), then the images.
    fn publish(&self, sh: &Shell, state: &State) -> anyhow::Result<serde_json::Value> {
        self.push_git_refs(sh, state)?;
        let registry = self.registry.as_deref().unwrap_or_default();
        let pushed = images::push(sh, registry)?;
        Ok(json!({"registry": registry, "images": pushed}))
    }

    /// The version commit (when this run cut it) and the tag, to `origin`.
    fn push_git_refs(&self, sh: &Shell, state: &State) -> anyhow::Result<()> {
        let tag = &state.tag;
        let tag_ref = format!("refs/tags/{tag}");
        let created = state
            .report(Step::Version)
            .and_then(|r| r["created"].as_bool())
            == Some(true);
        match git::current_branch(sh)? {
            Some(branch) if created => {
                let branch_ref = format!("HEAD:refs/heads/{branch}");
                cmd!(sh, "git push --atomic origin {branch_ref} {tag_ref}").run()?;
            }
            _ => cmd!(sh, "git push origin {tag_ref}").run()?,
        }
        Ok(())
    }

    fn print_plan(&self, root: &Path, target: &Target, state: &State) -> anyhow::Result<()> {
        let version = semver::Version::parse(&state.version)?;
        let dir = State::dir(root, &version);
        let tag = &state.tag;
        let mut steps = Vec::new();
        for step in Step::ALL {
            let commands: Vec<String> = match step {
                Step::Ci if self.skip_ci => vec!["(skipped: --skip-ci)".into()],
                Step::Ci if self.install_tools => vec!["cargo xtask ci --install-tools".into()],
                Step::Ci => vec!["cargo xtask ci".into()],
                Step::Version => match target {
                    Target::Cut(plan) => vec![format!(
                        "write {} to Cargo.toml, Cargo.lock and CHANGELOG.md ({} commit(s), {}: {}); commit `chore(release): {tag}`; tag {tag}",
                        version, plan.commit_count, plan.bump, plan.rule
                    )],
                    Target::Tagged(_) => {
                        vec![format!("HEAD is already tagged {tag}: nothing to cut")]
                    }
                },
                Step::Images => vec!["cargo xtask image build --json".into()],
                Step::Publish if self.push && self.export_images => vec![
                    format!("git push --atomic origin HEAD:refs/heads/<branch> refs/tags/{tag}"),
                    format!(
                        "cargo xtask image export --out {} --json",
                        display(&dir.join("images"))
                    ),
                ],
                Step::Publish if self.push => vec![
                    format!("git push --atomic origin HEAD:refs/heads/<branch> refs/tags/{tag}"),
                    format!(
                        "cargo xtask image push --registry {} --json",
                        self.registry.as_deref().unwrap_or_default()
                    ),
                ],
                Step::Publish => vec![format!(
                    "cargo xtask image export --out {} --json",
                    display(&dir.join("images"))
                )],
                Step::Notes => vec![format!("write {}", display(&dir.join("RELEASE_NOTES.md")))],
            };
            let status = if state.is_done(step) {
                "done"
            } else {
                "pending"
            };
            steps.push(json!({"step": step.name(), "status": status, "commands": commands}));
        }
        let plan = json!({
            "dry_run": true,
            "version": state.version,
            "tag": tag,
            "push": self.push,
            "state": display(&dir.join("state.json")),
            "steps": steps,
        });
        for step in &steps {
            eprintln!(
                "{:<8} {:<8} {}",
                step["step"].as_str().unwrap_or(""),
                step["status"].as_str().unwrap_or(""),
                step["commands"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join("\n                  ")
            );
        }
        println!("{}", serde_json::to_string_pretty(&plan)?);
        Ok(())
    }
}

/// The JSON a pipeline keeps: version, tags and digests per image, where the notes are.
fn summary(root: &Path, state: &State, pushed: bool) -> anyhow::Result<serde_json::Value> {
    let version = semver::Version::parse(&state.version)?;
    let built = state.report(Step::Images).cloned().unwrap_or_default();
    let published = state.report(Step::Publish).cloned().unwrap_or_default();
    let images: Vec<serde_json::Value> = built["images"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|image| {
            let service = image["service"].clone();
            let mine = |items: &serde_json::Value| -> Vec<serde_json::Value> {
                items
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|item| item["service"] == service)
                    .cloned()
                    .collect()
            };
            let mut entry = json!({
                "service": service,
                "tags": image["tags"],
                "id": image["id"],
                "size_bytes": image["size_bytes"],
            });
            if pushed {
                entry["digests"] = mine(&published["images"])
                    .iter()
                    .map(|p| p["digest"].clone())
                    .collect();
            } else {
                entry["exports"] = mine(&published).into();
            }
            entry
        })
        .collect();
    Ok(json!({
        "released": true,
        "version": state.version,
        "tag": state.tag,
        "revision": built["revision"],
        "pushed": pushed,
        "registry": published["registry"],
        "images": images,
        "notes": display(&State::dir(root, &version).join("RELEASE_NOTES.md")),
        "steps": state.steps.iter().map(|(step, done)| (step.name().to_string(), json!(done.at))).collect::<serde_json::Map<_, _>>(),
    }))
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
