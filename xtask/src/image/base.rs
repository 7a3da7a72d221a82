//! `cargo xtask image base`: the offline stand-ins for the official nginx and redis images, made from
//! Debian packages so an air-gapped host (or this project's CI, which reaches no registry) can run the
//! whole stack.
//!
//! Each recipe in `docker/offline/*.json` names its payload packages. Their shared-library dependencies
//! (packages of Debian's `libs` section, followed recursively) are added, every `.deb` is fetched with
//! `apt-get download` and unpacked with `dpkg -x` (no maintainer scripts, so users, directories and links
//! come from the recipe), each listed binary is run under `chroot` to prove its libraries resolve, and the
//! tree is `docker import`ed. An image whose recipe digest (recipe + exact package versions) matches is
//! kept, so a second run costs a few `apt-cache` look-ups.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use xshell::{Shell, cmd};

use super::docker;
use crate::project;

const RECIPE_LABEL: &str = "org.avalon-ops.recipe-sha256";

#[derive(Args)]
pub struct Base {
    /// Build only this recipe (`nginx` or `redis`; default: every recipe in docker/offline/).
    #[arg(long)]
    pub only: Option<String>,
    /// Rebuild even when an image with the same recipe digest exists.
    #[arg(long)]
    pub force: bool,
    /// Print what would be built without building.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a JSON report (`image`, `status`, `id`, `size_bytes`, `packages`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub image: String,
    pub description: String,
    pub packages: Vec<String>,
    #[serde(default)]
    pub busybox_applets: Vec<String>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub directories: Vec<Directory>,
    #[serde(default)]
    pub symlinks: Vec<Link>,
    #[serde(default)]
    pub remove: Vec<String>,
    pub check: Vec<Vec<String>>,
    #[serde(default)]
    pub changes: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub path: String,
    pub uid: u32,
    pub gid: u32,
    /// Octal, e.g. `1777`; default 0755.
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub path: String,
    pub target: String,
}

#[derive(Debug, Serialize)]
struct Outcome {
    image: String,
    /// `built`, `cached` or `planned`.
    status: &'static str,
    id: Option<String>,
    size_bytes: Option<u64>,
    packages: BTreeMap<String, String>,
}

impl Base {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let recipes = load_recipes(self.only.as_deref())?;
        if !self.dry_run {
            docker::require_engine(sh)?;
        }
        let mut outcomes = Vec::new();
        for (name, recipe) in &recipes {
            outcomes.push(self.one(sh, name, recipe)?);
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&outcomes)?);
        } else {
            for outcome in &outcomes {
                let size = outcome
                    .size_bytes
                    .map(super::build::megabytes)
                    .unwrap_or_default();
                println!("{:<28} {:<8} {size}", outcome.image, outcome.status);
            }
        }
        Ok(())
    }

    fn one(&self, sh: &Shell, name: &str, recipe: &Recipe) -> anyhow::Result<Outcome> {
        let packages = resolve_packages(sh, &recipe.packages)?;
        let digest = recipe_digest(recipe, &packages)?;
        let mut outcome = Outcome {
            image: recipe.image.clone(),
            status: "planned",
            id: None,
            size_bytes: None,
            packages: packages.clone(),
        };
        if self.dry_run {
            let names: Vec<&String> = packages.keys().collect();
            println!(
                "would build {} from {} packages: {names:?}",
                recipe.image,
                names.len()
            );
            return Ok(outcome);
        }
        if !self.force
            && let Some(existing) = docker::inspect(sh, &recipe.image)?
            && existing.label(RECIPE_LABEL) == Some(digest.as_str())
        {
            eprintln!(
                "image base: {} is up to date (recipe {})",
                recipe.image,
                &digest[..12]
            );
            outcome.status = "cached";
            outcome.id = Some(existing.id);
            outcome.size_bytes = Some(existing.size);
            return Ok(outcome);
        }
        let work = project::target_dir().join("offline-images").join(name);
        let rootfs = assemble(sh, recipe, &packages, &work)?;
        verify(sh, recipe, &rootfs)?;
        import(sh, recipe, &rootfs, &work, &digest)?;
        let facts = docker::inspect(sh, &recipe.image)?
            .with_context(|| format!("{} missing right after docker import", recipe.image))?;
        outcome.status = "built";
        outcome.id = Some(facts.id);
        outcome.size_bytes = Some(facts.size);
        Ok(outcome)
    }
}

/// The recipes in docker/offline/, by file stem.
pub fn load_recipes(only: Option<&str>) -> anyhow::Result<BTreeMap<String, Recipe>> {
    let dir = project::root().join("docker/offline");
    let mut recipes = BTreeMap::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|ext| ext.to_str()) != Some("json") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = fs::read_to_string(&path)?;
        let recipe: Recipe = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid recipe", path.display()))?;
        recipes.insert(name, recipe);
    }
    if let Some(only) = only {
        let known: Vec<String> = recipes.keys().cloned().collect();
        recipes.retain(|name, _| name == only);
        if recipes.is_empty() {
            bail!(
                "--only: no recipe named {only:?}; known: {}",
                known.join(", ")
            );
        }
    }
    Ok(recipes)
}

/// Payload packages plus the recursive closure of their `libs`-section dependencies, with the exact
/// versions apt would fetch.
fn resolve_packages(sh: &Shell, payload: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut resolved = BTreeMap::new();
    let mut pending: Vec<(String, bool)> =
        payload.iter().map(|name| (name.clone(), true)).collect();
    let mut seen = BTreeSet::new();
    while let Some((name, is_payload)) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let stanza = cmd!(sh, "apt-cache show --no-all-versions {name}")
            .quiet()
            .read()
            .with_context(|| {
                format!("apt-cache show {name}: is the package list current (apt-get update)?")
            })?;
        let fields = parse_stanza(&stanza);
        if !is_payload && fields.get("Section").map(String::as_str) != Some("libs") {
            continue;
        }
        let version = fields
            .get("Version")
            .with_context(|| format!("apt-cache show {name}: no Version"))?;
        resolved.insert(name.clone(), version.clone());
        for key in ["Pre-Depends", "Depends"] {
            if let Some(list) = fields.get(key) {
                pending.extend(dependency_names(list).into_iter().map(|dep| (dep, false)));
            }
        }
    }
    Ok(resolved)
}

/// Fields of the first stanza of `apt-cache show` output (continuation lines dropped).
fn parse_stanza(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with(' ') {
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.insert(key.to_owned(), value.trim().to_owned());
        }
    }
    fields
}

/// `libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, libfoo:any` → the first alternative of each.
fn dependency_names(list: &str) -> Vec<String> {
    list.split(',')
        .filter_map(|item| {
            let first = item.split('|').next()?.trim();
            let name = first.split_whitespace().next()?;
            let name = name.split(':').next()?;
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

fn recipe_digest(recipe: &Recipe, packages: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(recipe)?);
    hasher.update(serde_json::to_vec(packages)?);
    Ok(format!("{:x}", hasher.finalize()))
}

fn assemble(
    sh: &Shell,
    recipe: &Recipe,
    packages: &BTreeMap<String, String>,
    work: &Path,
) -> anyhow::Result<PathBuf> {
    let debs = work.join("debs");
    let rootfs = work.join("rootfs");
    for dir in [&debs, &rootfs] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        fs::create_dir_all(dir)?;
    }
    let pinned: Vec<String> = packages
        .iter()
        .map(|(name, version)| format!("{name}={version}"))
        .collect();
    {
        let _dir = sh.push_dir(&debs);
        // The sandbox user `_apt` cannot write into a root-owned build directory; downloads are verified
        // against the signed package lists either way.
        cmd!(
            sh,
            "apt-get download -q -o APT::Sandbox::User=root {pinned...}"
        )
        .run()
        .context("apt-get download of the base image packages")?;
    }
    let mut archives: Vec<PathBuf> = fs::read_dir(&debs)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().and_then(|ext| ext.to_str()) == Some("deb"))
        .collect();
    archives.sort();
    for archive in &archives {
        cmd!(sh, "dpkg -x {archive} {rootfs}").run()?;
    }
    apply_recipe(recipe, &rootfs)?;
    Ok(rootfs)
}

fn apply_recipe(recipe: &Recipe, rootfs: &Path) -> anyhow::Result<()> {
    let inside = |path: &str| rootfs.join(path.trim_start_matches('/'));
    for path in &recipe.remove {
        let target = inside(path);
        if target.is_dir() {
            fs::remove_dir_all(&target)?;
        } else if target.exists() {
            fs::remove_file(&target)?;
        }
    }
    write_accounts(recipe, rootfs)?;
    for applet in &recipe.busybox_applets {
        replace_with_link(&inside(applet), Path::new("/bin/busybox"))?;
    }
    for link in &recipe.symlinks {
        replace_with_link(&inside(&link.path), Path::new(&link.target))?;
    }
    for directory in &recipe.directories {
        let path = inside(&directory.path);
        if path.is_symlink() {
            fs::remove_file(&path)?;
        }
        fs::create_dir_all(&path)?;
        let mode = match &directory.mode {
            Some(octal) => u32::from_str_radix(octal, 8).with_context(|| {
                format!(
                    "directories[{}].mode: must be octal, got {octal:?}",
                    directory.path
                )
            })?,
            None => 0o755,
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::chown(&path, Some(directory.uid), Some(directory.gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// /etc/passwd and /etc/group: root, nobody and the recipe's users (dpkg -x runs no adduser).
fn write_accounts(recipe: &Recipe, rootfs: &Path) -> anyhow::Result<()> {
    let mut passwd = String::from(
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
    );
    let mut groups: BTreeMap<u32, String> =
        BTreeMap::from([(0, "root".to_owned()), (65534, "nogroup".to_owned())]);
    for user in &recipe.users {
        passwd.push_str(&format!(
            "{}:x:{}:{}:{}:{}:/sbin/nologin\n",
            user.name, user.uid, user.gid, user.name, user.home
        ));
        groups.entry(user.gid).or_insert_with(|| user.name.clone());
    }
    let group: String = groups
        .iter()
        .map(|(gid, name)| format!("{name}:x:{gid}:\n"))
        .collect();
    let etc = rootfs.join("etc");
    fs::create_dir_all(&etc)?;
    fs::write(etc.join("passwd"), passwd)?;
    fs::write(etc.join("group"), group)?;
    Ok(())
}

fn replace_with_link(path: &Path, target: &Path) -> anyhow::Result<()> {
    if path.is_symlink() || path.is_file() {
        fs::remove_file(path)?;
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    symlink(target, path).with_context(|| format!("linking {}", path.display()))
}

/// Runs each check command inside the tree: a missing library or applet fails here, not in production.
fn verify(sh: &Shell, recipe: &Recipe, rootfs: &Path) -> anyhow::Result<()> {
    for check in &recipe.check {
        cmd!(sh, "chroot {rootfs} {check...}")
            .run()
            .with_context(|| format!("{}: check {check:?} failed inside the tree", recipe.image))?;
    }
    Ok(())
}

fn import(
    sh: &Shell,
    recipe: &Recipe,
    rootfs: &Path,
    work: &Path,
    digest: &str,
) -> anyhow::Result<()> {
    let tarball = work.join("rootfs.tar");
    cmd!(sh, "tar --numeric-owner -C {rootfs} -cf {tarball} .").run()?;
    let mut changes = recipe.changes.clone();
    changes.push(format!("LABEL {RECIPE_LABEL}={digest}"));
    changes.push(format!(
        "LABEL org.opencontainers.image.description=\"{}\"",
        recipe.description.replace('"', "'")
    ));
    docker::import(sh, &changes, &tarball, &recipe.image)?;
    fs::remove_file(&tarball)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_lists_keep_the_first_alternative_without_versions_or_arch() {
        assert_eq!(
            dependency_names("libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, perl:any"),
            ["libc6", "debconf", "perl"]
        );
    }

    #[test]
    fn every_recipe_in_the_repository_parses() {
        let recipes = load_recipes(None).unwrap();
        assert!(recipes.contains_key("nginx") && recipes.contains_key("redis"));
        for recipe in recipes.values() {
            assert!(!recipe.check.is_empty(), "{} has no check", recipe.image);
        }
    }

    #[test]
    fn an_unknown_recipe_name_is_refused_with_the_known_ones() {
        let err = load_recipes(Some("postgres")).unwrap_err().to_string();
        assert!(err.contains("nginx") && err.contains("redis"), "{err}");
    }
}
