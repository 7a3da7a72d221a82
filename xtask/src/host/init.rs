//! `host init`: check the input, plan every change, apply it (printing each), then report what is still
//! left for the operator with the same survey `host check` runs.

use anyhow::{Context, bail};

use super::checks::{self, Item};
use super::env_file::{self, Assignment};
use super::layout::{
    self, CONTAINERD_DROP_IN, DOCKER_DROP_IN, ENV_FILE, Ownership, Root, SYSCTL_FILE, UNIT_DIR,
};
use super::plan::{self, Change, Entry, Found, Observed};
use super::{HostArgs, Init, certs, secrets, system, units};

/// Everything both commands need: the desired entries and what the host holds now.
pub struct Prepared {
    pub env: super::HostEnv,
    pub root: Root,
    pub ownership: Ownership,
    pub template: String,
    pub entries: Vec<Entry>,
    pub observed: Observed,
}

/// Builds the desired state. `sets` and `wechat_secret` are init's input (none for `host check`).
pub fn prepare(
    host: &HostArgs,
    sets: &[Assignment],
    wechat_secret: Option<&str>,
) -> anyhow::Result<Prepared> {
    let root = Root::new(&host.root);
    let ownership = Ownership::for_effective_uid(nix::unistd::geteuid().as_raw());
    let template = env_file::read_template(host.env)?;
    let env_path = root.join(ENV_FILE);
    let existing = match std::fs::read_to_string(&env_path) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err).with_context(|| format!("reading {}", env_path.display())),
    };
    let env_text = env_file::desired(existing.as_deref(), &template, host.env, sets)?;
    let xtask_path = std::env::current_exe().context("locating this xtask binary")?;
    let xtask =
        std::fs::read(&xtask_path).with_context(|| format!("reading {}", xtask_path.display()))?;
    let entries = layout::entries(host.env, &host.domain, env_text, wechat_secret, &xtask)?;
    let observed = plan::observe(&root, &entries)?;
    Ok(Prepared {
        env: host.env,
        root,
        ownership,
        template,
        entries,
        observed,
    })
}

#[derive(serde::Serialize)]
struct Report<'a> {
    root: String,
    env: &'static str,
    dry_run: bool,
    owners: String,
    changes: Vec<plan::Described>,
    remaining: &'a [Item],
    notes: &'a [String],
    ok: bool,
}

pub fn run(cmd: Init) -> anyhow::Result<()> {
    let host = &cmd.host;
    // Input first: a bad --set, secret file or domain stops the run before anything changes.
    let sets = cmd
        .sets
        .iter()
        .map(|text| Assignment::parse(text, host.env))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let wechat_secret = cmd
        .wechat_secret_file
        .as_deref()
        .map(secrets::read_wechat_secret)
        .transpose()?;
    certs::check_domain(&host.domain)?;
    let sh = xshell::Shell::new()?;
    let root = Root::new(&host.root);
    if root.is_live_system() {
        require_engine(&sh, &root, crate::command::verbose())?;
    }

    let prepared = prepare(host, &sets, wechat_secret.as_deref())?;
    let mut changes = plan::plan(
        &prepared.entries,
        &prepared.observed,
        &prepared.ownership,
        &mut secrets::os_random,
    )?;
    let mut notes = Vec::new();
    changes.extend(system_commands(
        &sh,
        &prepared.root,
        &changes,
        &mut notes,
        crate::command::verbose(),
    ));
    if !prepared.root.is_live_system() {
        notes.push(format!(
            "--root {}: sysctls are not applied and units not enabled (only on /)",
            prepared.root.dir().display()
        ));
    }

    if cmd.dry_run {
        let remaining = predicted_leftovers(&prepared)?;
        return report(host, true, &prepared, &changes, &remaining, &notes);
    }
    if !host.json {
        println!(
            "host init: {} host at {} (APP_ENV={}); {}",
            host.env.name(),
            prepared.root.dir().display(),
            host.env.app_env(),
            checks::ownership_note(&prepared.ownership)
        );
    }
    plan::apply(&prepared.root, &changes, host.json)?;
    let after = prepare(host, &[], None)?;
    let remaining: Vec<Item> = checks::survey(&sh, &after, crate::command::verbose())
        .into_iter()
        .filter(|item| item.status.fails())
        .collect();
    report(host, false, &prepared, &changes, &remaining, &notes)?;
    if !remaining.is_empty() {
        let names: Vec<&str> = remaining.iter().map(|item| item.item.as_str()).collect();
        bail!(
            "host init is not finished; still to do: {} (then run host init again)",
            names.join(", ")
        );
    }
    Ok(())
}

/// On the running system the engine must be there first: the limits and units are for it.
fn require_engine(sh: &xshell::Shell, root: &Root, verbose: bool) -> anyhow::Result<()> {
    let failing: Vec<String> = checks::engine_items(sh, root, verbose)
        .into_iter()
        .filter(|item| item.status.fails())
        .map(|item| format!("{}: {}", item.item, item.detail))
        .collect();
    if !failing.is_empty() {
        bail!(
            "install Docker Engine ≥ 20.10 and the Compose v2 plugin ≥ 2.20 first (docs/deployment.md, \"First install \
             on a new host\"): {}",
            failing.join("; ")
        );
    }
    Ok(())
}

/// The commands that make the files take effect on the running system (none under `--root`).
fn system_commands(
    sh: &xshell::Shell,
    root: &Root,
    changes: &[Change],
    notes: &mut Vec<String>,
    verbose: bool,
) -> Vec<Change> {
    if !root.is_live_system() {
        return Vec::new();
    }
    let written = |path: &str| {
        changes
            .iter()
            .any(|change| matches!(change, Change::WriteFile { path: p, .. } if p == path))
    };
    let mut commands = Vec::new();
    let shortfalls = system::shortfalls(root);
    if written(SYSCTL_FILE) || !shortfalls.is_empty() {
        commands.push(Change::Run {
            argv: vec!["sysctl".to_owned(), "--system".to_owned()],
            why: "load the sysctl files".to_owned(),
        });
    }
    if !units::systemd_running(root) {
        notes.push(
            "systemd is not running this system: units are installed but not enabled".to_owned(),
        );
        return commands;
    }
    let units_written = changes.iter().any(
        |change| matches!(change, Change::WriteFile { path, .. } if path.starts_with(UNIT_DIR)),
    );
    if units_written {
        commands.push(Change::Run {
            argv: vec!["systemctl".to_owned(), "daemon-reload".to_owned()],
            why: "read the new unit files".to_owned(),
        });
    }
    if written(DOCKER_DROP_IN) || written(CONTAINERD_DROP_IN) {
        notes.push(format!(
            "the engine's open-file limit ({}) applies once it restarts: systemctl restart containerd docker \
             (host init never restarts a running engine)",
            system::NOFILE
        ));
    }
    let not_enabled = units::not_enabled(sh, verbose);
    if !not_enabled.is_empty() {
        let mut argv = vec!["systemctl".to_owned(), "enable".to_owned()];
        argv.extend(not_enabled.iter().map(|unit| (*unit).to_owned()));
        commands.push(Change::Run {
            argv,
            why: "start heal at boot and the backup timers".to_owned(),
        });
    }
    commands
}

/// What a dry run can tell the operator is still theirs to do: placeholders of the env file as it would be,
/// and what only they can supply.
fn predicted_leftovers(prepared: &Prepared) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    for entry in &prepared.entries {
        if let plan::Kind::Managed(content) = &entry.kind
            && entry.path == ENV_FILE
        {
            let text = String::from_utf8_lossy(content);
            items.extend(checks::env_items(
                &env_file::placeholders(&text, &prepared.template)?,
                &[],
                &Default::default(),
            ));
            items.retain(|item| item.status.fails());
        }
        if let plan::Kind::Supplied { hint } = &entry.kind
            && prepared.observed.get(&entry.path) == Some(&Found::Missing)
        {
            items.push(Item::new(
                entry.path.clone(),
                checks::Status::Missing,
                format!("to be supplied: {hint}"),
            ));
        }
    }
    Ok(items)
}

fn report(
    host: &HostArgs,
    dry_run: bool,
    prepared: &Prepared,
    changes: &[Change],
    remaining: &[Item],
    notes: &[String],
) -> anyhow::Result<()> {
    if host.json {
        let report = Report {
            root: prepared.root.dir().display().to_string(),
            env: host.env.name(),
            dry_run,
            owners: checks::ownership_note(&prepared.ownership),
            changes: changes.iter().map(Change::describe).collect(),
            remaining,
            notes,
            ok: remaining.is_empty(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if dry_run {
        println!(
            "host init --dry-run: {} host at {}; {}",
            host.env.name(),
            prepared.root.dir().display(),
            checks::ownership_note(&prepared.ownership)
        );
        for change in changes {
            let described = change.describe();
            println!(
                "  would {:<16} {}  ({})",
                described.action, described.path, described.detail
            );
        }
    }
    match (changes.len(), dry_run) {
        (0, _) => println!("host init: nothing to change"),
        (count, true) => println!("host init --dry-run: {count} change(s) planned, none made"),
        (count, false) => println!("host init: {count} change(s) made"),
    }
    for note in notes {
        println!("note: {note}");
    }
    if !remaining.is_empty() {
        println!("left for you ({}):", remaining.len());
        checks::print_items(remaining);
    }
    Ok(())
}
