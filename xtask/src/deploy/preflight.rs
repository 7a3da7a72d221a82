//! Checks before anything changes: the images are on the target (pulled there with `--pull`), the slot's
//! configuration passes the services' own validator, the Docker host has disk to spare. (The lock is taken
//! next, by the caller.)

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use avalon_runtime::config::{self, ServiceKind, Sources};

use super::target::Target;

/// The environment a slot's service will see, with container paths of secrets and the config directory
/// mapped back to where compose reads them on the host, so the validator reads the same files.
pub fn service_env(
    resolved: &serde_json::Value,
    service: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let definition = resolved
        .pointer(&format!("/services/{service}"))
        .with_context(|| format!("no service {service}"))?;
    let mut env: BTreeMap<String, String> = definition
        .get("environment")
        .and_then(|e| e.as_object())
        .map(|e| {
            e.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    for value in env.values_mut() {
        if let Some(name) = value.strip_prefix("/run/secrets/")
            && let Some(file) = resolved
                .pointer(&format!("/secrets/{name}/file"))
                .and_then(|f| f.as_str())
        {
            *value = file.to_owned();
        }
    }
    if let Some(config_dir) = env.get("CONFIG_DIR").cloned() {
        let mounts = definition
            .get("volumes")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let source = mounts
            .iter()
            .find(|m| m.get("target").and_then(|t| t.as_str()) == Some(config_dir.as_str()));
        if let Some(source) = source
            .and_then(|m| m.get("source"))
            .and_then(|s| s.as_str())
        {
            env.insert("CONFIG_DIR".to_owned(), source.to_owned());
        }
    }
    Ok(env)
}

/// Makes sure every image is on the target. A missing one is pulled by the target's engine when `pull`
/// is set (through the Docker CLI: with `DOCKER_HOST=ssh://…` the CLI hands the registry credentials of
/// its own `docker login` to the remote engine for this pull); `dry_run` only says what would be pulled.
/// Pulling changes the target's image store, never its traffic, so a failed pull leaves nothing to undo.
/// Returns whether every image is there now (false only for a dry run that would pull).
pub fn ensure_images(
    target: &Target,
    references: &[&str],
    pull: bool,
    dry_run: bool,
) -> anyhow::Result<bool> {
    let mut all_there = true;
    for reference in references {
        if image_present(target, reference) {
            println!("preflight: image {reference} is on the target");
            continue;
        }
        if !pull {
            bail!(
                "image {reference} is not on the target; pass --pull to pull it there, or build/import it first"
            );
        }
        let invocation = pull_invocation(target, reference);
        if dry_run {
            println!("preflight: would run `{invocation}` (image not on the target)");
            all_there = false;
            continue;
        }
        invocation.capture(None).with_context(|| {
            format!(
                "image {reference} is not on the target and the target could not pull it (registry login? digest?)"
            )
        })?;
    }
    Ok(all_there)
}

/// `docker image inspect` answers (read-only, quiet: a missing image is the question, not an error).
fn image_present(target: &Target, reference: &str) -> bool {
    target
        .docker
        .image_id(reference)
        .output(None)
        .is_ok_and(|captured| captured.success())
}

/// The pull, run by the target's engine; printed before it runs (it changes the target's image store).
pub fn pull_invocation(target: &Target, reference: &str) -> crate::container_exec::Invocation {
    target.docker.pull_image(reference)
}

/// The services' validator over each service's effective environment; every violation is listed.
///
/// Secret files and the config directory live on the engine's host. When that is not this machine
/// (`remote_engine`) those missing here cannot be read: they are named, left out of the check, and
/// checked by the services themselves when the slot starts — a service refuses to start on a bad
/// configuration, so the slot never becomes ready and takes no traffic. On a local engine a missing file
/// is a preflight error.
pub fn check_config(resolved: &serde_json::Value, remote_engine: bool) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let mut elsewhere = Vec::new();
    for (service, kind) in [("api", ServiceKind::Api), ("websocket", ServiceKind::Ws)] {
        let mut env = service_env(resolved, service)?;
        let unreadable = if remote_engine {
            not_on_this_machine(&env)
        } else {
            Vec::new()
        };
        if unreadable.contains(&"CONFIG_DIR".to_owned()) {
            env.remove("CONFIG_DIR");
        }
        for violation in config::check(&Sources::from_env(env.clone()), &[kind]) {
            if !unreadable.contains(&violation.variable) {
                problems.push(format!("{service}: {violation}"));
            }
        }
        elsewhere.extend(unreadable.into_iter().map(|key| {
            format!(
                "{service} {key}={}",
                env.get(&key).map_or("", String::as_str)
            )
        }));
    }
    if !problems.is_empty() {
        bail!(
            "the release's configuration is invalid:\n  - {}",
            problems.join("\n  - ")
        );
    }
    println!("preflight: configuration valid for api and websocket");
    if !elsewhere.is_empty() {
        println!(
            "preflight: not on this machine (the engine's host), checked by the services when the slot starts: {}",
            elsewhere.join(", ")
        );
    }
    Ok(())
}

/// The file variables (`*_FILE`, `CONFIG_DIR`) whose paths do not exist here.
fn not_on_this_machine(env: &BTreeMap<String, String>) -> Vec<String> {
    env.iter()
        .filter(|(key, path)| {
            (key.ends_with("_FILE") || key.as_str() == "CONFIG_DIR")
                && path.starts_with('/')
                && !std::path::Path::new(path).exists()
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// Free space on the filesystem of the engine's DockerRootDir, when the engine is local. None when it
/// cannot be measured from here (a remote engine): reported, not fatal.
pub fn free_disk_mib(target: &Target) -> Option<u64> {
    let info = target.docker.root_dir().capture(None).ok()?;
    let root = info.trim();
    // A local engine: statvfs via df on the host. Through DOCKER_HOST the root dir is remote, so skip.
    if std::env::var_os("DOCKER_HOST").is_some_and(|h| !h.to_string_lossy().starts_with("unix://"))
    {
        return None;
    }
    let df = std::process::Command::new("df")
        .args(["-Pk", root])
        .output()
        .ok()?;
    parse_df_available_mib(&String::from_utf8_lossy(&df.stdout))
}

fn parse_df_available_mib(text: &str) -> Option<u64> {
    let line = text.lines().nth(1)?;
    let available_kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(available_kib / 1024)
}

pub fn check_disk(target: &Target, min_mib: u64) -> anyhow::Result<()> {
    match free_disk_mib(target) {
        Some(free) if free < min_mib => {
            bail!("only {free} MiB free on the Docker host, deploy.min_free_disk_mib is {min_mib}")
        }
        Some(free) => println!("preflight: {free} MiB free on the Docker data filesystem"),
        None => println!("preflight: free disk not measurable from here (remote engine); skipped"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn secrets_and_the_config_dir_map_back_to_host_paths() {
        let resolved = serde_json::json!({
            "services": {"api": {
                "environment": {"JWT_SECRET_FILE": "/run/secrets/jwt_secret", "CONFIG_DIR": "/etc/avalon", "PORT": "3000"},
                "volumes": [{"type": "bind", "source": "/srv/avalon/config", "target": "/etc/avalon", "read_only": true}]
            }},
            "secrets": {"jwt_secret": {"file": "/srv/secrets/jwt_secret"}}
        });
        let env = service_env(&resolved, "api").unwrap();
        assert_eq!(env["JWT_SECRET_FILE"], "/srv/secrets/jwt_secret");
        assert_eq!(env["CONFIG_DIR"], "/srv/avalon/config");
        assert_eq!(env["PORT"], "3000");
    }

    #[test]
    fn files_on_another_host_are_named_and_left_to_the_services() {
        let here = tempfile::tempdir().unwrap();
        let secret = here.path().join("jwt_secret");
        std::fs::write(&secret, "x").unwrap();
        let env = BTreeMap::from([
            ("JWT_SECRET_FILE".to_owned(), secret.display().to_string()),
            (
                "REDIS_PASSWORD_FILE".to_owned(),
                "/srv/elsewhere/redis_password".to_owned(),
            ),
            ("CONFIG_DIR".to_owned(), "/srv/elsewhere/config".to_owned()),
            ("PORT".to_owned(), "3000".to_owned()),
        ]);
        assert_eq!(
            not_on_this_machine(&env),
            ["CONFIG_DIR", "REDIS_PASSWORD_FILE"]
        );
    }

    #[test]
    fn a_pull_is_one_docker_command_naming_the_reference() {
        let target = Target::new(crate::stack::StackEnv::Prod, Some("p".to_owned()));
        let reference = "ghcr.io/o/avalon-api@sha256:0123";
        let invocation = pull_invocation(&target, reference);
        assert_eq!(invocation.args, ["image", "pull", "--quiet", reference]);
    }

    #[test]
    fn df_output_parses() {
        let text = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 100000 50000 2097152 3% /\n";
        assert_eq!(parse_df_available_mib(text), Some(2048));
    }
}
