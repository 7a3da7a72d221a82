//! Reading and writing documents: find/getMore/killCursors, insert, update, delete, findAndModify, count,
//! and aggregate with the stages the driver's countDocuments uses ($match, $sort, $skip, $limit, $project,
//! and a $group on a constant key summing constants).

use bson::{Bson, Document, doc};

use crate::commands::{Command, Session, Shared, number};
use crate::cursor::Batching;
use crate::error::{Code, CommandError, CommandResult};
use crate::query::{Filter, Projection, Sort};
use crate::store::Collection;
use crate::update::{Update, upsert_document};

fn usize_of(value: Option<i64>) -> Option<usize> {
    value.and_then(|n| usize::try_from(n).ok())
}

fn batching(command: &Command, batch_size: Option<i64>) -> CommandResult<Batching> {
    if batch_size.is_some_and(|size| size < 0) {
        return Err(CommandError::bad_value("batchSize must be non-negative"));
    }
    Ok(Batching {
        batch_size: usize_of(batch_size),
        single_batch: command.flag("singleBatch"),
    })
}

/// Matching documents, sorted, skipped and limited (`limit` 0 = no limit; negative = that many, one batch).
fn select(
    collection: Option<&Collection>,
    filter: &Filter,
    sort: &Sort,
    skip: usize,
    limit: Option<usize>,
) -> Vec<Document> {
    let Some(collection) = collection else {
        return Vec::new();
    };
    let mut found: Vec<Document> = collection
        .documents
        .iter()
        .filter(|doc| filter.matches(doc))
        .cloned()
        .collect();
    sort.apply(&mut found);
    found
        .into_iter()
        .skip(skip)
        .take(limit.unwrap_or(usize::MAX))
        .collect()
}

pub fn find(shared: &Shared, session: &Session, command: &Command) -> CommandResult<Document> {
    command.refuse(&[
        "collation",
        "min",
        "max",
        "tailable",
        "awaitData",
        "returnKey",
        "showRecordId",
    ])?;
    let ns = command.ns()?;
    let filter = Filter::parse(command.document("filter")?.unwrap_or(&Document::new()))?;
    let sort = Sort::parse(command.document("sort")?)?;
    let projection = Projection::parse(command.document("projection")?)?;
    let skip = command.count("skip")?.unwrap_or(0);
    let limit = command.count("limit")?.unwrap_or(0);
    if skip < 0 {
        return Err(CommandError::bad_value("skip value must be non-negative"));
    }
    let mut batching = batching(command, command.count("batchSize")?)?;
    if limit < 0 {
        batching.single_batch = true;
    }
    let limit = (limit != 0).then(|| usize::try_from(limit.unsigned_abs()).unwrap_or(usize::MAX));
    let mut state = shared.lock();
    let results: Vec<Document> = select(
        state.store.collection(command.db, command.collection()?),
        &filter,
        &sort,
        usize_of(Some(skip)).unwrap_or(0),
        limit,
    )
    .into_iter()
    .map(|doc| projection.apply(doc))
    .collect();
    Ok(state
        .cursors
        .first_batch(&ns, session.user_name(), results, batching))
}

pub fn get_more(shared: &Shared, session: &Session, command: &Command) -> CommandResult<Document> {
    let id = match command.body.get("getMore") {
        Some(Bson::Int64(id)) => *id,
        _ => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                "getMore's cursor id must be a long",
            ));
        }
    };
    let collection = command.body.get_str("collection").map_err(|_| {
        CommandError::new(Code::TypeMismatch, "getMore needs a `collection` string")
    })?;
    let ns = format!("{}.{collection}", command.db);
    let batch_size = usize_of(command.count("batchSize")?);
    shared
        .lock()
        .cursors
        .get_more(id, &ns, session.user_name(), batch_size)
}

pub fn kill_cursors(shared: &Shared, command: &Command) -> CommandResult<Document> {
    let ns = command.ns()?;
    let ids = command
        .array("cursors")?
        .iter()
        .map(|id| match id {
            Bson::Int64(id) => Ok(*id),
            _ => Err(CommandError::new(
                Code::TypeMismatch,
                "killCursors' cursor ids must be longs",
            )),
        })
        .collect::<CommandResult<Vec<i64>>>()?;
    Ok(shared.lock().cursors.kill(&ns, &ids))
}

fn ordered(command: &Command) -> bool {
    !matches!(command.body.get("ordered"), Some(Bson::Boolean(false)))
}

/// The write commands' reply: `n` and friends, plus `writeErrors` when a statement failed.
fn write_reply(mut reply: Document, errors: Vec<Document>) -> Document {
    if !errors.is_empty() {
        reply.insert("writeErrors", errors);
    }
    reply.insert("ok", 1.0);
    reply
}

fn as_document<'a>(value: &'a Bson, what: &str) -> CommandResult<&'a Document> {
    match value {
        Bson::Document(doc) => Ok(doc),
        _ => Err(CommandError::new(
            Code::TypeMismatch,
            format!("{what} must be an object"),
        )),
    }
}

fn index_i32(index: usize) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

pub fn insert(shared: &Shared, command: &Command) -> CommandResult<Document> {
    let ns = command.ns()?;
    let documents = command.array("documents")?;
    let mut state = shared.lock();
    let collection = state
        .store
        .collection_mut(command.db, command.collection()?);
    let mut inserted = 0;
    let mut errors = Vec::new();
    for (index, doc) in documents.iter().enumerate() {
        let outcome = as_document(doc, "a document to insert").and_then(|doc| {
            if doc.keys().any(|key| key.starts_with('$')) {
                return Err(CommandError::bad_value(
                    "Document can't have $ prefixed field names",
                ));
            }
            collection.insert(&ns, doc.clone())
        });
        match outcome {
            Ok(()) => inserted += 1,
            Err(error) => {
                errors.push(error.write_error(index));
                if ordered(command) {
                    break;
                }
            }
        }
    }
    Ok(write_reply(doc! { "n": inserted }, errors))
}

pub fn update(shared: &Shared, command: &Command) -> CommandResult<Document> {
    let ns = command.ns()?;
    let statements = command.array("updates")?;
    let mut state = shared.lock();
    let collection = state
        .store
        .collection_mut(command.db, command.collection()?);
    let (mut matched, mut modified) = (0u64, 0u64);
    let mut upserted = Vec::new();
    let mut errors = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        let outcome = as_document(statement, "an update statement").and_then(|statement| {
            if let Some(field) = ["arrayFilters", "collation", "c", "sort"]
                .iter()
                .find(|f| statement.contains_key(**f))
            {
                return Err(CommandError::bad_value(format!(
                    "the MongoDB stand-in does not support `{field}` in update"
                )));
            }
            let filter = Filter::parse(
                statement
                    .get_document("q")
                    .map_err(|_| CommandError::bad_value("update statement needs `q`"))?,
            )?;
            let change = Update::parse(
                statement
                    .get("u")
                    .ok_or_else(|| CommandError::bad_value("update statement needs `u`"))?,
            )?;
            let flag = |name: &str| matches!(statement.get(name), Some(Bson::Boolean(true)));
            collection.update(&ns, &filter, &change, flag("multi"), flag("upsert"))
        });
        match outcome {
            Ok(outcome) => {
                matched += outcome.matched;
                modified += outcome.modified;
                if let Some(id) = outcome.upserted_id {
                    upserted.push(doc! { "index": index_i32(index), "_id": id });
                }
            }
            Err(error) => {
                errors.push(error.write_error(index));
                if ordered(command) {
                    break;
                }
            }
        }
    }
    let n = matched + upserted.len() as u64;
    let mut reply = doc! { "n": to_i64(n), "nModified": to_i64(modified) };
    if !upserted.is_empty() {
        reply.insert("upserted", upserted);
    }
    Ok(write_reply(reply, errors))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn delete(shared: &Shared, command: &Command) -> CommandResult<Document> {
    let statements = command.array("deletes")?;
    let mut state = shared.lock();
    let collection = state
        .store
        .collection_mut(command.db, command.collection()?);
    let mut removed = 0;
    let mut errors = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        let outcome = as_document(statement, "a delete statement").and_then(|statement| {
            if statement.contains_key("collation") {
                return Err(CommandError::bad_value(
                    "the MongoDB stand-in does not support `collation` in delete",
                ));
            }
            let filter = Filter::parse(
                statement
                    .get_document("q")
                    .map_err(|_| CommandError::bad_value("delete statement needs `q`"))?,
            )?;
            let limit = number(statement.get("limit"), "delete", "limit")?.unwrap_or(0);
            if limit != 0 && limit != 1 {
                return Err(CommandError::bad_value(
                    "The limit field in delete objects must be 0 or 1",
                ));
            }
            Ok(collection.delete(&filter, limit == 1))
        });
        match outcome {
            Ok(n) => removed += n,
            Err(error) => {
                errors.push(error.write_error(index));
                if ordered(command) {
                    break;
                }
            }
        }
    }
    Ok(write_reply(doc! { "n": to_i64(removed) }, errors))
}

pub fn find_and_modify(shared: &Shared, command: &Command) -> CommandResult<Document> {
    command.refuse(&["collation", "arrayFilters"])?;
    let ns = command.ns()?;
    let filter = Filter::parse(command.document("query")?.unwrap_or(&Document::new()))?;
    let sort = Sort::parse(command.document("sort")?)?;
    let projection = Projection::parse(command.document("fields")?)?;
    let remove = command.flag("remove");
    let return_new = command.flag("new");
    let upsert = command.flag("upsert");
    let change = match (remove, command.body.get("update")) {
        (true, None) => None,
        (false, Some(update)) => Some(Update::parse(update)?),
        (true, Some(_)) => {
            return Err(CommandError::new(
                Code::FailedToParse,
                "Cannot specify both an update and remove=true",
            ));
        }
        (false, None) => {
            return Err(CommandError::new(
                Code::FailedToParse,
                "Either an update or remove=true must be specified",
            ));
        }
    };
    if remove && (upsert || return_new) {
        return Err(CommandError::new(
            Code::FailedToParse,
            "Cannot specify both upsert=true and remove=true, or new=true and remove=true",
        ));
    }
    let mut state = shared.lock();
    let collection = state
        .store
        .collection_mut(command.db, command.collection()?);
    let mut positions = collection.positions(&filter);
    if !sort.is_empty() {
        let mut candidates: Vec<(usize, Document)> = positions
            .iter()
            .map(|at| (*at, collection.documents[*at].clone()))
            .collect();
        sort.apply_by(&mut candidates, |(_, doc)| doc);
        positions = candidates.into_iter().map(|(at, _)| at).collect();
    }
    let found = positions.first().copied();
    let (value, last_error) = match (found, change) {
        (Some(position), None) => {
            let removed = collection.documents.remove(position);
            (Some(removed), doc! { "n": 1 })
        }
        (None, None) => (None, doc! { "n": 0 }),
        (Some(position), Some(change)) => {
            let before = collection.documents[position].clone();
            collection.update_at(&ns, position, &change)?;
            let after = collection.documents[position].clone();
            (
                Some(if return_new { after } else { before }),
                doc! { "n": 1, "updatedExisting": true },
            )
        }
        (None, Some(change)) if upsert => {
            let doc = upsert_document(&filter, &change)?;
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            collection.insert(&ns, doc.clone())?;
            (
                return_new.then_some(doc),
                doc! { "n": 1, "updatedExisting": false, "upserted": id },
            )
        }
        (None, Some(_)) => (None, doc! { "n": 0, "updatedExisting": false }),
    };
    let value = value.map_or(Bson::Null, |doc| Bson::Document(projection.apply(doc)));
    Ok(doc! { "lastErrorObject": last_error, "value": value, "ok": 1.0 })
}

pub fn count(shared: &Shared, command: &Command) -> CommandResult<Document> {
    command.refuse(&["collation", "hint"])?;
    let filter = Filter::parse(command.document("query")?.unwrap_or(&Document::new()))?;
    let skip = usize_of(command.count("skip")?).unwrap_or(0);
    let limit = command
        .count("limit")?
        .filter(|limit| *limit != 0)
        .and_then(|limit| usize::try_from(limit.unsigned_abs()).ok());
    let state = shared.lock();
    let n = select(
        state.store.collection(command.db, command.collection()?),
        &filter,
        &Sort::default(),
        skip,
        limit,
    )
    .len();
    Ok(doc! { "n": to_i64(n as u64), "ok": 1.0 })
}

pub fn aggregate(shared: &Shared, session: &Session, command: &Command) -> CommandResult<Document> {
    command.refuse(&["collation", "explain", "let"])?;
    let ns = command.ns()?;
    let pipeline = command.array("pipeline")?;
    let cursor = command
        .document("cursor")?
        .ok_or_else(|| CommandError::new(Code::FailedToParse, "The 'cursor' option is required"))?;
    let batching = batching(
        command,
        number(cursor.get("batchSize"), "aggregate", "cursor.batchSize")?,
    )?;
    let mut state = shared.lock();
    let mut docs = select(
        state.store.collection(command.db, command.collection()?),
        &Filter::All(Vec::new()),
        &Sort::default(),
        0,
        None,
    );
    for stage in pipeline {
        docs = run_stage(as_document(stage, "a pipeline stage")?, docs)?;
    }
    Ok(state
        .cursors
        .first_batch(&ns, session.user_name(), docs, batching))
}

fn run_stage(stage: &Document, docs: Vec<Document>) -> CommandResult<Vec<Document>> {
    let (name, spec) = match (stage.len(), stage.iter().next()) {
        (1, Some(entry)) => entry,
        _ => {
            return Err(CommandError::bad_value(
                "A pipeline stage specification object must contain exactly one field",
            ));
        }
    };
    let stage_number = |value: &Bson| -> CommandResult<usize> {
        number(Some(value), "aggregate", name)?
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| CommandError::bad_value(format!("{name} needs a non-negative integer")))
    };
    Ok(match name.as_str() {
        "$match" => {
            let filter = Filter::parse(as_document(spec, "$match")?)?;
            docs.into_iter().filter(|doc| filter.matches(doc)).collect()
        }
        "$sort" => {
            let mut docs = docs;
            Sort::parse(Some(as_document(spec, "$sort")?))?.apply(&mut docs);
            docs
        }
        "$skip" => docs.into_iter().skip(stage_number(spec)?).collect(),
        "$limit" => docs.into_iter().take(stage_number(spec)?).collect(),
        "$project" => {
            let projection = Projection::parse(Some(as_document(spec, "$project")?))?;
            docs.into_iter().map(|doc| projection.apply(doc)).collect()
        }
        "$group" => group_constant(as_document(spec, "$group")?, &docs)?,
        other => {
            return Err(CommandError::bad_value(format!(
                "Unrecognized pipeline stage name: '{other}' (the MongoDB stand-in supports $match $sort $skip $limit $project and a constant-key $group with $sum)"
            )));
        }
    })
}

/// `{$group: {_id: <constant>, n: {$sum: <number>}}}` — what countDocuments sends.
fn group_constant(spec: &Document, docs: &[Document]) -> CommandResult<Vec<Document>> {
    let id = spec
        .get("_id")
        .ok_or_else(|| CommandError::bad_value("a group specification must include an _id"))?;
    if matches!(id, Bson::String(text) if text.starts_with('$')) || matches!(id, Bson::Document(_))
    {
        return Err(CommandError::bad_value(
            "the MongoDB stand-in groups by a constant _id only",
        ));
    }
    if docs.is_empty() {
        return Ok(Vec::new());
    }
    let mut group = doc! { "_id": id.clone() };
    for (field, accumulator) in spec.iter().filter(|(field, _)| *field != "_id") {
        let addend = match accumulator {
            Bson::Document(acc) if acc.len() == 1 => match acc.get("$sum") {
                Some(Bson::Int32(n)) => i64::from(*n),
                Some(Bson::Int64(n)) => *n,
                _ => {
                    return Err(CommandError::bad_value(
                        "the MongoDB stand-in supports {$sum: <integer constant>} only",
                    ));
                }
            },
            _ => {
                return Err(CommandError::bad_value(
                    "the MongoDB stand-in supports {$sum: <integer constant>} only",
                ));
            }
        };
        let total = addend.saturating_mul(i64::try_from(docs.len()).unwrap_or(i64::MAX));
        let value = i32::try_from(total).map_or(Bson::Int64(total), Bson::Int32);
        group.insert(field.clone(), value);
    }
    Ok(vec![group])
}
