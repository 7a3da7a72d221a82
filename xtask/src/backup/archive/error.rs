//! What can be wrong with an archive, each variant naming where (the namespace when there is one)
//! and what mismatched, so a failed verification can be acted on without a hex editor.

use std::fmt;
use std::io;

/// The part of the archive being read when something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    /// The magic number and the header document.
    Header,
    /// The collection metadata documents before the first 0xFFFFFFFF terminator.
    CollectionMetadata,
    /// A namespace header, before its namespace is known.
    NamespaceHeader,
    /// The documents (or EOF segment) of one namespace.
    Namespace(String),
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header => f.write_str("the archive header"),
            Self::CollectionMetadata => f.write_str("the collection metadata"),
            Self::NamespaceHeader => f.write_str("a namespace header"),
            Self::Namespace(name) => write!(f, "namespace {name}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a mongodump archive: expected magic bytes 6d e2 99 81, found {found:02x?}")]
    BadMagic { found: [u8; 4] },

    #[error(
        "archive is truncated in {section} (input ends at byte {offset} of the uncompressed stream)"
    )]
    Truncated { section: Section, offset: u64 },

    #[error("could not read {section} at byte {offset} of the uncompressed stream: {source}")]
    Io {
        section: Section,
        offset: u64,
        #[source]
        source: io::Error,
    },

    #[error(
        "invalid BSON document length {length} in {section} at byte {offset} (must be 5..={max})"
    )]
    BadDocumentLength {
        section: Section,
        offset: u64,
        length: u32,
        max: u32,
    },

    #[error("malformed BSON document in {section} at byte {offset}: {reason}")]
    MalformedDocument {
        section: Section,
        offset: u64,
        reason: String,
    },

    #[error("invalid archive header: {reason}")]
    InvalidHeader { reason: String },

    #[error("unsupported archive format version {version:?} (only 0.x is understood)")]
    UnsupportedVersion { version: String },

    #[error("invalid collection metadata entry at byte {offset}: {reason}")]
    InvalidMetadataEntry { offset: u64, reason: String },

    #[error("collection metadata of namespace {namespace} is not valid Extended JSON: {reason}")]
    InvalidMetadataJson { namespace: String, reason: String },

    #[error("namespace {namespace} appears twice in the collection metadata")]
    DuplicateMetadata { namespace: String },

    #[error("invalid namespace header at byte {offset}: {reason}")]
    InvalidNamespaceHeader { offset: u64, reason: String },

    #[error("namespace {namespace} has a segment after its EOF header (at byte {offset})")]
    DataAfterEof { namespace: String, offset: u64 },

    #[error(
        "the EOF segment of namespace {namespace} holds a document (at byte {offset}); it must be empty"
    )]
    DocumentInEofSegment { namespace: String, offset: u64 },

    #[error("archive ends before the EOF header of namespace {namespace} (truncated)")]
    MissingEof { namespace: String },

    #[error(
        "namespace {namespace} has collection metadata but no data in the archive (truncated?)"
    )]
    MissingData { namespace: String },

    #[error(
        "collection metadata of namespace {namespace} gives size {declared}, but its documents total {actual} bytes (mongodump writes 0 or the total)"
    )]
    SizeMismatch {
        namespace: String,
        declared: u64,
        actual: u64,
    },

    #[error(
        "CRC mismatch in namespace {namespace}: archive says {archive:#018x}, computed {computed:#018x}"
    )]
    CrcMismatch {
        namespace: String,
        archive: u64,
        computed: u64,
    },
}
