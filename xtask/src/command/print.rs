//! The printing policy of the runner: a command that changes the target is printed before it runs, every
//! time; one that only reads is printed only with `cargo xtask -v`. Mid-incident, the output an operator
//! reads is then the changes made, not the listings and inspections between them.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use std::fmt::Display;

/// Whether running a command can change the target. Decides whether it is printed without `-v`: during
/// an incident an operator reads every change made, not the listings and inspections between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Lists, inspects, reads logs or files, probes health: printed only with `-v`.
    ReadOnly,
    /// Creates, starts, stops, signals, writes: always printed. The default, so a command nobody
    /// classified is shown rather than hidden.
    Changes,
}

/// `cargo xtask -v/--verbose`, set once by `main` before any command runs.
static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
}

/// Whether read-only commands are printed too (`cargo xtask -v`).
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Where the runner announces commands, and whether read-only ones count.
pub struct Printer<'a> {
    verbose: bool,
    sink: Box<dyn Write + 'a>,
}

impl Printer<'static> {
    /// stderr (stdout stays clean for `--json`), with the `-v` of this run.
    pub fn stderr() -> Self {
        Printer {
            verbose: verbose(),
            sink: Box::new(io::stderr()),
        }
    }
}

impl<'a> Printer<'a> {
    /// Announces into `writer` (tests read what an operator would see).
    #[cfg(test)]
    pub fn to_writer(writer: &'a mut dyn Write, verbose: bool) -> Self {
        Printer {
            verbose,
            sink: Box::new(writer),
        }
    }

    /// Prints `$ COMMAND` when the policy says so.
    pub fn announce(&mut self, effect: Effect, invocation: &dyn Display) {
        if effect == Effect::ReadOnly && !self.verbose {
            return;
        }
        // A failed print must not stop the command it describes.
        let _ = writeln!(self.sink, "$ {invocation}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::command::Invocation;

    /// What the runner printed while running `invocations` for real.
    fn printed(invocations: &[Invocation], verbose: bool) -> String {
        let mut out = Vec::new();
        {
            let mut printer = Printer::to_writer(&mut out, verbose);
            for invocation in invocations {
                invocation.capture_printed(None, &mut printer).unwrap();
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn changes_are_always_printed_and_reads_only_with_verbose() {
        let read = Invocation::new("true").arg("listing").read_only();
        let change = Invocation::new("true").arg("restart");
        assert_eq!(
            printed(&[read.clone(), change.clone()], false),
            "$ true restart\n"
        );
        assert_eq!(
            printed(&[read, change], true),
            "$ true listing\n$ true restart\n"
        );
    }

    #[test]
    fn a_command_nobody_classified_is_printed() {
        assert_eq!(printed(&[Invocation::new("true")], false), "$ true\n");
    }
}
