//! The small BSON documents that structure an archive: the archive header, the collection metadata
//! entries and the namespace headers. Each is held to what mongodump writes (mongo-tools
//! `common/archive/archive.go`, a Go struct per document, every field always written): each field
//! present once with its type, no other field, and values a mongodump can produce. No checksum
//! covers these documents, so these rules are what notices damage to them.

use std::io::Read;

use bson::{Document, RawBsonRef, RawDocument};

use super::error::{ArchiveError, Section};
use super::framing::FrameReader;
use super::namespace_name;

/// The magic number 0x8199e26d as it appears on disk (little-endian).
const MAGIC: [u8; 4] = 0x8199_e26d_u32.to_le_bytes();

const HEADER_FIELDS: &[&str] = &[
    "concurrent_collections",
    "version",
    "server_version",
    "tool_version",
];
/// `type` only since mongodump 100.x (time-series support); the rest in every version.
const METADATA_FIELDS: &[&str] = &["db", "collection", "metadata", "size", "type"];
const NAMESPACE_HEADER_FIELDS: &[&str] = &["db", "collection", "EOF", "CRC"];

pub struct ArchiveHeader {
    pub format_version: String,
    pub server_version: String,
    pub tool_version: String,
    /// `--numParallelCollections` of the dump; mongorestore restores at least that many
    /// collections at once.
    pub concurrent_collections: i32,
}

impl ArchiveHeader {
    /// Reads and checks the magic number and the header document.
    pub fn read<R: Read>(frames: &mut FrameReader<R>) -> Result<Self, ArchiveError> {
        let magic = frames.read_array::<4>(&Section::Header)?;
        if magic != MAGIC {
            return Err(ArchiveError::BadMagic { found: magic });
        }
        let bytes = frames.read_document(&Section::Header)?;
        let invalid = |reason: String| ArchiveError::InvalidHeader { reason };
        let document = known_fields(bytes, HEADER_FIELDS).map_err(invalid)?;
        let format_version = required_str(document, "version")
            .map_err(invalid)?
            .to_owned();
        // Only 0.1 exists; a new major version could change the layout this parser relies on.
        if !format_version.starts_with("0.") {
            return Err(ArchiveError::UnsupportedVersion {
                version: format_version,
            });
        }
        let concurrent_collections =
            required_i32(document, "concurrent_collections").map_err(invalid)?;
        if concurrent_collections < 1 {
            return Err(invalid(format!(
                "field \"concurrent_collections\" is {concurrent_collections}; mongodump writes its --numParallelCollections, at least 1"
            )));
        }
        let server_version = required_str(document, "server_version").map_err(invalid)?;
        if !is_server_version(server_version) {
            return Err(invalid(format!(
                "field \"server_version\" is {server_version:?}, not a MongoDB version such as 7.0.14 (mongorestore refuses the archive)"
            )));
        }
        Ok(Self {
            format_version,
            server_version: server_version.to_owned(),
            tool_version: required_str(document, "tool_version")
                .map_err(invalid)?
                .to_owned(),
            concurrent_collections,
        })
    }
}

/// What mongorestore's `db.StrToVersion` accepts: three dot-separated numbers, optionally
/// followed by `-` or `+` and a build suffix ("8.0.0-rc3").
fn is_server_version(text: &str) -> bool {
    let numbers = text.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = numbers.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| {
            (1..=18).contains(&part.len()) && part.bytes().all(|byte| byte.is_ascii_digit())
        })
}

/// One collection's entry in the metadata list.
pub struct MetadataEntry {
    pub db: String,
    pub collection: String,
    /// Views and time-series collections have metadata but no data segment under their own name.
    pub metadata_only: bool,
    /// The `size` field: no mongodump sets it (0), the format describes it as the collection's
    /// total size; either way it is checked against the documents that follow.
    pub size: u64,
}

impl MetadataEntry {
    pub fn parse(bytes: &[u8], offset: u64) -> Result<Self, ArchiveError> {
        let invalid = |reason: String| ArchiveError::InvalidMetadataEntry { offset, reason };
        let document = known_fields(bytes, METADATA_FIELDS).map_err(invalid)?;
        let db = required_str(document, "db").map_err(invalid)?;
        let collection = required_str(document, "collection").map_err(invalid)?;
        check_namespace(db, collection).map_err(invalid)?;
        let metadata = required_str(document, "metadata").map_err(invalid)?;
        let size = required_size(document).map_err(invalid)?;
        optional_str_ref(document, "type").map_err(invalid)?;
        let metadata_only = parse_metadata_json(&namespace_name(db, collection), metadata)?;
        Ok(Self {
            db: db.to_owned(),
            collection: collection.to_owned(),
            metadata_only,
            size,
        })
    }
}

/// Checks that a collection's metadata is Extended JSON — what mongorestore needs to recreate the
/// collection and its indexes — and says whether it describes a metadata-only namespace.
fn parse_metadata_json(namespace: &str, metadata: &str) -> Result<bool, ArchiveError> {
    // mongodump writes an empty string for the oplog, which has no collection options or indexes.
    if metadata.is_empty() {
        return Ok(false);
    }
    let invalid = |reason: String| ArchiveError::InvalidMetadataJson {
        namespace: namespace.to_owned(),
        reason,
    };
    let json: serde_json::Value =
        serde_json::from_str(metadata).map_err(|error| invalid(error.to_string()))?;
    let serde_json::Value::Object(object) = json else {
        return Err(invalid("expected a JSON object".to_owned()));
    };
    let document = Document::try_from(object).map_err(|error| invalid(error.to_string()))?;
    Ok(is_metadata_only(&document))
}

/// Views (newer mongodumps say `"type": "view"`, older ones only have `options.viewOn`) and
/// time-series collections (whose documents are dumped under `system.buckets.<name>`).
fn is_metadata_only(metadata: &Document) -> bool {
    matches!(metadata.get_str("type"), Ok("view" | "timeseries"))
        || metadata
            .get_document("options")
            .is_ok_and(|options| options.contains_key("viewOn"))
}

/// The header that opens every namespace segment.
pub struct NamespaceHeader {
    pub db: String,
    pub collection: String,
    pub eof: bool,
    /// Meaningful only when `eof` is set.
    pub crc: u64,
}

impl NamespaceHeader {
    pub fn parse(bytes: &[u8], offset: u64) -> Result<Self, ArchiveError> {
        let invalid = |reason: String| ArchiveError::InvalidNamespaceHeader { offset, reason };
        let document = known_fields(bytes, NAMESPACE_HEADER_FIELDS).map_err(invalid)?;
        let db = required_str(document, "db").map_err(invalid)?.to_owned();
        let collection = required_str(document, "collection")
            .map_err(invalid)?
            .to_owned();
        check_namespace(&db, &collection).map_err(invalid)?;
        let eof = required(document, "EOF", RawBsonRef::as_bool, "a boolean").map_err(invalid)?;
        let signed = required(document, "CRC", RawBsonRef::as_i64, "an int64").map_err(invalid)?;
        // Go stores the unsigned CRC in a BSON int64; the bits are what matter.
        let crc = u64::from_le_bytes(signed.to_le_bytes());
        // The format says "always 0" for the header of a data segment: anything else is damage.
        if !eof && crc != 0 {
            return Err(invalid(format!(
                "field \"CRC\" of a data segment header is {crc:#018x}; mongodump writes 0 there"
            )));
        }
        Ok(Self {
            db,
            collection,
            eof,
            crc,
        })
    }
}

/// The document, once every field is known to be one of `allowed` and to appear only once.
fn known_fields<'a>(bytes: &'a [u8], allowed: &[&str]) -> Result<&'a RawDocument, String> {
    let document = RawDocument::from_bytes(bytes).map_err(|error| error.to_string())?;
    let mut seen: Vec<&str> = Vec::with_capacity(allowed.len());
    for element in document.iter_elements() {
        let key = element.map_err(|error| error.to_string())?.key().as_str();
        if !allowed.contains(&key) {
            return Err(format!(
                "unexpected field {key:?} (mongodump writes {})",
                allowed.join(", ")
            ));
        }
        if seen.contains(&key) {
            return Err(format!("field {key:?} appears twice"));
        }
        seen.push(key);
    }
    Ok(document)
}

/// mongo-tools keeps the oplog in the archive as collection "oplog" of database "".
fn check_namespace(db: &str, collection: &str) -> Result<(), String> {
    if collection.is_empty() {
        return Err("field \"collection\" is empty".to_owned());
    }
    if db.is_empty() && collection != "oplog" {
        return Err(format!(
            "field \"db\" is empty, which only the oplog has, but the collection is {collection:?}"
        ));
    }
    if db.contains('\0') || collection.contains('\0') {
        return Err("a namespace name contains a NUL character".to_owned());
    }
    Ok(())
}

/// Go's `int` goes into BSON as an int32 when it fits, else as an int64.
fn required_size(document: &RawDocument) -> Result<u64, String> {
    let size = match document
        .get("size")
        .map_err(|error| field_error("size", &error))?
    {
        Some(RawBsonRef::Int32(size)) => i64::from(size),
        Some(RawBsonRef::Int64(size)) => size,
        Some(other) => {
            return Err(format!(
                "field \"size\" is {:?}, not an int32 or int64",
                other.element_type()
            ));
        }
        None => return Err("field \"size\" is missing".to_owned()),
    };
    u64::try_from(size).map_err(|_| format!("field \"size\" is negative ({size})"))
}

fn required_i32(document: &RawDocument, key: &str) -> Result<i32, String> {
    required(document, key, RawBsonRef::as_i32, "an int32")
}

fn required<'a, T>(
    document: &'a RawDocument,
    key: &str,
    read: impl Fn(RawBsonRef<'a>) -> Option<T>,
    expected: &str,
) -> Result<T, String> {
    let value = document
        .get(key)
        .map_err(|error| field_error(key, &error))?
        .ok_or_else(|| format!("field {key:?} is missing"))?;
    let element_type = value.element_type();
    read(value).ok_or_else(|| format!("field {key:?} is {element_type:?}, not {expected}"))
}

fn required_str<'a>(document: &'a RawDocument, key: &str) -> Result<&'a str, String> {
    optional_str_ref(document, key)?.ok_or_else(|| format!("field {key:?} is missing"))
}

fn optional_str_ref<'a>(document: &'a RawDocument, key: &str) -> Result<Option<&'a str>, String> {
    match document
        .get(key)
        .map_err(|error| field_error(key, &error))?
    {
        None => Ok(None),
        Some(RawBsonRef::String(value)) => Ok(Some(value)),
        Some(other) => Err(format!(
            "field {key:?} is {:?}, not a string",
            other.element_type()
        )),
    }
}

fn field_error(key: &str, error: &dyn std::fmt::Display) -> String {
    format!("field {key:?}: {error}")
}
