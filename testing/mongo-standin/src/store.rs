//! The in-memory data: databases → collections → documents in insertion order, with their indexes.
//! Unique indexes (and `_id`) are enforced on every write; other indexes are only remembered (listed,
//! compared on re-creation). TTL (`expireAfterSeconds`) is remembered but never expires anything.
//! Nothing is persisted: a restart starts empty.

use std::collections::BTreeMap;

use bson::{Bson, Document, doc};

use crate::error::{Code, CommandError, CommandResult};
use crate::query::{Filter, lookup, values_equal};
use crate::update::{Update, upsert_document, with_id_first};

#[derive(Debug, Default)]
pub struct Store {
    pub databases: BTreeMap<String, Database>,
}

#[derive(Debug, Default)]
pub struct Database {
    pub collections: BTreeMap<String, Collection>,
}

#[derive(Debug)]
pub struct Collection {
    pub documents: Vec<Document>,
    pub indexes: Vec<Index>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    pub key: Document,
    pub unique: bool,
    /// Every other option as given (`expireAfterSeconds`, `sparse`…), listed back by listIndexes.
    pub options: Document,
}

impl Index {
    fn id_index() -> Index {
        Index {
            name: "_id_".to_owned(),
            key: doc! { "_id": 1 },
            unique: true,
            options: Document::new(),
        }
    }

    /// The index's entry in listIndexes.
    pub fn spec(&self) -> Document {
        let mut spec = doc! { "v": 2, "key": self.key.clone(), "name": &self.name };
        if self.unique && self.name != "_id_" {
            spec.insert("unique", true);
        }
        spec.extend(self.options.clone());
        spec
    }

    fn key_of(&self, doc: &Document) -> Vec<Bson> {
        self.key
            .keys()
            .map(|field| {
                lookup(doc, field)
                    .first()
                    .map_or(Bson::Null, |value| (*value).clone())
            })
            .collect()
    }

    fn same_key(a: &[Bson], b: &[Bson]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values_equal(x, y))
    }
}

impl Default for Collection {
    fn default() -> Collection {
        Collection {
            documents: Vec::new(),
            indexes: vec![Index::id_index()],
        }
    }
}

/// What one write did, for the command's reply.
#[derive(Debug, Default, PartialEq)]
pub struct UpdateOutcome {
    pub matched: u64,
    pub modified: u64,
    pub upserted_id: Option<Bson>,
}

impl Store {
    pub fn collection(&self, db: &str, name: &str) -> Option<&Collection> {
        self.databases.get(db)?.collections.get(name)
    }

    /// The collection, created on first write as on a real server.
    pub fn collection_mut(&mut self, db: &str, name: &str) -> &mut Collection {
        self.databases
            .entry(db.to_owned())
            .or_default()
            .collections
            .entry(name.to_owned())
            .or_default()
    }
}

impl Collection {
    /// Indexes of the documents matching `filter`.
    pub fn positions(&self, filter: &Filter) -> Vec<usize> {
        self.documents
            .iter()
            .enumerate()
            .filter(|(_, doc)| filter.matches(doc))
            .map(|(position, _)| position)
            .collect()
    }

    pub fn insert(&mut self, ns: &str, doc: Document) -> CommandResult<()> {
        let doc = with_id_first(doc);
        self.check_unique(ns, &doc, None)?;
        self.documents.push(doc);
        Ok(())
    }

    /// A document about to be stored at `position` (None = new) must not repeat a unique key.
    fn check_unique(&self, ns: &str, doc: &Document, position: Option<usize>) -> CommandResult<()> {
        for index in self.indexes.iter().filter(|index| index.unique) {
            let key = index.key_of(doc);
            let clash = self.documents.iter().enumerate().any(|(at, other)| {
                Some(at) != position && Index::same_key(&key, &index.key_of(other))
            });
            if clash {
                return Err(duplicate_key(ns, index, &key));
            }
        }
        Ok(())
    }

    /// Applies `update` to the document at `position`; returns whether it changed.
    pub fn update_at(&mut self, ns: &str, position: usize, update: &Update) -> CommandResult<bool> {
        let mut next = self.documents[position].clone();
        let changed = update.apply(&mut next, false)?;
        if changed {
            self.check_unique(ns, &next, Some(position))?;
            self.documents[position] = next;
        }
        Ok(changed)
    }

    /// The update command's semantics for one statement.
    pub fn update(
        &mut self,
        ns: &str,
        filter: &Filter,
        update: &Update,
        multi: bool,
        upsert: bool,
    ) -> CommandResult<UpdateOutcome> {
        if multi && matches!(update, Update::Replacement(_)) {
            return Err(CommandError::new(
                Code::FailedToParse,
                "multi update is not supported for replacement-style update",
            ));
        }
        let mut positions = self.positions(filter);
        if !multi {
            positions.truncate(1);
        }
        let mut outcome = UpdateOutcome::default();
        if positions.is_empty() {
            if upsert {
                let doc = upsert_document(filter, update)?;
                outcome.upserted_id = doc.get("_id").cloned();
                self.insert(ns, doc)?;
            }
            return Ok(outcome);
        }
        for position in positions {
            outcome.matched += 1;
            if self.update_at(ns, position, update)? {
                outcome.modified += 1;
            }
        }
        Ok(outcome)
    }

    pub fn delete(&mut self, filter: &Filter, limit_one: bool) -> u64 {
        let mut positions = self.positions(filter);
        if limit_one {
            positions.truncate(1);
        }
        for position in positions.iter().rev() {
            self.documents.remove(*position);
        }
        positions.len() as u64
    }

    /// createIndexes for one spec: Ok(true) when created, Ok(false) when an identical one exists.
    pub fn create_index(&mut self, ns: &str, spec: &Document) -> CommandResult<bool> {
        let key = match spec.get("key") {
            Some(Bson::Document(key)) if !key.is_empty() => key.clone(),
            _ => {
                return Err(CommandError::bad_value(
                    "index specification needs a non-empty `key` document",
                ));
            }
        };
        let name = spec
            .get_str("name")
            .map_err(|_| CommandError::bad_value("index specification needs a string `name`"))?
            .to_owned();
        let unique = matches!(spec.get("unique"), Some(Bson::Boolean(true)));
        let options: Document = spec
            .iter()
            .filter(|(field, _)| !matches!(field.as_str(), "key" | "name" | "unique" | "v" | "ns"))
            .map(|(field, value)| (field.clone(), value.clone()))
            .collect();
        let index = Index {
            name,
            key,
            unique,
            options,
        };
        if let Some(existing) = self
            .indexes
            .iter()
            .find(|existing| existing.name == index.name)
        {
            if *existing == index || (index.name == "_id_" && existing.key == index.key) {
                return Ok(false);
            }
            return Err(CommandError::new(
                Code::IndexKeySpecsConflict,
                format!(
                    "An existing index has the same name as the requested index. Requested index: {}, existing index: {}",
                    index.spec(),
                    existing.spec()
                ),
            ));
        }
        if let Some(existing) = self
            .indexes
            .iter()
            .find(|existing| existing.key == index.key)
        {
            return Err(CommandError::new(
                Code::IndexOptionsConflict,
                format!(
                    "Index already exists with a different name: {} (requested {})",
                    existing.name, index.name
                ),
            ));
        }
        if index.unique {
            let mut seen: Vec<Vec<Bson>> = Vec::new();
            for doc in &self.documents {
                let key = index.key_of(doc);
                if seen.iter().any(|other| Index::same_key(&key, other)) {
                    return Err(duplicate_key(ns, &index, &key));
                }
                seen.push(key);
            }
        }
        self.indexes.push(index);
        Ok(true)
    }
}

/// E11000 in the server's words, with `keyPattern` and `keyValue` as the driver exposes them.
fn duplicate_key(ns: &str, index: &Index, key: &[Bson]) -> CommandError {
    let key_value: Document = index
        .key
        .keys()
        .zip(key)
        .map(|(field, value)| (field.clone(), value.clone()))
        .collect();
    let shown: Vec<String> = key_value
        .iter()
        .map(|(field, value)| format!("{field}: {value}"))
        .collect();
    let mut error = CommandError::new(
        Code::DuplicateKey,
        format!(
            "E11000 duplicate key error collection: {ns} index: {} dup key: {{ {} }}",
            index.name,
            shown.join(", ")
        ),
    );
    error.extra = doc! { "keyPattern": index.key.clone(), "keyValue": key_value };
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(spec: Document) -> Filter {
        Filter::parse(&spec).unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn unique_indexes_refuse_a_second_document_with_the_same_key() {
        let mut users = Collection::default();
        let spec = doc! { "key": { "openid": 1 }, "name": "openid_1", "unique": true };
        assert_eq!(users.create_index("avalon.users", &spec), Ok(true));
        assert_eq!(
            users.create_index("avalon.users", &spec),
            Ok(false),
            "re-creating is a no-op"
        );
        users
            .insert("avalon.users", doc! { "_id": "u1", "openid": "a" })
            .unwrap_or_default();
        let err = users
            .insert("avalon.users", doc! { "_id": "u2", "openid": "a" })
            .err();
        let err = err.unwrap_or_else(|| panic!("duplicate accepted"));
        assert_eq!(err.code, Code::DuplicateKey);
        assert!(
            err.message
                .contains("index: openid_1 dup key: { openid: \"a\" }"),
            "{}",
            err.message
        );
        let err = users
            .insert("avalon.users", doc! { "_id": "u1", "openid": "b" })
            .err();
        assert_eq!(
            err.map(|err| err.code),
            Some(Code::DuplicateKey),
            "_id is unique too"
        );
        let conflicting = doc! { "key": { "openid": 1 }, "name": "openid_1" };
        assert_eq!(
            users
                .create_index("avalon.users", &conflicting)
                .map_err(|err| err.code),
            Err(Code::IndexKeySpecsConflict)
        );
    }

    #[test]
    fn update_many_counts_matched_and_modified_and_upsert_inserts_once() {
        let mut tokens = Collection::default();
        for (id, family) in [("h1", "fam"), ("h2", "fam"), ("h3", "other")] {
            tokens
                .insert(
                    "t.r",
                    doc! { "_id": id, "family": family, "revoked": false },
                )
                .unwrap_or_default();
        }
        let revoke = Update::parse(&Bson::Document(doc! { "$set": { "revoked": true } }))
            .unwrap_or_else(|err| panic!("{err}"));
        let outcome = tokens.update(
            "t.r",
            &filter(doc! { "family": "fam" }),
            &revoke,
            true,
            false,
        );
        assert_eq!(
            outcome,
            Ok(UpdateOutcome {
                matched: 2,
                modified: 2,
                upserted_id: None
            })
        );
        let again = tokens.update(
            "t.r",
            &filter(doc! { "family": "fam" }),
            &revoke,
            true,
            false,
        );
        assert_eq!(
            again,
            Ok(UpdateOutcome {
                matched: 2,
                modified: 0,
                upserted_id: None
            })
        );
        let upserted = tokens.update("t.r", &filter(doc! { "_id": "h9" }), &revoke, false, true);
        assert_eq!(
            upserted.map(|o| o.upserted_id),
            Ok(Some(Bson::String("h9".to_owned())))
        );
        assert_eq!(tokens.delete(&filter(doc! { "revoked": true }), false), 3);
        assert_eq!(tokens.documents.len(), 1);
    }
}
