//! `backup verify --restore-test`: the only proof that a backup restores is restoring it. Each
//! application database in the backup is restored under a throwaway name
//! (`--nsFrom avalon.* --nsTo restoretest_<run>_avalon.*`), its collections are counted and
//! compared with the manifest, and the throwaway databases are dropped — also when something fails.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;

use anyhow::Context;
use serde::Serialize;

use super::encryption::Identities;
use super::manifest::Manifest;
use super::store::BackupDir;
use super::target::{ResolvedTarget, RestoreOptions, parse_last_json_line};

/// Databases MongoDB manages itself; restoring them elsewhere means nothing.
const SYSTEM_DATABASES: [&str; 3] = ["admin", "config", "local"];

#[derive(Debug, Clone, Serialize)]
pub struct RestoreTestReport {
    /// The throwaway databases used (already dropped).
    pub databases: Vec<String>,
    /// Namespaces whose counts were compared.
    pub compared: usize,
    pub problems: Vec<String>,
}

/// The throwaway name for each application database of the backup.
pub fn throwaway_names(manifest: &Manifest, run: &str) -> BTreeMap<String, String> {
    manifest
        .namespaces
        .iter()
        .filter(|namespace| {
            !namespace.db.is_empty() && !SYSTEM_DATABASES.contains(&namespace.db.as_str())
        })
        .map(|namespace| {
            (
                namespace.db.clone(),
                format!("restoretest_{run}_{}", namespace.db),
            )
        })
        .collect()
}

pub fn restore_options(manifest: &Manifest, names: &BTreeMap<String, String>) -> RestoreOptions {
    RestoreOptions {
        gzip: manifest.gzip,
        drop: false,
        include: names.keys().map(|db| format!("{db}.*")).collect(),
        renames: names
            .iter()
            .map(|(db, throwaway)| (format!("{db}.*"), format!("{throwaway}.*")))
            .collect(),
        oplog_replay: false,
    }
}

pub fn count_script(databases: &[String]) -> String {
    let names = serde_json::to_string(databases).unwrap_or_else(|_| "[]".to_owned());
    format!(
        "const counts = {{}};\n\
         for (const name of {names}) {{\n\
           const db = client.getDB(name);\n\
           for (const info of db.getCollectionInfos({{ type: 'collection' }})) {{\n\
             counts[name + '.' + info.name] = db.getCollection(info.name).countDocuments({{}});\n\
           }}\n\
         }}\n\
         print(JSON.stringify(counts));"
    )
}

pub fn drop_script(databases: &[String]) -> String {
    let names = serde_json::to_string(databases).unwrap_or_else(|_| "[]".to_owned());
    format!(
        "for (const name of {names}) {{ client.getDB(name).dropDatabase(); }}\n\
         print(JSON.stringify({{ dropped: {names} }}));"
    )
}

/// Where the manifest and the restored counts disagree.
pub fn compare_counts(
    manifest: &Manifest,
    names: &BTreeMap<String, String>,
    restored: &BTreeMap<String, u64>,
) -> (usize, Vec<String>) {
    let mut compared = 0;
    let mut problems = Vec::new();
    for namespace in &manifest.namespaces {
        let (Some(throwaway), Some(expected)) = (names.get(&namespace.db), namespace.documents)
        else {
            continue;
        };
        compared += 1;
        let key = format!("{throwaway}.{}", namespace.collection);
        match restored.get(&key) {
            Some(found) if *found == expected => {}
            Some(found) => problems.push(format!(
                "restore test: namespace {}.{} has {found} documents after restore, manifest says {expected}",
                namespace.db, namespace.collection
            )),
            None => problems.push(format!(
                "restore test: namespace {}.{} is missing after restore",
                namespace.db, namespace.collection
            )),
        }
    }
    (compared, problems)
}

/// A short random run id, so concurrent or leftover tests never share a database.
fn run_id() -> String {
    let mut bytes = [0u8; 4];
    if File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .is_err()
    {
        bytes = std::process::id().to_le_bytes();
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn open_archive(
    dir: &BackupDir,
    manifest: &Manifest,
    identities: Option<&Identities>,
) -> anyhow::Result<Box<dyn Read + Send>> {
    let path = dir.archive_path(manifest);
    match (manifest.encrypted, identities) {
        (false, _) => Ok(Box::new(
            File::open(&path).with_context(|| format!("opening {}", path.display()))?,
        )),
        (true, Some(identities)) => identities.decrypt_file(&path),
        (true, None) => anyhow::bail!(
            "backup {} is encrypted: pass --identity FILE with the age identity it was encrypted to",
            manifest.id
        ),
    }
}

pub fn restore_test(
    target: &ResolvedTarget,
    dir: &BackupDir,
    manifest: &Manifest,
    identities: Option<&Identities>,
) -> anyhow::Result<RestoreTestReport> {
    let names = throwaway_names(manifest, &run_id());
    let databases: Vec<String> = names.values().cloned().collect();
    if databases.is_empty() {
        anyhow::bail!(
            "backup {} holds no application database to restore",
            manifest.id
        );
    }
    let archive = open_archive(dir, manifest, identities)?;
    let restore = target.restore(&restore_options(manifest, &names))?;
    let cleanup = DropDatabases {
        target,
        databases: &databases,
    };
    restore
        .invocation
        .stream(Some(archive), &mut std::io::stderr())
        .context("mongorestore into the throwaway database failed")?;
    let output = target.shell(&count_script(&databases)).capture(None)?;
    let restored: BTreeMap<String, u64> =
        parse_last_json_line(&output).context("reading the restored counts")?;
    let (compared, problems) = compare_counts(manifest, &names, &restored);
    drop(cleanup);
    Ok(RestoreTestReport {
        databases,
        compared,
        problems,
    })
}

/// Drops the throwaway databases when the test ends, however it ends.
struct DropDatabases<'a> {
    target: &'a ResolvedTarget,
    databases: &'a [String],
}

impl Drop for DropDatabases<'_> {
    fn drop(&mut self) {
        if let Err(error) = self
            .target
            .shell(&drop_script(self.databases))
            .capture(None)
        {
            eprintln!(
                "ERROR: could not drop the throwaway database(s) {}: {error:#}",
                self.databases.join(", ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::backup::manifest::ManifestNamespace;
    use crate::backup::manifest::tests::sample_manifest;

    fn manifest() -> Manifest {
        let mut manifest = sample_manifest("b1", datetime!(2025-05-01 04:00 UTC));
        manifest.namespaces = vec![
            ManifestNamespace {
                db: "avalon".to_owned(),
                collection: "games".to_owned(),
                documents: Some(10),
            },
            ManifestNamespace {
                db: "avalon".to_owned(),
                collection: "players".to_owned(),
                documents: Some(4),
            },
            ManifestNamespace {
                db: "admin".to_owned(),
                collection: "system.version".to_owned(),
                documents: Some(1),
            },
            ManifestNamespace {
                db: String::new(),
                collection: "oplog".to_owned(),
                documents: Some(18),
            },
        ];
        manifest
    }

    #[test]
    fn only_application_databases_are_restored_under_throwaway_names() {
        let manifest = manifest();
        let names = throwaway_names(&manifest, "ab12");
        assert_eq!(names.len(), 1);
        assert_eq!(names["avalon"], "restoretest_ab12_avalon");
        let options = restore_options(&manifest, &names);
        assert_eq!(options.include, ["avalon.*"]);
        assert_eq!(
            options.renames,
            [(
                "avalon.*".to_owned(),
                "restoretest_ab12_avalon.*".to_owned()
            )]
        );
        assert!(!options.drop && !options.oplog_replay && options.gzip);
    }

    #[test]
    fn counts_are_compared_per_namespace() {
        let manifest = manifest();
        let names = throwaway_names(&manifest, "x");
        let restored: BTreeMap<String, u64> = [
            ("restoretest_x_avalon.games".to_owned(), 10),
            ("restoretest_x_avalon.players".to_owned(), 3),
        ]
        .into();
        let (compared, problems) = compare_counts(&manifest, &names, &restored);
        assert_eq!(compared, 2);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("avalon.players has 3"), "{problems:?}");

        let (_, problems) = compare_counts(&manifest, &names, &BTreeMap::new());
        assert!(problems.iter().all(|problem| problem.contains("missing")));
    }

    #[test]
    fn scripts_name_the_throwaway_databases_only() {
        let databases = vec!["restoretest_x_avalon".to_owned()];
        assert!(count_script(&databases).contains(r#"["restoretest_x_avalon"]"#));
        let drop = drop_script(&databases);
        assert!(drop.contains("dropDatabase") && drop.contains("restoretest_x_avalon"));
        assert!(!drop.contains("\"avalon\""));
    }
}
