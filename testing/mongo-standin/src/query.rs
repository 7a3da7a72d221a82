//! Reading documents: MongoDB's value order, filter matching, sort and projection — the subset the API's
//! store and the driver use (equality with array membership, $eq/$ne/$gt/$gte/$lt/$lte/$in/$nin/$exists,
//! $and/$or/$nor). Any other operator is refused with BadValue, never ignored.

use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::error::{CommandError, CommandResult};

/// MongoDB's canonical order of BSON types (numbers compare with each other, whatever their width).
fn type_rank(value: &Bson) -> u8 {
    match value {
        Bson::MinKey => 0,
        Bson::Null | Bson::Undefined => 1,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 2,
        Bson::String(_) | Bson::Symbol(_) => 3,
        Bson::Document(_) => 4,
        Bson::Array(_) => 5,
        Bson::Binary(_) => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Timestamp(_) => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::JavaScriptCodeWithScope(_) => 14,
        Bson::MaxKey => 15,
    }
}

/// Total order of two values as MongoDB sorts them.
pub fn compare(a: &Bson, b: &Bson) -> Ordering {
    let (rank_a, rank_b) = (type_rank(a), type_rank(b));
    if rank_a != rank_b {
        return rank_a.cmp(&rank_b);
    }
    match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => x.cmp(y),
        (Bson::Int64(x), Bson::Int64(y)) => x.cmp(y),
        (Bson::Int32(x), Bson::Int64(y)) => i64::from(*x).cmp(y),
        (Bson::Int64(x), Bson::Int32(y)) => x.cmp(&i64::from(*y)),
        (x, y) if rank_a == 2 => compare_f64(as_f64(x), as_f64(y)),
        (Bson::String(x), Bson::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bson::Symbol(x) | Bson::String(x), Bson::Symbol(y) | Bson::String(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Bson::Document(x), Bson::Document(y)) => compare_documents(x, y),
        (Bson::Array(x), Bson::Array(y)) => compare_sequences(x.iter(), y.iter()),
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then(u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then(x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => {
            (x.pattern.as_str(), x.options.as_str()).cmp(&(y.pattern.as_str(), y.options.as_str()))
        }
        // Null/Undefined, MinKey, MaxKey: one value each. Code types: by text.
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

fn as_f64(value: &Bson) -> f64 {
    match value {
        Bson::Int32(v) => f64::from(*v),
        #[allow(clippy::cast_precision_loss)]
        Bson::Int64(v) => *v as f64,
        Bson::Double(v) => *v,
        Bson::Decimal128(v) => v.to_string().parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// NaN sorts below every other number, as in MongoDB.
fn compare_f64(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

fn compare_documents(x: &Document, y: &Document) -> Ordering {
    let mut left = x.iter();
    let mut right = y.iter();
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((key_a, a)), Some((key_b, b))) => {
                let order = type_rank(a)
                    .cmp(&type_rank(b))
                    .then_with(|| key_a.as_bytes().cmp(key_b.as_bytes()))
                    .then_with(|| compare(a, b));
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

fn compare_sequences<'a>(
    mut x: impl Iterator<Item = &'a Bson>,
    mut y: impl Iterator<Item = &'a Bson>,
) -> Ordering {
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) => {
                let order = compare(a, b);
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

pub fn values_equal(a: &Bson, b: &Bson) -> bool {
    compare(a, b) == Ordering::Equal
}

/// The values a dotted path reaches in `doc`; a path through an array reaches into each of its documents.
/// An empty result means the field is missing.
pub fn lookup<'a>(doc: &'a Document, path: &str) -> Vec<&'a Bson> {
    let mut found = Vec::new();
    lookup_into(doc, path, &mut found);
    found
}

fn lookup_into<'a>(doc: &'a Document, path: &str, found: &mut Vec<&'a Bson>) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let Some(value) = doc.get(head) else {
        return;
    };
    match rest {
        None => found.push(value),
        Some(rest) => match value {
            Bson::Document(inner) => lookup_into(inner, rest, found),
            Bson::Array(items) => {
                for item in items {
                    if let Bson::Document(inner) = item {
                        lookup_into(inner, rest, found);
                    }
                }
            }
            _ => {}
        },
    }
}

/// A parsed filter, checked once before any document is read (so a bad operator fails even on an
/// empty collection, as on a real server).
#[derive(Debug, Clone)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    None(Vec<Filter>),
    Field(String, Vec<Condition>),
}

#[derive(Debug, Clone)]
pub enum Condition {
    Eq(Bson),
    Ne(Bson),
    Cmp(Ordering, bool, Bson),
    In(Vec<Bson>),
    Nin(Vec<Bson>),
    Exists(bool),
}

impl Filter {
    pub fn parse(filter: &Document) -> CommandResult<Filter> {
        let mut parts = Vec::new();
        for (key, value) in filter {
            parts.push(match key.as_str() {
                "$and" => Filter::All(parse_list(key, value)?),
                "$or" => Filter::Any(parse_list(key, value)?),
                "$nor" => Filter::None(parse_list(key, value)?),
                other if other.starts_with('$') => {
                    return Err(CommandError::bad_value(format!(
                        "unknown top level operator: {other}"
                    )));
                }
                field => Filter::Field(field.to_owned(), parse_conditions(value)?),
            });
        }
        Ok(Filter::All(parts))
    }

    pub fn matches(&self, doc: &Document) -> bool {
        match self {
            Filter::All(parts) => parts.iter().all(|part| part.matches(doc)),
            Filter::Any(parts) => parts.iter().any(|part| part.matches(doc)),
            Filter::None(parts) => !parts.iter().any(|part| part.matches(doc)),
            Filter::Field(path, conditions) => {
                let values = lookup(doc, path);
                conditions
                    .iter()
                    .all(|condition| condition.matches(&values))
            }
        }
    }

    /// The fields an upsert copies from its filter: plain equalities, also inside `$and`.
    pub fn equalities(&self, into: &mut Vec<(String, Bson)>) {
        match self {
            Filter::All(parts) => parts.iter().for_each(|part| part.equalities(into)),
            Filter::Field(path, conditions) => {
                for condition in conditions {
                    if let Condition::Eq(value) = condition {
                        into.push((path.clone(), value.clone()));
                    }
                }
            }
            Filter::Any(_) | Filter::None(_) => {}
        }
    }
}

fn parse_list(operator: &str, value: &Bson) -> CommandResult<Vec<Filter>> {
    let Bson::Array(items) = value else {
        return Err(CommandError::bad_value(format!(
            "{operator} must be an array"
        )));
    };
    if items.is_empty() {
        return Err(CommandError::bad_value(format!(
            "{operator} argument must be a non-empty array"
        )));
    }
    items
        .iter()
        .map(|item| match item {
            Bson::Document(inner) => Filter::parse(inner),
            _ => Err(CommandError::bad_value(format!(
                "{operator} argument's entries must be objects"
            ))),
        })
        .collect()
}

fn parse_conditions(value: &Bson) -> CommandResult<Vec<Condition>> {
    let Bson::Document(spec) = value else {
        return Ok(vec![Condition::Eq(value.clone())]);
    };
    if !spec.keys().next().is_some_and(|key| key.starts_with('$')) {
        return Ok(vec![Condition::Eq(value.clone())]);
    }
    spec.iter()
        .map(|(operator, operand)| {
            Ok(match operator.as_str() {
                "$eq" => Condition::Eq(operand.clone()),
                "$ne" => Condition::Ne(operand.clone()),
                "$gt" => Condition::Cmp(Ordering::Greater, false, operand.clone()),
                "$gte" => Condition::Cmp(Ordering::Greater, true, operand.clone()),
                "$lt" => Condition::Cmp(Ordering::Less, false, operand.clone()),
                "$lte" => Condition::Cmp(Ordering::Less, true, operand.clone()),
                "$in" | "$nin" => {
                    let Bson::Array(items) = operand else {
                        return Err(CommandError::bad_value(format!("{operator} needs an array")));
                    };
                    if operator == "$in" {
                        Condition::In(items.clone())
                    } else {
                        Condition::Nin(items.clone())
                    }
                }
                "$exists" => Condition::Exists(truthy(operand)),
                other => {
                    return Err(CommandError::bad_value(format!(
                        "unknown operator: {other} (the MongoDB stand-in supports $eq $ne $gt $gte $lt $lte $in $nin $exists)"
                    )));
                }
            })
        })
        .collect()
}

fn truthy(value: &Bson) -> bool {
    match value {
        Bson::Boolean(flag) => *flag,
        Bson::Null | Bson::Undefined => false,
        Bson::Int32(n) => *n != 0,
        Bson::Int64(n) => *n != 0,
        Bson::Double(n) => *n != 0.0,
        _ => true,
    }
}

impl Condition {
    fn matches(&self, values: &[&Bson]) -> bool {
        match self {
            Condition::Eq(wanted) => equals_any(values, wanted),
            Condition::Ne(unwanted) => !equals_any(values, unwanted),
            Condition::Cmp(direction, inclusive, bound) => candidates(values).any(|value| {
                type_rank(value) == type_rank(bound) && {
                    let order = compare(value, bound);
                    order == *direction || (*inclusive && order == Ordering::Equal)
                }
            }),
            Condition::In(options) => options.iter().any(|option| equals_any(values, option)),
            Condition::Nin(options) => !options.iter().any(|option| equals_any(values, option)),
            Condition::Exists(wanted) => values.is_empty() != *wanted,
        }
    }
}

/// Each value itself and, for an array, each of its elements (MongoDB's implicit array traversal).
fn candidates<'a>(values: &'a [&'a Bson]) -> impl Iterator<Item = &'a Bson> + 'a {
    values.iter().flat_map(|value| {
        let elements: &[Bson] = match value {
            Bson::Array(items) => items,
            _ => &[],
        };
        std::iter::once(*value).chain(elements.iter())
    })
}

/// `{field: null}` also matches a missing field.
fn equals_any(values: &[&Bson], wanted: &Bson) -> bool {
    if matches!(wanted, Bson::Null) && values.is_empty() {
        return true;
    }
    candidates(values).any(|value| values_equal(value, wanted))
}

/// A parsed sort specification: fields with direction (+1/-1).
#[derive(Debug, Clone, Default)]
pub struct Sort(Vec<(String, bool)>);

impl Sort {
    pub fn parse(spec: Option<&Document>) -> CommandResult<Sort> {
        let Some(spec) = spec else {
            return Ok(Sort::default());
        };
        spec.iter()
            .map(|(field, direction)| match direction {
                Bson::Int32(1) | Bson::Int64(1) => Ok((field.clone(), true)),
                Bson::Int32(-1) | Bson::Int64(-1) => Ok((field.clone(), false)),
                Bson::Double(d) if *d == 1.0 => Ok((field.clone(), true)),
                Bson::Double(d) if *d == -1.0 => Ok((field.clone(), false)),
                other => Err(CommandError::bad_value(format!(
                    "$sort key ordering must be 1 (for ascending) or -1 (for descending), got {other} for `{field}`"
                ))),
            })
            .collect::<CommandResult<_>>()
            .map(Sort)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn apply(&self, docs: &mut [Document]) {
        self.apply_by(docs, |doc| doc);
    }

    /// Sorts items by the document `key` gives for each (stable: equal keys keep their order).
    pub fn apply_by<T>(&self, items: &mut [T], key: impl Fn(&T) -> &Document) {
        if self.0.is_empty() {
            return;
        }
        items.sort_by(|a, b| {
            let (a, b) = (key(a), key(b));
            for (field, ascending) in &self.0 {
                let order = compare(
                    &sort_key(a, field, *ascending),
                    &sort_key(b, field, *ascending),
                );
                let order = if *ascending { order } else { order.reverse() };
                if order != Ordering::Equal {
                    return order;
                }
            }
            Ordering::Equal
        });
    }
}

/// A missing field sorts as null; an array by its smallest element ascending, its largest descending.
fn sort_key(doc: &Document, field: &str, ascending: bool) -> Bson {
    let values = lookup(doc, field);
    let elements = values.iter().flat_map(|value| match value {
        Bson::Array(items) if !items.is_empty() => items.iter().collect::<Vec<_>>(),
        other => vec![*other],
    });
    let chosen = if ascending {
        elements.min_by(|a, b| compare(a, b))
    } else {
        elements.max_by(|a, b| compare(a, b))
    };
    chosen.cloned().unwrap_or(Bson::Null)
}

/// Top-level inclusion (`{a: 1}`) or exclusion (`{a: 0}`) projection; `_id` is kept unless excluded.
#[derive(Debug, Clone)]
pub enum Projection {
    Everything,
    Include(Vec<String>, bool),
    Exclude(Vec<String>),
}

impl Projection {
    pub fn parse(spec: Option<&Document>) -> CommandResult<Projection> {
        let Some(spec) = spec.filter(|spec| !spec.is_empty()) else {
            return Ok(Projection::Everything);
        };
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        let mut keep_id = true;
        for (field, value) in spec {
            if field.contains('.') || field.starts_with('$') {
                return Err(CommandError::bad_value(format!(
                    "the MongoDB stand-in projects top-level fields only, not `{field}`"
                )));
            }
            let on = match value {
                Bson::Boolean(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => {
                    truthy(value)
                }
                other => {
                    return Err(CommandError::bad_value(format!(
                        "the MongoDB stand-in supports 0/1 projections only, not {other} for `{field}`"
                    )));
                }
            };
            if field == "_id" {
                keep_id = on;
            } else if on {
                include.push(field.clone());
            } else {
                exclude.push(field.clone());
            }
        }
        match (include.is_empty(), exclude.is_empty()) {
            (false, false) => Err(CommandError::new(
                crate::error::Code::BadValue,
                "Cannot do exclusion on a field in inclusion projection",
            )),
            (false, true) => Ok(Projection::Include(include, keep_id)),
            (true, _) if keep_id => Ok(Projection::Exclude(exclude)),
            (true, _) => {
                exclude.push("_id".to_owned());
                Ok(Projection::Exclude(exclude))
            }
        }
    }

    pub fn apply(&self, doc: Document) -> Document {
        match self {
            Projection::Everything => doc,
            Projection::Include(fields, keep_id) => doc
                .into_iter()
                .filter(|(key, _)| (key == "_id" && *keep_id) || fields.contains(key))
                .collect(),
            Projection::Exclude(fields) => doc
                .into_iter()
                .filter(|(key, _)| !fields.contains(key))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn matches(filter: Document, doc: Document) -> bool {
        Filter::parse(&filter)
            .unwrap_or_else(|err| panic!("{err}"))
            .matches(&doc)
    }

    #[test]
    fn equality_reaches_into_arrays_and_numbers_compare_across_widths() {
        let game = doc! { "player_ids": ["me", "a"], "finished_at_ms": 5_i64 };
        assert!(matches(doc! { "player_ids": "me" }, game.clone()));
        assert!(!matches(doc! { "player_ids": "zz" }, game.clone()));
        assert!(matches(doc! { "finished_at_ms": 5 }, game.clone()));
        assert!(matches(doc! { "finished_at_ms": 5.0 }, game.clone()));
        assert!(matches(doc! { "missing": null }, game));
    }

    #[test]
    fn range_operators_only_compare_within_a_type() {
        let doc = doc! { "n": 3, "s": "b" };
        assert!(matches(
            doc! { "n": { "$lt": 4_i64, "$gte": 3 } },
            doc.clone()
        ));
        assert!(!matches(doc! { "n": { "$gt": 3 } }, doc.clone()));
        assert!(
            !matches(doc! { "n": { "$lt": "z" } }, doc.clone()),
            "a string bound never matches a number"
        );
        assert!(matches(doc! { "s": { "$gt": "a" } }, doc.clone()));
        assert!(matches(
            doc! { "$or": [{ "n": 1 }, { "s": "b" }] },
            doc.clone()
        ));
        assert!(!matches(doc! { "$nor": [{ "n": 3 }] }, doc.clone()));
        assert!(matches(
            doc! { "n": { "$in": [1, 3] }, "x": { "$exists": false } },
            doc
        ));
    }

    #[test]
    fn an_unknown_operator_is_refused_not_ignored() {
        let err = Filter::parse(&doc! { "n": { "$regex": "a" } }).err();
        assert!(err.is_some_and(|err| err.message.contains("$regex")));
        assert!(Filter::parse(&doc! { "$where": "1" }).is_err());
    }

    #[test]
    fn sort_orders_by_each_key_in_turn() {
        let mut docs = vec![
            doc! { "_id": "g1", "at": 1 },
            doc! { "_id": "g2b", "at": 2 },
            doc! { "_id": "g2a", "at": 2 },
            doc! { "_id": "g4", "at": 4 },
        ];
        Sort::parse(Some(&doc! { "at": -1, "_id": 1 }))
            .unwrap_or_default()
            .apply(&mut docs);
        let ids: Vec<&str> = docs.iter().filter_map(|d| d.get_str("_id").ok()).collect();
        assert_eq!(ids, ["g4", "g2a", "g2b", "g1"]);
    }

    #[test]
    fn projection_keeps_or_drops_top_level_fields() {
        let doc = doc! { "_id": 1, "a": 2, "b": 3 };
        let include = Projection::parse(Some(&doc! { "a": 1 })).unwrap_or(Projection::Everything);
        assert_eq!(include.apply(doc.clone()), doc! { "_id": 1, "a": 2 });
        let exclude =
            Projection::parse(Some(&doc! { "a": 0, "_id": 0 })).unwrap_or(Projection::Everything);
        assert_eq!(exclude.apply(doc), doc! { "b": 3 });
        assert!(Projection::parse(Some(&doc! { "a": 1, "b": 0 })).is_err());
    }
}
