//! The parser against real mongodump archives (mongo-tools' test data) and damaged copies of them.

use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/mongodump/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn namespace<'a>(report: &'a ArchiveReport, name: &str) -> &'a NamespaceReport {
    report
        .namespaces
        .iter()
        .find(|ns| ns.name() == name)
        .unwrap_or_else(|| panic!("no namespace {name}"))
}

/// Offset of the first document in the first data segment of `db.collection`: found by its
/// namespace header (`EOF: false`), so the test does not depend on hand-copied offsets.
fn first_document_offset(archive: &[u8], db: &str, collection: &str) -> usize {
    let header = bson::rawdoc! { "db": db, "collection": collection, "EOF": false, "CRC": 0_i64 };
    let pattern = header.as_bytes();
    let start = archive
        .windows(pattern.len())
        .position(|window| window == pattern)
        .unwrap_or_else(|| panic!("no data segment header for {db}.{collection}"));
    start + pattern.len()
}

/// Structural problems and the first CRC mismatch, as one `Result`.
fn verify_archive<R: Read>(input: R) -> Result<ArchiveReport, ArchiveError> {
    let report = scan_archive(input)?;
    let first_mismatch = report.crc_mismatches().next();
    match first_mismatch {
        Some(mismatch) => Err(mismatch),
        None => Ok(report),
    }
}

#[test]
fn crc_parameters_are_go_crc64_ecma() {
    // Go: crc64.Checksum([]byte("123456789"), crc64.MakeTable(crc64.ECMA)) == 0x995dc9bbdf1939fa
    assert_eq!(NAMESPACE_CRC.checksum(b"123456789"), 0x995d_c9bb_df19_39fa);
}

#[test]
fn small_valid_archive() {
    let report = verify_archive(&fixture("test.bar.archive")[..]).unwrap();
    assert_eq!(report.format_version, "0.1");
    assert_eq!(report.server_version.as_deref(), Some("3.4.3"));
    assert_eq!(report.tool_version.as_deref(), Some("r3.4.3"));
    assert!(!report.gzip);
    assert_eq!(report.uncompressed_bytes, 896);
    let names: Vec<String> = report
        .namespaces
        .iter()
        .map(NamespaceReport::name)
        .collect();
    assert_eq!(names, ["test.bar", "admin.system.version"]);
    let bar = namespace(&report, "test.bar");
    assert_eq!((bar.documents, bar.bytes), (1, 0x23));
    assert_eq!(bar.archive_crc, Some(0x9369_f0f3_5bec_50d9));
    assert!(bar.crc_ok && bar.has_metadata);
    assert_eq!(namespace(&report, "admin.system.version").documents, 1);
}

#[test]
fn archive_with_oplog() {
    let report = verify_archive(&fixture("dump-w-oplog.archive")[..]).unwrap();
    assert_eq!(report.server_version.as_deref(), Some("4.0.2"));
    assert_eq!(namespace(&report, "test.foo").documents, 25);
    let oplog = namespace(&report, "oplog");
    assert_eq!((oplog.db.as_str(), oplog.documents), ("", 18));
    assert!(
        report
            .namespaces
            .iter()
            .all(|ns| ns.crc_ok && ns.archive_crc.is_some())
    );
    assert_eq!(report.total_documents(), 25 + 18 + 1);
}

#[test]
fn gzipped_archives_verify_the_same() {
    for name in ["test.bar.archive", "dump-w-oplog.archive"] {
        let plain = verify_archive(&fixture(name)[..]).unwrap();
        let gzipped = verify_archive(&gzip(&fixture(name))[..]).unwrap();
        assert!(gzipped.gzip && !plain.gzip);
        assert_eq!(gzipped.uncompressed_bytes, plain.uncompressed_bytes);
        assert_eq!(gzipped.total_documents(), plain.total_documents());
    }
}

#[test]
fn gzip_with_several_members_is_read_to_the_end() {
    let archive = fixture("dump-w-oplog.archive");
    let (head, tail) = archive.split_at(1000);
    let mut members = gzip(head);
    members.extend(gzip(tail));
    let report = verify_archive(&members[..]).unwrap();
    assert_eq!(namespace(&report, "oplog").documents, 18);
}

#[test]
fn metadata_that_is_not_extended_json_fails_naming_the_namespace() {
    let error = verify_archive(&fixture("bad-format.archive")[..]).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::InvalidMetadataJson { namespace, .. } if namespace == "test.ixtest")
    );
    assert!(
        error.to_string().contains("namespace test.ixtest"),
        "{error}"
    );
}

#[test]
fn a_flipped_byte_inside_a_document_fails_naming_the_namespace() {
    let mut archive = fixture("dump-w-oplog.archive");
    let document = first_document_offset(&archive, "test", "foo");
    // 4 length bytes, the 0x07 type byte and "_id\0" lead up to the ObjectId value.
    archive[document + 12] ^= 0x01;
    let error = verify_archive(&archive[..]).unwrap_err();
    match &error {
        ArchiveError::CrcMismatch {
            namespace,
            archive,
            computed,
        } => {
            assert_eq!(namespace, "test.foo");
            assert_ne!(archive, computed);
        }
        other => panic!("expected a CRC mismatch, got {other}"),
    }
    let message = error.to_string();
    assert!(
        message.starts_with("CRC mismatch in namespace test.foo: archive says 0x"),
        "{message}"
    );

    // Scanning rather than verifying reports the damage without stopping at it.
    let report = scan_archive(&archive[..]).unwrap();
    let damaged: Vec<String> = report
        .namespaces
        .iter()
        .filter(|ns| !ns.crc_ok)
        .map(NamespaceReport::name)
        .collect();
    assert_eq!(damaged, ["test.foo"]);
}

#[test]
fn every_truncation_fails_cleanly() {
    for name in ["test.bar.archive", "dump-w-oplog.archive"] {
        let archive = fixture(name);
        for length in 0..archive.len() {
            match scan_archive(&archive[..length]) {
                Err(
                    ArchiveError::Truncated { .. }
                    | ArchiveError::MissingEof { .. }
                    | ArchiveError::MissingData { .. },
                ) => {}
                Err(other) => panic!("{name} cut at {length}: unexpected error {other}"),
                Ok(_) => panic!("{name} cut at {length} was accepted"),
            }
        }
    }
}

#[test]
fn truncated_gzip_fails_cleanly() {
    let compressed = gzip(&fixture("dump-w-oplog.archive"));
    for length in [
        0,
        1,
        2,
        10,
        compressed.len() / 2,
        compressed.len() - 9,
        compressed.len() - 1,
    ] {
        assert!(
            scan_archive(&compressed[..length]).is_err(),
            "cut at {length} was accepted"
        );
    }
}

#[test]
fn truncation_inside_a_namespace_names_it() {
    let archive = fixture("dump-w-oplog.archive");
    let document = first_document_offset(&archive, "test", "foo");
    let error = scan_archive(&archive[..document + 10]).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::Truncated { section: Section::Namespace(name), .. } if name == "test.foo")
    );
    assert!(error.to_string().contains("namespace test.foo"), "{error}");
}

#[test]
fn garbage_is_rejected_without_hanging_or_huge_allocations() {
    assert!(matches!(
        scan_archive(&b"PK\x03\x04 not an archive"[..]),
        Err(ArchiveError::BadMagic { .. })
    ));

    let magic = 0x8199_e26d_u32.to_le_bytes();
    // Endless input must still end in an error: zeros are an impossible document length,
    // 0xFF bytes a terminator where the header document belongs.
    for fill in [0x00, 0xff] {
        let endless = magic.as_slice().chain(io::repeat(fill));
        assert!(matches!(
            scan_archive(endless),
            Err(ArchiveError::BadDocumentLength { .. })
        ));
    }

    // A 2 GiB length claim on a short stream is refused before any allocation.
    let mut huge = magic.to_vec();
    huge.extend(0x7fff_ffff_u32.to_le_bytes());
    assert!(matches!(
        scan_archive(&huge[..]),
        Err(ArchiveError::BadDocumentLength {
            length: 0x7fff_ffff,
            ..
        })
    ));

    // A plausible length with nothing behind it is truncation, not a 16 MiB buffer.
    let mut short = magic.to_vec();
    short.extend(16_000_000_u32.to_le_bytes());
    short.extend([1, 2, 3]);
    assert!(matches!(
        scan_archive(&short[..]),
        Err(ArchiveError::Truncated {
            section: Section::Header,
            ..
        })
    ));
}

#[test]
fn documents_after_an_eof_header_are_rejected() {
    let archive = fixture("test.bar.archive");
    // Replay test.bar's data segment after the archive's end, i.e. after its EOF header.
    let data_segment_start = first_document_offset(&archive, "test", "bar") - 0x39;
    let mut replayed = archive.clone();
    let data_segment_end = data_segment_start + 0x39 + 0x23 + 4;
    replayed.extend_from_slice(&archive[data_segment_start..data_segment_end]);
    let error = scan_archive(&replayed[..]).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::DataAfterEof { namespace, .. } if namespace == "test.bar"),
        "{error}"
    );
}

#[test]
fn reads_through_a_reader_that_returns_one_byte_at_a_time() {
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            match buf.first_mut() {
                Some(slot) => {
                    *slot = *first;
                    self.0 = rest;
                    Ok(1)
                }
                None => Ok(0),
            }
        }
    }
    let compressed = gzip(&fixture("dump-w-oplog.archive"));
    let report = verify_archive(Trickle(&compressed)).unwrap();
    assert!(report.gzip);
    assert_eq!(namespace(&report, "test.foo").documents, 25);
}

/// A small archive built from scratch: `(db, collection, metadata JSON)` entries, then one data
/// segment and EOF segment (with the right CRC) for each `(db, collection, documents)`.
fn synthetic_archive(metadata: &[(&str, &str, &str)], data: &[(&str, &str, u32)]) -> Vec<u8> {
    let terminator = 0xffff_ffff_u32.to_le_bytes();
    let mut out = 0x8199_e26d_u32.to_le_bytes().to_vec();
    let header = bson::rawdoc! { "concurrent_collections": 4_i32, "version": "0.1", "server_version": "7.0.0", "tool_version": "100.9.0" };
    out.extend(header.as_bytes());
    for (db, collection, json) in metadata {
        let entry = bson::rawdoc! { "db": *db, "collection": *collection, "metadata": *json, "size": 0_i32 };
        out.extend(entry.as_bytes());
    }
    out.extend(terminator);
    for (db, collection, count) in data {
        let segment =
            bson::rawdoc! { "db": *db, "collection": *collection, "EOF": false, "CRC": 0_i64 };
        out.extend(segment.as_bytes());
        let mut crc = NAMESPACE_CRC.digest();
        for n in 0..*count {
            let document = bson::rawdoc! { "_id": n as i32, "name": format!("player-{n}") };
            crc.update(document.as_bytes());
            out.extend(document.as_bytes());
        }
        out.extend(terminator);
        let crc = i64::from_le_bytes(crc.finalize().to_le_bytes());
        let eof = bson::rawdoc! { "db": *db, "collection": *collection, "EOF": true, "CRC": crc };
        out.extend(eof.as_bytes());
        out.extend(terminator);
    }
    out
}

const PLAIN_METADATA: &str = r#"{"options":{},"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}]}"#;

#[test]
fn synthetic_archive_round_trips() {
    let archive = synthetic_archive(
        &[("game", "players", PLAIN_METADATA)],
        &[("game", "players", 300)],
    );
    let report = verify_archive(&archive[..]).unwrap();
    assert_eq!(namespace(&report, "game.players").documents, 300);
    assert_eq!(report.server_version.as_deref(), Some("7.0.0"));
}

#[test]
fn views_and_time_series_have_metadata_only() {
    let view = r#"{"options":{"viewOn":"players","pipeline":[]},"indexes":[]}"#;
    let typed_view = r#"{"type":"view","options":{},"indexes":[]}"#;
    let time_series =
        r#"{"type":"timeseries","options":{"timeseries":{"timeField":"t"}},"indexes":[]}"#;
    let archive = synthetic_archive(
        &[
            ("game", "players", PLAIN_METADATA),
            ("game", "top", view),
            ("game", "top2", typed_view),
            ("game", "ticks", time_series),
        ],
        &[("game", "players", 2), ("game", "system.buckets.ticks", 1)],
    );
    let report = verify_archive(&archive[..]).unwrap();
    for name in ["game.top", "game.top2", "game.ticks"] {
        let metadata_only = namespace(&report, name);
        assert!(
            metadata_only.archive_crc.is_none()
                && metadata_only.crc_ok
                && metadata_only.documents == 0
        );
    }
    assert!(!namespace(&report, "game.system.buckets.ticks").has_metadata);
}

#[test]
fn a_collection_without_data_is_reported_missing() {
    let archive = synthetic_archive(
        &[
            ("game", "players", PLAIN_METADATA),
            ("game", "sessions", PLAIN_METADATA),
        ],
        &[("game", "players", 2)],
    );
    let error = verify_archive(&archive[..]).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::MissingData { namespace } if namespace == "game.sessions"),
        "{error}"
    );
}

#[test]
fn metadata_that_is_json_but_not_extended_json_is_rejected() {
    let bad_number =
        r#"{"options":{},"indexes":[{"v":{"$numberInt":"two"},"key":{"_id":1},"name":"_id_"}]}"#;
    let archive = synthetic_archive(
        &[("game", "players", bad_number)],
        &[("game", "players", 1)],
    );
    let error = verify_archive(&archive[..]).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::InvalidMetadataJson { namespace, .. } if namespace == "game.players"),
        "{error}"
    );
}

/// The archive with the first occurrence of `from` replaced by `to` (same length).
fn patched(archive: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = archive
        .windows(from.len())
        .position(|window| window == from)
        .unwrap_or_else(|| panic!("pattern {from:02x?} not found"));
    let mut out = archive.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn an_unknown_element_type_in_a_data_segment_header_is_refused() {
    // The flip the old parser missed: the CRC element's type 0x12 became 0xed, after the fields
    // it read.
    let archive = fixture("test.bar.archive");
    let header = bson::rawdoc! { "db": "test", "collection": "bar", "EOF": false, "CRC": 0_i64 };
    let mut damaged_header = header.as_bytes().to_vec();
    let crc_type = damaged_header.len() - 1 - 8 - 4 - 1;
    assert_eq!(damaged_header[crc_type], 0x12);
    damaged_header[crc_type] = 0xed;
    let error = scan_archive(&patched(&archive, header.as_bytes(), &damaged_header)[..])
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("malformed BSON document in a namespace header at byte ")
            && error.contains("unknown element type 0xed (element \"CRC\""),
        "{error}"
    );
}

#[test]
fn a_data_segment_header_must_carry_crc_zero() {
    let archive = fixture("test.bar.archive");
    let header = bson::rawdoc! { "db": "test", "collection": "bar", "EOF": false, "CRC": 0_i64 };
    let nonzero = bson::rawdoc! { "db": "test", "collection": "bar", "EOF": false, "CRC": 7_i64 };
    let error = scan_archive(&patched(&archive, header.as_bytes(), nonzero.as_bytes())[..])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("field \"CRC\" of a data segment header is 0x0000000000000007"),
        "{error}"
    );
}

#[test]
fn header_fields_are_checked() {
    let archive = fixture("test.bar.archive");
    let concurrent = b"concurrent_collections\0\x04\0\0\0";
    let cases: [(&[u8], &[u8], &str); 4] = [
        (
            concurrent,
            b"concurrent_collections\0\0\0\0\x80",
            "\"concurrent_collections\" is -2147483648",
        ),
        (concurrent, b"concurrent_collections\0\0\0\0\0", "is 0"),
        (
            b"\x02server_version\0\x06\0\0\x003.4.3\0",
            b"\x02server_version\0\x06\0\0\x003.4-3\0",
            "\"server_version\" is \"3.4-3\", not a MongoDB version",
        ),
        (
            b"\x02tool_version\0",
            b"\x02tool_versioN\0",
            "unexpected field \"tool_versioN\"",
        ),
    ];
    for (from, to, expected) in cases {
        let error = scan_archive(&patched(&archive, from, to)[..])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid archive header: ") && error.contains(expected),
            "{error}"
        );
    }
    // The value nothing repeats is read and reported.
    let parallel = patched(&archive, concurrent, b"concurrent_collections\0\x10\0\0\0");
    assert_eq!(
        scan_archive(&parallel[..]).unwrap().concurrent_collections,
        16
    );
    assert_eq!(
        scan_archive(&archive[..]).unwrap().concurrent_collections,
        4
    );
}

#[test]
fn metadata_size_must_be_zero_or_the_documents_total() {
    let archive = fixture("test.bar.archive");
    // test.bar's entry is the first; its one document is 0x23 bytes.
    let size = b"\x10size\0\0\0\0\0";
    let right = patched(&archive, size, b"\x10size\0\x23\0\0\0");
    scan_archive(&right[..]).unwrap();
    let wrong = patched(&archive, size, b"\x10size\0\x24\0\0\0");
    let error = scan_archive(&wrong[..]).unwrap_err().to_string();
    assert_eq!(
        error,
        "collection metadata of namespace test.bar gives size 36, but its documents total 35 bytes (mongodump writes 0 or the total)"
    );
    let negative = patched(&archive, size, b"\x10size\0\0\0\0\xff");
    let error = scan_archive(&negative[..]).unwrap_err().to_string();
    assert!(error.contains("field \"size\" is negative"), "{error}");
}

#[test]
fn structural_documents_refuse_repeated_and_unknown_fields() {
    let entry = |document: bson::RawDocumentBuf| -> String {
        let metadata = [("game", "players", PLAIN_METADATA)];
        let mut archive = synthetic_archive(&metadata, &[("game", "players", 1)]);
        let good = bson::rawdoc! { "db": "game", "collection": "players", "metadata": PLAIN_METADATA, "size": 0_i32 };
        let at = archive
            .windows(good.as_bytes().len())
            .position(|window| window == good.as_bytes())
            .unwrap();
        archive.splice(
            at..at + good.as_bytes().len(),
            document.as_bytes().iter().copied(),
        );
        scan_archive(&archive[..]).unwrap_err().to_string()
    };
    let mut repeated = bson::rawdoc! { "db": "game", "collection": "players", "metadata": PLAIN_METADATA, "size": 0_i32 };
    repeated.append(bson::cstr!("db"), "game");
    assert!(entry(repeated).contains("field \"db\" appears twice"));
    let unknown = bson::rawdoc! { "db": "game", "collection": "players", "metadata": PLAIN_METADATA, "size": 0_i32, "sizes": 1_i32 };
    assert!(entry(unknown).contains("unexpected field \"sizes\""));
    let missing =
        bson::rawdoc! { "db": "game", "collection": "players", "metadata": PLAIN_METADATA };
    assert!(entry(missing).contains("field \"size\" is missing"));
    let not_oplog =
        bson::rawdoc! { "db": "", "collection": "players", "metadata": "", "size": 0_i32 };
    assert!(entry(not_oplog).contains("only the oplog has"));
    // Newer mongodumps add `type` and may write the size as an int64.
    let newer = bson::rawdoc! { "db": "game", "collection": "players", "metadata": PLAIN_METADATA, "size": 0_i64, "type": "collection" };
    let metadata = [("game", "players", PLAIN_METADATA)];
    let mut archive = synthetic_archive(&metadata, &[("game", "players", 1)]);
    let good = bson::rawdoc! { "db": "game", "collection": "players", "metadata": PLAIN_METADATA, "size": 0_i32 };
    let at = archive
        .windows(good.as_bytes().len())
        .position(|window| window == good.as_bytes())
        .unwrap();
    archive.splice(
        at..at + good.as_bytes().len(),
        newer.as_bytes().iter().copied(),
    );
    scan_archive(&archive[..]).unwrap();
}

#[test]
fn malformed_data_documents_are_refused_even_with_a_matching_crc() {
    // Damage that happened before mongodump computed the CRC: only strict decoding sees it.
    let metadata = [("game", "players", PLAIN_METADATA)];
    let archive = synthetic_archive(&metadata, &[("game", "players", 1)]);
    let document = bson::rawdoc! { "_id": 0_i32, "name": "player-0" };
    let mut bad = document.as_bytes().to_vec();
    let name_byte = bad.len() - 3;
    bad[name_byte] = 0xc3; // "player-\xc3": not UTF-8
    let mut damaged = patched(&archive, document.as_bytes(), &bad);
    // Recompute the EOF CRC over the damaged document, as mongodump would have.
    let crc = i64::from_le_bytes(NAMESPACE_CRC.checksum(&bad).to_le_bytes());
    let eof_old = {
        let crc = i64::from_le_bytes(NAMESPACE_CRC.checksum(document.as_bytes()).to_le_bytes());
        bson::rawdoc! { "db": "game", "collection": "players", "EOF": true, "CRC": crc }
    };
    let eof_new = bson::rawdoc! { "db": "game", "collection": "players", "EOF": true, "CRC": crc };
    damaged = patched(&damaged, eof_old.as_bytes(), eof_new.as_bytes());
    let error = scan_archive(&damaged[..]).unwrap_err().to_string();
    assert!(
        error.starts_with("malformed BSON document in namespace game.players at byte ")
            && error.contains("string is not valid UTF-8 (element \"name\""),
        "{error}"
    );
}
