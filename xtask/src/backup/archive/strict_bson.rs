//! A strict check that bytes are one well-formed BSON document (bsonspec.org 1.1):
//! every element type known, every length inside its parent and consistent with what it frames,
//! every document and cstring NUL-terminated, every key and string valid UTF-8, booleans 0 or 1,
//! nested documents, arrays and code-with-scope checked all the way down.
//!
//! Own code rather than the `bson` crate's raw iterator because that one checks a nested document
//! only when asked for it, so a full check means recursing (which a hostile nesting depth can
//! overflow), and its errors do not say where in a deep document it stopped; this walker does it
//! all in one pass without recursion, reusing one small stack across documents, fast enough for every document of a
//! multi-gigabyte archive. A test holds it to accepting nothing the `bson` crate would refuse.

use std::fmt;

/// Why and where a document is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BsonFault {
    /// Byte offset inside the document.
    pub position: usize,
    /// Dotted path of the element, e.g. `players.3.role`; empty for the document itself.
    pub path: String,
    pub reason: String,
}

impl fmt::Display for BsonFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(
                f,
                "{} (byte {} of the document)",
                self.reason, self.position
            )
        } else {
            write!(
                f,
                "{} (element {:?}, byte {} of the document)",
                self.reason, self.path, self.position
            )
        }
    }
}

const MIN_DOCUMENT_BYTES: usize = 5;
/// A code-with-scope: its own length, a string of at least length word and NUL, an empty scope.
const MIN_CODE_WITH_SCOPE_BYTES: usize = 4 + 5 + MIN_DOCUMENT_BYTES;
const BINARY_OLD_SUBTYPE: u8 = 0x02;

/// A document being walked: where its closing NUL is and which key opened it.
struct Open {
    end: usize,
    key: (usize, usize),
}

/// Checks documents one after the other, keeping its stack of open documents between them.
#[derive(Default)]
pub struct StrictBson {
    open: Vec<Open>,
}

impl StrictBson {
    /// Checks that `bytes` is exactly one well-formed BSON document.
    pub fn check(&mut self, bytes: &[u8]) -> Result<(), BsonFault> {
        self.open.clear();
        Walker {
            bytes,
            open: &mut self.open,
        }
        .walk()
    }
}

/// [`StrictBson::check`] for a single document.
#[cfg(test)]
pub fn check_document(bytes: &[u8]) -> Result<(), BsonFault> {
    StrictBson::default().check(bytes)
}

struct Walker<'a> {
    bytes: &'a [u8],
    open: &'a mut Vec<Open>,
}

impl Walker<'_> {
    fn walk(mut self) -> Result<(), BsonFault> {
        let end = self.open_document(0, self.bytes.len(), (0, 0))?;
        if end + 1 != self.bytes.len() {
            return Err(self.fault(
                0,
                None,
                "the length word disagrees with the document's size",
            ));
        }
        let mut cursor = 4;
        while let Some(end) = self.open.last().map(|document| document.end) {
            if cursor == end {
                // The closing NUL (checked when the document was opened).
                cursor += 1;
                self.open.pop();
                continue;
            }
            cursor = self.element(cursor, end)?;
        }
        Ok(())
    }

    /// Checks the length word and closing NUL of a document starting at `start` that must fit
    /// before `limit`; returns the position of its closing NUL and pushes it as open.
    fn open_document(
        &mut self,
        start: usize,
        limit: usize,
        key: (usize, usize),
    ) -> Result<usize, BsonFault> {
        let length = self.length_word(start, limit, Some(key))?;
        if length < MIN_DOCUMENT_BYTES {
            return Err(self.fault(
                start,
                Some(key),
                &format!("document length {length} is below the minimum of 5"),
            ));
        }
        let end = self.span_end(start, length, limit, Some(key), "document")?;
        if self.bytes[end - 1] != 0 {
            return Err(self.fault(end - 1, Some(key), "document does not end with a NUL byte"));
        }
        self.open.push(Open { end: end - 1, key });
        Ok(end - 1)
    }

    /// Checks one element at `at` of a document whose closing NUL is at `end`; returns where the
    /// next element starts (for a nested document: its first element).
    fn element(&mut self, at: usize, end: usize) -> Result<usize, BsonFault> {
        let tag = self.bytes[at];
        let key_start = at + 1;
        let key_end = self.cstring(key_start, end, None, "element name")?;
        let key = (key_start, key_end);
        let value = key_end + 1;
        let here = Some(key);
        let fixed =
            |length: usize, walker: &Self| walker.span_end(value, length, end, here, "value");
        match tag {
            // double, UTC datetime, timestamp, int64
            0x01 | 0x09 | 0x11 | 0x12 => fixed(8, self),
            0x07 => fixed(12, self), // ObjectId
            0x10 => fixed(4, self),  // int32
            0x13 => fixed(16, self), // decimal128
            // undefined, null, min key, max key
            0x06 | 0x0a | 0xff | 0x7f => Ok(value),
            0x08 => {
                let after = fixed(1, self)?;
                match self.bytes[value] {
                    0 | 1 => Ok(after),
                    other => Err(self.fault(
                        value,
                        here,
                        &format!("boolean byte is {other:#04x}, not 0 or 1"),
                    )),
                }
            }
            // string, JavaScript code, symbol
            0x02 | 0x0d | 0x0e => self.string(value, end, key),
            // embedded document, array: walked next, as the innermost open document
            0x03 | 0x04 => {
                self.open_document(value, end, key)?;
                Ok(value + 4)
            }
            0x05 => self.binary(value, end, key),
            0x0b => {
                let pattern_end = self.cstring(value, end, here, "regular expression pattern")?;
                let options_end =
                    self.cstring(pattern_end + 1, end, here, "regular expression options")?;
                Ok(options_end + 1)
            }
            0x0c => {
                let namespace_end = self.string(value, end, key)?;
                self.span_end(namespace_end, 12, end, here, "DBPointer ObjectId")
            }
            0x0f => self.code_with_scope(value, end, key),
            0x00 => Err(self.fault(
                at,
                None,
                "an element of type 0x00 before the end of the document",
            )),
            other => Err(self.fault(at, here, &format!("unknown element type {other:#04x}"))),
        }
    }

    /// A length-prefixed, NUL-terminated UTF-8 string; returns the position after it.
    fn string(&self, at: usize, limit: usize, key: (usize, usize)) -> Result<usize, BsonFault> {
        let length = self.length_word(at, limit, Some(key))?;
        if length == 0 {
            return Err(self.fault(at, Some(key), "string length 0 leaves no room for its NUL"));
        }
        let end = self.span_end(at + 4, length, limit, Some(key), "string")?;
        if self.bytes[end - 1] != 0 {
            return Err(self.fault(end - 1, Some(key), "string does not end with a NUL byte"));
        }
        self.utf8(at + 4, end - 1, Some(key), "string")?;
        Ok(end)
    }

    fn binary(&self, at: usize, limit: usize, key: (usize, usize)) -> Result<usize, BsonFault> {
        let length = self.length_word(at, limit, Some(key))?;
        let subtype = at + 4;
        let end = self.span_end(subtype, 1 + length, limit, Some(key), "binary")?;
        if self.bytes[subtype] == BINARY_OLD_SUBTYPE {
            // The deprecated subtype repeats the length of what follows inside the data.
            let inner = (length >= 4)
                .then(|| self.length_word(subtype + 1, end, Some(key)))
                .transpose()?;
            if inner.map(|inner| inner + 4) != Some(length) {
                return Err(self.fault(
                    subtype + 1,
                    Some(key),
                    "binary subtype 0x02's inner length disagrees with its outer length",
                ));
            }
        }
        Ok(end)
    }

    /// `int32 total, string code, document scope`, the total covering exactly the two parts.
    fn code_with_scope(
        &mut self,
        at: usize,
        limit: usize,
        key: (usize, usize),
    ) -> Result<usize, BsonFault> {
        let total = self.length_word(at, limit, Some(key))?;
        if total < MIN_CODE_WITH_SCOPE_BYTES {
            return Err(self.fault(
                at,
                Some(key),
                &format!("code-with-scope length {total} is below the minimum of 14"),
            ));
        }
        let end = self.span_end(at, total, limit, Some(key), "code with scope")?;
        let scope = self.string(at + 4, end, key)?;
        let scope_end = self.open_document(scope, end, key)?;
        if scope_end + 1 != end {
            return Err(self.fault(
                at,
                Some(key),
                "code-with-scope length disagrees with its code and scope",
            ));
        }
        Ok(scope + 4)
    }

    /// A NUL-terminated UTF-8 name that must end before `limit`; returns the position of its NUL.
    fn cstring(
        &self,
        at: usize,
        limit: usize,
        key: Option<(usize, usize)>,
        what: &str,
    ) -> Result<usize, BsonFault> {
        let Some(length) = self.bytes[at.min(limit)..limit]
            .iter()
            .position(|&byte| byte == 0)
        else {
            return Err(self.fault(
                at,
                key,
                &format!("{what} runs past the end of its document"),
            ));
        };
        self.utf8(at, at + length, key, what)?;
        Ok(at + length)
    }

    fn utf8(
        &self,
        start: usize,
        end: usize,
        key: Option<(usize, usize)>,
        what: &str,
    ) -> Result<(), BsonFault> {
        std::str::from_utf8(&self.bytes[start..end])
            .map(drop)
            .map_err(|error| {
                self.fault(
                    start + error.valid_up_to(),
                    key,
                    &format!("{what} is not valid UTF-8"),
                )
            })
    }

    /// A little-endian int32 length at `at`, which must be non-negative.
    fn length_word(
        &self,
        at: usize,
        limit: usize,
        key: Option<(usize, usize)>,
    ) -> Result<usize, BsonFault> {
        let end = self.span_end(at, 4, limit, key, "length word")?;
        let mut word = [0u8; 4];
        word.copy_from_slice(&self.bytes[at..end]);
        let length = i32::from_le_bytes(word);
        usize::try_from(length)
            .map_err(|_| self.fault(at, key, &format!("negative length {length}")))
    }

    /// The end of `length` bytes from `at`, which must not pass `limit`.
    fn span_end(
        &self,
        at: usize,
        length: usize,
        limit: usize,
        key: Option<(usize, usize)>,
        what: &str,
    ) -> Result<usize, BsonFault> {
        match at.checked_add(length) {
            Some(end) if end <= limit => Ok(end),
            _ => Err(self.fault(
                at,
                key,
                &format!(
                    "{what} of {length} bytes runs past the end of its document ({} bytes left)",
                    limit.saturating_sub(at)
                ),
            )),
        }
    }

    /// The path is built only here, on the error path, from the keys of the open documents.
    fn fault(&self, position: usize, key: Option<(usize, usize)>, reason: &str) -> BsonFault {
        let mut path: Vec<String> = self
            .open
            .iter()
            .skip(1)
            .map(|open| self.key_text(open.key))
            .collect();
        if let Some(key) = key
            && self.open.last().is_none_or(|open| open.key != key)
        {
            path.push(self.key_text(key));
        }
        BsonFault {
            position,
            path: path.join("."),
            reason: reason.to_owned(),
        }
    }

    fn key_text(&self, (start, end): (usize, usize)) -> String {
        String::from_utf8_lossy(&self.bytes[start..end]).into_owned()
    }
}

#[cfg(test)]
#[path = "strict_bson_tests.rs"]
mod tests;
