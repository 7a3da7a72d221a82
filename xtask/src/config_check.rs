//! `cargo xtask config check`: the services' own validator, run before a deploy or in CI.

use std::path::PathBuf;

use anyhow::{Context, bail};
use avalon_runtime::config::{self, Environment, ServiceKind, Sources, Violation, spec};
use clap::{Args, ValueEnum};
use xshell::Shell;

use crate::project;

#[derive(Args)]
pub struct ConfigCheck {
    /// Environment to validate (sets APP_ENV); defaults to APP_ENV from the environment or file.
    #[arg(long, value_parser = ["development", "staging", "production"])]
    env: Option<String>,
    /// Read variables from this dotenv file instead of the process environment.
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// Which service's rules to apply.
    #[arg(long, value_enum, default_value_t = ServiceChoice::All)]
    service: ServiceChoice,
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ServiceChoice {
    Api,
    Ws,
    All,
}

impl ServiceChoice {
    pub fn kinds(self) -> Vec<ServiceKind> {
        match self {
            ServiceChoice::Api => vec![ServiceKind::Api],
            ServiceChoice::Ws => vec![ServiceKind::Ws],
            ServiceChoice::All => ServiceKind::ALL.to_vec(),
        }
    }
}

#[derive(serde::Serialize)]
struct Report<'a> {
    valid: bool,
    app_env: String,
    services: Vec<&'static str>,
    violations: &'a [Violation],
    /// Allowed here but suspicious (unknown variables that look like ours, in development).
    warnings: &'a [Violation],
}

impl ConfigCheck {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let sources = Sources::from_env(self.environment()?);
        let app_env = sources.layer().app_env().name().to_owned();
        let services = self.service.kinds();
        let violations = config::check(&sources, &services);
        let warnings = config::warnings(&sources);
        let report = Report {
            valid: violations.is_empty(),
            app_env,
            services: services.iter().map(|service| service.name()).collect(),
            violations: &violations,
            warnings: &warnings,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_text(&report);
        }
        if !report.valid {
            bail!(
                "configuration check failed with {} problem(s)",
                violations.len()
            );
        }
        Ok(())
    }

    /// The variables to check, read by the services' own reader (bytes kept until validation, so a value
    /// that is not UTF-8 is a violation, never a panic).
    fn environment(&self) -> anyhow::Result<Environment> {
        let mut env = match &self.env_file {
            Some(path) => Sources::read_env_file(path)
                .map_err(|violation| anyhow::anyhow!("{violation}"))
                .with_context(|| format!("reading --env-file {}", path.display()))?,
            None => Environment::of_process(),
        };
        if let Some(app_env) = &self.env {
            env.set(spec::APP_ENV.name, app_env);
        }
        // The services resolve CONFIG_DIR against their working directory; here that is the project root,
        // wherever `cargo xtask` was started from. A broken CONFIG_DIR is left for the validator to name.
        let dir = match env.text(spec::CONFIG_DIR.name) {
            None => Some(PathBuf::from(spec::CONFIG_DIR.default.unwrap_or("config"))),
            Some(Ok(dir)) if !dir.is_empty() => Some(PathBuf::from(dir)),
            Some(_) => None,
        };
        if let Some(dir) = dir.filter(|dir| dir.is_relative()) {
            env.set(spec::CONFIG_DIR.name, project::root().join(dir));
        }
        Ok(env)
    }
}

fn print_text(report: &Report<'_>) {
    for warning in report.warnings {
        eprintln!("warning: {warning}");
    }
    let services = report.services.join(", ");
    if report.valid {
        println!(
            "configuration valid for {services} (APP_ENV={})",
            report.app_env
        );
        return;
    }
    println!(
        "configuration INVALID for {services} (APP_ENV={}): {} problem(s)",
        report.app_env,
        report.violations.len()
    );
    for violation in report.violations {
        println!("  - {violation}");
    }
}
