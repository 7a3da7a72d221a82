//! `cargo xtask config check`: the services' own validator, run before a deploy or in CI.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use avalon_runtime::config::{self, ServiceKind, Sources, Violation, spec};
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
}

impl ConfigCheck {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let env = self.environment()?;
        let app_env = env
            .get(spec::APP_ENV.name)
            .cloned()
            .unwrap_or_else(|| "development".to_owned());
        let services = self.service.kinds();
        let violations = config::check(&Sources::from_env(env), &services);
        let report = Report {
            valid: violations.is_empty(),
            app_env,
            services: services.iter().map(|service| service.name()).collect(),
            violations: &violations,
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

    fn environment(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut env = match &self.env_file {
            Some(path) => Sources::read_env_file(path)
                .map_err(|violation| anyhow::anyhow!("{violation}"))
                .with_context(|| format!("reading --env-file {}", path.display()))?,
            None => std::env::vars().collect(),
        };
        if let Some(app_env) = &self.env {
            env.insert(spec::APP_ENV.name.to_owned(), app_env.clone());
        }
        // The services resolve CONFIG_DIR against their working directory; here that is the project root,
        // wherever `cargo xtask` was started from.
        let config_dir = env
            .get(spec::CONFIG_DIR.name)
            .map_or_else(|| PathBuf::from("config"), PathBuf::from);
        let config_dir = if config_dir.is_absolute() {
            config_dir
        } else {
            project::root().join(config_dir)
        };
        env.insert(
            spec::CONFIG_DIR.name.to_owned(),
            config_dir.display().to_string(),
        );
        Ok(env)
    }
}

fn print_text(report: &Report<'_>) {
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
