//! SHA-256 and byte count computed while data streams through, so an archive can be hashed as it
//! is written or read, with no temporary copy and no second pass.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The checksum of a stream, as recorded in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDigest {
    /// Lower-case hex.
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Default)]
struct Tally {
    hasher: Sha256,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    fn finish(self) -> StreamDigest {
        StreamDigest {
            sha256: format!("{:x}", self.hasher.finalize()),
            bytes: self.bytes,
        }
    }
}

/// Hashes exactly the bytes the inner writer accepted (a short write hashes only its prefix).
pub struct DigestWriter<W> {
    inner: W,
    tally: Tally,
}

impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            tally: Tally::default(),
        }
    }

    /// Flushes and returns the inner writer with the digest of everything written.
    pub fn finish(mut self) -> io::Result<(W, StreamDigest)> {
        self.inner.flush()?;
        Ok((self.inner, self.tally.finish()))
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.tally.add(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes exactly the bytes handed out to the reader's caller.
pub struct DigestReader<R> {
    inner: R,
    tally: Tally,
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            tally: Tally::default(),
        }
    }

    /// Reads whatever the consumer left unread, so the digest covers the whole input.
    pub fn finish(mut self) -> io::Result<StreamDigest> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.tally.finish())
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.tally.add(&buf[..read]);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::{BufReader, Read, Write};

    use sha2::{Digest as _, Sha256};

    use super::*;

    /// SplitMix64: enough pseudo-randomness for test data, and reproducible.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn fill(&mut self, buf: &mut [u8]) {
            for chunk in buf.chunks_mut(8) {
                self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = self.0;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
            }
        }
    }

    /// A file that accepts at most `limit` bytes per `write`, like a pipe or socket under pressure.
    struct StingyWriter {
        file: File,
        limit: usize,
    }

    impl Write for StingyWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let take = buf.len().min(self.limit);
            self.file.write(&buf[..take])
        }

        fn flush(&mut self) -> io::Result<()> {
            self.file.flush()
        }
    }

    fn sha256_of_file(path: &std::path::Path) -> (String, u64) {
        let mut reader = BufReader::new(File::open(path).unwrap());
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let read = reader.read(&mut buf).unwrap();
            if read == 0 {
                break;
            }
            hasher.update(&buf[..read]);
            total += read as u64;
        }
        (format!("{:x}", hasher.finalize()), total)
    }

    #[test]
    fn large_stream_written_in_odd_chunks_hashes_what_reached_the_file() {
        const TOTAL: usize = 64 * 1024 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive.bin");
        let stingy = StingyWriter {
            file: File::create(&path).unwrap(),
            limit: 65_521,
        };
        let mut writer = DigestWriter::new(stingy);
        let mut rng = SplitMix64(0x5eed);
        let chunk_sizes = [1usize, 7, 4093, 131_071, 3, 65_537, 999_983];
        let mut buf = vec![0u8; *chunk_sizes.iter().max().unwrap()];
        let mut written = 0;
        for size in chunk_sizes.iter().cycle() {
            let size = (*size).min(TOTAL - written);
            if size == 0 {
                break;
            }
            rng.fill(&mut buf[..size]);
            writer.write_all(&buf[..size]).unwrap();
            written += size;
        }
        let (stingy, digest) = writer.finish().unwrap();
        stingy.file.sync_all().unwrap();
        drop(stingy);

        let (expected_sha256, file_len) = sha256_of_file(&path);
        assert_eq!(file_len, TOTAL as u64);
        assert_eq!(digest.bytes, TOTAL as u64);
        assert_eq!(digest.sha256, expected_sha256);
    }

    #[test]
    fn reader_digest_covers_unread_tail() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut reader = DigestReader::new(&data[..]);
        let mut head = [0u8; 1000];
        reader.read_exact(&mut head).unwrap();
        let digest = reader.finish().unwrap();
        assert_eq!(digest.bytes, data.len() as u64);
        assert_eq!(digest.sha256, format!("{:x}", Sha256::digest(&data)));
    }

    #[test]
    fn empty_stream_has_the_well_known_sha256() {
        let digest = DigestReader::new(io::empty()).finish().unwrap();
        assert_eq!(
            digest.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(digest.bytes, 0);
    }
}
