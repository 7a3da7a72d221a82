//! The state directory of an nginx container, reached only through the Docker engine.
//!
//! Edge changes must work wherever the Docker CLI works — the local engine, `DOCKER_HOST=ssh://…`, a
//! `--context` — so nothing here reads or writes a path on the machine running xtask:
//! - **reads** are `docker cp <nginx>:<dir>/… -` (the `live` link, a tree's `model.json`);
//! - **writes** run [`EDGE_SCRIPT`] in a short-lived helper container made from the edge's own image,
//!   mounting the same state directory (bind or volume) read-write at the same path and sharing the
//!   edge's network namespace, so `nginx -t` resolves the upstream names exactly as the edge will. The
//!   tree arrives as a tar stream on the helper's stdin. The edge container keeps its read-only mount.
//! - **verification** (unless the caller verifies through a URL) runs `wget` inside the edge container
//!   against its own plain-HTTP port: it needs no route from this machine to the published port, and
//!   `/.avalon/config` answers internal addresses only.
//!
//! The helper needs `sh` and the busybox (or coreutils) tools the script names; the official
//! `nginx:*-alpine` images and the offline image (`docker/offline/nginx.json`) carry them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::layout::{LIVE, TREES};
use super::model::EdgeModel;
use super::render::{MODEL_FILE, render};
pub use super::staged::StagedTree;
use crate::command::{Captured, DockerCli, EdgeWriter, Invocation};

/// The operations on the state directory, run by the helper as `sh -c EDGE_SCRIPT edge OP DIR …`.
///
/// - `check NAME`: unpack the tar on stdin into `trees/` (it holds `NAME/…`), run `nginx -t` on it, remove
///   it again.
/// - `stage NAME KEEP`: read a byte count line, then that many bytes of tar from stdin; unpack and
///   `nginx -t` as `check` does, and when the tree passes say so (`@@avalon-staged`) and wait for one
///   more line on stdin. `go` makes it live: `adopt` if needed, link top-level entries the new tree adds,
///   print the tree `live` points at now (`@@avalon-previous NAME`), `swap` to the new one keeping the
///   previous — one container start for the whole change. Anything else, or the end of stdin, removes
///   the tree. A rejected tree is removed; `live` is untouched in every case but `go`. The wait lets a
///   caller check a tree while something else happens (a rollback's slot starting) and switch at once.
/// - `swap NAME PROTECT KEEP`: point `live` at `trees/NAME` with one rename (`mv -T` replaces the link
///   itself, never follows it) and say so (`@@avalon-swapped`), then remove the oldest trees until KEEP
///   are left, never NAME or PROTECT (a failed removal only warns).
/// - `adopt`: turn the flat tree `cargo xtask up` renders into the live layout (a copy under
///   `trees/0000-initial`, `live` pointing at it, each flat entry a link into `live/`); nothing nginx
///   reads changes content, so no reload is needed. Nothing happens without a flat `nginx.conf`.
///
/// Everything written is given to the owner of the state directory (`chown`), so the operator who ran
/// `cargo xtask up` can still re-render and clean it.
///
/// The script is `nginx/edge.sh` (shellchecked as a file of its own).
pub const EDGE_SCRIPT: &str = include_str!("edge.sh");

/// Marks the end of one answer in [`VERIFY_SCRIPT`]'s output.
const ANSWER_END: &str = "@@avalon-answer-end";

/// `sh -c VERIFY_SCRIPT verify COUNT URL`: COUNT requests, each on a fresh connection, each answer
/// (server headers from `wget -S`, then the body) followed by [`ANSWER_END`].
const VERIFY_SCRIPT: &str = include_str!("edge-verify.sh");

/// An nginx container and the state directory it mounts.
#[derive(Debug, Clone)]
pub struct EngineEdge {
    pub docker: DockerCli,
    pub container: String,
    /// Where the container mounts the state directory (nginx runs with `-p <dir>/`).
    pub container_dir: PathBuf,
    /// `type=…,source=…` of that mount, for the helper.
    mount: String,
    /// The container's other bind and volume mounts (certificates, say), read-only, so the helper's
    /// `nginx -t` sees every file the edge's nginx sees.
    other_mounts: Vec<String>,
    /// The container's image id: the helper runs the same nginx.
    image: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    image: String,
    #[serde(default)]
    mounts: Vec<InspectMount>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectMount {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    source: String,
    destination: String,
}

impl EngineEdge {
    /// Finds what `container` mounts at `container_dir` (a bind mount or a named volume).
    pub fn discover(
        docker: DockerCli,
        container: &str,
        container_dir: &Path,
    ) -> anyhow::Result<Self> {
        let json = docker
            .inspect_containers(&[container.to_owned()])
            .capture(None)
            .with_context(|| format!("cannot inspect the edge container {container}"))?;
        let inspected: Vec<serde_json::Value> =
            serde_json::from_str(&json).context("unexpected `docker container inspect` output")?;
        let inspected = inspected
            .first()
            .with_context(|| format!("no container {container}"))?;
        Self::from_inspect(docker, container, container_dir, inspected)
    }

    /// The same from `container`'s `docker container inspect` object, when the caller has it already.
    pub fn from_inspect(
        docker: DockerCli,
        container: &str,
        container_dir: &Path,
        inspected: &serde_json::Value,
    ) -> anyhow::Result<Self> {
        let inspected = Inspect::deserialize(inspected)
            .context("unexpected `docker container inspect` output")?;
        let wanted = container_dir.to_string_lossy();
        let mount = inspected
            .mounts
            .iter()
            .find(|m| m.destination.trim_end_matches('/') == wanted.trim_end_matches('/'))
            .with_context(|| {
                format!("the edge container {container} mounts nothing at {wanted}")
            })?;
        let mut other_mounts = Vec::new();
        for other in &inspected.mounts {
            if std::ptr::eq(other, mount) || !matches!(other.kind.as_str(), "bind" | "volume") {
                continue;
            }
            other_mounts.push(format!(
                "{},destination={},readonly",
                mount_spec(other)?,
                other.destination
            ));
        }
        Ok(Self {
            docker,
            container: container.to_owned(),
            container_dir: container_dir.to_path_buf(),
            mount: mount_spec(mount)?,
            other_mounts,
            image: inspected.image,
        })
    }

    /// A tree's path as nginx sees it.
    pub fn tree_path(&self, name: &str) -> PathBuf {
        self.container_dir.join(TREES).join(name)
    }

    /// The name of the tree `live` points at; `None` before the first swap.
    pub fn live_tree(&self) -> anyhow::Result<Option<String>> {
        let path = self.container_dir.join(LIVE);
        let Some(archive) = self.copy_out(&path)? else {
            return Ok(None);
        };
        let mut archive = tar::Archive::new(archive.as_slice());
        let entry = archive
            .entries()
            .context("`docker cp` did not return a tar stream")?
            .next()
            .with_context(|| format!("{} came back empty", path.display()))??;
        let target = entry
            .link_name()?
            .with_context(|| format!("{} is not a symlink", path.display()))?
            .to_string_lossy()
            .into_owned();
        let name = target
            .strip_prefix(&format!("{TREES}/"))
            .with_context(|| format!("{} points outside {TREES}/: {target}", path.display()))?;
        Ok(Some(name.trim_end_matches('/').to_owned()))
    }

    /// The model of the tree at `dir` (relative to the state directory: `live`, `trees/NAME`, or `` for
    /// the flat tree `cargo xtask up` renders); `None` when there is none. One `docker cp`: the engine
    /// resolves the `live` link itself.
    pub fn read_model(&self, dir: &str) -> anyhow::Result<Option<EdgeModel>> {
        let path = self.container_dir.join(dir).join(MODEL_FILE);
        let Some(archive) = self.copy_out(&path)? else {
            return Ok(None);
        };
        let mut archive = tar::Archive::new(archive.as_slice());
        let mut entry = archive
            .entries()
            .context("`docker cp` did not return a tar stream")?
            .next()
            .with_context(|| format!("{} came back empty", path.display()))??;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text)
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        EdgeModel::from_json(&text, &format!("{}:{}", self.container, path.display())).map(Some)
    }

    /// Renders `model` here, sends it to the engine as `trees/NAME`, runs `nginx -t` on it and removes it
    /// again (a dry run). Returns nginx's output.
    pub fn check(&self, model: &EdgeModel, name: &str) -> anyhow::Result<String> {
        let (output, passed) = self.send_tree(model, name, &["check", name])?;
        if !passed {
            bail!("nginx -t rejected the tree:\n{}", output.trim_end());
        }
        Ok(output)
    }

    /// Renders `model`, sends it to a helper as `trees/NAME` and runs `nginx -t` on it; returns once it
    /// passed, with the helper waiting to make it live ([`StagedTree::make_live`]) — or, when dropped,
    /// to remove it.
    pub fn stage(&self, model: &EdgeModel, name: &str, keep: usize) -> anyhow::Result<StagedTree> {
        let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
        let rendered = render(model, &scratch.path().join(name))?;
        let archive = tree_archive(&rendered.dir, name)?;
        let keep = keep.to_string();
        let child = self
            .helper_invocation(&["stage", name, &keep], true)
            .spawn_piped()?;
        StagedTree::send(name, child, &archive)
    }

    /// Sends the rendered tree to the helper; its output and whether it succeeded.
    fn send_tree(
        &self,
        model: &EdgeModel,
        name: &str,
        args: &[&str],
    ) -> anyhow::Result<(String, bool)> {
        let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
        let rendered = render(model, &scratch.path().join(name))?;
        let archive = tree_archive(&rendered.dir, name)?;
        let result = self.helper(args, Some(&archive))?;
        Ok((
            format!("{}{}", result.stdout_text(), result.stderr),
            result.success(),
        ))
    }

    /// Points `live` at `trees/NAME` and prunes old trees, keeping `keep` and never NAME or `protect`.
    pub fn swap(&self, name: &str, protect: Option<&str>, keep: usize) -> anyhow::Result<()> {
        let keep = keep.to_string();
        let result = self.helper(&["swap", name, protect.unwrap_or(""), &keep], None)?;
        if !result.success() {
            bail!(
                "cannot point {} at {name}: {}{}",
                self.container_dir.join(LIVE).display(),
                result.stdout_text(),
                result.stderr.trim_end()
            );
        }
        Ok(())
    }

    /// A graceful reload: SIGHUP to nginx's master (PID 1 of the container).
    pub fn signal_reload(&self) -> anyhow::Result<()> {
        self.docker
            .signal_container(&self.container, "HUP")
            .capture(None)
            .map(|_| ())
            .with_context(|| format!("cannot signal the edge container {}", self.container))
    }

    /// `count` GETs of `path` from inside the edge container, each on a fresh connection: status and
    /// body of each (status 0 when nginx did not answer).
    pub fn get_inside(
        &self,
        port: u16,
        path: &str,
        count: u32,
    ) -> anyhow::Result<Vec<(u16, String)>> {
        let url = format!("http://127.0.0.1:{port}{path}");
        let result = self
            .docker
            .edge_requests(
                &self.container,
                ("\"$VERIFY_SCRIPT\"", VERIFY_SCRIPT),
                count,
                &url,
            )
            .output(None)?;
        if !result.success() {
            bail!(
                "cannot run wget in the edge container {}: {}",
                self.container,
                result.stderr.trim_end()
            );
        }
        Ok(parse_answers(&result.stdout_text()))
    }

    pub fn describe(&self) -> String {
        format!(
            "container {}, state {} ({})",
            self.container,
            self.container_dir.display(),
            self.mount
        )
    }

    /// `docker cp CONTAINER:PATH -`: the tar stream, or `None` when the path does not exist.
    fn copy_out(&self, path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
        let source = format!("{}:{}", self.container, path.display());
        let result = self
            .docker
            .copy_out(&self.container, &path.to_string_lossy())
            .output(None)?;
        if result.success() {
            return Ok(Some(result.stdout));
        }
        if result.stderr.contains("Could not find the file")
            || result.stderr.contains("No such file")
        {
            return Ok(None);
        }
        bail!("docker cp {source} failed: {}", result.stderr.trim_end())
    }

    fn helper(&self, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<Captured> {
        self.helper_invocation(args, stdin.is_some()).output(stdin)
    }

    fn helper_invocation(&self, args: &[&str], interactive: bool) -> Invocation {
        let dir = self.container_dir.to_string_lossy();
        let writer = EdgeWriter {
            container: &self.container,
            image: &self.image,
            state_mount: &self.mount,
            dir: &dir,
            other_mounts: &self.other_mounts,
        };
        let (op, rest) = args
            .split_first()
            .map_or(("", &[][..]), |(op, rest)| (*op, rest));
        self.docker.edge_writer(
            &writer,
            ("\"$EDGE_SCRIPT\"", EDGE_SCRIPT),
            op,
            rest,
            interactive,
        )
    }
}

/// The `--mount` source of an inspected mount.
fn mount_spec(mount: &InspectMount) -> anyhow::Result<String> {
    let (kind, source) = match mount.kind.as_str() {
        "bind" => ("bind", mount.source.as_str()),
        "volume" => (
            "volume",
            mount
                .name
                .as_deref()
                .context("a volume mount without a name")?,
        ),
        other => bail!(
            "the edge state at {} is a {other} mount; only bind mounts and volumes can be written",
            mount.destination
        ),
    };
    // --mount is comma-separated; such a source would need CSV quoting nobody has needed yet.
    if source.contains([',', '"', '=']) {
        bail!("the edge state source {source:?} contains ',', '\"' or '=': rename it");
    }
    Ok(format!("type={kind},source={source}"))
}

/// The rendered tree as a tar of `NAME/…` with root ownership and plain modes.
fn tree_archive(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    builder
        .append_dir_all(name, dir)
        .with_context(|| format!("cannot archive {}", dir.display()))?;
    builder
        .into_inner()
        .context("cannot finish the tree archive")
}

/// Splits [`VERIFY_SCRIPT`]'s output into (status, body) answers.
fn parse_answers(output: &str) -> Vec<(u16, String)> {
    output
        .split(ANSWER_END)
        .filter(|answer| !answer.trim().is_empty())
        .map(|answer| {
            let status = answer
                .lines()
                .find_map(|line| {
                    let rest = line.trim_start().split("HTTP/1.").nth(1)?;
                    rest.split_whitespace().nth(1)?.parse().ok()
                })
                .unwrap_or(0);
            (status, answer.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Command;

    use super::super::staged::{STAGED, SWAPPED, split_previous};
    use super::*;

    /// EDGE_SCRIPT under this machine's `sh` on a scratch state directory, all streams piped; `nginx` is
    /// a stand-in that passes unless the tree holds a file named `bad`.
    fn spawn_script(state: &Path, args: &[&str]) -> std::process::Child {
        let bin = state.parent().unwrap().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let nginx = bin.join("nginx");
        std::fs::write(
            &nginx,
            "#!/bin/sh\n# nginx -t -p PREFIX -c nginx.conf\nif [ -e \"$3/bad\" ]; then echo \"emerg in $3\"; exit 1; fi\necho \"test is successful\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&nginx, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        Command::new("sh")
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .args(["-c", EDGE_SCRIPT, "edge", args[0]])
            .arg(state)
            .args(&args[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs one operation with `stdin` as its whole input.
    fn script(state: &Path, args: &[&str], stdin: Option<Vec<u8>>) -> std::process::Output {
        let mut child = spawn_script(state, args);
        let mut pipe = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            pipe.write_all(&bytes).unwrap();
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    /// `stage NAME KEEP` as xtask drives it: the sized tar, then (once the helper says the tree is
    /// staged) `word` — or nothing, just the end of input. Returns the exit status and all of stdout.
    fn stage(
        state: &Path,
        name: &str,
        archive: &[u8],
        word: Option<&str>,
    ) -> (std::process::ExitStatus, String) {
        let mut child = spawn_script(state, &["stage", name, "5"]);
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(format!("{}\n", archive.len()).as_bytes())
            .unwrap();
        pipe.write_all(archive).unwrap();
        pipe.flush().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                break;
            }
            seen.push_str(&line);
            if line.trim_end() == STAGED {
                if let Some(word) = word {
                    pipe.write_all(format!("{word}\n").as_bytes()).unwrap();
                }
                break;
            }
        }
        drop(pipe);
        stdout.read_to_string(&mut seen).unwrap();
        (child.wait().unwrap(), seen)
    }

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        for (path, body) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        (dir, root)
    }

    fn live(state: &Path) -> String {
        std::fs::read_link(state.join(LIVE))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_staged_tree_goes_live_on_go_and_a_check_a_rejection_or_no_go_leaves_nothing() {
        let scratch = tempfile::tempdir().unwrap();
        let state = scratch.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let (_keep, good) = tree(&[("nginx.conf", "events {}"), ("snippets/a.conf", "#")]);

        let (status, out) = stage(
            &state,
            "1-good",
            &tree_archive(&good, "1-good").unwrap(),
            Some("go"),
        );
        assert!(status.success(), "{out}");
        let (output, previous) = split_previous(&out);
        assert!(output.contains("test is successful"), "{output}");
        assert_eq!(previous, None, "nothing was live");
        let (status, out) = stage(
            &state,
            "2-next",
            &tree_archive(&good, "2-next").unwrap(),
            Some("go"),
        );
        assert!(status.success(), "{out}");
        let (_, previous) = split_previous(&out);
        assert_eq!(previous.as_deref(), Some("1-good"));
        assert_eq!(live(&state), "trees/2-next");
        assert_eq!(
            std::fs::read_to_string(state.join("live/snippets/a.conf")).unwrap(),
            "#"
        );

        let out = script(
            &state,
            &["check", "2-dry"],
            Some(tree_archive(&good, "2-dry").unwrap()),
        );
        assert!(out.status.success(), "{out:?}");
        assert!(
            !state.join("trees/2-dry").exists(),
            "a check leaves nothing"
        );
        assert_eq!(live(&state), "trees/2-next", "and changes nothing");

        let (_bad_dir, bad) = tree(&[("nginx.conf", "x"), ("bad", "")]);
        let (status, out) = stage(
            &state,
            "3-bad",
            &tree_archive(&bad, "3-bad").unwrap(),
            Some("go"),
        );
        assert!(!status.success());
        assert!(out.contains("emerg in"), "{out}");
        assert!(
            !out.contains(STAGED),
            "a rejected tree is never staged: {out}"
        );
        assert!(
            !state.join("trees/3-bad").exists(),
            "a rejected tree is removed"
        );
        assert_eq!(live(&state), "trees/2-next", "and the live one stays");

        // A short or broken archive: tar fails, nothing of it is left, live stays.
        let mut truncated = b"4096\n".to_vec();
        truncated.extend_from_slice(&tree_archive(&good, "5-short").unwrap()[..700]);
        let out = script(&state, &["stage", "5-short", "5"], Some(truncated));
        assert!(!out.status.success(), "{out:?}");
        assert!(!state.join("trees/5-short").exists(), "{out:?}");
        assert_eq!(live(&state), "trees/2-next");

        // Staged, then abandoned: the end of input (or any other word) removes it, live stays.
        for word in [None, Some("stop")] {
            let (status, out) = stage(
                &state,
                "4-abandoned",
                &tree_archive(&good, "4-abandoned").unwrap(),
                word,
            );
            assert_eq!(status.code(), Some(4), "{out}");
            assert!(out.contains(STAGED), "{out}");
            assert!(!state.join("trees/4-abandoned").exists(), "{word:?}");
            assert_eq!(live(&state), "trees/2-next");
        }
    }

    #[test]
    fn swap_replaces_the_link_itself_and_prunes_all_but_the_protected_and_newest() {
        let scratch = tempfile::tempdir().unwrap();
        let state = scratch.path().join("state");
        for n in 1..=8 {
            std::fs::create_dir_all(state.join(format!("trees/{n}-x"))).unwrap();
        }
        let out = script(&state, &["swap", "1-x", "", "5"], None);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(live(&state), "trees/1-x");
        // 8 trees, keep 5: the oldest go except 1-x, the tree being swapped to.
        let out = script(&state, &["swap", "8-x", "1-x", "5"], None);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            live(&state),
            "trees/8-x",
            "the link was replaced, not followed"
        );
        assert!(!state.join("trees/8-x/8-x").exists());
        let mut left: Vec<String> = std::fs::read_dir(state.join(TREES))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["1-x", "5-x", "6-x", "7-x", "8-x"]);

        let out = script(&state, &["swap", "9-missing", "", "5"], None);
        assert!(!out.status.success());
        assert_eq!(live(&state), "trees/8-x", "a missing tree changes nothing");
    }

    #[test]
    fn adopt_moves_a_flat_tree_behind_live_without_changing_what_nginx_reads() {
        let scratch = tempfile::tempdir().unwrap();
        let state = scratch.path().join("state");
        std::fs::create_dir_all(state.join("snippets")).unwrap();
        std::fs::write(state.join("nginx.conf"), "include snippets/a.conf;").unwrap();
        std::fs::write(state.join("snippets/a.conf"), "# a").unwrap();
        std::fs::write(state.join(MODEL_FILE), "{}").unwrap();

        let out = script(&state, &["adopt"], None);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(live(&state), "trees/0000-initial");
        for entry in ["nginx.conf", "snippets", MODEL_FILE] {
            assert_eq!(
                std::fs::read_link(state.join(entry)).unwrap(),
                Path::new("live").join(entry)
            );
        }
        assert_eq!(
            std::fs::read_to_string(state.join("snippets/a.conf")).unwrap(),
            "# a",
            "reads through the links see the same content"
        );
        let empty = scratch.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let out = script(&empty, &["adopt"], None);
        assert!(out.status.success(), "{out:?}");
        assert!(
            std::fs::read_dir(&empty).unwrap().next().is_none(),
            "no flat tree, nothing to adopt"
        );
        // A tree that adds a top-level entry gets its link when it is installed.
        let (_dir, with_extra) = tree(&[
            ("nginx.conf", "#"),
            ("snippets/a.conf", "#"),
            ("extra.conf", "# x"),
        ]);
        let (status, stdout) = stage(
            &state,
            "1-extra",
            &tree_archive(&with_extra, "1-extra").unwrap(),
            Some("go"),
        );
        assert!(status.success(), "{stdout}");
        assert!(stdout.lines().any(|line| line == SWAPPED), "{stdout}");
        assert_eq!(split_previous(&stdout).1.as_deref(), Some("0000-initial"));
        assert_eq!(
            std::fs::read_to_string(state.join("extra.conf")).unwrap(),
            "# x"
        );
        let out = script(&state, &["swap", "0000-initial", "", "5"], None);
        assert!(out.status.success(), "{out:?}");
        // Idempotent: a second run changes nothing.
        let out = script(&state, &["adopt"], None);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(live(&state), "trees/0000-initial");
        assert!(!state.join("trees/0000-initial/trees").exists());
        assert!(!state.join("trees/0000-initial/extra.conf").exists());
    }

    #[test]
    fn answers_are_split_with_their_status() {
        let output = "Connecting to 127.0.0.1:80 (127.0.0.1:80)\n  HTTP/1.1 200 OK\n  Server: nginx\n{\"config\":\"abc\"}\n@@avalon-answer-end\nwget: server returned error: HTTP/1.1 503 Service Unavailable\n\n@@avalon-answer-end\nwget: can't connect to remote host (127.0.0.1): Connection refused\n\n@@avalon-answer-end\n";
        let answers = parse_answers(output);
        assert_eq!(answers.len(), 3);
        assert_eq!(answers[0].0, 200);
        assert!(answers[0].1.contains("\"abc\""));
        assert_eq!(answers[1].0, 503);
        assert_eq!(answers[2].0, 0);
    }

    #[test]
    fn mounts_become_mount_specs_and_odd_sources_are_refused() {
        let bind = InspectMount {
            kind: "bind".into(),
            name: None,
            source: "/srv/avalon/nginx".into(),
            destination: "/etc/nginx".into(),
        };
        assert_eq!(
            mount_spec(&bind).unwrap(),
            "type=bind,source=/srv/avalon/nginx"
        );
        let volume = InspectMount {
            kind: "volume".into(),
            name: Some("avalon_edge".into()),
            source: "/var/lib/docker/volumes/avalon_edge/_data".into(),
            destination: "/etc/nginx".into(),
        };
        assert_eq!(
            mount_spec(&volume).unwrap(),
            "type=volume,source=avalon_edge"
        );
        let odd = InspectMount {
            source: "/srv/a,b".into(),
            ..bind
        };
        assert!(
            mount_spec(&odd)
                .unwrap_err()
                .to_string()
                .contains("rename it")
        );
    }
}
