//! The guard against silent damage: every single-byte flip of the committed mongodump fixtures
//! must make `backup verify --file` fail, or be provably harmless.
//!
//! "Harmless" is decided here, independently of the verifier, by [`logical_content`]: the
//! archive decoded with the `bson` crate into the sequence of its documents and terminators. A
//! flip whose archive verifies is harmless only when that sequence is exactly the original's.
//! One field is left out of the comparison: the header's `concurrent_collections`, which no byte
//! of the archive repeats (so no check can see a flip in it) and which only sets a floor under
//! mongorestore's parallelism (mongo-tools' `numParallelCollectionsForArchive`, capped there):
//! it never changes what is restored.
//!
//! Each flip is checked through the same function `--file` uses, in memory, so the thousands of
//! flips take a second or two even in a debug build.

use std::io::Read;

use bson::{Document, RawDocument};
use flate2::read::MultiGzDecoder;

use super::*;
use crate::backup::fake_docker::{fixture, gzip};

const MAGIC: [u8; 4] = 0x8199_e26d_u32.to_le_bytes();
const TERMINATOR: u32 = 0xffff_ffff;

/// What a restore gets out of an archive, decoded without any of the verifier's code.
#[derive(Debug, PartialEq)]
enum Item {
    Document(Document),
    Terminator,
}

/// `None` when the stream does not decode at all.
fn logical_content(stream: &[u8]) -> Option<Vec<Item>> {
    let mut plain = Vec::new();
    if stream.starts_with(&[0x1f, 0x8b]) {
        MultiGzDecoder::new(stream).read_to_end(&mut plain).ok()?;
    } else {
        plain.extend_from_slice(stream);
    }
    let mut rest = plain.strip_prefix(&MAGIC)?;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let word = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
        if word == TERMINATOR {
            items.push(Item::Terminator);
            rest = &rest[4..];
            continue;
        }
        let length = usize::try_from(word).ok()?;
        let raw = RawDocument::from_bytes(rest.get(..length)?).ok()?;
        let mut document = Document::try_from(raw).ok()?;
        if items.is_empty() {
            document.remove("concurrent_collections");
        }
        items.push(Item::Document(document));
        rest = &rest[length..];
    }
    Some(items)
}

fn verifies(archive: &[u8]) -> bool {
    let mut outcome = Outcome::new(None, PathBuf::from("flipped.archive"));
    check_archive_contents(archive, &mut outcome);
    outcome.ok
}

#[derive(Default)]
struct Tally {
    total: usize,
    detected: usize,
    harmless: Vec<String>,
    missed: Vec<String>,
}

impl Tally {
    fn flip_every_byte(&mut self, name: &str, original: &[u8]) {
        assert!(
            verifies(original),
            "{name} must verify before it is damaged"
        );
        let expected = logical_content(original)
            .unwrap_or_else(|| panic!("{name} must decode before it is damaged"));
        let mut flipped = original.to_vec();
        for offset in 0..original.len() {
            flipped[offset] ^= 0xff;
            self.total += 1;
            if !verifies(&flipped) {
                self.detected += 1;
            } else {
                let flip = format!(
                    "{name} byte {offset:#06x}: {:#04x} -> {:#04x}",
                    original[offset], flipped[offset]
                );
                if logical_content(&flipped).as_ref() == Some(&expected) {
                    self.harmless.push(flip);
                } else {
                    self.missed.push(flip);
                }
            }
            flipped[offset] = original[offset];
        }
    }
}

#[test]
fn every_single_byte_flip_of_the_fixtures_is_detected_or_harmless() {
    let mut tally = Tally::default();
    for name in ["test.bar.archive", "dump-w-oplog.archive"] {
        tally.flip_every_byte(name, &fixture(name));
    }
    // Compressed, the gzip trailer's CRC-32 guards the bytes; flips of the gzip header's time
    // stamp or OS byte change nothing in the archive, and the content comparison says so.
    tally.flip_every_byte("test.bar.archive.gz", &gzip(&fixture("test.bar.archive")));
    avalon_testkit::figures::figure(
        "archive guard",
        &format!(
            "archive flips detected {} / total {} (harmless {})",
            tally.detected,
            tally.total,
            tally.harmless.len()
        ),
    );
    for flip in &tally.harmless {
        println!("  harmless: {flip}");
    }
    assert!(
        tally.missed.is_empty(),
        "{} flip(s) verified although they change the archive; first: {:?}",
        tally.missed.len(),
        &tally.missed[..tally.missed.len().min(20)]
    );
    assert_eq!(tally.detected + tally.harmless.len(), tally.total);
}

#[test]
fn the_content_comparison_sees_a_changed_value() {
    // The reference decoder must not be blind: a flip inside a document value changes it.
    let original = fixture("test.bar.archive");
    let mut damaged = original.clone();
    let header = bson::rawdoc! { "db": "test", "collection": "bar", "EOF": false, "CRC": 0_i64 };
    let document = original
        .windows(header.as_bytes().len())
        .position(|window| window == header.as_bytes())
        .unwrap()
        + header.as_bytes().len();
    damaged[document + 10] ^= 0xff;
    assert_ne!(logical_content(&damaged), logical_content(&original));
    // ...and ignores only concurrent_collections in the header.
    let mut parallel = original.clone();
    parallel[0x20] = 8;
    assert_eq!(logical_content(&parallel), logical_content(&original));
}
