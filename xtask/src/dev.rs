//! `cargo xtask dev`: both services natively on embedded defaults — no MongoDB, Redis or Docker — with their
//! output prefixed. Ctrl-C (or SIGTERM) stops both gracefully.
//!
//! DEV_LOGIN is on, so anyone who reaches the API can sign in as any user: the services listen on loopback
//! unless `--public` (or BIND_ADDRESS in the environment) says otherwise.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use xshell::{Shell, cmd};

use crate::project;

#[derive(Args)]
pub struct Dev {
    /// Build and run optimised binaries.
    #[arg(long)]
    release: bool,
    /// Listen on every interface (0.0.0.0) instead of loopback, e.g. to try the API from a phone. Anyone on
    /// the network can then sign in as any user through DEV_LOGIN.
    #[arg(long)]
    public: bool,
}

/// Defaults for a bare development machine; anything already in the environment wins.
const DEV_DEFAULTS: [(&str, &str); 4] = [
    ("APP_ENV", "development"),
    ("LOG_FORMAT", "pretty"),
    ("SHUTDOWN_DRAIN_DELAY", "0s"),
    ("DEV_LOGIN", "true"),
];

struct Running {
    label: &'static str,
    child: Child,
    status: Option<ExitStatus>,
}

impl Dev {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let profile = if self.release { "release" } else { "debug" };
        let release = self.release.then_some("--release");
        cmd!(
            sh,
            "cargo build --package avalon-api --package avalon-ws {release...}"
        )
        .run()?;

        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;

        let bin_dir = project::target_dir().join(profile);
        let env = dev_environment(self.public, |name| std::env::var_os(name).is_some())?;
        if self.public {
            eprintln!(
                "dev: --public: listening on every interface with DEV_LOGIN on; anyone on this network can sign in as any user"
            );
        }
        let mut running = Vec::new();
        for (label, binary) in [("api", "avalon-api"), ("ws ", "avalon-ws")] {
            match spawn(label, bin_dir.join(binary), &env) {
                Ok(child) => running.push(child),
                Err(err) => {
                    terminate(&mut running);
                    return Err(err);
                }
            }
        }
        supervise(&mut running, &stop)
    }
}

/// What `dev` adds to the inherited environment; `is_set` tells whether the shell already sets a variable.
fn dev_environment(
    public: bool,
    is_set: impl Fn(&str) -> bool,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for (key, value) in DEV_DEFAULTS {
        if !is_set(key) {
            env.insert(key.to_owned(), value.to_owned());
        }
    }
    if !is_set("CONFIG_DIR") {
        env.insert(
            "CONFIG_DIR".to_owned(),
            project::root().join("config").display().to_string(),
        );
    }
    match (public, is_set("BIND_ADDRESS")) {
        (true, true) => {
            bail!("--public and BIND_ADDRESS both choose the listening address: use one of them")
        }
        (true, false) => {
            env.insert("BIND_ADDRESS".to_owned(), "0.0.0.0".to_owned());
        }
        (false, true) => {}
        // The services' own development default too; spelt out so that the printed command shows it, and
        // so that an APP_ENV from the shell cannot open it up.
        (false, false) => {
            env.insert("BIND_ADDRESS".to_owned(), "127.0.0.1".to_owned());
        }
    }
    Ok(env)
}

fn spawn(
    label: &'static str,
    binary: PathBuf,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<Running> {
    let shown_env: Vec<String> = env
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    eprintln!("$ {} {}", shown_env.join(" "), binary.display());
    let mut child = Command::new(&binary)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: the terminal's Ctrl-C reaches only xtask, which forwards a single SIGTERM.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    if let Some(stdout) = child.stdout.take() {
        prefix_lines(label, stdout);
    }
    if let Some(stderr) = child.stderr.take() {
        prefix_lines(label, stderr);
    }
    Ok(Running {
        label,
        child,
        status: None,
    })
}

fn prefix_lines(label: &'static str, stream: impl Read + Send + 'static) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            println!("[{label}] {line}");
        }
    });
}

/// Waits until Ctrl-C or until one service exits, then stops the rest.
fn supervise(running: &mut [Running], stop: &AtomicBool) -> anyhow::Result<()> {
    loop {
        for service in running
            .iter_mut()
            .filter(|service| service.status.is_none())
        {
            service.status = service
                .child
                .try_wait()
                .with_context(|| format!("waiting for {}", service.label))?;
        }
        let exited = running.iter().any(|service| service.status.is_some());
        if exited || stop.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let interrupted = stop.load(Ordering::SeqCst);
    terminate(running);
    let failed: Vec<String> = running
        .iter()
        .filter(|service| !service.status.is_some_and(|status| status.success()))
        .map(|service| format!("{} ({})", service.label.trim(), describe(service.status)))
        .collect();
    if interrupted && failed.is_empty() {
        eprintln!("dev: both services stopped cleanly");
        return Ok(());
    }
    if failed.is_empty() {
        bail!("dev: a service exited on its own");
    }
    bail!("dev: stopped with failures: {}", failed.join(", "))
}

fn terminate(running: &mut [Running]) {
    for service in running
        .iter_mut()
        .filter(|service| service.status.is_none())
    {
        let pid = i32::try_from(service.child.id()).map(Pid::from_raw);
        if let Ok(pid) = pid {
            eprintln!("$ kill -TERM {pid}  # {}", service.label.trim());
            let _ = kill(pid, Signal::SIGTERM);
        }
    }
    for service in running
        .iter_mut()
        .filter(|service| service.status.is_none())
    {
        service.status = service.child.wait().ok();
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    status.map_or_else(|| "unknown status".to_owned(), |status| status.to_string())
}

#[cfg(test)]
mod tests {
    use super::dev_environment;

    #[test]
    fn loopback_unless_public_or_the_shell_chooses() {
        let nothing_set = |_: &str| false;
        let env = dev_environment(false, nothing_set).unwrap();
        assert_eq!(env["BIND_ADDRESS"], "127.0.0.1");
        assert_eq!(env["DEV_LOGIN"], "true");
        let public = dev_environment(true, nothing_set).unwrap();
        assert_eq!(public["BIND_ADDRESS"], "0.0.0.0");
        let shell_chose = dev_environment(false, |name| name == "BIND_ADDRESS").unwrap();
        assert!(!shell_chose.contains_key("BIND_ADDRESS"));
        assert!(dev_environment(true, |name| name == "BIND_ADDRESS").is_err());
    }
}
