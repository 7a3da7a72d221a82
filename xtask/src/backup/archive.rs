//! Offline verification of `mongodump --archive [--gzip]` output, streaming over any `Read`.
//!
//! Layout (mongo-tools `common/archive/spec.md`, confirmed against the fixtures): the magic
//! 0x8199e26d, a header document, one metadata document per collection, a 0xFFFFFFFF terminator,
//! then namespace segments until the end of the stream. A segment is a namespace header
//! `{db, collection, EOF: bool, CRC: int64}`, that namespace's documents and a terminator; the
//! last segment of each namespace has `EOF: true`, no documents, and the CRC of all its documents.
//!
//! Every document is decoded strictly (`strict_bson`: types, lengths, terminators, UTF-8, nested
//! documents), and every structural document is held to the fields mongodump writes (`header`).
//! Each byte is then covered by something: document bytes by the namespace CRC, the CRC fields by
//! the computed CRC (or by "always 0" in data segment headers), metadata `size` fields by the
//! documents that follow, the rest by strict decoding and the structure. The exception is the
//! header's `concurrent_collections`, repeated nowhere, so checked only for range and reported.

mod error;
mod framing;
mod header;
mod strict_bson;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::{self, BufReader, Read};

use crc::{CRC_64_XZ, Crc, Digest, Table};
use flate2::read::MultiGzDecoder;
use serde::{Serialize, Serializer};

pub use error::{ArchiveError, Section};
use framing::{Frame, FrameReader};
use header::{ArchiveHeader, MetadataEntry, NamespaceHeader};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Large enough that reading small documents does not turn into one system call each.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// mongodump uses Go's `hash/crc64` with the ECMA table, whose `Update` inverts the register before
/// and after: that is the reflected CRC-64/XZ, not the non-reflected CRC-64/ECMA-182 of the
/// catalogue. The fixtures' EOF headers match this one.
static NAMESPACE_CRC: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_XZ);

/// What a structurally sound archive contains.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    /// The archive format version from the header ("0.1" for every mongodump so far).
    pub format_version: String,
    pub server_version: Option<String>,
    pub tool_version: Option<String>,
    /// `--numParallelCollections` of the dump, which mongorestore takes as its minimum.
    pub concurrent_collections: i32,
    /// Whether the input was gzip-compressed (`mongodump --gzip`).
    pub gzip: bool,
    /// Length of the archive after decompression.
    pub uncompressed_bytes: u64,
    /// In the order the archive first names them.
    pub namespaces: Vec<NamespaceReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NamespaceReport {
    pub db: String,
    pub collection: String,
    pub documents: u64,
    /// Total length of the namespace's BSON documents.
    pub bytes: u64,
    /// The CRC from the namespace's EOF header; `None` for a view or time-series collection, whose
    /// metadata mongodump writes without a data segment of its own.
    #[serde(serialize_with = "serialize_optional_crc")]
    pub archive_crc: Option<u64>,
    #[serde(serialize_with = "serialize_crc")]
    pub computed_crc: u64,
    pub crc_ok: bool,
    /// Whether the namespace had an entry in the collection metadata.
    pub has_metadata: bool,
}

impl NamespaceReport {
    pub fn name(&self) -> String {
        namespace_name(&self.db, &self.collection)
    }
}

impl ArchiveReport {
    /// One error per namespace whose computed CRC differs from its EOF header's.
    pub fn crc_mismatches(&self) -> impl Iterator<Item = ArchiveError> + '_ {
        self.namespaces
            .iter()
            .filter(|namespace| !namespace.crc_ok)
            .map(|namespace| ArchiveError::CrcMismatch {
                namespace: namespace.name(),
                archive: namespace.archive_crc.unwrap_or_default(),
                computed: namespace.computed_crc,
            })
    }

    pub fn total_documents(&self) -> u64 {
        self.namespaces
            .iter()
            .map(|namespace| namespace.documents)
            .sum()
    }
}

/// Reads a whole archive and fails on structural problems; CRC mismatches are only recorded
/// (`crc_ok: false`), so a caller can report every damaged namespace at once.
pub fn scan_archive<R: Read>(input: R) -> Result<ArchiveReport, ArchiveError> {
    let (decoded, gzip) = decompress_if_gzip(input)?;
    let mut frames = FrameReader::new(BufReader::with_capacity(READ_BUFFER_BYTES, decoded));
    let header = ArchiveHeader::read(&mut frames)?;
    let mut namespaces = Namespaces::default();
    read_collection_metadata(&mut frames, &mut namespaces)?;
    read_namespace_segments(&mut frames, &mut namespaces)?;
    Ok(ArchiveReport {
        format_version: header.format_version,
        server_version: Some(header.server_version),
        tool_version: Some(header.tool_version),
        concurrent_collections: header.concurrent_collections,
        gzip,
        uncompressed_bytes: frames.offset(),
        namespaces: namespaces.finish()?,
    })
}

/// How mongo-tools prints a namespace; the oplog's has an empty database name.
pub fn namespace_name(db: &str, collection: &str) -> String {
    if db.is_empty() {
        collection.to_owned()
    } else {
        format!("{db}.{collection}")
    }
}

/// The input with the bytes peeked at for the gzip magic put back in front.
type Unpeeked<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

enum Decoded<R: Read> {
    Plain(R),
    Gzip(MultiGzDecoder<R>),
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(input) => input.read(buf),
            Self::Gzip(input) => input.read(buf),
        }
    }
}

/// Peeks at the first two bytes and gunzips when they are the gzip magic. `MultiGzDecoder`
/// because a gzip file may hold several members and a single-member decoder would stop early.
fn decompress_if_gzip<R: Read>(mut input: R) -> Result<(Decoded<Unpeeked<R>>, bool), ArchiveError> {
    let mut prefix = Vec::with_capacity(GZIP_MAGIC.len());
    (&mut input)
        .take(GZIP_MAGIC.len() as u64)
        .read_to_end(&mut prefix)
        .map_err(|source| ArchiveError::Io {
            section: Section::Header,
            offset: 0,
            source,
        })?;
    let gzip = prefix == GZIP_MAGIC;
    let stream = io::Cursor::new(prefix).chain(input);
    let decoded = if gzip {
        Decoded::Gzip(MultiGzDecoder::new(stream))
    } else {
        Decoded::Plain(stream)
    };
    Ok((decoded, gzip))
}

fn read_collection_metadata<R: Read>(
    frames: &mut FrameReader<R>,
    namespaces: &mut Namespaces,
) -> Result<(), ArchiveError> {
    loop {
        let offset = frames.offset();
        let entry = match frames.read_frame(&Section::CollectionMetadata)? {
            Frame::Terminator => return Ok(()),
            Frame::Document(document) => MetadataEntry::parse(document, offset)?,
        };
        namespaces.add_metadata(entry)?;
    }
}

fn read_namespace_segments<R: Read>(
    frames: &mut FrameReader<R>,
    namespaces: &mut Namespaces,
) -> Result<(), ArchiveError> {
    loop {
        let offset = frames.offset();
        // The stream may only end here, between segments; whether every namespace got its EOF
        // header is checked once the stream is done.
        let Some(word) = frames.read_word_or_end(&Section::NamespaceHeader)? else {
            return Ok(());
        };
        let header = match frames.frame_from_word(word, &Section::NamespaceHeader)? {
            Frame::Document(document) => NamespaceHeader::parse(document, offset)?,
            Frame::Terminator => {
                return Err(ArchiveError::InvalidNamespaceHeader {
                    offset,
                    reason: "found a 0xFFFFFFFF terminator where a namespace header belongs"
                        .to_owned(),
                });
            }
        };
        let namespace = namespaces.segment(&header.db, &header.collection);
        if namespace.archive_crc.is_some() {
            return Err(ArchiveError::DataAfterEof {
                namespace: namespace.name.clone(),
                offset,
            });
        }
        let section = Section::Namespace(namespace.name.clone());
        if header.eof {
            namespace.archive_crc = Some(header.crc);
            let offset = frames.offset();
            if let Frame::Document(_) = frames.read_frame(&section)? {
                return Err(ArchiveError::DocumentInEofSegment {
                    namespace: namespace.name.clone(),
                    offset,
                });
            }
            continue;
        }
        while let Frame::Document(document) = frames.read_frame(&section)? {
            namespace.add_document(document);
        }
    }
}

/// Running state of one namespace while the archive streams past.
struct NamespaceState {
    db: String,
    collection: String,
    name: String,
    has_metadata: bool,
    /// Views and time-series collections: metadata only, data (if any) under another namespace.
    metadata_only: bool,
    saw_segment: bool,
    /// The metadata entry's `size` field.
    declared_size: u64,
    documents: u64,
    bytes: u64,
    crc: Digest<'static, u64, Table<16>>,
    archive_crc: Option<u64>,
}

impl NamespaceState {
    fn new(db: &str, collection: &str) -> Self {
        Self {
            db: db.to_owned(),
            collection: collection.to_owned(),
            name: namespace_name(db, collection),
            has_metadata: false,
            metadata_only: false,
            saw_segment: false,
            declared_size: 0,
            documents: 0,
            bytes: 0,
            crc: NAMESPACE_CRC.digest(),
            archive_crc: None,
        }
    }

    fn add_document(&mut self, document: &[u8]) {
        self.crc.update(document);
        self.documents += 1;
        self.bytes += document.len() as u64;
    }
}

#[derive(Default)]
struct Namespaces {
    in_order: Vec<NamespaceState>,
    index: HashMap<(String, String), usize>,
}

impl Namespaces {
    fn get_or_insert(&mut self, db: &str, collection: &str) -> &mut NamespaceState {
        let key = (db.to_owned(), collection.to_owned());
        let position = match self.index.get(&key) {
            Some(&position) => position,
            None => {
                self.in_order.push(NamespaceState::new(db, collection));
                self.index.insert(key, self.in_order.len() - 1);
                self.in_order.len() - 1
            }
        };
        &mut self.in_order[position]
    }

    fn add_metadata(&mut self, entry: MetadataEntry) -> Result<(), ArchiveError> {
        let namespace = self.get_or_insert(&entry.db, &entry.collection);
        if namespace.has_metadata {
            return Err(ArchiveError::DuplicateMetadata {
                namespace: namespace.name.clone(),
            });
        }
        namespace.has_metadata = true;
        namespace.metadata_only = entry.metadata_only;
        namespace.declared_size = entry.size;
        Ok(())
    }

    fn segment(&mut self, db: &str, collection: &str) -> &mut NamespaceState {
        let namespace = self.get_or_insert(db, collection);
        namespace.saw_segment = true;
        namespace
    }

    /// Checks that nothing was cut off and turns the running state into reports.
    fn finish(self) -> Result<Vec<NamespaceReport>, ArchiveError> {
        for namespace in &self.in_order {
            if namespace.saw_segment && namespace.archive_crc.is_none() {
                return Err(ArchiveError::MissingEof {
                    namespace: namespace.name.clone(),
                });
            }
            if !namespace.saw_segment && !namespace.metadata_only {
                return Err(ArchiveError::MissingData {
                    namespace: namespace.name.clone(),
                });
            }
            // mongodump leaves `size` at 0; the format describes it as the collection's total
            // size, which is the only other value that can be right.
            if namespace.declared_size != 0 && namespace.declared_size != namespace.bytes {
                return Err(ArchiveError::SizeMismatch {
                    namespace: namespace.name.clone(),
                    declared: namespace.declared_size,
                    actual: namespace.bytes,
                });
            }
        }
        Ok(self
            .in_order
            .into_iter()
            .map(NamespaceState::into_report)
            .collect())
    }
}

impl NamespaceState {
    fn into_report(self) -> NamespaceReport {
        let computed_crc = self.crc.finalize();
        NamespaceReport {
            crc_ok: self
                .archive_crc
                .is_none_or(|archive| archive == computed_crc),
            db: self.db,
            collection: self.collection,
            documents: self.documents,
            bytes: self.bytes,
            archive_crc: self.archive_crc,
            computed_crc,
            has_metadata: self.has_metadata,
        }
    }
}

fn serialize_crc<S: Serializer>(crc: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    // Hex, because JSON readers that use doubles would silently round a 64-bit integer.
    serializer.collect_str(&format_args!("{crc:#018x}"))
}

fn serialize_optional_crc<S: Serializer>(
    crc: &Option<u64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match crc {
        Some(crc) => serialize_crc(crc, serializer),
        None => serializer.serialize_none(),
    }
}
