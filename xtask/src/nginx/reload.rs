//! Apply a model to a running edge: render a new tree, check it, swap it in atomically, reload, verify.
//!
//! A tree that fails `nginx -t` is deleted and the live one is untouched. A tree that passes but cannot be
//! verified after the reload (nginx does not serve its config id, or `/health` fails while not in
//! maintenance) is swapped back out and nginx reloaded onto the previous tree.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use xshell::Shell;

use super::engine::EngineEdge;
use super::model::EdgeModel;
use super::target::{Staged, Swapped, Target};
use super::verify;

#[derive(Debug, Clone)]
pub struct ReloadOptions {
    /// Render and check only: no swap, no signal.
    pub dry_run: bool,
    /// Install the tree without signalling (first start, nginx not running yet); implies no verification.
    pub install_only: bool,
    /// Base URL of the edge's plain-HTTP listener, e.g. `http://127.0.0.1:80`.
    pub verify_url: Option<String>,
    /// How long to wait for nginx to serve the new config id.
    pub verify_timeout: Duration,
    /// Accept a non-200 `/health` after the reload (e.g. while the backends are being replaced).
    pub allow_unhealthy: bool,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            install_only: false,
            verify_url: None,
            verify_timeout: Duration::from_secs(15),
            allow_unhealthy: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    pub target: String,
    pub config_id: String,
    pub tree: PathBuf,
    pub previous_tree: Option<PathBuf>,
    pub dry_run: bool,
    pub swapped: bool,
    pub signalled: bool,
    /// Status of `/health` through the edge after the reload, when verified.
    pub health_status: Option<u16>,
    pub check_output: String,
}

/// The default verification URL: the model's plain-HTTP port on loopback.
pub fn default_verify_url(model: &EdgeModel) -> String {
    format!("http://127.0.0.1:{}", model.listen.http)
}

/// Render `model` as a new tree, check it with the target's nginx, swap it in, reload and verify.
pub fn reload(
    sh: &Shell,
    target: &Target,
    model: &EdgeModel,
    options: &ReloadOptions,
) -> anyhow::Result<ReloadReport> {
    if !options.dry_run {
        return stage_reload(target, model)?.finish(sh, options);
    }
    let (config_id, name) = tree_name(model)?;
    let tree = target.tree_path(&name);
    eprintln!("nginx: rendering {} (config {config_id})", tree.display());
    let check_output = target
        .check(model, &name)
        .context("the new tree was rejected; the live tree is unchanged")?;
    let previous = target.live_tree_name()?;
    eprintln!(
        "nginx: dry run — would point {} at {} and reload",
        target.live_link().display(),
        tree.display()
    );
    Ok(ReloadReport {
        target: target.describe(),
        config_id,
        tree,
        previous_tree: previous.as_deref().map(|p| target.tree_path(p)),
        dry_run: true,
        swapped: false,
        signalled: false,
        health_status: None,
        check_output,
    })
}

/// `<stamp>-<config id>`: trees sort by age, and the name says which config a tree holds.
fn tree_name(model: &EdgeModel) -> anyhow::Result<(String, String)> {
    let config_id = super::render::config_id(model)?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let name = format!("{stamp}-{config_id}");
    Ok((config_id, name))
}

/// A reload whose tree passed `nginx -t` and waits: [`Self::finish`] swaps it in, signals nginx and
/// verifies; dropping it leaves the edge as it was. A caller can stage while something else happens (a
/// rollback's slot starting) and keep only the swap and the signal for afterwards.
pub struct PendingReload {
    target: Target,
    staged: Staged,
    name: String,
    config_id: String,
    model: EdgeModel,
}

/// Renders `model` as a new tree on `target` and checks it there; nothing live changes.
pub fn stage_reload(target: &Target, model: &EdgeModel) -> anyhow::Result<PendingReload> {
    let (config_id, name) = tree_name(model)?;
    eprintln!(
        "nginx: rendering {} (config {config_id})",
        target.tree_path(&name).display()
    );
    let staged = target
        .stage(model, &name)
        .context("the new tree was rejected; the live tree is unchanged")?;
    Ok(PendingReload {
        target: target.clone(),
        staged,
        name,
        config_id,
        model: model.clone(),
    })
}

impl PendingReload {
    /// Swap the staged tree in, reload nginx and verify; an unverified reload is undone.
    pub fn finish(self, sh: &Shell, options: &ReloadOptions) -> anyhow::Result<ReloadReport> {
        let Self {
            target,
            staged,
            name,
            config_id,
            model,
        } = self;
        let tree = target.tree_path(&name);
        let Swapped {
            output: check_output,
            previous,
            helper,
        } = staged
            .make_live()
            .context("the new tree did not go live; the live tree is unchanged")?;
        // The helper prunes while nginx reloads; it is waited for when this returns.
        let _helper = helper;
        let mut report = ReloadReport {
            target: target.describe(),
            config_id: config_id.clone(),
            tree: tree.clone(),
            previous_tree: previous.as_deref().map(|p| target.tree_path(p)),
            dry_run: false,
            swapped: true,
            signalled: false,
            health_status: None,
            check_output,
        };
        eprintln!(
            "nginx: {} -> {}",
            target.live_link().display(),
            tree.display()
        );
        if options.install_only {
            target.prune(&name);
            return Ok(report);
        }

        // From here on the new tree is live: a failure puts the previous one back before it returns, so
        // the next reload or restart never loads a tree that was not verified.
        let undo = |err: anyhow::Error, what: &str| -> anyhow::Error {
            let Some(previous) = &previous else {
                return err.context(format!(
                    "{what}; there was no previous tree to restore, so {} stays live",
                    tree.display()
                ));
            };
            eprintln!("nginx: {what}; restoring {previous}");
            let restored = target
                .swap(previous, Some(&name))
                .and_then(|()| target.signal_reload(sh));
            match restored {
                Ok(()) => err.context(format!("{what}; the previous tree is live again")),
                Err(restore) => err.context(format!(
                    "{what}, and restoring {previous} failed too ({restore:#}): point {} back at it by hand",
                    target.live_link().display()
                )),
            }
        };
        if let Err(err) = target.signal_reload(sh) {
            return Err(undo(err, "nginx could not be signalled"));
        }
        report.signalled = true;
        let probe = match (&options.verify_url, &target) {
            (Some(url), _) => Probe::Url(url.clone()),
            (None, Target::Container(engine)) => Probe::Inside(engine, model.listen.http),
            (None, Target::Local { .. }) => Probe::Url(default_verify_url(&model)),
        };
        match verify_reload(&probe, &config_id, &model, options) {
            Ok(status) => report.health_status = Some(status),
            Err(err) => return Err(undo(err, "the reload was not verified")),
        }
        target.prune(&name);
        Ok(report)
    }
}

/// Whether an answer (headers and body) carries `X-Avalon-Config: <config_id>`: the header is compiled
/// into the answering worker's config, unlike the file, which old workers read through the new link too.
fn serves_config(answer: &str, config_id: &str) -> bool {
    answer.lines().any(|line| {
        line.trim().split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("x-avalon-config") && value.trim() == config_id
        })
    })
}

/// Where verification requests come from.
enum Probe<'a> {
    /// Fresh connections from this machine to the edge's plain-HTTP listener.
    Url(String),
    /// `wget` inside the edge container against its own port (works against a remote engine).
    Inside(&'a EngineEdge, u16),
}

impl Probe<'_> {
    /// `count` GETs of `path`, each on a fresh connection: status and answer (headers and body); a failed
    /// connection is status 0.
    fn get(&self, path: &str, count: u32) -> anyhow::Result<Vec<(u16, String)>> {
        match self {
            Self::Url(url) => Ok((0..count)
                .map(|_| verify::get(url, path).unwrap_or_else(|err| (0, format!("{err:#}"))))
                .collect()),
            Self::Inside(engine, port) => engine.get_inside(*port, path, count),
        }
    }

    /// Where a GET of `path` goes, for messages.
    fn describe(&self, path: &str) -> String {
        match self {
            Self::Url(url) => format!("{url}{path}"),
            Self::Inside(engine, port) => {
                format!(
                    "http://127.0.0.1:{port}{path} (inside {})",
                    engine.container
                )
            }
        }
    }
}

/// Consecutive fresh connections that must all be answered by the new config: right after a reload the
/// old workers may still accept a connection or two before they act on the master's shutdown signal.
const CONSECUTIVE_MATCHES: u32 = 10;

/// Waits until nginx answers with the new config id on fresh connections, then checks `/health`.
fn verify_reload(
    probe: &Probe,
    config_id: &str,
    model: &EdgeModel,
    options: &ReloadOptions,
) -> anyhow::Result<u16> {
    let deadline = Instant::now() + options.verify_timeout;
    let config_url = probe.describe("/.avalon/config");
    let health_url = probe.describe("/health");
    let mut matches = 0;
    'rounds: while matches < CONSECUTIVE_MATCHES {
        for (status, answer) in probe.get("/.avalon/config", CONSECUTIVE_MATCHES - matches)? {
            if status == 200 && serves_config(&answer, config_id) {
                matches += 1;
                continue;
            }
            if Instant::now() >= deadline {
                bail!("{config_url} answered {status} {answer:?}, not config {config_id}");
            }
            matches = 0;
            // Short: the new workers usually answer within a few tens of milliseconds of the signal, and
            // this wait is on a rollback's clock.
            std::thread::sleep(Duration::from_millis(25));
            continue 'rounds;
        }
    }
    eprintln!("nginx: {config_url} serves config {config_id}");
    // A new worker's first upstream connections can fail once (a replica restarting, a connection the
    // backend just closed): one bad answer is not a verdict on the tree, a bad answer until the
    // deadline is.
    loop {
        let status = probe
            .get("/health", 1)?
            .first()
            .map_or(0, |(status, _)| *status);
        eprintln!("nginx: GET {health_url} -> {status}");
        if status == 200 || options.allow_unhealthy || model.maintenance.enabled {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            bail!(
                "GET {health_url} answered {status} after the reload (pass --allow-unhealthy to accept)"
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_header_not_the_body_tells_which_config_answered() {
        let new = "HTTP/1.1 200 OK\r\nX-Avalon-Config: abc123\r\n\r\n{\"config_id\":\"abc123\"}";
        assert!(serves_config(new, "abc123"));
        // An old worker reads the new file through the swapped link but sends its own header.
        let old = "HTTP/1.1 200 OK\r\nx-avalon-config: 000fff\r\n\r\n{\"config_id\":\"abc123\"}";
        assert!(!serves_config(old, "abc123"));
        // wget -S indents the headers it prints.
        assert!(serves_config(
            "  HTTP/1.1 200 OK\n  X-Avalon-Config: abc123\n",
            "abc123"
        ));
        assert!(!serves_config("{\"config_id\":\"abc123\"}", "abc123"));
    }
}
