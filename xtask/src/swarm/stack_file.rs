//! The stack file of one deploy: `docker compose -f docker/compose.yml -f docker/compose.<env>.yml -f
//! docker/compose.swarm.yml config --format json`, the facts the transform needs read from disk (each
//! bind-mounted tree's files, each secret's digest), the transform, and the file written where `docker
//! stack deploy` reads it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::transform::{Inputs, StackFile, TreeFile, to_stack};
use crate::command::DockerCli;
use crate::project;
use crate::stack::Stack;

/// The swarm overlays, applied on top of the environment's: docker/compose.swarm.yml, then
/// docker/compose.swarm.<env>.yml when there is one.
pub fn swarm_overlays(env: crate::stack::StackEnv) -> Vec<PathBuf> {
    let docker = project::root().join("docker");
    let per_env = docker.join(format!("compose.swarm.{}.yml", env.name()));
    let mut files = vec![docker.join("compose.swarm.yml")];
    if per_env.is_file() {
        files.push(per_env);
    }
    files
}

/// The rendered compose model of the stack with the swarm overlay.
pub fn compose_model(stack: &Stack) -> anyhow::Result<serde_json::Value> {
    let mut compose = stack.command(&DockerCli::default());
    compose.files.extend(swarm_overlays(stack.env));
    let text = compose
        .config_json()
        .capture(None)
        .context("docker compose config (with docker/compose.swarm.yml)")?;
    serde_json::from_str(&text).context("unexpected `docker compose config` output")
}

/// Reads what the transform needs and runs it.
pub fn build(
    stack: &Stack,
    model: &serde_json::Value,
    images: BTreeMap<String, String>,
) -> anyhow::Result<StackFile> {
    let mut inputs = Inputs {
        project: stack.project.clone(),
        images,
        // Host mode only: the edge runs with endpoint_mode dnsrr, which Swarm's ingress routing mesh
        // cannot publish (an ingress override was once read from the environment and never worked).
        publish_mode: "host".into(),
        ..Inputs::default()
    };
    for service in model["services"].as_object().into_iter().flatten() {
        for volume in service.1["volumes"].as_array().into_iter().flatten() {
            if volume["type"] == "bind"
                && let Some(source) = volume["source"].as_str()
            {
                inputs
                    .trees
                    .insert(source.to_owned(), tree(Path::new(source))?);
            }
        }
    }
    for (key, secret) in model["secrets"].as_object().into_iter().flatten() {
        if let Some(file) = secret["file"].as_str() {
            let bytes = std::fs::read(file).with_context(|| format!("reading secret {key}"))?;
            inputs.secret_digests.insert(key.clone(), sha256(&bytes));
        }
    }
    to_stack(model, &inputs)
}

/// Every file under `root` (or `root` itself), with its digest, sorted by path.
fn tree(root: &Path) -> anyhow::Result<Vec<TreeFile>> {
    let mut files = Vec::new();
    if root.is_file() {
        let bytes = std::fs::read(root).with_context(|| format!("reading {}", root.display()))?;
        files.push(TreeFile {
            relative: String::new(),
            path: root.display().to_string(),
            sha256: sha256(&bytes),
        });
        return Ok(files);
    }
    walk(root, root, &mut files)?;
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<TreeFile>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, files)?;
        } else if path.is_file() {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.push(TreeFile {
                relative: path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
                path: path.display().to_string(),
                sha256: sha256(&bytes),
            });
        }
    }
    Ok(())
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where the stack file is written: `.avalon/stack/<project>/swarm-stack.json` (JSON is YAML, which
/// `docker stack deploy` reads).
pub fn write(stack: &Stack, file: &StackFile) -> anyhow::Result<PathBuf> {
    let dir = project::root().join(".avalon/stack").join(&stack.project);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("swarm-stack.json");
    std::fs::write(&path, serde_json::to_string_pretty(&file.body)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The digest the ledger records for a stack file (its configuration, images aside).
pub fn digest(file: &StackFile) -> String {
    let mut body = file.body.clone();
    for service in body["services"].as_object_mut().into_iter().flatten() {
        if let Some(service) = service.1.as_object_mut() {
            service.remove("image");
        }
    }
    format!("sha256:{}", sha256(body.to_string().as_bytes()))
}
