//! Valid mongodump archives of any size, made up of game-history-like documents, for the streaming
//! tests and `cargo xtask bench backup`. Deterministic: the same size gives the same bytes.
//! Segments of the two collections interleave the way a parallel mongodump writes them.

use std::io::{self, Write};

use bson::{Document, doc};
use crc::{CRC_64_XZ, Crc};

const MAGIC: [u8; 4] = 0x8199_e26d_u32.to_le_bytes();
const TERMINATOR: [u8; 4] = [0xff; 4];
const DOCUMENTS_PER_SEGMENT: u64 = 50;
const DB: &str = "avalon";
const COLLECTIONS: [&str; 2] = ["games", "players"];
const ROLES: [&str; 7] = [
    "merlin",
    "percival",
    "loyal_servant",
    "assassin",
    "morgana",
    "mordred",
    "oberon",
];

pub struct SyntheticArchive {
    target_bytes: usize,
}

impl SyntheticArchive {
    /// An archive of roughly `target_bytes` (uncompressed).
    pub fn new(target_bytes: usize) -> Self {
        Self { target_bytes }
    }

    /// How many documents [`Self::write_to`] writes.
    #[cfg(test)]
    pub fn documents(&self) -> u64 {
        self.write_to(&mut io::sink()).unwrap_or(0)
    }

    /// Writes the archive; returns how many documents it holds.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<u64> {
        let crc = Crc::<u64>::new(&CRC_64_XZ);
        out.write_all(&MAGIC)?;
        write_doc(
            out,
            &doc! {
                "concurrent_collections": 4_i32,
                "version": "0.1",
                "server_version": "7.0.14",
                "tool_version": "100.10.0",
            },
        )?;
        for collection in COLLECTIONS {
            let metadata = format!(
                "{{\"indexes\":[{{\"v\":{{\"$numberInt\":\"2\"}},\"key\":{{\"_id\":{{\"$numberInt\":\"1\"}}}},\"name\":\"_id_\"}}],\"uuid\":\"0123456789abcdef0123456789abcdef\",\"collectionName\":\"{collection}\",\"type\":\"collection\"}}"
            );
            write_doc(
                out,
                &doc! { "db": DB, "collection": collection, "metadata": metadata, "size": 0_i32, "type": "collection" },
            )?;
        }
        out.write_all(&TERMINATOR)?;

        let mut digests = [crc.digest(), crc.digest()];
        let mut rng = SplitMix64(0x00a1_a10b);
        let mut written = 0usize;
        let mut sequence = 0u64;
        while written < self.target_bytes {
            for (index, collection) in COLLECTIONS.iter().enumerate() {
                write_doc(
                    out,
                    &doc! { "db": DB, "collection": *collection, "EOF": false, "CRC": 0_i64 },
                )?;
                for _ in 0..DOCUMENTS_PER_SEGMENT {
                    let document = if index == 0 {
                        game_record(sequence, &mut rng)
                    } else {
                        player_record(sequence, &mut rng)
                    };
                    let bytes = document.to_vec().map_err(io::Error::other)?;
                    digests[index].update(&bytes);
                    out.write_all(&bytes)?;
                    written += bytes.len();
                    sequence += 1;
                }
                out.write_all(&TERMINATOR)?;
            }
        }
        for (collection, digest) in COLLECTIONS.iter().zip(digests) {
            let crc = i64::from_le_bytes(digest.finalize().to_le_bytes());
            write_doc(
                out,
                &doc! { "db": DB, "collection": *collection, "EOF": true, "CRC": crc },
            )?;
            out.write_all(&TERMINATOR)?;
        }
        Ok(sequence)
    }
}

fn write_doc(out: &mut dyn Write, document: &Document) -> io::Result<()> {
    let bytes = document.to_vec().map_err(io::Error::other)?;
    out.write_all(&bytes)
}

fn game_record(sequence: u64, rng: &mut SplitMix64) -> Document {
    let players: Vec<Document> = (0..(5 + rng.next() % 6))
        .map(|seat| {
            doc! {
                "seat": seat as i32,
                "user_id": format!("u{:016x}", rng.next()),
                "role": ROLES[(rng.next() % ROLES.len() as u64) as usize],
            }
        })
        .collect();
    let quests: Vec<Document> = (0..(3 + rng.next() % 3))
        .map(|quest| {
            doc! {
                "quest": quest as i32,
                "team": (0..3).map(|_| (rng.next() % 10) as i32).collect::<Vec<_>>(),
                "approve_votes": (rng.next() % 10) as i32,
                "fails": (rng.next() % 2) as i32,
            }
        })
        .collect();
    doc! {
        "_id": format!("g{sequence:012}"),
        "room_code": format!("{:06}", rng.next() % 1_000_000),
        "started_at": bson::DateTime::from_millis(1_700_000_000_000 + (sequence as i64) * 61_000),
        "winner": if rng.next().is_multiple_of(2) { "good" } else { "evil" },
        "players": players,
        "quests": quests,
    }
}

fn player_record(sequence: u64, rng: &mut SplitMix64) -> Document {
    doc! {
        "_id": format!("u{:016x}", rng.next()),
        "nickname": format!("player-{}", sequence % 100_000),
        "games_played": (rng.next() % 500) as i32,
        "wins": (rng.next() % 250) as i32,
        "last_seen": bson::DateTime::from_millis(1_700_000_000_000 + (sequence as i64) * 1_000),
    }
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::archive::scan_archive;

    #[test]
    fn synthetic_archives_pass_the_real_parser() {
        let mut bytes = Vec::new();
        let archive = SyntheticArchive::new(300_000);
        archive.write_to(&mut bytes).unwrap();
        let report = scan_archive(&bytes[..]).unwrap();
        assert!(report.crc_mismatches().next().is_none());
        assert_eq!(report.namespaces.len(), 2);
        assert_eq!(report.total_documents(), archive.documents());
        assert!(archive.documents() > 100);
        assert!(bytes.len() >= 300_000);
    }
}
