//! Byte-level framing of a mongodump archive: little-endian length words, length-prefixed BSON
//! documents (each checked strictly, see `strict_bson`) and the 0xFFFFFFFF terminator, with the
//! position kept for error messages.

use std::io::{self, Read};

use super::error::{ArchiveError, Section};
use super::strict_bson::StrictBson;

/// The word that ends the prelude and every namespace segment; no BSON document can be this long.
pub const TERMINATOR: u32 = 0xFFFF_FFFF;

/// The smallest possible BSON document: a length word and the closing NUL.
const MIN_DOCUMENT_BYTES: u32 = 5;

/// MongoDB's internal document limit (16 MiB plus 16 KiB of headroom the server allows oplog entries
/// and internal documents). Anything longer is garbage, and refusing it bounds every allocation.
pub const MAX_DOCUMENT_BYTES: u32 = 16 * 1024 * 1024 + 16 * 1024;

/// What a length word turned out to be.
pub enum Frame<'a> {
    Document(&'a [u8]),
    Terminator,
}

/// Reads frames from the (already decompressed) archive stream.
pub struct FrameReader<R> {
    input: R,
    offset: u64,
    document: Vec<u8>,
    strict: StrictBson,
}

impl<R: Read> FrameReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            offset: 0,
            document: Vec::new(),
            strict: StrictBson::default(),
        }
    }

    /// Bytes consumed so far, i.e. the offset of the next frame in the uncompressed stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads exactly `N` bytes; running out of input is truncation.
    pub fn read_array<const N: usize>(
        &mut self,
        section: &Section,
    ) -> Result<[u8; N], ArchiveError> {
        let mut bytes = [0u8; N];
        self.input
            .read_exact(&mut bytes)
            .map_err(|error| self.read_error(error, section))?;
        self.offset += N as u64;
        Ok(bytes)
    }

    /// Reads the next length word, or `None` when the stream ends cleanly before its first byte —
    /// the only place an archive may end is between namespace segments.
    pub fn read_word_or_end(&mut self, section: &Section) -> Result<Option<u32>, ArchiveError> {
        let mut bytes = [0u8; 4];
        let mut filled = 0;
        while filled < bytes.len() {
            match self.input.read(&mut bytes[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => return Err(self.truncated(section)),
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.read_error(error, section)),
            }
        }
        self.offset += 4;
        Ok(Some(u32::from_le_bytes(bytes)))
    }

    /// Reads the next frame; the end of the stream here is truncation.
    pub fn read_frame(&mut self, section: &Section) -> Result<Frame<'_>, ArchiveError> {
        let word = u32::from_le_bytes(self.read_array(section)?);
        self.frame_from_word(word, section)
    }

    /// Reads the next frame, which must be a document.
    pub fn read_document(&mut self, section: &Section) -> Result<&[u8], ArchiveError> {
        let word = u32::from_le_bytes(self.read_array(section)?);
        self.document_from_word(word, section)
    }

    /// Interprets an already read length word: the terminator, or the length of a document whose
    /// remaining bytes are read now.
    pub fn frame_from_word(
        &mut self,
        word: u32,
        section: &Section,
    ) -> Result<Frame<'_>, ArchiveError> {
        if word == TERMINATOR {
            return Ok(Frame::Terminator);
        }
        self.document_from_word(word, section).map(Frame::Document)
    }

    /// Reads the body of a document whose length word has been read; returns the whole document,
    /// length word included, because that is what the archive's CRC covers.
    pub fn document_from_word(
        &mut self,
        length: u32,
        section: &Section,
    ) -> Result<&[u8], ArchiveError> {
        let start = self.offset - 4;
        if !(MIN_DOCUMENT_BYTES..=MAX_DOCUMENT_BYTES).contains(&length) {
            return Err(ArchiveError::BadDocumentLength {
                section: section.clone(),
                offset: start,
                length,
                max: MAX_DOCUMENT_BYTES,
            });
        }
        self.document.clear();
        self.document.extend_from_slice(&length.to_le_bytes());
        // `take` + `read_to_end` grows the buffer with the bytes that really arrive, so a garbage
        // length on a short stream does not allocate the full claimed size up front.
        let body = u64::from(length - 4);
        let result = (&mut self.input).take(body).read_to_end(&mut self.document);
        let read = result.map_err(|error| self.read_error(error, section))?;
        self.offset += read as u64;
        if (read as u64) < body {
            return Err(self.truncated(section));
        }
        // Every document, structural or data, down to its last nested element.
        if let Err(fault) = self.strict.check(&self.document) {
            return Err(ArchiveError::MalformedDocument {
                section: section.clone(),
                offset: start,
                reason: fault.to_string(),
            });
        }
        Ok(&self.document)
    }

    fn truncated(&self, section: &Section) -> ArchiveError {
        ArchiveError::Truncated {
            section: section.clone(),
            offset: self.offset,
        }
    }

    fn read_error(&self, error: io::Error, section: &Section) -> ArchiveError {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            return self.truncated(section);
        }
        ArchiveError::Io {
            section: section.clone(),
            offset: self.offset,
            source: error,
        }
    }
}
