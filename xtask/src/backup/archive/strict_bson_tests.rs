//! The strict walker against every BSON element type, hand-made damage, and the `bson` crate.

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Decimal128, Document, JavaScriptCodeWithScope, RawDocument, Regex};
use bson::{Timestamp, doc, oid::ObjectId};

use super::*;

/// Appends one hand-encoded element to an encoded document, fixing its length word.
fn with_element(document: &[u8], tag: u8, key: impl AsRef<[u8]>, value: &[u8]) -> Vec<u8> {
    let mut out = document[..document.len() - 1].to_vec();
    out.push(tag);
    out.extend(key.as_ref());
    out.push(0);
    out.extend(value);
    out.push(0);
    let length = i32::try_from(out.len()).unwrap().to_le_bytes();
    out[..4].copy_from_slice(&length);
    out
}

fn string_value(text: &[u8]) -> Vec<u8> {
    let mut out = i32::try_from(text.len() + 1)
        .unwrap()
        .to_le_bytes()
        .to_vec();
    out.extend(text);
    out.push(0);
    out
}

/// One document holding every element type of the BSON spec, nested ones included.
fn every_type() -> Vec<u8> {
    let document = doc! {
        "double": 1.5,
        "string": "žluťoučký kůň",
        "document": { "inner": 1_i32, "deeper": { "array": [1_i32, "two", { "three": 3_i64 }] } },
        "array": [true, false, Bson::Null],
        "binary": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 2, 255] },
        "binary_old": Binary { subtype: BinarySubtype::BinaryOld, bytes: vec![9, 8, 7] },
        "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
        "undefined": Bson::Undefined,
        "object_id": ObjectId::from_bytes([3; 12]),
        "bool": true,
        "datetime": bson::DateTime::from_millis(1_700_000_000_000),
        "null": Bson::Null,
        "regex": Regex { pattern: "^a.*b$".try_into().unwrap(), options: "i".try_into().unwrap() },
        "code": Bson::JavaScriptCode("function () { return 1; }".to_owned()),
        "symbol": Bson::Symbol("sym".to_owned()),
        "code_with_scope": JavaScriptCodeWithScope { code: "x + y".to_owned(), scope: doc! { "x": 1_i32, "y": "z" } },
        "int32": -7_i32,
        "timestamp": Timestamp { time: 1_700_000_000, increment: 3 },
        "int64": i64::MIN,
        "decimal": Decimal128::from_bytes([1; 16]),
        "min": Bson::MinKey,
        "max": Bson::MaxKey,
    };
    let bytes = document.to_vec().unwrap();
    // The bson crate cannot build a DBPointer; it is a string and an ObjectId.
    let mut pointer = string_value(b"db.collection");
    pointer.extend([5; 12]);
    with_element(&bytes, 0x0c, "db_pointer", &pointer)
}

fn reason(bytes: &[u8]) -> String {
    check_document(bytes).unwrap_err().to_string()
}

#[test]
fn every_element_type_passes() {
    let bytes = every_type();
    check_document(&bytes).unwrap();
    // The reference decoder agrees that it is one valid document.
    Document::try_from(RawDocument::from_bytes(&bytes).unwrap()).unwrap();
    check_document(&[5, 0, 0, 0, 0]).unwrap();
}

#[test]
fn an_unknown_element_type_is_named_with_its_path() {
    let bytes = doc! { "a": { "b": [1_i32, 2_i32] } }.to_vec().unwrap();
    // From the end: three closing NULs, the int32, the key "1\0", then its type byte.
    let type_of_second = bytes.len() - 3 - 4 - 2 - 1;
    assert_eq!(bytes[type_of_second], 0x10);
    let mut damaged = bytes.clone();
    damaged[type_of_second] = 0xed;
    let fault = check_document(&damaged).unwrap_err();
    assert_eq!(fault.path, "a.b.1");
    assert_eq!(fault.position, type_of_second);
    assert!(
        fault.reason.contains("unknown element type 0xed"),
        "{fault}"
    );
}

#[test]
fn malformed_values_are_refused() {
    let empty = [5u8, 0, 0, 0, 0];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            with_element(&empty, 0x08, "b", &[2]),
            "boolean byte is 0x02",
        ),
        (
            with_element(&empty, 0x02, "s", &string_value(b"caf\xe9")),
            "string is not valid UTF-8",
        ),
        (
            with_element(&empty, 0x02, b"s\xff", &string_value(b"x")),
            "element name is not valid UTF-8",
        ),
        (
            with_element(&empty, 0x02, "s", &[2, 0, 0, 0, b'x', b'y']),
            "string does not end with a NUL byte",
        ),
        (
            with_element(&empty, 0x02, "s", &[0, 0, 0, 0]),
            "string length 0",
        ),
        (
            with_element(&empty, 0x02, "s", &[0xff, 0xff, 0xff, 0xff]),
            "negative length -1",
        ),
        (
            with_element(&empty, 0x02, "s", &[50, 0, 0, 0, 0]),
            "string of 50 bytes runs past the end",
        ),
        (
            with_element(&empty, 0x03, "d", &[6, 0, 0, 0, 0, 1]),
            "document does not end with a NUL byte",
        ),
        (
            with_element(&empty, 0x04, "a", &[4, 0, 0, 0]),
            "document length 4 is below the minimum",
        ),
        (
            with_element(&empty, 0x05, "bin", &[2, 0, 0, 0, 2, 1, 2]),
            "inner length disagrees",
        ),
        (
            with_element(&empty, 0x05, "bin", &[6, 0, 0, 0, 2, 9, 0, 0, 0, 1, 2]),
            "inner length disagrees",
        ),
        (
            with_element(&empty, 0x0b, "re", b"abc"),
            "regular expression pattern runs past",
        ),
        (
            with_element(&empty, 0x0b, "re", b"a\0\xc3"),
            "regular expression options runs past",
        ),
        (
            with_element(&empty, 0x07, "id", &[1; 11]),
            "value of 12 bytes",
        ),
        (
            with_element(&empty, 0x0c, "p", &string_value(b"ns")),
            "DBPointer ObjectId of 12 bytes",
        ),
        (
            with_element(&empty, 0x00, "z", &[]),
            "type 0x00 before the end",
        ),
    ];
    for (bytes, expected) in cases {
        let message = reason(&bytes);
        assert!(message.contains(expected), "{bytes:02x?}: {message}");
    }
}

#[test]
fn code_with_scope_lengths_must_add_up() {
    let code = string_value(b"x");
    let scope = [5u8, 0, 0, 0, 0];
    let mut value = Vec::new();
    let total = 4 + code.len() + scope.len();
    value.extend(i32::try_from(total).unwrap().to_le_bytes());
    value.extend(&code);
    value.extend(scope);
    let empty = [5u8, 0, 0, 0, 0];
    check_document(&with_element(&empty, 0x0f, "c", &value)).unwrap();

    // One byte of padding inside the element: the parts no longer fill the stated total.
    let mut padded = value.clone();
    padded[..4].copy_from_slice(&i32::try_from(total + 1).unwrap().to_le_bytes());
    padded.push(0);
    let message = reason(&with_element(&empty, 0x0f, "c", &padded));
    assert!(
        message.contains("disagrees with its code and scope"),
        "{message}"
    );

    let mut short = value;
    short[..4].copy_from_slice(&13_i32.to_le_bytes());
    let message = reason(&with_element(&empty, 0x0f, "c", &short));
    assert!(message.contains("below the minimum of 14"), "{message}");
}

#[test]
fn the_document_length_must_match_exactly() {
    let mut bytes = every_type();
    bytes.push(0);
    assert!(reason(&bytes).contains("disagrees with the document's size"));
    let bytes = every_type();
    for length in 0..bytes.len() {
        assert!(
            check_document(&bytes[..length]).is_err(),
            "cut at {length} accepted"
        );
    }
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    const DEPTH: usize = 200_000;
    let mut bytes = Vec::with_capacity(DEPTH * 7 + 5);
    for level in 0..DEPTH {
        // A document holding `DEPTH - level - 1` levels below it, through the key "".
        let length = 5 + 7 * (DEPTH - level);
        bytes.extend(i32::try_from(length).unwrap().to_le_bytes());
        bytes.extend([0x03, 0x00]);
    }
    bytes.extend([5, 0, 0, 0, 0]);
    bytes.extend(std::iter::repeat_n(0u8, DEPTH));
    check_document(&bytes).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = 1;
    assert!(check_document(&bytes).is_err());
}

#[test]
fn whatever_the_walker_accepts_the_bson_crate_decodes() {
    // Every single-byte change of the every-type document: the walker may refuse more than the
    // bson crate (it does: code-with-scope totals, for one), never less, and never panics.
    let original = every_type();
    let mut damaged = original.clone();
    let mut accepted = 0;
    for offset in 0..original.len() {
        for change in [0xff_u8, 0x01, 0x80] {
            damaged[offset] = original[offset] ^ change;
            if check_document(&damaged).is_ok() {
                accepted += 1;
                let raw = RawDocument::from_bytes(&damaged).unwrap_or_else(|error| {
                    panic!("byte {offset} ^ {change:#04x}: walker accepts, bson crate: {error}")
                });
                if let Err(error) = Document::try_from(raw) {
                    panic!("byte {offset} ^ {change:#04x}: walker accepts, bson crate: {error}");
                }
            }
        }
        damaged[offset] = original[offset];
    }
    // Value bytes (numbers, ObjectIds, ASCII text) change freely: the walker is not a checksum.
    assert!(accepted > 100, "{accepted}");
}
