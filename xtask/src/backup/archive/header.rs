//! The small BSON documents that structure an archive: the archive header, the collection metadata
//! entries and the namespace headers. Their fields are read with the `bson` crate's raw API.

use std::io::Read;

use bson::{Document, RawBsonRef, RawDocument};

use super::error::{ArchiveError, Section};
use super::framing::FrameReader;
use super::namespace_name;

/// The magic number 0x8199e26d as it appears on disk (little-endian).
const MAGIC: [u8; 4] = 0x8199_e26d_u32.to_le_bytes();

pub struct ArchiveHeader {
    pub format_version: String,
    pub server_version: Option<String>,
    pub tool_version: Option<String>,
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
        let document =
            RawDocument::from_bytes(bytes).map_err(|error| invalid(error.to_string()))?;
        let format_version = required_str(document, "version")
            .map_err(invalid)?
            .to_owned();
        // Only 0.1 exists; a new major version could change the layout this parser relies on.
        if !format_version.starts_with("0.") {
            return Err(ArchiveError::UnsupportedVersion {
                version: format_version,
            });
        }
        Ok(Self {
            format_version,
            server_version: optional_str(document, "server_version").map_err(invalid)?,
            tool_version: optional_str(document, "tool_version").map_err(invalid)?,
        })
    }
}

/// One collection's entry in the metadata list.
pub struct MetadataEntry {
    pub db: String,
    pub collection: String,
    /// Views and time-series collections have metadata but no data segment under their own name.
    pub metadata_only: bool,
}

impl MetadataEntry {
    pub fn parse(bytes: &[u8], offset: u64) -> Result<Self, ArchiveError> {
        let invalid = |reason: String| ArchiveError::InvalidMetadataEntry { offset, reason };
        let document =
            RawDocument::from_bytes(bytes).map_err(|error| invalid(error.to_string()))?;
        let db = required_str(document, "db").map_err(invalid)?;
        let collection = required_str(document, "collection").map_err(invalid)?;
        let metadata = required_str(document, "metadata").map_err(invalid)?;
        let metadata_only = parse_metadata_json(&namespace_name(db, collection), metadata)?;
        Ok(Self {
            db: db.to_owned(),
            collection: collection.to_owned(),
            metadata_only,
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
        let document =
            RawDocument::from_bytes(bytes).map_err(|error| invalid(error.to_string()))?;
        let db = required_str(document, "db").map_err(invalid)?.to_owned();
        let collection = required_str(document, "collection")
            .map_err(invalid)?
            .to_owned();
        let eof = document
            .get_bool("EOF")
            .map_err(|error| invalid(field_error("EOF", &error)))?;
        let crc = if eof {
            let signed = document
                .get_i64("CRC")
                .map_err(|error| invalid(field_error("CRC", &error)))?;
            // Go stores the unsigned CRC in a BSON int64; the bits are what matter.
            u64::from_le_bytes(signed.to_le_bytes())
        } else {
            0
        };
        Ok(Self {
            db,
            collection,
            eof,
            crc,
        })
    }
}

fn required_str<'a>(document: &'a RawDocument, key: &str) -> Result<&'a str, String> {
    optional_str_ref(document, key)?.ok_or_else(|| format!("field {key:?} is missing"))
}

fn optional_str(document: &RawDocument, key: &str) -> Result<Option<String>, String> {
    Ok(optional_str_ref(document, key)?.map(str::to_owned))
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
