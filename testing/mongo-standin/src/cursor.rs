//! Server-side cursors: the first batch goes out with the command, the rest waits here for `getMore`.
//! Batches follow the server's defaults (101 documents first, then as many as fit) and never exceed
//! 16 MiB of documents, so a reply stays under maxMessageSizeBytes.

use std::collections::{HashMap, VecDeque};

use bson::{Bson, Document, doc};

use crate::error::{Code, CommandError, CommandResult};

const DEFAULT_FIRST_BATCH: usize = 101;
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug)]
struct Cursor {
    ns: String,
    owner: Option<String>,
    remaining: VecDeque<Document>,
}

#[derive(Debug, Default)]
pub struct Cursors {
    open: HashMap<i64, Cursor>,
    last_id: i64,
}

/// How a command wants its results batched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Batching {
    pub batch_size: Option<usize>,
    pub single_batch: bool,
}

fn take_batch(remaining: &mut VecDeque<Document>, limit: Option<usize>) -> Vec<Bson> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(next) = remaining.front() {
        if limit.is_some_and(|limit| batch.len() >= limit) {
            break;
        }
        let size = next.to_vec().map_or(0, |encoded| encoded.len());
        if !batch.is_empty() && bytes + size > MAX_BATCH_BYTES {
            break;
        }
        bytes += size;
        if let Some(doc) = remaining.pop_front() {
            batch.push(Bson::Document(doc));
        }
    }
    batch
}

impl Cursors {
    /// The `cursor` reply of find/aggregate/listIndexes/listCollections; opens a cursor for the rest.
    pub fn first_batch(
        &mut self,
        ns: &str,
        owner: Option<&str>,
        results: Vec<Document>,
        batching: Batching,
    ) -> Document {
        let mut remaining: VecDeque<Document> = results.into();
        let batch = take_batch(
            &mut remaining,
            Some(batching.batch_size.unwrap_or(DEFAULT_FIRST_BATCH)),
        );
        let id = if remaining.is_empty() || batching.single_batch {
            0
        } else {
            self.last_id += 1;
            self.open.insert(
                self.last_id,
                Cursor {
                    ns: ns.to_owned(),
                    owner: owner.map(str::to_owned),
                    remaining,
                },
            );
            self.last_id
        };
        doc! { "cursor": { "firstBatch": batch, "id": id, "ns": ns }, "ok": 1.0 }
    }

    pub fn get_more(
        &mut self,
        id: i64,
        ns: &str,
        owner: Option<&str>,
        batch_size: Option<usize>,
    ) -> CommandResult<Document> {
        let cursor = self.open.get_mut(&id).ok_or_else(|| {
            CommandError::new(Code::CursorNotFound, format!("cursor id {id} not found"))
        })?;
        if cursor.ns != ns {
            return Err(CommandError::new(
                Code::Unauthorized,
                format!(
                    "Requested getMore on namespace '{ns}', but cursor belongs to a different namespace {}",
                    cursor.ns
                ),
            ));
        }
        if cursor.owner.as_deref() != owner {
            return Err(CommandError::new(
                Code::Unauthorized,
                format!("cursor id {id} was not created by the authenticated user"),
            ));
        }
        let batch = take_batch(&mut cursor.remaining, batch_size);
        let next_id = if cursor.remaining.is_empty() {
            self.open.remove(&id);
            0
        } else {
            id
        };
        Ok(doc! { "cursor": { "nextBatch": batch, "id": next_id, "ns": ns }, "ok": 1.0 })
    }

    /// killCursors' reply: which of `ids` were open on `ns` (and are now closed).
    pub fn kill(&mut self, ns: &str, ids: &[i64]) -> Document {
        let mut killed = Vec::new();
        let mut not_found = Vec::new();
        for id in ids {
            if self.open.get(id).is_some_and(|cursor| cursor.ns == ns) {
                self.open.remove(id);
                killed.push(*id);
            } else {
                not_found.push(*id);
            }
        }
        doc! {
            "cursorsKilled": killed,
            "cursorsNotFound": not_found,
            "cursorsAlive": [],
            "cursorsUnknown": [],
            "ok": 1.0,
        }
    }

    /// Cursors of a dropped collection or database go with it.
    pub fn forget(&mut self, ns_prefix: &str) {
        self.open.retain(|_, cursor| {
            cursor.ns != ns_prefix && !cursor.ns.starts_with(&format!("{ns_prefix}."))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_beyond_the_first_batch_come_with_get_more_then_the_cursor_closes() {
        let mut cursors = Cursors::default();
        let docs: Vec<Document> = (0..5).map(|n| doc! { "_id": n }).collect();
        let first = cursors.first_batch(
            "db.c",
            None,
            docs,
            Batching {
                batch_size: Some(2),
                single_batch: false,
            },
        );
        let id = first
            .get_document("cursor")
            .and_then(|c| c.get_i64("id"))
            .unwrap_or(0);
        assert_ne!(id, 0);
        let more = cursors
            .get_more(id, "db.c", None, Some(2))
            .unwrap_or_default();
        assert_eq!(
            more.get_document("cursor")
                .and_then(|c| c.get_array("nextBatch"))
                .map(Vec::len)
                .ok(),
            Some(2)
        );
        let last = cursors.get_more(id, "db.c", None, None).unwrap_or_default();
        assert_eq!(
            last.get_document("cursor")
                .and_then(|c| c.get_i64("id"))
                .ok(),
            Some(0)
        );
        let gone = cursors.get_more(id, "db.c", None, None).err();
        assert_eq!(gone.map(|err| err.code), Some(Code::CursorNotFound));
    }
}
