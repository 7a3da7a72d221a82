//! `cargo xtask version`: the next semantic version from the conventional commits since the last `v*` tag;
//! writes it to Cargo.toml and Cargo.lock, prepends a CHANGELOG.md section, commits and tags `vX.Y.Z`.
//! Rules (including below 1.0.0) are in `bump.rs` and docs/release.md.

pub mod bump;
pub mod changelog;
pub mod commits;
pub mod git;
pub mod manifest;
pub mod plan;
pub mod resolve;

use std::path::Path;

use anyhow::{Context, bail};
use clap::Args;
use xshell::Shell;

pub use bump::BumpRequest;
pub use plan::Plan;

#[derive(Args)]
pub struct Version {
    /// How to bump: from the commits (auto) or forced.
    #[arg(long, value_enum, default_value = "auto")]
    bump: BumpRequest,
    /// Print what would be released and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the plan as JSON on stdout (commands and progress go to stderr).
    #[arg(long)]
    json: bool,
    /// Only answer which release to deploy: VERSION if it was released, else (empty or absent) the newest
    /// release. Changes nothing; writes `version` and `tag` to $GITHUB_OUTPUT when that is set.
    #[arg(long, value_name = "VERSION", num_args = 0..=1, default_missing_value = "", conflicts_with_all = ["bump", "dry_run"])]
    resolve: Option<String>,
    /// With --resolve: the `outcome.json` of the release run that triggered a deploy (its artifact). Its
    /// `released`, version and image digests are the answer; `released=false` means nothing to deploy.
    /// Empty (a manual deploy: no release run) is the same as absent.
    #[arg(long, value_name = "FILE", requires = "resolve")]
    release_outcome: Option<String>,
    /// With --resolve and no outcome: the registry the images are pulled from, by tag.
    #[arg(long, env = "AVALON_IMAGE_REGISTRY")]
    registry: Option<String>,
}

impl Version {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if let Some(requested) = &self.resolve {
            let resolved = resolve::resolve(
                sh,
                requested,
                self.release_outcome
                    .as_deref()
                    .filter(|path| !path.is_empty())
                    .map(std::path::Path::new),
                self.registry.as_deref(),
            )?;
            resolve::write_github_output(&resolved)?;
            if self.json {
                println!("{}", serde_json::to_string_pretty(&resolved)?);
            } else if resolved.released {
                println!(
                    "{} (api {}, websocket {})",
                    resolved.version, resolved.api_image, resolved.ws_image
                );
            } else {
                println!("nothing released (current {})", resolved.version);
            }
            return Ok(());
        }
        let root = crate::project::root();
        let plan = prepare(sh, &root, self.bump)?;
        let status = if plan.nothing_to_release.is_some() {
            "nothing_to_release"
        } else if self.dry_run {
            "planned"
        } else {
            apply(sh, &root, &plan)?;
            "released"
        };
        if self.json {
            let mut value = serde_json::to_value(&plan)?;
            value["status"] = status.into();
            value["dry_run"] = self.dry_run.into();
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            print_human(&plan, status);
        }
        Ok(())
    }
}

/// The checks every release starts with, then the plan.
pub fn prepare(sh: &Shell, root: &Path, request: BumpRequest) -> anyhow::Result<Plan> {
    git::ensure_repository(sh)?;
    git::ensure_clean(sh)?;
    Plan::compute(sh, root, request)
}

/// Writes the version and changelog, commits them and tags the commit. The plan must have a `next`.
pub fn apply(sh: &Shell, root: &Path, plan: &Plan) -> anyhow::Result<()> {
    let (Some(next), Some(tag)) = (&plan.next, &plan.tag) else {
        bail!("nothing to release");
    };
    if git::tag_exists(sh, tag)? {
        bail!(
            "tag {tag} already exists but is not an ancestor of HEAD; resolve it before releasing"
        );
    }
    manifest::write_version(root, next)?;
    let mut paths = vec![manifest::MANIFEST];
    if manifest::update_lockfile(sh, root)? {
        paths.push(manifest::LOCKFILE);
    }
    let changelog_path = root.join(changelog::FILE);
    let existing = match std::fs::read_to_string(&changelog_path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error).context("reading CHANGELOG.md"),
    };
    let section = changelog::render_section(next, &today()?, &plan.commits);
    std::fs::write(
        &changelog_path,
        changelog::prepend(existing.as_deref(), &section),
    )
    .context("writing CHANGELOG.md")?;
    paths.push(changelog::FILE);

    git::commit_paths(sh, &format!("chore(release): {tag}"), &paths)?;
    git::annotated_tag(sh, tag, &format!("Release {tag}\n\n{section}"))?;
    Ok(())
}

/// The release date (UTC); `SOURCE_DATE_EPOCH` wins so a rebuilt changelog is byte-identical.
pub fn today() -> anyhow::Result<String> {
    let now = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => {
            let seconds: i64 = epoch
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={epoch:?} must be whole seconds"))?;
            time::OffsetDateTime::from_unix_timestamp(seconds)
                .context("SOURCE_DATE_EPOCH out of range")?
        }
        Err(_) => time::OffsetDateTime::now_utc(),
    };
    Ok(now.format(time::macros::format_description!("[year]-[month]-[day]"))?)
}

fn print_human(plan: &Plan, status: &str) {
    let since = plan.last_tag.as_deref().unwrap_or("the first commit");
    println!(
        "current: {} (since {since}, {} commit(s))",
        plan.current, plan.commit_count
    );
    for commit in &plan.commits {
        let kind = commit.kind.as_deref().unwrap_or("-");
        let mark = if commit.breaking { " [breaking]" } else { "" };
        println!(
            "  {} {kind:<8} {}{mark}",
            commit.short_hash(),
            commit.subject
        );
    }
    match (&plan.nothing_to_release, &plan.next) {
        (Some(reason), _) => println!("{reason}"),
        (None, Some(next)) => {
            let verb = if status == "released" {
                "released"
            } else {
                "would release"
            };
            println!("next: {next} ({}: {})", plan.bump, plan.rule);
            println!("{verb} {}", plan.tag.as_deref().unwrap_or_default());
        }
        (None, None) => {}
    }
}
