//! Plan, then apply: what the host should hold ([`Entry`]), what it holds ([`Found`]), and the changes between
//! the two ([`plan`], pure and unit-tested), which [`apply`] carries out one printed line at a time.
//!
//! The one rule that shapes the planner: an entry that is not shipped content — a secret, a certificate, the
//! operator's env file — is written only when it is missing. Its mode and owner are corrected; its bytes never.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};

use super::layout::{Owner, Ownership, Root};

/// One path the prepared host must hold.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Host path (`/etc/avalon/…`).
    pub path: String,
    pub mode: u32,
    pub owner: Owner,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Dir,
    /// Shipped content (units, sysctls, the env file after `--set` edits): written when missing or different.
    Managed(Vec<u8>),
    /// Made here once and never rewritten.
    Once(Source),
    /// Only the operator can provide it (the WeChat secret, real certificates); `hint` says how.
    Supplied {
        hint: String,
    },
    /// The private key of the certificate at `cert`: made with it, never alone.
    KeyOf {
        cert: String,
    },
}

#[derive(Clone)]
pub enum Source {
    /// `bytes` fresh random bytes from the operating system's CSPRNG, printable.
    Random { bytes: usize, encoding: Encoding },
    /// A value the operator handed over (`--wechat-secret-file`).
    Given(String),
    /// Configuration that is the operator's once written (not secret).
    Text(String),
    /// `mongodb://avalon_app:<password>@…`, with the password of the entry at `password`.
    MongoUri { password: String },
    /// A self-signed certificate and its key (the [`Kind::KeyOf`] entry at `key`).
    SelfSigned { domain: String, key: String },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Random { bytes, encoding } => write!(f, "Random({bytes} bytes, {encoding:?})"),
            Source::Given(_) => f.write_str("Given(<redacted>)"),
            Source::Text(text) => write!(f, "Text({} bytes)", text.len()),
            Source::MongoUri { password } => write!(f, "MongoUri(password from {password})"),
            Source::SelfSigned { domain, key } => write!(f, "SelfSigned({domain}, key {key})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// URL-safe base64 without padding: dense, and safe in URIs and env files.
    Base64Url,
    /// Lower-case hex: safe everywhere a password travels (redis config on stdin, URIs, shells).
    Hex,
}

/// What is at a path now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Missing,
    Dir {
        mode: u32,
        owner: Owner,
    },
    File {
        mode: u32,
        owner: Owner,
        content: Vec<u8>,
    },
    /// A socket, device or other non-regular file.
    Other,
}

/// What is at each entry's path (keyed by host path).
pub type Observed = BTreeMap<String, Found>;

/// Reads the state of every entry's path under `root` (symlinks followed: an operator may link certificates).
pub fn observe(root: &Root, entries: &[Entry]) -> anyhow::Result<Observed> {
    let mut observed = Observed::new();
    for entry in entries {
        let path = root.join(&entry.path);
        let found = match fs::metadata(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Found::Missing,
            Err(err) => return Err(err).with_context(|| format!("inspecting {}", path.display())),
            Ok(meta) => {
                let owner = Owner {
                    uid: meta.uid(),
                    gid: meta.gid(),
                };
                let mode = meta.mode() & 0o7777;
                if meta.is_dir() {
                    Found::Dir { mode, owner }
                } else if meta.is_file() {
                    let content =
                        fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                    Found::File {
                        mode,
                        owner,
                        content,
                    }
                } else {
                    Found::Other
                }
            }
        };
        observed.insert(entry.path.clone(), found);
    }
    Ok(observed)
}

/// One change to the host.
#[derive(Clone)]
pub enum Change {
    CreateDir {
        path: String,
        mode: u32,
        owner: Option<Owner>,
    },
    WriteFile {
        path: String,
        content: Vec<u8>,
        mode: u32,
        owner: Option<Owner>,
        /// Never printed or put in JSON.
        secret: bool,
        /// `create`, `update` (shipped content that differs) or `generate`.
        why: &'static str,
    },
    SelfSignedCert {
        cert: String,
        key: String,
        domain: String,
        cert_mode: u32,
        key_mode: u32,
        cert_owner: Option<Owner>,
        key_owner: Option<Owner>,
    },
    SetMode {
        path: String,
        from: u32,
        to: u32,
    },
    SetOwner {
        path: String,
        from: Owner,
        to: Owner,
    },
    /// A command that changes the running system (only planned when the root is `/`).
    Run {
        argv: Vec<String>,
        why: String,
    },
}

/// Shows what [`Change::describe`] shows: never a secret's bytes.
impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.describe().fmt(f)
    }
}

/// A change as reported: text line and JSON object.
#[derive(Debug, serde::Serialize)]
pub struct Described {
    pub action: &'static str,
    pub path: String,
    pub detail: String,
}

impl Change {
    pub fn describe(&self) -> Described {
        let owner_text = |owner: &Option<Owner>| {
            owner.map_or_else(|| "owner unchanged".to_owned(), |o| o.to_string())
        };
        match self {
            Change::CreateDir { path, mode, owner } => Described {
                action: "create_dir",
                path: path.clone(),
                detail: format!("{mode:04o} {}", owner_text(owner)),
            },
            Change::WriteFile {
                path,
                content,
                mode,
                owner,
                secret,
                why,
            } => Described {
                action: if *why == "update" {
                    "update_file"
                } else {
                    "write_file"
                },
                path: path.clone(),
                detail: format!(
                    "{mode:04o} {}, {} bytes{}",
                    owner_text(owner),
                    content.len(),
                    match (*secret, *why) {
                        (true, "generate") => ", generated secret",
                        (true, _) => ", secret",
                        _ => "",
                    }
                ),
            },
            Change::SelfSignedCert {
                cert, key, domain, ..
            } => Described {
                action: "self_signed_cert",
                path: cert.clone(),
                detail: format!("CN={domain}, key {key}"),
            },
            Change::SetMode { path, from, to } => Described {
                action: "set_mode",
                path: path.clone(),
                detail: format!("{from:04o} -> {to:04o}"),
            },
            Change::SetOwner { path, from, to } => Described {
                action: "set_owner",
                path: path.clone(),
                detail: format!("{from} -> {to}"),
            },
            Change::Run { argv, why } => Described {
                action: "run",
                path: argv.join(" "),
                detail: why.clone(),
            },
        }
    }
}

/// The changes that bring the host from `observed` to `entries`. `random(n)` yields n CSPRNG bytes (tests pass
/// a fixed source). Fails, before anything is changed, on a state it must not paper over.
pub fn plan(
    entries: &[Entry],
    observed: &Observed,
    ownership: &Ownership,
    random: &mut dyn FnMut(usize) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<Change>> {
    let mut changes = Vec::new();
    // Secrets generated in this plan, for the entries derived from them (the MongoDB URI).
    let mut generated: BTreeMap<String, String> = BTreeMap::new();
    for entry in entries {
        let found = observed.get(&entry.path).unwrap_or(&Found::Missing);
        let owner = ownership.wanted(entry.owner);
        match (&entry.kind, found) {
            (_, Found::Other) => bail!(
                "{} exists but is neither a file nor a directory; move it away first",
                entry.path
            ),
            (Kind::Dir, Found::File { .. }) => {
                bail!("{} should be a directory but is a file", entry.path)
            }
            (Kind::Dir, Found::Missing) => changes.push(Change::CreateDir {
                path: entry.path.clone(),
                mode: entry.mode,
                owner,
            }),
            (_, Found::Dir { .. }) if !matches!(entry.kind, Kind::Dir) => {
                bail!("{} should be a file but is a directory", entry.path)
            }
            (Kind::Managed(content), Found::Missing) => {
                changes.push(write(entry, content.clone(), owner, false, "create"))
            }
            (Kind::Managed(content), Found::File { content: now, .. }) if now != content => {
                changes.push(write(entry, content.clone(), owner, false, "update"))
            }
            (Kind::Once(source), Found::Missing) => changes.push(create_once(
                entry,
                source,
                owner,
                observed,
                &mut generated,
                random,
            )?),
            (Kind::Once(Source::Given(value)), Found::File { content, .. })
                if trim_secret(content) != value.as_bytes() =>
            {
                bail!(
                    "{} already exists and differs from the value given; host init never overwrites a secret \
                     (remove the file first to replace it)",
                    entry.path
                )
            }
            (Kind::KeyOf { cert }, Found::Missing) => {
                let cert_found = observed.get(cert).unwrap_or(&Found::Missing);
                if *cert_found != Found::Missing {
                    bail!(
                        "{cert} exists without its private key {}; host init never replaces a certificate: \
                         put the matching key there, or remove both to have them made",
                        entry.path
                    );
                }
            }
            _ => {}
        }
        if let Found::Dir { mode, owner: now }
        | Found::File {
            mode, owner: now, ..
        } = found
        {
            let rewritten = changes.last().is_some_and(
                |change| matches!(change, Change::WriteFile { path, .. } if *path == entry.path),
            );
            if !rewritten {
                if *mode != entry.mode {
                    changes.push(Change::SetMode {
                        path: entry.path.clone(),
                        from: *mode,
                        to: entry.mode,
                    });
                }
                if let Some(owner) = owner
                    && *now != owner
                {
                    changes.push(Change::SetOwner {
                        path: entry.path.clone(),
                        from: *now,
                        to: owner,
                    });
                }
            }
        }
    }
    refuse_key_without_cert(entries, observed)?;
    Ok(changes)
}

/// The other half of [`Kind::KeyOf`]: a certificate to be made while its key is already there.
fn refuse_key_without_cert(entries: &[Entry], observed: &Observed) -> anyhow::Result<()> {
    for entry in entries {
        if let Kind::KeyOf { cert } = &entry.kind {
            let key_found = observed.get(&entry.path).unwrap_or(&Found::Missing);
            let cert_found = observed.get(cert).unwrap_or(&Found::Missing);
            if *key_found != Found::Missing && *cert_found == Found::Missing {
                bail!(
                    "{} exists without its certificate {cert}; host init never replaces a key: put the matching \
                     certificate there, or remove both to have them made",
                    entry.path
                );
            }
        }
    }
    Ok(())
}

fn write(
    entry: &Entry,
    content: Vec<u8>,
    owner: Option<Owner>,
    secret: bool,
    why: &'static str,
) -> Change {
    Change::WriteFile {
        path: entry.path.clone(),
        content,
        mode: entry.mode,
        owner,
        secret,
        why,
    }
}

fn create_once(
    entry: &Entry,
    source: &Source,
    owner: Option<Owner>,
    observed: &Observed,
    generated: &mut BTreeMap<String, String>,
    random: &mut dyn FnMut(usize) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Change> {
    Ok(match source {
        Source::Random { bytes, encoding } => {
            let value = super::secrets::encode(&random(*bytes)?, *encoding);
            generated.insert(entry.path.clone(), value.clone());
            write(entry, value.into_bytes(), owner, true, "generate")
        }
        Source::Given(value) => write(entry, value.clone().into_bytes(), owner, true, "create"),
        Source::Text(text) => write(entry, text.clone().into_bytes(), owner, false, "create"),
        Source::MongoUri { password } => {
            let password = match (generated.get(password), observed.get(password)) {
                (Some(value), _) => value.clone(),
                (None, Some(Found::File { content, .. })) => {
                    String::from_utf8(trim_secret(content).to_vec())
                        .with_context(|| format!("{password} is not UTF-8"))?
                }
                _ => bail!(
                    "{} needs {password}, which is neither there nor planned",
                    entry.path
                ),
            };
            write(
                entry,
                super::secrets::mongodb_uri(&password).into_bytes(),
                owner,
                true,
                "generate",
            )
        }
        Source::SelfSigned { domain, key } => Change::SelfSignedCert {
            cert: entry.path.clone(),
            key: key.clone(),
            domain: domain.clone(),
            cert_mode: entry.mode,
            key_mode: super::certs::KEY_MODE,
            cert_owner: owner,
            key_owner: owner.map(|_| Owner::SECRET),
        },
    })
}

/// A secret file's value: what the services read (they drop trailing newlines too).
pub fn trim_secret(content: &[u8]) -> &[u8] {
    let mut end = content.len();
    while end > 0 && matches!(content[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &content[..end]
}

/// Carries out `changes` in order, printing each one first (unless `quiet`, for `--json`).
pub fn apply(root: &Root, changes: &[Change], quiet: bool) -> anyhow::Result<()> {
    for change in changes {
        if !quiet {
            let described = change.describe();
            println!(
                "  {:<16} {}  ({})",
                described.action, described.path, described.detail
            );
        }
        apply_one(root, change)?;
    }
    Ok(())
}

fn apply_one(root: &Root, change: &Change) -> anyhow::Result<()> {
    match change {
        Change::CreateDir { path, mode, owner } => {
            let target = root.join(path);
            fs::create_dir_all(&target)
                .with_context(|| format!("creating {}", target.display()))?;
            set_mode(&target, *mode)?;
            set_owner(&target, *owner)
        }
        Change::WriteFile {
            path,
            content,
            mode,
            owner,
            ..
        } => write_file(&root.join(path), content, *mode, *owner),
        Change::SelfSignedCert {
            cert,
            key,
            domain,
            cert_mode,
            key_mode,
            cert_owner,
            key_owner,
        } => {
            let (cert, key) = (root.join(cert), root.join(key));
            super::certs::self_signed(&cert, &key, domain)?;
            set_mode(&key, *key_mode)?;
            set_owner(&key, *key_owner)?;
            set_mode(&cert, *cert_mode)?;
            set_owner(&cert, *cert_owner)
        }
        Change::SetMode { path, to, .. } => set_mode(&root.join(path), *to),
        Change::SetOwner { path, to, .. } => set_owner(&root.join(path), Some(*to)),
        Change::Run { argv, .. } => {
            let Some((program, args)) = argv.split_first() else {
                bail!("empty command in the plan");
            };
            let sh = xshell::Shell::new()?;
            xshell::cmd!(sh, "{program} {args...}")
                .run()
                .with_context(|| format!("running {}", argv.join(" ")))
        }
    }
}

/// Writes a whole file under a temporary name created with its final mode (a secret is never readable by
/// others, not even for a moment), gives it its owner, then renames it into place.
fn write_file(
    target: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> anyhow::Result<()> {
    let parent = target
        .parent()
        .with_context(|| format!("{} has no parent directory", target.display()))?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = target
        .file_name()
        .with_context(|| format!("{} has no file name", target.display()))?;
    let temporary = parent.join(format!(".{}.host-init", name.to_string_lossy()));
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    // The umask may have narrowed the mode given at creation.
    set_mode(&temporary, mode)?;
    set_owner(&temporary, owner)?;
    fs::rename(&temporary, target)
        .with_context(|| format!("moving {} into place", target.display()))
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:04o} {}", path.display()))
}

fn set_owner(path: &Path, owner: Option<Owner>) -> anyhow::Result<()> {
    match owner {
        None => Ok(()),
        Some(owner) => std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("chown {owner} {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, mode: u32, kind: Kind) -> Entry {
        Entry {
            path: path.to_owned(),
            mode,
            owner: Owner::SECRET,
            kind,
        }
    }

    fn counting_random() -> impl FnMut(usize) -> anyhow::Result<Vec<u8>> {
        let mut next = 0u8;
        move |n| {
            Ok((0..n)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect())
        }
    }

    fn file(mode: u32, content: &str) -> Found {
        Found::File {
            mode,
            owner: Owner::SECRET,
            content: content.as_bytes().to_vec(),
        }
    }

    fn entries() -> Vec<Entry> {
        vec![
            entry("/etc/avalon/secrets", 0o700, Kind::Dir),
            entry(
                "/etc/avalon/secrets/jwt_secret",
                0o600,
                Kind::Once(Source::Random {
                    bytes: 64,
                    encoding: Encoding::Base64Url,
                }),
            ),
            entry(
                "/etc/avalon/secrets/mongodb_app_password",
                0o600,
                Kind::Once(Source::Random {
                    bytes: 32,
                    encoding: Encoding::Hex,
                }),
            ),
            entry(
                "/etc/avalon/secrets/mongodb_uri",
                0o600,
                Kind::Once(Source::MongoUri {
                    password: "/etc/avalon/secrets/mongodb_app_password".to_owned(),
                }),
            ),
            entry(
                "/etc/sysctl.d/60-avalon.conf",
                0o644,
                Kind::Managed(b"a = 1\n".to_vec()),
            ),
        ]
    }

    #[test]
    fn an_empty_host_gets_everything_and_the_uri_carries_the_generated_password() {
        let changes = plan(
            &entries(),
            &Observed::new(),
            &Ownership::Apply,
            &mut counting_random(),
        )
        .unwrap();
        assert_eq!(changes.len(), 5);
        let contents: BTreeMap<String, String> = changes
            .iter()
            .filter_map(|change| match change {
                Change::WriteFile { path, content, .. } => {
                    Some((path.clone(), String::from_utf8(content.clone()).unwrap()))
                }
                _ => None,
            })
            .collect();
        let jwt = &contents["/etc/avalon/secrets/jwt_secret"];
        assert_eq!(jwt.len(), 86, "64 bytes as unpadded base64url");
        let password = &contents["/etc/avalon/secrets/mongodb_app_password"];
        assert_eq!(password.len(), 64);
        assert_eq!(
            contents["/etc/avalon/secrets/mongodb_uri"],
            format!("mongodb://avalon_app:{password}@mongodb:27017/avalon?authSource=avalon")
        );
    }

    #[test]
    fn a_prepared_host_needs_nothing() {
        let mut observed = Observed::new();
        observed.insert(
            "/etc/avalon/secrets".to_owned(),
            Found::Dir {
                mode: 0o700,
                owner: Owner::SECRET,
            },
        );
        for path in [
            "/etc/avalon/secrets/jwt_secret",
            "/etc/avalon/secrets/mongodb_app_password",
            "/etc/avalon/secrets/mongodb_uri",
        ] {
            observed.insert(path.to_owned(), file(0o600, "existing value"));
        }
        observed.insert("/etc/sysctl.d/60-avalon.conf".to_owned(), {
            let mut found = file(0o644, "a = 1\n");
            if let Found::File { owner, .. } = &mut found {
                *owner = Owner::SECRET;
            }
            found
        });
        let changes = plan(
            &entries(),
            &observed,
            &Ownership::Apply,
            &mut counting_random(),
        )
        .unwrap();
        assert!(
            changes.is_empty(),
            "{:?}",
            changes.iter().map(Change::describe).collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_existing_secret_is_never_rewritten_only_its_mode_and_owner_fixed() {
        let mut observed = Observed::new();
        observed.insert(
            "/etc/avalon/secrets/jwt_secret".to_owned(),
            Found::File {
                mode: 0o644,
                owner: Owner::ROOT,
                content: b"kept".to_vec(),
            },
        );
        let changes = plan(
            &entries(),
            &observed,
            &Ownership::Apply,
            &mut counting_random(),
        )
        .unwrap();
        let for_jwt: Vec<Described> = changes
            .iter()
            .map(Change::describe)
            .filter(|described| described.path == "/etc/avalon/secrets/jwt_secret")
            .collect();
        let actions: Vec<&str> = for_jwt.iter().map(|described| described.action).collect();
        assert_eq!(actions, ["set_mode", "set_owner"]);
    }

    #[test]
    fn the_uri_of_an_existing_password_is_derived_from_it_percent_encoded() {
        let mut observed = Observed::new();
        observed.insert(
            "/etc/avalon/secrets/mongodb_app_password".to_owned(),
            file(0o600, "p@ss/word:1\n"),
        );
        let changes = plan(
            &entries(),
            &observed,
            &Ownership::Apply,
            &mut counting_random(),
        )
        .unwrap();
        let uri = changes.iter().find_map(|change| match change {
            Change::WriteFile { path, content, .. } if path.ends_with("mongodb_uri") => {
                Some(String::from_utf8(content.clone()).unwrap())
            }
            _ => None,
        });
        assert_eq!(
            uri.as_deref(),
            Some("mongodb://avalon_app:p%40ss%2Fword%3A1@mongodb:27017/avalon?authSource=avalon")
        );
    }

    #[test]
    fn shipped_content_that_differs_is_updated_and_owners_are_skipped_when_not_root() {
        let mut observed = Observed::new();
        observed.insert(
            "/etc/sysctl.d/60-avalon.conf".to_owned(),
            file(0o644, "a = 0\n"),
        );
        let ownership = Ownership::for_effective_uid(1000);
        let changes = plan(
            &entries()[4..],
            &observed,
            &ownership,
            &mut counting_random(),
        )
        .unwrap();
        assert_eq!(changes.len(), 1);
        let described = changes[0].describe();
        assert_eq!(described.action, "update_file");
        assert!(
            described.detail.contains("owner unchanged"),
            "{}",
            described.detail
        );
    }

    #[test]
    fn a_given_secret_that_differs_from_the_file_is_refused() {
        let entries = vec![entry(
            "/etc/avalon/secrets/wechat_secret",
            0o600,
            Kind::Once(Source::Given("new-value-0123456789".to_owned())),
        )];
        let mut observed = Observed::new();
        observed.insert(
            "/etc/avalon/secrets/wechat_secret".to_owned(),
            file(0o600, "old-value-0123456789\n"),
        );
        let err = plan(
            &entries,
            &observed,
            &Ownership::Apply,
            &mut counting_random(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("never overwrites"), "{err}");
        // The same value (with the newline an editor adds) is no change.
        observed.insert(
            "/etc/avalon/secrets/wechat_secret".to_owned(),
            file(0o600, "new-value-0123456789\n"),
        );
        assert!(
            plan(
                &entries,
                &observed,
                &Ownership::Apply,
                &mut counting_random()
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn half_a_certificate_pair_is_refused_and_a_missing_pair_is_made() {
        let entries = vec![
            entry(
                "/c/fullchain.pem",
                0o644,
                Kind::Once(Source::SelfSigned {
                    domain: "localhost".to_owned(),
                    key: "/c/privkey.pem".to_owned(),
                }),
            ),
            entry(
                "/c/privkey.pem",
                0o600,
                Kind::KeyOf {
                    cert: "/c/fullchain.pem".to_owned(),
                },
            ),
        ];
        let changes = plan(
            &entries,
            &Observed::new(),
            &Ownership::Apply,
            &mut counting_random(),
        )
        .unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].describe().action, "self_signed_cert");

        let mut only_key = Observed::new();
        only_key.insert("/c/privkey.pem".to_owned(), file(0o600, "key"));
        let err = plan(
            &entries,
            &only_key,
            &Ownership::Apply,
            &mut counting_random(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("without its certificate"), "{err}");

        let mut only_cert = Observed::new();
        only_cert.insert("/c/fullchain.pem".to_owned(), file(0o644, "cert"));
        let err = plan(
            &entries,
            &only_cert,
            &Ownership::Apply,
            &mut counting_random(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("without its private key"), "{err}");
    }

    #[test]
    fn a_directory_where_a_file_belongs_is_refused() {
        let mut observed = Observed::new();
        observed.insert(
            "/etc/avalon/secrets/jwt_secret".to_owned(),
            Found::Dir {
                mode: 0o755,
                owner: Owner::ROOT,
            },
        );
        let err = plan(
            &entries(),
            &observed,
            &Ownership::Apply,
            &mut counting_random(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_reports() {
        let source = Source::Given("super-secret-value".to_owned());
        assert!(!format!("{source:?}").contains("super-secret"));
        let change = Change::WriteFile {
            path: "/x".to_owned(),
            content: b"super-secret-value".to_vec(),
            mode: 0o600,
            owner: None,
            secret: true,
            why: "create",
        };
        let described = change.describe();
        assert!(
            !serde_json::to_string(&described)
                .unwrap()
                .contains("super-secret")
        );
    }
}
