//! `cargo xtask image build`: the runtime images of avalon-api and avalon-ws.
//!
//! Two paths, one command (GitHub Actions runs the same one with `--from source`):
//! - `host` (default): cargo builds the release binaries here once, `docker/stage-rootfs.sh` stages them
//!   with their shared libraries, and `docker/Dockerfile` (all stages FROM scratch) packs them — no pull.
//! - `source`: `docker/Dockerfile.builder` compiles inside a rust image with cargo-chef — needs a registry.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use xshell::{Shell, cmd};

use super::docker;
use super::service::{ServiceChoice, ServiceImage};
use super::tags::BuildIdentity;
use crate::project;

/// The ceiling; the images are about 8 MB.
const DEFAULT_MAX_SIZE_MB: u64 = 20;

#[derive(Args)]
pub struct Build {
    /// Which image(s) to build.
    #[arg(long, value_enum, default_value_t = ServiceChoice::All)]
    pub service: ServiceChoice,
    /// `host`: compile here and pack into scratch (no registry needed); `source`: compile inside the
    /// builder Dockerfile (needs registry access, used by GitHub Actions).
    #[arg(long, value_enum, default_value_t = BuildPath::Host, env = "AVALON_IMAGE_FROM")]
    pub from: BuildPath,
    /// Registry prefix for the repository names, e.g. `ghcr.io/avalon-ops` (default: local names).
    #[arg(long, env = "AVALON_IMAGE_REGISTRY")]
    pub registry: Option<String>,
    /// Fail when an image is larger than this (MB, 10^6 bytes).
    #[arg(long, default_value_t = DEFAULT_MAX_SIZE_MB)]
    pub max_size_mb: u64,
    /// Print what would run without building anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a JSON report: `images[]` with `service`, `tags`, `id`, `size_bytes`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildPath {
    Host,
    Source,
}

#[derive(Debug, Serialize)]
pub struct BuiltImage {
    pub service: &'static str,
    pub repository: String,
    /// Full references (`repository:tag`).
    pub tags: Vec<String>,
    pub id: String,
    pub size_bytes: u64,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    version: &'a str,
    revision: String,
    dirty: bool,
    from: &'static str,
    seconds: f64,
    images: &'a [BuiltImage],
}

impl Build {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let started = Instant::now();
        let identity = identity(sh)?;
        let services = self.service.services();
        let plan = Plan::new(sh, &self, &identity, &services)?;
        if self.dry_run {
            plan.print();
            return Ok(());
        }
        docker::require_engine(sh)?;
        let images = plan.execute(sh)?;
        let seconds = started.elapsed().as_secs_f64();
        let oversized: Vec<String> = images
            .iter()
            .filter(|image| image.size_bytes > self.max_size_mb * 1_000_000)
            .map(|image| format!("{} is {}", image.repository, megabytes(image.size_bytes)))
            .collect();
        if self.json {
            let report = Report {
                version: &identity.version,
                revision: identity.revision(),
                dirty: identity.dirty,
                from: self.from.name(),
                seconds,
                images: &images,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            for image in &images {
                println!(
                    "{:<12} {:>9}  {}  {}",
                    image.service,
                    megabytes(image.size_bytes),
                    short_id(&image.id),
                    image.tags.join(" ")
                );
            }
            println!("image build: {} image(s) in {seconds:.1}s", images.len());
        }
        if !oversized.is_empty() {
            bail!(
                "image size limit is {} MB: {}",
                self.max_size_mb,
                oversized.join(", ")
            );
        }
        Ok(())
    }
}

impl BuildPath {
    fn name(self) -> &'static str {
        match self {
            BuildPath::Host => "host",
            BuildPath::Source => "source",
        }
    }
}

/// The git identity; AVALON_GIT_REVISION (for checkouts without history) replaces the sha and clears
/// the dirty flag, since such a tree cannot be compared with its commit.
pub fn identity(sh: &Shell) -> anyhow::Result<BuildIdentity> {
    match std::env::var("AVALON_GIT_REVISION") {
        Ok(revision) if !revision.trim().is_empty() => Ok(BuildIdentity {
            version: super::tags::workspace_version()?,
            sha: revision.trim().to_owned(),
            dirty: false,
        }),
        _ => BuildIdentity::from_git(sh),
    }
}

/// Every command of one build, decided before any runs (so `--dry-run` prints exactly what would run).
struct Plan<'a> {
    from: BuildPath,
    identity: &'a BuildIdentity,
    services: &'a [ServiceImage],
    registry: Option<String>,
    created: String,
    context: PathBuf,
    /// `--json` keeps stdout for the report, so docker build prints only the image id there.
    quiet: bool,
}

impl<'a> Plan<'a> {
    fn new(
        sh: &Shell,
        build: &Build,
        identity: &'a BuildIdentity,
        services: &'a [ServiceImage],
    ) -> anyhow::Result<Plan<'a>> {
        Ok(Plan {
            from: build.from,
            identity,
            services,
            registry: build.registry.clone(),
            created: created_timestamp(sh, identity)?,
            quiet: build.json,
            context: match build.from {
                BuildPath::Host => context_dir(),
                BuildPath::Source => project::root(),
            },
        })
    }

    fn dockerfile(&self) -> PathBuf {
        let name = match self.from {
            BuildPath::Host => "Dockerfile",
            BuildPath::Source => "Dockerfile.builder",
        };
        project::root().join("docker").join(name)
    }

    fn references(&self, service: &ServiceImage) -> Vec<String> {
        let repository = service.repository(self.registry.as_deref());
        self.identity
            .tags()
            .iter()
            .map(|tag| format!("{repository}:{tag}"))
            .collect()
    }

    fn build_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("VERSION={}", self.identity.version),
            format!("REVISION={}", self.identity.revision()),
            format!("CREATED={}", self.created),
            format!("SOURCE={}", env!("CARGO_PKG_REPOSITORY")),
        ];
        if self.from == BuildPath::Source {
            args.push(format!("AVALON_GIT_REVISION={}", self.identity.revision()));
        }
        args.into_iter()
            .flat_map(|arg| ["--build-arg".to_owned(), arg])
            .collect()
    }

    fn docker_build_args(&self, service: &ServiceImage) -> Vec<String> {
        let mut args = vec![
            "build".to_owned(),
            "--file".to_owned(),
            self.dockerfile().display().to_string(),
            "--target".to_owned(),
            service.target.to_owned(),
        ];
        if self.quiet {
            args.push("--quiet".to_owned());
        }
        args.extend(self.build_args());
        for reference in self.references(service) {
            args.push("--tag".to_owned());
            args.push(reference);
        }
        args.push(self.context.display().to_string());
        args
    }

    fn binaries(&self) -> Vec<PathBuf> {
        let release = project::target_dir().join("release");
        self.services
            .iter()
            .map(|service| release.join(service.binary))
            .collect()
    }

    fn print(&self) {
        println!("image build plan ({} path):", self.from.name());
        if self.from == BuildPath::Host {
            let packages: Vec<&str> = self.services.iter().map(|s| s.package).collect();
            println!(
                "  AVALON_GIT_REVISION={} cargo build --release --package {}",
                self.identity.revision(),
                packages.join(" --package ")
            );
            let binaries: Vec<String> = self
                .binaries()
                .iter()
                .map(|path| path.display().to_string())
                .collect();
            println!(
                "  sh docker/stage-rootfs.sh {} {}",
                self.context.display(),
                binaries.join(" ")
            );
        }
        for service in self.services {
            println!("  docker {}", self.docker_build_args(service).join(" "));
        }
    }

    fn execute(&self, sh: &Shell) -> anyhow::Result<Vec<BuiltImage>> {
        if self.from == BuildPath::Host {
            self.compile_and_stage(sh)?;
        }
        let mut images = Vec::new();
        for service in self.services {
            let args = self.docker_build_args(service);
            docker::build(sh, &args, self.quiet)
                .with_context(|| format!("docker build of {}", service.binary))?;
            let primary = self.references(service).remove(0);
            let facts = docker::inspect(sh, &primary)?
                .with_context(|| format!("{primary} missing right after its build"))?;
            images.push(BuiltImage {
                service: service.service,
                repository: service.repository(self.registry.as_deref()),
                tags: self.references(service),
                id: facts.id,
                size_bytes: facts.size,
            });
        }
        Ok(images)
    }

    fn compile_and_stage(&self, sh: &Shell) -> anyhow::Result<()> {
        let packages: Vec<String> = self
            .services
            .iter()
            .flat_map(|service| ["--package".to_owned(), service.package.to_owned()])
            .collect();
        {
            let _revision = sh.push_env("AVALON_GIT_REVISION", self.identity.revision());
            cmd!(sh, "cargo build --release {packages...}")
                .run()
                .context("cargo build of the release binaries")?;
        }
        let script = project::root().join("docker/stage-rootfs.sh");
        let context = &self.context;
        let binaries = self.binaries();
        cmd!(sh, "sh {script} {context} {binaries...}")
            .run()
            .context("staging the image context")
    }
}

/// Where the host path stages its build context.
pub fn context_dir() -> PathBuf {
    project::target_dir().join("image-context")
}

/// The commit's time for a clean tree (rebuilding a commit yields the same labels, so the same image
/// id); the current time for a dirty one.
fn created_timestamp(sh: &Shell, identity: &BuildIdentity) -> anyhow::Result<String> {
    if !identity.dirty
        && let Ok(committed) = cmd!(sh, "git log -1 --format=%cI").quiet().read()
        && !committed.trim().is_empty()
    {
        return Ok(committed.trim().to_owned());
    }
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .context("formatting the build time")
}

pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

fn short_id(id: &str) -> &str {
    let hex = id.trim_start_matches("sha256:");
    hex.get(..12).unwrap_or(hex)
}
