//! Where copies of backups go besides the local backup directory, read from a small TOML file:
//! S3-compatible object stores (through `object_store`) and plain directories (a mounted NAS or a
//! second disk). A copy is complete when its manifest is there: the archive is uploaded first.
//!
//! ```toml
//! directory = "/var/backups/avalon"          # the local backup directory (optional)
//!
//! [encryption]                                # optional: encrypt archives with age
//! recipients_file = "/etc/avalon/backup-recipients.txt"
//!
//! [destinations.offsite]
//! kind = "s3"
//! bucket = "avalon-backups"
//! prefix = "production"
//! region = "eu-central-1"
//! endpoint = "https://s3.eu-central-1.amazonaws.com"    # any S3-compatible service
//! access_key_id_file = "/etc/avalon/s3-access-key-id"    # else AWS_ACCESS_KEY_ID
//! secret_access_key_file = "/etc/avalon/s3-secret"       # else AWS_SECRET_ACCESS_KEY
//!
//! [destinations.nas]
//! kind = "directory"
//! path = "/mnt/nas/avalon-backups"
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use serde::Deserialize;

use super::manifest::{MANIFEST_SUFFIX, is_safe_file_name};
use super::pipeline::copy_stream;

/// Parts of at most this size are uploaded, a few at a time, so memory stays bounded.
const UPLOAD_PART_BYTES: usize = 16 * 1024 * 1024;
const UPLOADS_IN_FLIGHT: usize = 2;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// The local backup directory.
    pub directory: Option<PathBuf>,
    pub encryption: Option<EncryptionConfig>,
    #[serde(default)]
    pub destinations: BTreeMap<String, DestinationConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// age recipients (`age1…`), one per line.
    pub recipients_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DestinationConfig {
    S3(S3Config),
    Directory { path: PathBuf },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    /// Plain HTTP, for a local test server only.
    #[serde(default)]
    pub allow_http: bool,
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key_file: Option<PathBuf>,
}

impl BackupConfig {
    /// The file named, or `config/backup.toml` if it exists, or nothing configured.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let default_path = crate::project::root().join("config/backup.toml");
        let path = match path {
            Some(path) => path.to_path_buf(),
            None if default_path.exists() => default_path,
            None => return Ok(Self::default()),
        };
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let config: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("invalid backup config {}", path.display()))?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        for (name, destination) in &self.destinations {
            ensure!(
                is_safe_file_name(name),
                "destinations.{name}: a destination name is letters, digits, '.', '_' or '-'"
            );
            if let DestinationConfig::S3(s3) = destination {
                ensure!(
                    !s3.bucket.is_empty(),
                    "destinations.{name}.bucket: must not be empty"
                );
                if let Some(endpoint) = &s3.endpoint {
                    ensure!(
                        s3.allow_http || !endpoint.starts_with("http://"),
                        "destinations.{name}.endpoint: plain http:// needs allow_http = true (test servers only)"
                    );
                }
            }
        }
        Ok(())
    }

    /// The destinations named (all configured ones when `names` is empty), opened.
    pub fn open_destinations(&self, names: &[String]) -> anyhow::Result<Vec<Destination>> {
        let chosen: Vec<&String> = if names.is_empty() {
            self.destinations.keys().collect()
        } else {
            names.iter().collect()
        };
        chosen
            .into_iter()
            .map(|name| match self.destinations.get(name) {
                Some(config) => Destination::open(name, config),
                None => bail!(
                    "--dest {name}: no such destination; configured: {}",
                    if self.destinations.is_empty() {
                        "none (see [destinations.NAME] in the backup config)".to_owned()
                    } else {
                        self.destinations
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            })
            .collect()
    }
}

/// An opened destination.
pub struct Destination {
    pub name: String,
    store: Store,
}

enum Store {
    S3 {
        store: Arc<dyn ObjectStore>,
        prefix: String,
        bucket: String,
        runtime: tokio::runtime::Runtime,
    },
    Directory(PathBuf),
}

impl Destination {
    pub fn open(name: &str, config: &DestinationConfig) -> anyhow::Result<Self> {
        let store = match config {
            DestinationConfig::Directory { path } => Store::Directory(path.clone()),
            DestinationConfig::S3(s3) => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_allow_http(s3.allow_http);
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(path) = &s3.access_key_id_file {
                    builder = builder.with_access_key_id(read_key_file(
                        name,
                        "access_key_id_file",
                        path,
                    )?);
                }
                if let Some(path) = &s3.secret_access_key_file {
                    builder = builder.with_secret_access_key(read_key_file(
                        name,
                        "secret_access_key_file",
                        path,
                    )?);
                }
                let store = builder
                    .build()
                    .with_context(|| format!("destination {name}: configuring the S3 client"))?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the async runtime for S3")?;
                Store::S3 {
                    store: Arc::new(store),
                    prefix: s3.prefix.trim_matches('/').to_owned(),
                    bucket: s3.bucket.clone(),
                    runtime,
                }
            }
        };
        Ok(Self {
            name: name.to_owned(),
            store,
        })
    }

    /// Where a file goes, for messages.
    pub fn describe(&self, file_name: &str) -> String {
        match &self.store {
            Store::S3 { bucket, prefix, .. } => {
                format!("s3://{bucket}/{}", object_key(prefix, file_name))
            }
            Store::Directory(path) => path.join(file_name).display().to_string(),
        }
    }

    /// Copies a backup: archive first, manifest last, so a listed backup is a complete one.
    pub fn upload_backup(&self, archive: &Path, manifest: &Path) -> anyhow::Result<()> {
        for path in [archive, manifest] {
            let file_name = file_name_of(path)?;
            eprintln!("upload {} -> {}", path.display(), self.describe(&file_name));
            self.upload(path, &file_name).with_context(|| {
                format!("uploading {} to destination {}", path.display(), self.name)
            })?;
        }
        Ok(())
    }

    fn upload(&self, local: &Path, file_name: &str) -> anyhow::Result<()> {
        match &self.store {
            Store::Directory(dir) => {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                copy_file_atomically(local, &dir.join(file_name))
            }
            Store::S3 {
                store,
                prefix,
                runtime,
                ..
            } => {
                let key = ObjectPath::from(object_key(prefix, file_name));
                runtime.block_on(upload_to_s3(store.as_ref(), key, local))
            }
        }
    }

    /// Downloads one file into `local` (atomically).
    pub fn download(&self, file_name: &str, local: &Path) -> anyhow::Result<()> {
        ensure!(
            is_safe_file_name(file_name),
            "{file_name:?} is not a plain file name"
        );
        eprintln!(
            "download {} -> {}",
            self.describe(file_name),
            local.display()
        );
        match &self.store {
            Store::Directory(dir) => copy_file_atomically(&dir.join(file_name), local),
            Store::S3 {
                store,
                prefix,
                runtime,
                ..
            } => {
                let key = ObjectPath::from(object_key(prefix, file_name));
                runtime.block_on(download_from_s3(store.as_ref(), key, local))
            }
        }
    }

    /// File names of the manifests in the destination.
    pub fn manifest_names(&self) -> anyhow::Result<Vec<String>> {
        let mut names = self.file_names()?;
        names.retain(|name| name.ends_with(MANIFEST_SUFFIX) && !name.starts_with('.'));
        names.sort();
        Ok(names)
    }

    fn file_names(&self) -> anyhow::Result<Vec<String>> {
        match &self.store {
            Store::Directory(dir) => match fs::read_dir(dir) {
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(error) => Err(error).with_context(|| format!("listing {}", dir.display())),
                Ok(entries) => entries
                    .map(|entry| {
                        entry
                            .map(|entry| entry.file_name().to_string_lossy().into_owned())
                            .with_context(|| format!("listing {}", dir.display()))
                    })
                    .collect(),
            },
            Store::S3 {
                store,
                prefix,
                runtime,
                ..
            } => runtime.block_on(async {
                let prefix_path = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
                let listing = store
                    .list_with_delimiter(prefix_path.as_ref())
                    .await
                    .with_context(|| format!("listing destination {}", self.name))?;
                Ok(listing
                    .objects
                    .into_iter()
                    .filter_map(|object| object.location.filename().map(str::to_owned))
                    .collect())
            }),
        }
    }

    pub fn read_small_file(&self, file_name: &str) -> anyhow::Result<Vec<u8>> {
        let temp = tempfile::tempdir().context("creating a temporary directory")?;
        let path = temp.path().join(file_name);
        self.download(file_name, &path)?;
        fs::read(&path).with_context(|| format!("reading {}", path.display()))
    }

    pub fn delete(&self, file_name: &str) -> anyhow::Result<()> {
        ensure!(
            is_safe_file_name(file_name),
            "{file_name:?} is not a plain file name"
        );
        eprintln!("delete {}", self.describe(file_name));
        match &self.store {
            Store::Directory(dir) => match fs::remove_file(dir.join(file_name)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error)
                    .with_context(|| format!("deleting {}", dir.join(file_name).display())),
                _ => Ok(()),
            },
            Store::S3 {
                store,
                prefix,
                runtime,
                ..
            } => {
                let key = ObjectPath::from(object_key(prefix, file_name));
                runtime
                    .block_on(store.delete(&key))
                    .with_context(|| format!("deleting {}", self.describe(file_name)))
            }
        }
    }
}

fn object_key(prefix: &str, file_name: &str) -> String {
    if prefix.is_empty() {
        file_name.to_owned()
    } else {
        format!("{prefix}/{file_name}")
    }
}

fn file_name_of(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|name| name.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no file name", path.display()))
}

fn read_key_file(destination: &str, field: &str, path: &Path) -> anyhow::Result<String> {
    let text = fs::read_to_string(path).with_context(|| {
        format!(
            "destinations.{destination}.{field}: reading {}",
            path.display()
        )
    })?;
    let key = text.trim().to_owned();
    ensure!(
        !key.is_empty(),
        "destinations.{destination}.{field}: {} is empty",
        path.display()
    );
    Ok(key)
}

fn copy_file_atomically(from: &Path, to: &Path) -> anyhow::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut input = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".incoming.")
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    copy_stream(&mut input, temp.as_file_mut())
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    temp.as_file().sync_all().context("syncing the copy")?;
    temp.persist(to)
        .map_err(|error| error.error)
        .with_context(|| format!("renaming into {}", to.display()))?;
    Ok(())
}

async fn upload_to_s3(
    store: &dyn ObjectStore,
    key: ObjectPath,
    local: &Path,
) -> anyhow::Result<()> {
    let mut file = File::open(local).with_context(|| format!("opening {}", local.display()))?;
    let size = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    if size <= UPLOAD_PART_BYTES as u64 {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", local.display()))?;
        store.put(&key, PutPayload::from(bytes)).await?;
        return Ok(());
    }
    let upload = store.put_multipart(&key).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART_BYTES);
    let mut buffer = vec![0u8; 1024 * 1024];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", local.display()))?;
        if read == 0 {
            break;
        }
        writer.wait_for_capacity(UPLOADS_IN_FLIGHT).await?;
        writer.write(&buffer[..read]);
    }
    writer.finish().await?;
    Ok(())
}

async fn download_from_s3(
    store: &dyn ObjectStore,
    key: ObjectPath,
    local: &Path,
) -> anyhow::Result<()> {
    let dir = local.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".incoming.")
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let mut stream = store.get(&key).await?.into_stream();
    while let Some(chunk) = stream.next().await {
        temp.write_all(&chunk?)
            .with_context(|| format!("writing {}", temp.path().display()))?;
    }
    temp.as_file().sync_all().context("syncing the download")?;
    temp.persist(local)
        .map_err(|error| error.error)
        .with_context(|| format!("renaming into {}", local.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
