//! A tree staged in the edge writer: checked by `nginx -t`, with the helper waiting for the word that makes
//! it live (see `stage` in `nginx/edge.sh`). Making it live is one line on the helper's stdin, so a caller
//! can check a tree while something else happens (a rollback's slot starting) and switch at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout};

use anyhow::{Context, bail};

/// Printed by `edge.sh` once `live` points at the new tree.
pub(super) const SWAPPED: &str = "@@avalon-swapped";

/// Printed by `edge.sh` when a staged tree passed `nginx -t` and waits for `go`.
pub(super) const STAGED: &str = "@@avalon-staged";

/// A tree that passed `nginx -t` in a helper that now waits: [`Self::make_live`] swaps it in at once;
/// dropping it removes the tree and ends the helper.
pub struct StagedTree {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// What the helper printed so far (nginx's output).
    output: String,
    /// Whether `live` points at the tree now.
    went_live: bool,
}

impl StagedTree {
    /// Sends the sized tree archive to a helper started for `stage NAME KEEP` (all streams piped) and
    /// waits until it says the tree passed; a rejected tree is an error carrying nginx's output.
    pub(super) fn send(name: &str, mut child: Child, archive: &[u8]) -> anyhow::Result<StagedTree> {
        let stderr = child.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        });
        let mut staged = StagedTree {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            stdout: child.stdout.take().map(BufReader::new),
            stderr,
            child,
            output: String::new(),
            went_live: false,
        };
        // A helper that fails early closes its stdin: what it printed says why, not the broken pipe.
        let _ = staged.write(format!("{}\n", archive.len()).as_bytes());
        let _ = staged.write(archive);
        if staged.read_until_staged()? {
            return Ok(staged);
        }
        let (output, _) = staged.finish()?;
        bail!("nginx -t rejected the tree:\n{}", output.trim_end())
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.stdin.as_mut() {
            Some(pipe) => pipe.write_all(bytes).and_then(|()| pipe.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Reads the helper's output until it says the tree is staged (`true`) or stops talking (`false`).
    fn read_until_staged(&mut self) -> anyhow::Result<bool> {
        let Some(stdout) = self.stdout.as_mut() else {
            return Ok(false);
        };
        let mut line = String::new();
        loop {
            line.clear();
            if stdout
                .read_line(&mut line)
                .context("cannot read the edge helper's output")?
                == 0
            {
                return Ok(false);
            }
            if line.trim_end() == STAGED {
                return Ok(true);
            }
            self.output.push_str(&line);
        }
    }

    /// Closes the helper's input, reads the rest of its output and waits for it: (output, success).
    fn finish(&mut self) -> anyhow::Result<(String, bool)> {
        drop(self.stdin.take());
        let mut rest = String::new();
        if let Some(mut stdout) = self.stdout.take() {
            let _ = stdout.read_to_string(&mut rest);
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        let status = self
            .child
            .wait()
            .context("cannot wait for the edge helper")?;
        let output = format!("{}{rest}{stderr}", self.output);
        self.output.clear();
        Ok((output, status.success()))
    }

    /// Makes the tree live (one rename). Returns nginx's output, the tree that was live before, and the
    /// helper itself: it still prunes and hands files back to their owner, which nothing waits for (a
    /// failure there only warns, when the returned tree is dropped).
    pub fn make_live(mut self) -> anyhow::Result<(String, Option<String>, Box<StagedTree>)> {
        let said_go = self.write(b"go\n");
        let mut swapped = false;
        if let Some(stdout) = self.stdout.as_mut() {
            let mut line = String::new();
            while stdout.read_line(&mut line).unwrap_or(0) > 0 {
                if line.trim_end() == SWAPPED {
                    swapped = true;
                    break;
                }
                self.output.push_str(&line);
                line.clear();
            }
        }
        if swapped {
            let (output, previous) = split_previous(&std::mem::take(&mut self.output));
            self.went_live = true;
            return Ok((output, previous, Box::new(self)));
        }
        let (output, _) = self.finish()?;
        bail!(
            "the edge helper failed before making {} live ({}):\n{}",
            self.name,
            said_go.map_or_else(
                |err| format!("it stopped reading: {err}"),
                |()| "after go".to_owned()
            ),
            output.trim_end()
        )
    }
}

impl Drop for StagedTree {
    fn drop(&mut self) {
        // Without `go` the helper removes the tree and exits; after it, it finishes pruning.
        if self.stdin.is_some() || self.stdout.is_some() {
            match self.finish() {
                Ok((_, true)) => {}
                Ok((output, false)) if self.went_live => eprintln!(
                    "warning: the edge helper failed after {} went live (pruning or ownership):\n{}",
                    self.name,
                    output.trim_end()
                ),
                Ok(_) => {}
                Err(err) => eprintln!("warning: {err:#}"),
            }
        }
    }
}

/// The `@@avalon-previous NAME` line of an `install` run, taken out of nginx's output (with the
/// `@@avalon-swapped` marker).
pub(super) fn split_previous(output: &str) -> (String, Option<String>) {
    let mut previous = None;
    let mut rest = String::new();
    for line in output.lines() {
        if let Some(name) = line.strip_prefix("@@avalon-previous") {
            previous = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
        } else if line != SWAPPED {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    (rest, previous)
}
