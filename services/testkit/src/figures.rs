//! Figures a test measured (counts of a guard, seconds of a stack phase), printed where a person reads them.
//!
//! The test harness hides a passing test's output, so a figure is also appended to the file named by
//! [`FIGURES_LOG_VAR`] when set; `cargo xtask ci` sets it and prints every figure at the end of the run.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file each figure is appended to as one line (`cargo xtask ci` sets it).
pub const FIGURES_LOG_VAR: &str = "AVALON_FIGURES_LOG";

/// Prints `<name>: <text>` and records it for `cargo xtask ci`'s summary. One short append-mode `write`,
/// so lines of tests running at once do not interleave.
pub fn figure(name: &str, text: &str) {
    let line = format!("{name}: {}", text.replace('\n', " "));
    println!("{line}");
    if let Some(path) = std::env::var_os(FIGURES_LOG_VAR).map(PathBuf::from) {
        append(&path, &line);
    }
}

fn append(path: &Path, line: &str) {
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
    if let Err(error) = written {
        eprintln!(
            "warning: cannot record the figure in {}: {error}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_appended_one_line_each() {
        let path = std::env::temp_dir().join(format!("avalon-figures-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        append(&path, "guard: 10 of 10");
        append(&path, "stack: 3 s");
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text, "guard: 10 of 10\nstack: 3 s\n");
    }
}
