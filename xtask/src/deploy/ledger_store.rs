//! Where the ledger lives: on the target, so it travels with the stack, not with a checkout.
//!
//! [`VolumeStore`] keeps it in a named Docker volume, reached only through the Docker CLI (`docker cp` to
//! and from a created-but-never-started helper container that mounts the volume). Why this shape:
//! - it works wherever the Docker CLI works — the local engine, `DOCKER_HOST=ssh://…`, a `--context` — with
//!   no ssh code and no host path that only exists on one machine;
//! - the helper never runs, so any image present on the target will do (we use the one the stack already
//!   runs), and it needs no shell: the api image is `scratch`;
//! - each entry is written as its own file (`entries/<seq>.json`) that is never touched again, so an append
//!   cannot damage earlier history even if the connection drops mid-copy; reading concatenates the files
//!   in sequence order, which is the JSONL history.
//!
//! [`DirStore`] keeps the same history in one JSONL file on a host directory (tests, and single-host
//! operators who prefer `/var/lib/avalon/releases.jsonl`): each append is one `write` of a whole line on an
//! `O_APPEND` descriptor followed by `fsync`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::command::Effect;
use crate::container_exec::{DockerCli, Invocation};

pub trait LedgerStore {
    /// The whole history as JSONL, and the fence mark.
    fn read(&self) -> anyhow::Result<Stored>;
    /// Appends one entry (`line` has no newline); `seq` names it.
    fn append(&self, seq: u64, line: &str) -> anyhow::Result<()>;
    /// Records that `fence` was issued to a new lock holder (the file [`FENCE_FILE`] beside the history),
    /// so an older holder's writes are refused even before the new one has written an entry.
    fn raise_fence(&self, fence: u64) -> anyhow::Result<()>;
    fn describe(&self) -> String;
    /// A file kept beside the history (the live autoscaler's state), if it exists. Ledger reads skip it.
    fn read_aside(&self, name: &str) -> anyhow::Result<Option<String>>;
    /// Replaces a file beside the history as a whole.
    fn write_aside(&self, name: &str, body: &str) -> anyhow::Result<()>;
}

/// What a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub jsonl: String,
    /// The last fence issued (0: none yet).
    pub fence_mark: u64,
}

/// The fence mark's file name, in the ledger directory or volume.
pub const FENCE_FILE: &str = "fence";

fn parse_mark(text: &str) -> u64 {
    text.trim().parse().unwrap_or(0)
}

pub struct DirStore {
    pub dir: PathBuf,
}

impl DirStore {
    fn file(&self) -> PathBuf {
        self.dir.join("releases.jsonl")
    }
}

fn read_or_empty(path: &std::path::Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

impl LedgerStore for DirStore {
    fn read(&self) -> anyhow::Result<Stored> {
        Ok(Stored {
            jsonl: read_or_empty(&self.file())?,
            fence_mark: parse_mark(&read_or_empty(&self.dir.join(FENCE_FILE))?),
        })
    }

    fn raise_fence(&self, fence: u64) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        // Written aside and renamed: a reader sees the old mark or the new one, never half of one.
        let temporary = self
            .dir
            .join(format!(".{FENCE_FILE}.{}", std::process::id()));
        std::fs::write(&temporary, format!("{fence}\n"))
            .and_then(|()| std::fs::rename(&temporary, self.dir.join(FENCE_FILE)))
            .with_context(|| format!("cannot write the fence mark in {}", self.dir.display()))
    }

    fn append(&self, _seq: u64, line: &str) -> anyhow::Result<()> {
        if line.contains('\n') {
            bail!("a ledger entry must be one line");
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file())
            .with_context(|| format!("cannot open {}", self.file().display()))?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot append to {}", self.file().display()))
    }

    fn describe(&self) -> String {
        self.file().display().to_string()
    }

    fn read_aside(&self, name: &str) -> anyhow::Result<Option<String>> {
        let text = read_or_empty(&self.dir.join(name))?;
        Ok((!text.is_empty()).then_some(text))
    }

    fn write_aside(&self, name: &str, body: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let temporary = self.dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&temporary, body)
            .and_then(|()| std::fs::rename(&temporary, self.dir.join(name)))
            .with_context(|| format!("cannot write {name} in {}", self.dir.display()))
    }
}

/// The ledger in a Docker volume on the target.
pub struct VolumeStore {
    pub docker: DockerCli,
    pub volume: String,
    /// Any image present on the target; the helper container is created from it and never started.
    pub helper_image: String,
    /// A created container that mounts the volume at [`MOUNT`] already (the deploy lock while this
    /// process holds it): used instead of a helper, which saves two engine round trips per access.
    pub via: Option<String>,
}

/// Where helpers (and the deploy lock) mount the ledger volume.
pub const MOUNT: &str = "/ledger";

impl VolumeStore {
    /// Runs `work` with a container that mounts the volume. The helper of a read is part of the read: it
    /// never runs and is removed at once, so it is printed only with `-v`, as the read itself.
    fn with_helper<T>(
        &self,
        effect: Effect,
        work: impl FnOnce(&str) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        if let Some(container) = &self.via {
            return work(container);
        }
        let name = format!(
            "{}-helper-{}-{}",
            self.volume,
            std::process::id(),
            time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
        );
        self.docker
            .create_volume_holder(
                &name,
                "ledger-helper",
                &self.volume,
                MOUNT,
                &self.helper_image,
            )
            .with_effect(effect)
            .capture(None)
            .with_context(|| {
                format!(
                    "cannot create a helper container for volume {}",
                    self.volume
                )
            })?;
        let result = work(&name);
        let removed = self
            .docker
            .remove_container(&name)
            .with_effect(effect)
            .capture(None);
        if let Err(err) = removed {
            eprintln!("warning: helper container {name} was not removed: {err:#}");
        }
        result
    }
}

impl LedgerStore for VolumeStore {
    fn read(&self) -> anyhow::Result<Stored> {
        self.with_helper(Effect::ReadOnly, |helper| {
            let tar = capture_bytes(&self.docker.copy_out(helper, &format!("{MOUNT}/.")))?;
            entries_from_tar(&tar)
        })
    }

    fn raise_fence(&self, fence: u64) -> anyhow::Result<()> {
        let tar = file_tar(FENCE_FILE, &format!("{fence}\n"))?;
        self.with_helper(Effect::Changes, |helper| {
            self.docker
                .copy_in(helper, MOUNT)
                .capture(Some(&tar))
                .map(|_| ())
        })
    }

    fn append(&self, seq: u64, line: &str) -> anyhow::Result<()> {
        let tar = entry_tar(seq, line)?;
        self.with_helper(Effect::Changes, |helper| {
            self.docker
                .copy_in(helper, MOUNT)
                .capture(Some(&tar))
                .map(|_| ())
        })
    }

    fn describe(&self) -> String {
        format!("docker volume {}", self.volume)
    }

    fn read_aside(&self, name: &str) -> anyhow::Result<Option<String>> {
        self.with_helper(Effect::ReadOnly, |helper| {
            let tar = capture_bytes(&self.docker.copy_out(helper, &format!("{MOUNT}/.")))?;
            file_from_tar(&tar, name)
        })
    }

    fn write_aside(&self, name: &str, body: &str) -> anyhow::Result<()> {
        let tar = file_tar(name, body)?;
        self.with_helper(Effect::Changes, |helper| {
            self.docker
                .copy_in(helper, MOUNT)
                .capture(Some(&tar))
                .map(|_| ())
        })
    }
}

/// The top-level file `name` of a `docker cp` archive of the volume.
fn file_from_tar(tar_bytes: &[u8], name: &str) -> anyhow::Result<Option<String>> {
    let mut archive = tar::Archive::new(tar_bytes);
    for file in archive
        .entries()
        .context("the ledger archive is not a tar stream")?
    {
        let mut file = file.context("damaged ledger archive")?;
        let path = file.path().context("damaged ledger archive")?;
        if path.to_string_lossy().trim_start_matches("./") == name {
            let mut text = String::new();
            file.read_to_string(&mut text)
                .with_context(|| format!("{name} is not UTF-8"))?;
            return Ok(Some(text));
        }
    }
    Ok(None)
}

fn entry_name(seq: u64) -> String {
    format!("entries/{seq:010}.json")
}

/// A tar archive holding `entries/` and the one new entry file.
fn entry_tar(seq: u64, line: &str) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder.append_data(&mut dir, "entries/", std::io::empty())?;
    let body = format!("{line}\n");
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o644);
    header.set_size(body.len() as u64);
    header.set_mtime(time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
    builder.append_data(&mut header, entry_name(seq), body.as_bytes())?;
    builder
        .into_inner()
        .context("cannot build the ledger entry archive")
}

/// A tar archive holding one file at the top.
fn file_tar(name: &str, body: &str) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o644);
    header.set_size(body.len() as u64);
    header.set_mtime(time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
    builder.append_data(&mut header, name, body.as_bytes())?;
    builder.into_inner().context("cannot build the archive")
}

/// The entry files of a `docker cp` archive, concatenated in sequence order, and the fence mark.
fn entries_from_tar(tar_bytes: &[u8]) -> anyhow::Result<Stored> {
    let mut files = Vec::new();
    let mut fence_mark = 0;
    let mut archive = tar::Archive::new(tar_bytes);
    for file in archive
        .entries()
        .context("the ledger archive is not a tar stream")?
    {
        let mut file = file.context("damaged ledger archive")?;
        let path = file
            .path()
            .context("damaged ledger archive")?
            .to_string_lossy()
            .into_owned();
        if path.trim_start_matches("./") == FENCE_FILE {
            let mut text = String::new();
            file.read_to_string(&mut text)
                .context("the fence mark is not UTF-8")?;
            fence_mark = parse_mark(&text);
            continue;
        }
        let Some(name) = path
            .rsplit('/')
            .next()
            .filter(|name| name.ends_with(".json"))
        else {
            continue;
        };
        if !path.contains("entries/") {
            continue;
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .with_context(|| format!("ledger entry {path} is not UTF-8"))?;
        files.push((name.to_owned(), text));
    }
    files.sort();
    Ok(Stored {
        jsonl: files.into_iter().map(|(_, text)| text).collect(),
        fence_mark,
    })
}

fn capture_bytes(invocation: &Invocation) -> anyhow::Result<Vec<u8>> {
    let mut output = Vec::new();
    invocation.stream(None, &mut output)?;
    Ok(output)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn files_beside_the_history_are_kept_and_skipped_by_ledger_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore {
            dir: dir.path().join("ledger"),
        };
        assert_eq!(store.read_aside("autoscale.json").unwrap(), None);
        store.write_aside("autoscale.json", "{\"x\":1}").unwrap();
        store.write_aside("autoscale.json", "{\"x\":2}").unwrap();
        assert_eq!(
            store.read_aside("autoscale.json").unwrap().as_deref(),
            Some("{\"x\":2}")
        );
        assert_eq!(store.read().unwrap(), Stored::default());
        let tar = file_tar("autoscale.json", "{}").unwrap();
        assert_eq!(
            file_from_tar(&tar, "autoscale.json").unwrap().as_deref(),
            Some("{}")
        );
        assert_eq!(entries_from_tar(&tar).unwrap(), Stored::default());
    }

    #[test]
    fn dir_store_appends_whole_lines_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore {
            dir: dir.path().join("ledger"),
        };
        assert_eq!(store.read().unwrap(), Stored::default());
        store.append(1, r#"{"a":1}"#).unwrap();
        store.append(2, r#"{"a":2}"#).unwrap();
        assert_eq!(store.read().unwrap().jsonl, "{\"a\":1}\n{\"a\":2}\n");
        assert!(store.append(3, "two\nlines").is_err());
        store.raise_fence(3).unwrap();
        assert_eq!(store.read().unwrap().fence_mark, 3);
    }

    #[test]
    fn entry_archives_read_back_in_sequence_order() {
        // What `docker cp helper:/ledger/. -` returns: a `./` prefix and files in directory order.
        let mut builder = tar::Builder::new(Vec::new());
        for seq in [10_u64, 2, 1] {
            let body = format!("{{\"seq\":{seq}}}\n");
            let mut header = tar::Header::new_ustar();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            builder
                .append_data(
                    &mut header,
                    format!("./{}", entry_name(seq)),
                    body.as_bytes(),
                )
                .unwrap();
        }
        let mut header = tar::Header::new_ustar();
        header.set_size(3);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "./fence", "12\n".as_bytes())
            .unwrap();
        let stored = entries_from_tar(&builder.into_inner().unwrap()).unwrap();
        assert_eq!(stored.jsonl, "{\"seq\":1}\n{\"seq\":2}\n{\"seq\":10}\n");
        assert_eq!(stored.fence_mark, 12);

        let one = entry_tar(7, "{\"seq\":7}").unwrap();
        assert_eq!(entries_from_tar(&one).unwrap().jsonl, "{\"seq\":7}\n");
        assert_eq!(
            entries_from_tar(&file_tar(FENCE_FILE, "4\n").unwrap())
                .unwrap()
                .fence_mark,
            4
        );
    }
}
