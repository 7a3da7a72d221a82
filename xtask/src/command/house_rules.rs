//! Two rules of the house (design.md §5), checked over xtask's own sources: no file over [`MAX_LINES`],
//! and no file that both defines clap arguments and runs docker — command files parse flags and
//! orchestrate, the command layer and the modules beside it build and run the commands.

use std::path::{Path, PathBuf};

/// Past this a file does more than one thing; split it along its seams.
const MAX_LINES: usize = 900;

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

fn xtask_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let shown = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            (shown, text)
        })
        .collect()
}

/// `#[derive(…Args…)]`, `Parser` or `Subcommand`: the file defines command-line flags.
fn defines_flags(text: &str) -> bool {
    text.split("#[derive(").skip(1).any(|rest| {
        let derives = rest.split(')').next().unwrap_or_default();
        derives
            .split(',')
            .map(|name| name.trim().rsplit("::").next().unwrap_or_default())
            .any(|name| matches!(name, "Args" | "Parser" | "Subcommand"))
    })
}

/// Where the file runs docker itself: an xshell `cmd!` of `docker …`, a `Command::new("docker")`, a raw
/// `DockerCli::invocation()`, an xshell compose (`.compose(sh, …)`, as the stack once had), or a method of
/// a `docker` value (the command layer's builders) other than `clone`.
fn runs_docker(text: &str) -> Option<String> {
    for (at, _) in text.match_indices("cmd!(") {
        let rest = &text[at..];
        if let Some(quote) = rest.find('"')
            && rest[quote + 1..].starts_with("docker")
        {
            return Some("cmd!(… \"docker …\")".to_owned());
        }
    }
    for marker in [
        "Command::new(\"docker\")",
        ".invocation()",
        ".compose(sh",
        ".compose(&sh",
    ] {
        if text.contains(marker) {
            return Some(marker.to_owned());
        }
    }
    let bytes = text.as_bytes();
    for (at, _) in text.match_indices("docker") {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let rest = text[at + "docker".len()..].trim_start();
        let Some(rest) = rest.strip_prefix('.') else {
            continue;
        };
        let rest = rest.trim_start();
        let method: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let called = rest[method.len()..].trim_start().starts_with('(');
        if called && !method.is_empty() && method != "clone" {
            return Some(format!("docker.{method}(…)"));
        }
    }
    None
}

#[test]
fn no_xtask_file_is_over_the_line_limit() {
    let sources = xtask_sources();
    assert!(sources.len() > 50, "found only {} sources", sources.len());
    let long: Vec<String> = sources
        .iter()
        .map(|(path, text)| (path, text.lines().count()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .map(|(path, lines)| format!("{path}: {lines} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "split these along their seams (at most {MAX_LINES} lines a file): {long:?}"
    );
}

#[test]
fn no_xtask_file_both_defines_flags_and_runs_docker() {
    let both: Vec<String> = xtask_sources()
        .iter()
        .filter(|(path, _)| !path.ends_with("house_rules.rs"))
        .filter(|(_, text)| defines_flags(text))
        .filter_map(|(path, text)| runs_docker(text).map(|how| format!("{path}: {how}")))
        .collect();
    assert!(
        both.is_empty(),
        "files that parse flags must leave docker to the command layer: {both:?}"
    );
}

#[test]
fn the_rules_see_what_they_look_for() {
    assert!(defines_flags("#[derive(clap::Args, Debug)]\nstruct A;"));
    assert!(defines_flags("#[derive(Subcommand)]\nenum C {}"));
    assert!(!defines_flags(
        "#[derive(Debug, Clone, ValueEnum)]\nenum E {}"
    ));
    assert!(runs_docker("cmd!(sh, \"docker push {remote}\").run()").is_some());
    assert!(runs_docker("cmd!(sh, \"git status\").run()").is_none());
    assert!(
        runs_docker("ctx.target\n    .docker\n    .restart_container(&id, 2)").is_some(),
        "a builder call across lines"
    );
    assert!(runs_docker("let docker = ctx.target.docker.clone();").is_none());
    assert!(runs_docker("docker::require_engine(sh)?;").is_none());
    assert!(runs_docker("self.docker.invocation().args([\"ps\"])").is_some());
    assert!(runs_docker("stack.compose(sh, &[\"ps\"]).read()").is_some());
}
