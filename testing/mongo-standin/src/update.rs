//! Writing documents: update operators ($set, $setOnInsert, $unset, $inc, $push with optional $each),
//! replacement documents, and the document an upsert inserts. Unknown modifiers and pipeline updates
//! are refused, never ignored.

use bson::{Bson, Document, oid::ObjectId};

use crate::error::{Code, CommandError, CommandResult};
use crate::query::{Filter, values_equal};

#[derive(Debug, Clone)]
pub enum Update {
    /// `{$set: {…}, …}`: (operator, field path, operand) in order.
    Operators(Vec<(Operator, String, Bson)>),
    /// A whole new document (its `_id` must match the old one's).
    Replacement(Document),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Set,
    SetOnInsert,
    Unset,
    Inc,
    Push,
}

impl Update {
    pub fn parse(update: &Bson) -> CommandResult<Update> {
        let spec = match update {
            Bson::Document(spec) => spec,
            Bson::Array(_) => {
                return Err(CommandError::bad_value(
                    "the MongoDB stand-in does not support pipeline-style updates",
                ));
            }
            other => {
                return Err(CommandError::new(
                    Code::FailedToParse,
                    format!("update must be an object, got {other}"),
                ));
            }
        };
        let operators = spec.keys().filter(|key| key.starts_with('$')).count();
        if operators == 0 {
            return Ok(Update::Replacement(spec.clone()));
        }
        if operators != spec.len() {
            return Err(CommandError::new(
                Code::FailedToParse,
                "an update document mixes update operators and plain fields",
            ));
        }
        let mut changes = Vec::new();
        for (name, fields) in spec {
            let operator = match name.as_str() {
                "$set" => Operator::Set,
                "$setOnInsert" => Operator::SetOnInsert,
                "$unset" => Operator::Unset,
                "$inc" => Operator::Inc,
                "$push" => Operator::Push,
                other => {
                    return Err(CommandError::new(
                        Code::FailedToParse,
                        format!(
                            "Unknown modifier: {other} (the MongoDB stand-in supports $set $setOnInsert $unset $inc $push)"
                        ),
                    ));
                }
            };
            let Bson::Document(fields) = fields else {
                return Err(CommandError::new(
                    Code::FailedToParse,
                    format!(
                        "Modifiers operate on fields but we found type {} instead",
                        type_name(fields)
                    ),
                ));
            };
            for (path, operand) in fields {
                if operator == Operator::Inc && !is_number(operand) {
                    return Err(CommandError::new(
                        Code::TypeMismatch,
                        format!(
                            "Cannot increment with non-numeric argument: {{{path}: {operand}}}"
                        ),
                    ));
                }
                changes.push((operator, path.clone(), operand.clone()));
            }
        }
        Ok(Update::Operators(changes))
    }

    /// Applies the update to `doc`; `inserting` enables `$setOnInsert`. Returns whether anything changed.
    /// On an error `doc` is left as it was.
    pub fn apply(&self, doc: &mut Document, inserting: bool) -> CommandResult<bool> {
        let mut next = doc.clone();
        match self {
            Update::Replacement(replacement) => {
                let id = doc.get("_id").cloned();
                if let (Some(old), Some(new)) = (&id, replacement.get("_id"))
                    && !values_equal(old, new)
                {
                    return Err(immutable_id());
                }
                next = Document::new();
                if let Some(id) = id.or_else(|| replacement.get("_id").cloned()) {
                    next.insert("_id", id);
                }
                for (key, value) in replacement {
                    if key != "_id" {
                        next.insert(key.clone(), value.clone());
                    }
                }
            }
            Update::Operators(changes) => {
                for (operator, path, operand) in changes {
                    apply_operator(&mut next, *operator, path, operand, inserting)?;
                }
            }
        }
        if let (Some(old), Some(new)) = (doc.get("_id"), next.get("_id"))
            && !values_equal(old, new)
        {
            return Err(immutable_id());
        }
        let changed = next != *doc;
        *doc = next;
        Ok(changed)
    }
}

fn immutable_id() -> CommandError {
    CommandError::new(
        Code::ImmutableField,
        "Performing an update on the path '_id' would modify the immutable field '_id'",
    )
}

fn apply_operator(
    doc: &mut Document,
    operator: Operator,
    path: &str,
    operand: &Bson,
    inserting: bool,
) -> CommandResult<()> {
    match operator {
        Operator::Set => set_path(doc, path, operand.clone()),
        Operator::SetOnInsert if inserting => set_path(doc, path, operand.clone()),
        Operator::SetOnInsert => Ok(()),
        Operator::Unset => {
            unset_path(doc, path);
            Ok(())
        }
        Operator::Inc => {
            let next = match get_path(doc, path) {
                None => operand.clone(),
                Some(current) if is_number(current) => add(current, operand),
                Some(current) => {
                    return Err(CommandError::new(
                        Code::TypeMismatch,
                        format!(
                            "Cannot apply $inc to a value of non-numeric type {}",
                            type_name(current)
                        ),
                    ));
                }
            };
            set_path(doc, path, next)
        }
        Operator::Push => {
            let items = match operand {
                Bson::Document(spec)
                    if spec.keys().next().is_some_and(|key| key.starts_with('$')) =>
                {
                    if spec.len() != 1 || !spec.contains_key("$each") {
                        return Err(CommandError::bad_value(
                            "the MongoDB stand-in supports $push with $each only",
                        ));
                    }
                    match spec.get("$each") {
                        Some(Bson::Array(items)) => items.clone(),
                        _ => {
                            return Err(CommandError::bad_value(
                                "The argument to $each in $push must be an array",
                            ));
                        }
                    }
                }
                single => vec![single.clone()],
            };
            let mut array = match get_path(doc, path) {
                None => Vec::new(),
                Some(Bson::Array(existing)) => existing.clone(),
                Some(other) => {
                    return Err(CommandError::bad_value(format!(
                        "The field '{path}' must be an array but is of type {}",
                        type_name(other)
                    )));
                }
            };
            array.extend(items);
            set_path(doc, path, Bson::Array(array))
        }
    }
}

fn is_number(value: &Bson) -> bool {
    matches!(value, Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))
}

/// MongoDB's widening: int32 + int32 stays int32 unless it overflows; any double makes a double.
fn add(a: &Bson, b: &Bson) -> Bson {
    match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => x
            .checked_add(*y)
            .map_or_else(|| Bson::Int64(i64::from(*x) + i64::from(*y)), Bson::Int32),
        (Bson::Int32(_) | Bson::Int64(_), Bson::Int32(_) | Bson::Int64(_)) => {
            let (x, y) = (as_i64(a), as_i64(b));
            x.checked_add(y)
                .map_or(Bson::Double(as_f64(a) + as_f64(b)), Bson::Int64)
        }
        _ => Bson::Double(as_f64(a) + as_f64(b)),
    }
}

fn as_i64(value: &Bson) -> i64 {
    match value {
        Bson::Int32(v) => i64::from(*v),
        Bson::Int64(v) => *v,
        _ => 0,
    }
}

#[allow(clippy::cast_precision_loss)]
fn as_f64(value: &Bson) -> f64 {
    match value {
        Bson::Int32(v) => f64::from(*v),
        Bson::Int64(v) => *v as f64,
        Bson::Double(v) => *v,
        _ => 0.0,
    }
}

pub fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Decimal128(_) => "decimal",
        _ => "other",
    }
}

fn get_path<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    match path.split_once('.') {
        None => doc.get(path),
        Some((head, rest)) => match doc.get(head)? {
            Bson::Document(inner) => get_path(inner, rest),
            _ => None,
        },
    }
}

/// Sets a dotted path, creating the documents on the way; refuses to step through a non-document.
pub fn set_path(doc: &mut Document, path: &str, value: Bson) -> CommandResult<()> {
    if path.is_empty() || path.split('.').any(str::is_empty) || path.starts_with('$') {
        return Err(CommandError::bad_value(format!(
            "invalid field path `{path}`"
        )));
    }
    match path.split_once('.') {
        None => {
            doc.insert(path, value);
            Ok(())
        }
        Some((head, rest)) => {
            let entry = doc
                .entry(head.to_owned())
                .or_insert_with(|| Bson::Document(Document::new()));
            match entry {
                Bson::Document(inner) => set_path(inner, rest, value),
                other => Err(CommandError::new(
                    Code::BadValue,
                    format!("Cannot create field '{rest}' in element {{{head}: {other}}}"),
                )),
            }
        }
    }
}

fn unset_path(doc: &mut Document, path: &str) {
    match path.split_once('.') {
        None => {
            doc.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Bson::Document(inner)) = doc.get_mut(head) {
                unset_path(inner, rest);
            }
        }
    }
}

/// The document an upsert inserts: the filter's equalities, then the update (with `$setOnInsert`),
/// then an ObjectId `_id` if neither gave one.
pub fn upsert_document(filter: &Filter, update: &Update) -> CommandResult<Document> {
    let mut doc = Document::new();
    let mut equalities = Vec::new();
    filter.equalities(&mut equalities);
    for (path, value) in equalities {
        if !path.starts_with('$') {
            set_path(&mut doc, &path, value)?;
        }
    }
    if let Update::Replacement(replacement) = update {
        let id = doc.get("_id").cloned();
        doc = Document::new();
        if let Some(id) = id {
            doc.insert("_id", id);
        }
        for (key, value) in replacement {
            doc.insert(key.clone(), value.clone());
        }
    } else {
        update.apply(&mut doc, true)?;
    }
    Ok(with_id_first(doc))
}

/// `_id` first (generated when missing), as the server stores it.
pub fn with_id_first(doc: Document) -> Document {
    let mut ordered = Document::new();
    let id = doc
        .get("_id")
        .cloned()
        .unwrap_or_else(|| Bson::ObjectId(ObjectId::new()));
    ordered.insert("_id", id);
    for (key, value) in doc {
        if key != "_id" {
            ordered.insert(key, value);
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn update(spec: Document) -> Update {
        Update::parse(&Bson::Document(spec)).unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn set_on_insert_applies_only_when_inserting() {
        let change =
            update(doc! { "$setOnInsert": { "nickname": "new" }, "$set": { "seen": true } });
        let mut existing = doc! { "_id": 1, "nickname": "old" };
        assert!(change.apply(&mut existing, false).unwrap_or(false));
        assert_eq!(existing, doc! { "_id": 1, "nickname": "old", "seen": true });
        let filter = Filter::parse(&doc! { "openid": "o1" }).unwrap_or_else(|err| panic!("{err}"));
        let inserted = upsert_document(&filter, &change).unwrap_or_default();
        assert_eq!(inserted.get_str("openid").ok(), Some("o1"));
        assert_eq!(inserted.get_str("nickname").ok(), Some("new"));
        assert!(
            matches!(inserted.get("_id"), Some(Bson::ObjectId(_))),
            "{inserted}"
        );
    }

    #[test]
    fn inc_widens_like_the_server_and_refuses_non_numbers() {
        let mut doc = doc! { "_id": 1, "n": i32::MAX, "s": "x" };
        update(doc! { "$inc": { "n": 1, "m": 2 } })
            .apply(&mut doc, false)
            .unwrap_or(false);
        assert_eq!(doc.get("n"), Some(&Bson::Int64(i64::from(i32::MAX) + 1)));
        assert_eq!(doc.get("m"), Some(&Bson::Int32(2)));
        let err = update(doc! { "$inc": { "s": 1 } })
            .apply(&mut doc, false)
            .err();
        assert_eq!(err.map(|err| err.code), Some(Code::TypeMismatch));
    }

    #[test]
    fn unknown_modifiers_and_id_changes_are_refused() {
        assert!(Update::parse(&Bson::Document(doc! { "$rename": { "a": "b" } })).is_err());
        assert!(Update::parse(&Bson::Document(doc! { "$set": { "a": 1 }, "b": 2 })).is_err());
        let mut doc = doc! { "_id": 1 };
        let err = update(doc! { "$set": { "_id": 2 } })
            .apply(&mut doc, false)
            .err();
        assert_eq!(err.map(|err| err.code), Some(Code::ImmutableField));
        let unchanged = update(doc! { "$set": { "_id": 1 } }).apply(&mut doc, false);
        assert_eq!(unchanged, Ok(false));
    }

    #[test]
    fn push_appends_one_value_or_each() {
        let mut doc = doc! { "_id": 1 };
        update(doc! { "$push": { "a": 1 } })
            .apply(&mut doc, false)
            .unwrap_or(false);
        update(doc! { "$push": { "a": { "$each": [2, 3] } } })
            .apply(&mut doc, false)
            .unwrap_or(false);
        assert_eq!(doc, doc! { "_id": 1, "a": [1, 2, 3] });
    }
}
