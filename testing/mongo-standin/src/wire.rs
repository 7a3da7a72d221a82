//! The wire protocol's OP_MSG framing (the only opcode the `mongodb` 3.x driver and mongosh send once no
//! compression is negotiated): parsing a request's sections and encoding a reply.
//!
//! ```text
//! header   int32 messageLength, int32 requestID, int32 responseTo, int32 opCode (2013 = OP_MSG)
//! OP_MSG   uint32 flagBits, sections…, [uint32 CRC-32C if checksumPresent]
//! section  kind 0: one BSON document (the command body)
//!          kind 1: int32 size, cstring identifier, BSON documents… (a document sequence, e.g. `documents`)
//! ```

use bson::{Bson, Document};

pub const HEADER_LEN: usize = 16;
pub const OP_MSG: i32 = 2013;
/// MongoDB's own limit, announced in `hello` as maxMessageSizeBytes.
pub const MAX_MESSAGE_SIZE: usize = 48_000_000;

const CHECKSUM_PRESENT: u32 = 1;
pub const MORE_TO_COME: u32 = 1 << 1;
/// Bits 0–15 are "required": a receiver must fail on one it does not know. exhaustAllowed (bit 16) is
/// optional and never acted on: the stand-in offers no awaitable hello, so no client asks for exhaust.
const KNOWN_REQUIRED: u32 = CHECKSUM_PRESENT | MORE_TO_COME;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: usize,
    pub request_id: i32,
    pub response_to: i32,
    pub op_code: i32,
}

impl Header {
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Header, String> {
        let field = |at: usize| {
            i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let length = usize::try_from(field(0)).map_err(|_| "negative message length".to_owned())?;
        if !(HEADER_LEN..=MAX_MESSAGE_SIZE).contains(&length) {
            return Err(format!(
                "message length {length} is outside 16..={MAX_MESSAGE_SIZE}"
            ));
        }
        Ok(Header {
            length,
            request_id: field(4),
            response_to: field(8),
            op_code: field(12),
        })
    }
}

/// One OP_MSG request: the body with every document sequence folded in as an array field (how the
/// server treats them: `insert`'s `documents` may come either way).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub flags: u32,
    pub body: Document,
}

impl Request {
    /// The sender does not want a reply (unacknowledged writes).
    pub fn more_to_come(&self) -> bool {
        self.flags & MORE_TO_COME != 0
    }
}

/// Parses the part of an OP_MSG after the header.
pub fn parse_op_msg(payload: &[u8]) -> Result<Request, String> {
    let flags = u32::from_le_bytes(take::<4>(payload, 0)?);
    let unknown_required = flags & 0xffff & !KNOWN_REQUIRED;
    if unknown_required != 0 {
        return Err(format!(
            "unknown required OP_MSG flag bits {unknown_required:#x}"
        ));
    }
    let end = if flags & CHECKSUM_PRESENT != 0 {
        payload
            .len()
            .checked_sub(4)
            .ok_or("OP_MSG too short for its checksum")?
    } else {
        payload.len()
    };
    let mut at = 4;
    let mut body = None;
    let mut sequences: Vec<(String, Vec<Bson>)> = Vec::new();
    while at < end {
        let kind = payload[at];
        at += 1;
        match kind {
            0 => {
                let (document, used) = document_at(payload, at, end)?;
                if body.replace(document).is_some() {
                    return Err("OP_MSG with two body sections".to_owned());
                }
                at += used;
            }
            1 => {
                let size = usize::try_from(i32::from_le_bytes(take::<4>(payload, at)?))
                    .map_err(|_| "negative document sequence size")?;
                let section_end = at + size;
                if size < 5 || section_end > end {
                    return Err("document sequence overruns the message".to_owned());
                }
                let name_start = at + 4;
                let name_len = payload[name_start..section_end]
                    .iter()
                    .position(|byte| *byte == 0)
                    .ok_or("document sequence identifier is not terminated")?;
                let name = std::str::from_utf8(&payload[name_start..name_start + name_len])
                    .map_err(|_| "document sequence identifier is not UTF-8")?
                    .to_owned();
                let mut cursor = name_start + name_len + 1;
                let mut documents = Vec::new();
                while cursor < section_end {
                    let (document, used) = document_at(payload, cursor, section_end)?;
                    documents.push(Bson::Document(document));
                    cursor += used;
                }
                sequences.push((name, documents));
                at = section_end;
            }
            other => return Err(format!("unknown OP_MSG section kind {other}")),
        }
    }
    let mut body = body.ok_or("OP_MSG without a body section")?;
    for (name, documents) in sequences {
        if body.contains_key(&name) {
            return Err(format!(
                "`{name}` is both a body field and a document sequence"
            ));
        }
        body.insert(name, documents);
    }
    Ok(Request { flags, body })
}

fn take<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], String> {
    bytes
        .get(at..at + N)
        .and_then(|slice| slice.try_into().ok())
        .ok_or_else(|| "OP_MSG truncated".to_owned())
}

/// The BSON document starting at `at` (which must end by `end`) and its length.
fn document_at(bytes: &[u8], at: usize, end: usize) -> Result<(Document, usize), String> {
    let len = usize::try_from(i32::from_le_bytes(take::<4>(bytes, at)?))
        .map_err(|_| "negative BSON document length")?;
    if len < 5 || at + len > end {
        return Err("BSON document overruns its section".to_owned());
    }
    let document = Document::from_reader(&bytes[at..at + len])
        .map_err(|err| format!("invalid BSON: {err}"))?;
    Ok((document, len))
}

/// A whole OP_MSG message (header included) carrying `body` as its single section.
pub fn encode_op_msg(
    request_id: i32,
    response_to: i32,
    flags: u32,
    body: &Document,
) -> Result<Vec<u8>, String> {
    let document = body
        .to_vec()
        .map_err(|err| format!("cannot encode reply: {err}"))?;
    let length = HEADER_LEN + 4 + 1 + document.len();
    let length32 = i32::try_from(length).map_err(|_| "reply too large".to_owned())?;
    let mut message = Vec::with_capacity(length);
    message.extend_from_slice(&length32.to_le_bytes());
    message.extend_from_slice(&request_id.to_le_bytes());
    message.extend_from_slice(&response_to.to_le_bytes());
    message.extend_from_slice(&OP_MSG.to_le_bytes());
    message.extend_from_slice(&flags.to_le_bytes());
    message.push(0);
    message.extend_from_slice(&document);
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn sequence(name: &str, documents: &[Document]) -> Vec<u8> {
        let mut content = name.as_bytes().to_vec();
        content.push(0);
        for document in documents {
            content.extend(document.to_vec().unwrap_or_default());
        }
        let mut section = vec![1];
        section.extend(
            i32::try_from(content.len() + 4)
                .unwrap_or_default()
                .to_le_bytes(),
        );
        section.extend(content);
        section
    }

    #[test]
    fn a_document_sequence_becomes_an_array_field_of_the_body() {
        let mut payload = 0u32.to_le_bytes().to_vec();
        payload.push(0);
        payload.extend(
            doc! { "insert": "users", "$db": "avalon" }
                .to_vec()
                .unwrap_or_default(),
        );
        payload.extend(sequence(
            "documents",
            &[doc! { "_id": 1 }, doc! { "_id": 2 }],
        ));
        let request = parse_op_msg(&payload).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            request.body,
            doc! { "insert": "users", "$db": "avalon", "documents": [{ "_id": 1 }, { "_id": 2 }] }
        );
        assert!(!request.more_to_come());
    }

    #[test]
    fn an_unknown_required_flag_and_a_missing_body_are_refused() {
        let mut payload = (1u32 << 5).to_le_bytes().to_vec();
        payload.push(0);
        payload.extend(doc! { "ping": 1 }.to_vec().unwrap_or_default());
        assert!(parse_op_msg(&payload).is_err());
        let mut no_body = 0u32.to_le_bytes().to_vec();
        no_body.extend(sequence("documents", &[doc! { "_id": 1 }]));
        assert_eq!(
            parse_op_msg(&no_body),
            Err("OP_MSG without a body section".to_owned())
        );
    }

    #[test]
    fn a_reply_round_trips_through_the_parser() {
        let reply = encode_op_msg(7, 3, 0, &doc! { "ok": 1.0 }).unwrap_or_default();
        let header = Header::parse(reply[..HEADER_LEN].try_into().unwrap_or(&[0; HEADER_LEN]))
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            (
                header.length,
                header.request_id,
                header.response_to,
                header.op_code
            ),
            (reply.len(), 7, 3, OP_MSG)
        );
        let request = parse_op_msg(&reply[HEADER_LEN..]).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(request.body, doc! { "ok": 1.0 });
    }
}
