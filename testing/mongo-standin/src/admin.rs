//! Collections, databases and indexes: createIndexes, listIndexes, create, drop, dropDatabase,
//! listCollections, listDatabases.

use bson::{Bson, Document, doc};

use crate::commands::{Command, Session, Shared};
use crate::cursor::Batching;
use crate::error::{Code, CommandError, CommandResult};
use crate::query::Filter;

fn count_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

pub fn create_indexes(shared: &Shared, command: &Command) -> CommandResult<Document> {
    let ns = command.ns()?;
    let specs = command.array("indexes")?;
    if specs.is_empty() {
        return Err(CommandError::bad_value(
            "Must specify at least one index to create",
        ));
    }
    let mut state = shared.lock();
    let existed = state
        .store
        .collection(command.db, command.collection()?)
        .is_some();
    let collection = state
        .store
        .collection_mut(command.db, command.collection()?);
    let before = collection.indexes.clone();
    let mut created = 0;
    for spec in specs {
        let Bson::Document(spec) = spec else {
            collection.indexes = before;
            return Err(CommandError::new(
                Code::TypeMismatch,
                "each index specification must be an object",
            ));
        };
        match collection.create_index(&ns, spec) {
            Ok(true) => created += 1,
            Ok(false) => {}
            Err(error) => {
                // All or nothing, as mongod builds the batch's indexes together.
                collection.indexes = before;
                return Err(error);
            }
        }
    }
    let mut reply = doc! {
        "numIndexesBefore": count_i32(before.len()),
        "numIndexesAfter": count_i32(collection.indexes.len()),
        "createdCollectionAutomatically": !existed,
    };
    if created == 0 {
        reply.insert("note", "all indexes already exist");
    }
    reply.insert("ok", 1.0);
    Ok(reply)
}

fn namespace_not_found(ns: &str) -> CommandError {
    CommandError::new(Code::NamespaceNotFound, format!("ns does not exist: {ns}"))
}

pub fn list_indexes(
    shared: &Shared,
    session: &Session,
    command: &Command,
) -> CommandResult<Document> {
    let ns = command.ns()?;
    let mut state = shared.lock();
    let specs: Vec<Document> = state
        .store
        .collection(command.db, command.collection()?)
        .ok_or_else(|| namespace_not_found(&ns))?
        .indexes
        .iter()
        .map(crate::store::Index::spec)
        .collect();
    let batch_size = crate::commands::number(
        command
            .document("cursor")?
            .and_then(|cursor| cursor.get("batchSize")),
        "listIndexes",
        "cursor.batchSize",
    )?;
    let batching = Batching {
        batch_size: batch_size.and_then(|n| usize::try_from(n).ok()),
        single_batch: false,
    };
    Ok(state
        .cursors
        .first_batch(&ns, session.user_name(), specs, batching))
}

pub fn create(shared: &Shared, command: &Command) -> CommandResult<Document> {
    command.refuse(&[
        "capped",
        "timeseries",
        "validator",
        "viewOn",
        "clusteredIndex",
        "collation",
    ])?;
    let ns = command.ns()?;
    let mut state = shared.lock();
    if state
        .store
        .collection(command.db, command.collection()?)
        .is_some()
    {
        return Err(CommandError::new(
            Code::NamespaceExists,
            format!("Collection {ns} already exists."),
        ));
    }
    state
        .store
        .collection_mut(command.db, command.collection()?);
    Ok(doc! { "ok": 1.0 })
}

pub fn drop(shared: &Shared, command: &Command) -> CommandResult<Document> {
    let ns = command.ns()?;
    let mut state = shared.lock();
    let dropped = state
        .store
        .databases
        .get_mut(command.db)
        .and_then(|db| db.collections.remove(command.collection().ok()?));
    state.cursors.forget(&ns);
    // MongoDB 7.0 answers ok for a collection that does not exist.
    Ok(match dropped {
        Some(collection) => {
            doc! { "nIndexesWas": count_i32(collection.indexes.len()), "ns": ns, "ok": 1.0 }
        }
        None => doc! { "ok": 1.0 },
    })
}

pub fn drop_database(shared: &Shared, command: &Command) -> CommandResult<Document> {
    let mut state = shared.lock();
    state.store.databases.remove(command.db);
    state.cursors.forget(command.db);
    Ok(doc! { "ok": 1.0 })
}

pub fn list_collections(
    shared: &Shared,
    session: &Session,
    command: &Command,
) -> CommandResult<Document> {
    let filter = Filter::parse(command.document("filter")?.unwrap_or(&Document::new()))?;
    let name_only = command.flag("nameOnly");
    let mut state = shared.lock();
    let entries: Vec<Document> = state
        .store
        .databases
        .get(command.db)
        .map(|db| {
            db.collections
                .keys()
                .map(|name| {
                    if name_only {
                        doc! { "name": name, "type": "collection" }
                    } else {
                        doc! {
                            "name": name,
                            "type": "collection",
                            "options": {},
                            "info": { "readOnly": false },
                            "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" },
                        }
                    }
                })
                .filter(|entry| filter.matches(entry))
                .collect()
        })
        .unwrap_or_default();
    let ns = format!("{}.$cmd.listCollections", command.db);
    Ok(state
        .cursors
        .first_batch(&ns, session.user_name(), entries, Batching::default()))
}

pub fn list_databases(shared: &Shared, command: &Command) -> CommandResult<Document> {
    if command.db != "admin" {
        return Err(CommandError::new(
            Code::Unauthorized,
            "listDatabases may only be run against the admin database.",
        ));
    }
    let state = shared.lock();
    let databases: Vec<Document> = state
        .store
        .databases
        .iter()
        .map(|(name, db)| doc! { "name": name, "sizeOnDisk": 0_i64, "empty": db.collections.is_empty() })
        .collect();
    Ok(doc! { "databases": databases, "totalSize": 0_i64, "totalSizeMb": 0_i64, "ok": 1.0 })
}
