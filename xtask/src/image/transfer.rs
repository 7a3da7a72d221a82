//! Moving images off this host: `image push` to a registry, `image export` / `image import` as tarballs
//! with sha256 files for hosts without registry access.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use xshell::Shell;

use super::build::identity;
use super::docker;
use super::service::{ServiceChoice, ServiceImage};

#[derive(Args)]
pub struct Push {
    #[arg(long, value_enum, default_value_t = ServiceChoice::All)]
    service: ServiceChoice,
    /// Registry prefix, e.g. `ghcr.io/avalon-ops`.
    #[arg(long, env = "AVALON_IMAGE_REGISTRY")]
    registry: String,
    /// Tag to push (default: every tag `image build` gives the current checkout).
    #[arg(long)]
    tag: Option<String>,
    #[arg(long)]
    dry_run: bool,
    /// Print `service`, `reference`, `digest` per pushed reference as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct Export {
    #[arg(long, value_enum, default_value_t = ServiceChoice::All)]
    service: ServiceChoice,
    /// Tag to export (default: `<version>-<sha>` of the current checkout).
    #[arg(long)]
    tag: Option<String>,
    /// Directory for `<image>-<tag>.tar` and its `.sha256`.
    #[arg(long, default_value = "target/image-export")]
    out: PathBuf,
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct Import {
    /// Tarballs written by `image export`; each needs its `.sha256` beside it.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long)]
    dry_run: bool,
}

#[derive(Serialize)]
struct Pushed {
    service: &'static str,
    reference: String,
    digest: Option<String>,
}

#[derive(Serialize)]
struct Exported {
    service: &'static str,
    reference: String,
    file: String,
    sha256: String,
    size_bytes: u64,
}

fn default_tags(sh: &Shell, tag: Option<&String>) -> anyhow::Result<Vec<String>> {
    match tag {
        Some(tag) => Ok(vec![tag.clone()]),
        None => Ok(identity(sh)?.tags()),
    }
}

impl Push {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let tags = default_tags(sh, self.tag.as_ref())?;
        let mut pushed = Vec::new();
        for service in self.service.services() {
            for tag in &tags {
                let local = format!("{}:{tag}", service.repository(None));
                let remote = format!("{}:{tag}", service.repository(Some(&self.registry)));
                if self.dry_run {
                    println!("would run: docker tag {local} {remote} && docker push {remote}");
                    continue;
                }
                if docker::inspect(sh, &local)?.is_none() {
                    bail!("{local} does not exist: run `cargo xtask image build` first");
                }
                docker::tag_and_push(sh, &local, &remote)?;
                let digest = docker::inspect(sh, &remote)?
                    .and_then(|facts| facts.repo_digests.into_iter().next());
                pushed.push(Pushed {
                    service: service.service,
                    reference: remote,
                    digest,
                });
            }
        }
        report(self.json, &pushed, |item| {
            format!(
                "{} {}",
                item.reference,
                item.digest.as_deref().unwrap_or("")
            )
        })
    }
}

impl Export {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let tag = match &self.tag {
            Some(tag) => tag.clone(),
            None => {
                let identity = identity(sh)?;
                format!("{}-{}", identity.version, identity.revision())
            }
        };
        let out = crate::project::root().join(&self.out);
        let mut exported = Vec::new();
        for service in self.service.services() {
            let reference = format!("{}:{tag}", service.repository(None));
            let file = out.join(format!("{}-{tag}.tar", service.binary));
            if self.dry_run {
                println!(
                    "would run: docker save --output {} {reference}",
                    file.display()
                );
                continue;
            }
            exported.push(export_one(sh, service, &reference, &file)?);
        }
        report(self.json, &exported, |item| {
            format!("{}  {}  {}", item.sha256, item.file, item.reference)
        })
    }
}

fn export_one(
    sh: &Shell,
    service: ServiceImage,
    reference: &str,
    file: &Path,
) -> anyhow::Result<Exported> {
    if docker::inspect(sh, reference)?.is_none() {
        bail!("{reference} does not exist: run `cargo xtask image build` first");
    }
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = file.with_extension("tar.partial");
    docker::save(sh, &partial, reference)?;
    std::fs::rename(&partial, file)?;
    let (sha256, size_bytes) = sha256_file(file)?;
    let name = file_name(file)?;
    // The same format as `sha256sum`, so `sha256sum -c` checks it on hosts without xtask.
    std::fs::write(sha256_path(file), format!("{sha256}  {name}\n"))?;
    Ok(Exported {
        service: service.service,
        reference: reference.to_owned(),
        file: file.display().to_string(),
        sha256,
        size_bytes,
    })
}

impl Import {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        for file in &self.files {
            let expected = read_sha256_file(&sha256_path(file))?;
            let (actual, _) = sha256_file(file)?;
            if actual != expected {
                bail!(
                    "{}: sha256 is {actual}, the .sha256 file says {expected}; not loading a corrupted or altered image",
                    file.display()
                );
            }
            if self.dry_run {
                println!(
                    "checksum ok; would run: docker load --input {}",
                    file.display()
                );
                continue;
            }
            docker::load(sh, file)?;
        }
        Ok(())
    }
}

fn report<T: Serialize>(
    json: bool,
    items: &[T],
    line: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(items)?);
    } else {
        for item in items {
            println!("{}", line(item));
        }
    }
    Ok(())
}

pub fn sha256_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

fn file_name(file: &Path) -> anyhow::Result<String> {
    file.file_name()
        .and_then(|name| name.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no file name", file.display()))
}

/// The hex digest from a `sha256sum`-style line.
fn read_sha256_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (written by `image export`)", path.display()))?;
    let digest = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_lowercase();
    if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "{}: expected a sha256 hex digest, got {digest:?}",
            path.display()
        );
    }
    Ok(digest)
}

pub fn sha256_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut reader =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
    }
    Ok((format!("{:x}", hasher.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampered_tarball_is_refused_before_docker_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("avalon-api-0.1.0.tar");
        std::fs::write(&file, b"original").unwrap();
        let (digest, _) = sha256_file(&file).unwrap();
        std::fs::write(
            sha256_path(&file),
            format!("{digest}  avalon-api-0.1.0.tar\n"),
        )
        .unwrap();
        std::fs::write(&file, b"tampered").unwrap();
        let sh = Shell::new().unwrap();
        let err = Import {
            files: vec![file],
            dry_run: true,
        }
        .run(&sh)
        .unwrap_err()
        .to_string();
        assert!(err.contains("not loading"), "{err}");
    }

    #[test]
    fn the_sha256_file_matches_sha256sum_format() {
        let dir = tempfile::tempdir().unwrap();
        let sums = dir.path().join("x.tar.sha256");
        std::fs::write(&sums, "not-a-digest  x.tar\n").unwrap();
        assert!(read_sha256_file(&sums).is_err());
        let good = format!("{}  x.tar\n", "a".repeat(64));
        std::fs::write(&sums, good).unwrap();
        assert_eq!(read_sha256_file(&sums).unwrap(), "a".repeat(64));
    }
}
