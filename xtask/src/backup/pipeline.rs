//! The host side of `backup create`: the dump streams in once and is, at the same time,
//! (a) parsed and CRC-checked by a second thread, and (b) optionally encrypted, hashed and written to
//! a temporary file beside its final name, renamed into place only when everything succeeded.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use anyhow::{Context, bail};
use tempfile::TempPath;

use super::archive::{ArchiveError, ArchiveReport, scan_archive};
use super::digest::{DigestWriter, StreamDigest};
use super::encryption::Recipients;

/// Chunks in flight to the parser; bounded so a slow parser slows the stream, not memory.
const PARSER_QUEUE_CHUNKS: usize = 32;
const FILE_BUFFER_BYTES: usize = 1 << 20;

type FileOut = DigestWriter<BufWriter<File>>;

enum Output {
    Plain(FileOut),
    Encrypted(age::stream::StreamWriter<FileOut>),
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(out) => out.write(buf),
            Self::Encrypted(out) => out.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(out) => out.flush(),
            Self::Encrypted(out) => out.flush(),
        }
    }
}

/// Receives the dump; see the module documentation.
pub struct ArchiveWriter {
    output: Output,
    temp_path: TempPath,
    parser: ParserFeed,
}

/// An archive fully written to its temporary file, not yet in place.
pub struct WrittenArchive {
    /// Of the file as stored (after encryption).
    pub digest: StreamDigest,
    /// The parse of the plaintext stream.
    pub parsed: Result<ArchiveReport, ArchiveError>,
    temp_path: TempPath,
}

impl ArchiveWriter {
    /// Starts a temporary file in `dir` (a rename is atomic only within one file system).
    pub fn create(
        dir: &Path,
        final_name: &str,
        encrypt_to: Option<&Recipients>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{final_name}."))
            .suffix(".partial")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary archive in {}", dir.display()))?;
        let (file, temp_path) = temp.into_parts();
        let file_out = DigestWriter::new(BufWriter::with_capacity(FILE_BUFFER_BYTES, file));
        let output = match encrypt_to {
            Some(recipients) => Output::Encrypted(recipients.encrypt(file_out)?),
            None => Output::Plain(file_out),
        };
        Ok(Self {
            output,
            temp_path,
            parser: ParserFeed::start(),
        })
    }

    /// Flushes everything to disk and collects the parser's verdict.
    pub fn finish(self) -> anyhow::Result<WrittenArchive> {
        let file_out = match self.output {
            Output::Plain(out) => out,
            Output::Encrypted(out) => out.finish().context("finishing the age stream")?,
        };
        let (buffered, digest) = file_out.finish().context("flushing the archive")?;
        let file = buffered
            .into_inner()
            .map_err(|error| error.into_error())
            .context("flushing the archive")?;
        file.sync_all().context("syncing the archive to disk")?;
        let parsed = self.parser.finish()?;
        Ok(WrittenArchive {
            digest,
            parsed,
            temp_path: self.temp_path,
        })
    }
}

impl Write for ArchiveWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.output.write(buf)?;
        self.parser.feed(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

impl WrittenArchive {
    /// Renames the archive into place and syncs the directory.
    pub fn persist(self, path: &Path) -> anyhow::Result<()> {
        self.temp_path
            .persist(path)
            .map_err(|error| error.error)
            .with_context(|| format!("renaming the archive into {}", path.display()))?;
        if let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|handle| handle.sync_all())
                .with_context(|| format!("syncing directory {}", dir.display()))?;
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn temp_path(&self) -> std::path::PathBuf {
        self.temp_path.to_path_buf()
    }
}

/// The parser thread and the queue that feeds it. If the parser stops early (a broken archive),
/// feeding stops too; the file is still written in full and the error is reported at the end.
struct ParserFeed {
    sender: Option<SyncSender<Vec<u8>>>,
    handle: JoinHandle<Result<ArchiveReport, ArchiveError>>,
}

impl ParserFeed {
    fn start() -> Self {
        let (sender, receiver) = sync_channel(PARSER_QUEUE_CHUNKS);
        let handle = thread::spawn(move || scan_archive(ChannelReader::new(receiver)));
        Self {
            sender: Some(sender),
            handle,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(sender) = &self.sender
            && sender.send(bytes.to_vec()).is_err()
        {
            self.sender = None;
        }
    }

    fn finish(mut self) -> anyhow::Result<Result<ArchiveReport, ArchiveError>> {
        self.sender = None;
        match self.handle.join() {
            Ok(result) => Ok(result),
            Err(_) => bail!("the archive parser thread panicked"),
        }
    }
}

/// Copies with a buffer large enough that per-call overhead vanishes next to hashing.
pub fn copy_stream(input: &mut dyn Read, output: &mut dyn Write) -> io::Result<u64> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        output.write_all(&buffer[..read])?;
        total += read as u64;
    }
}

struct ChannelReader {
    receiver: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    position: usize,
}

impl ChannelReader {
    fn new(receiver: Receiver<Vec<u8>>) -> Self {
        Self {
            receiver,
            chunk: Vec::new(),
            position: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.chunk.len() {
            match self.receiver.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.position = 0;
                }
                // The sender is gone: end of stream.
                Err(_) => return Ok(0),
            }
        }
        let available = &self.chunk[self.position..];
        let take = available.len().min(buf.len());
        buf[..take].copy_from_slice(&available[..take]);
        self.position += take;
        Ok(take)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::backup::encryption::tests::key_pair;
    use crate::backup::encryption::{Identities, Recipients};
    use crate::backup::synthetic::SyntheticArchive;

    fn gzipped_synthetic(target_bytes: usize) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::new(1));
        SyntheticArchive::new(target_bytes)
            .write_to(&mut encoder)
            .unwrap();
        encoder.finish().unwrap()
    }

    /// Writes in awkward chunk sizes, as a pipe would deliver them.
    fn write_in_odd_chunks(writer: &mut ArchiveWriter, data: &[u8]) {
        let sizes = [1usize, 4093, 65_537, 7, 300_000];
        let mut offset = 0;
        for size in sizes.iter().cycle() {
            if offset == data.len() {
                break;
            }
            let end = (offset + size).min(data.len());
            writer.write_all(&data[offset..end]).unwrap();
            offset = end;
        }
    }

    #[test]
    fn recorded_sha256_is_that_of_the_bytes_on_disk_and_the_stream_is_parsed() {
        let archive = gzipped_synthetic(24 * 1024 * 1024);
        let dir = tempfile::tempdir().unwrap();
        let mut writer = ArchiveWriter::create(dir.path(), "x.archive.gz", None).unwrap();
        write_in_odd_chunks(&mut writer, &archive);
        let written = writer.finish().unwrap();
        let report = written.parsed.as_ref().unwrap();
        assert!(report.gzip);
        assert!(report.crc_mismatches().next().is_none());
        assert_eq!(
            report.total_documents(),
            SyntheticArchive::new(24 * 1024 * 1024).documents()
        );
        let final_path = dir.path().join("x.archive.gz");
        let digest = written.digest.clone();
        written.persist(&final_path).unwrap();
        let on_disk = fs::read(&final_path).unwrap();
        assert_eq!(digest.bytes, on_disk.len() as u64);
        assert_eq!(digest.sha256, format!("{:x}", Sha256::digest(&on_disk)));
        assert_eq!(on_disk, archive);
    }

    #[test]
    fn a_failed_run_leaves_no_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = ArchiveWriter::create(dir.path(), "x.archive.gz", None).unwrap();
        writer.write_all(b"not an archive at all").unwrap();
        let written = writer.finish().unwrap();
        assert!(written.parsed.is_err());
        let temp = written.temp_path();
        assert!(temp.exists());
        drop(written);
        assert!(!temp.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn encrypted_archives_hash_the_ciphertext_and_parse_the_plaintext() {
        let archive = gzipped_synthetic(2 * 1024 * 1024);
        let dir = tempfile::tempdir().unwrap();
        let (identity, recipients) = key_pair(dir.path());
        let recipients = Recipients::from_file(&recipients).unwrap();
        let mut writer =
            ArchiveWriter::create(dir.path(), "x.archive.gz.age", Some(&recipients)).unwrap();
        write_in_odd_chunks(&mut writer, &archive);
        let written = writer.finish().unwrap();
        assert!(written.parsed.is_ok());
        let path = dir.path().join("x.archive.gz.age");
        let digest = written.digest.clone();
        written.persist(&path).unwrap();
        let stored = fs::read(&path).unwrap();
        assert_eq!(digest.sha256, format!("{:x}", Sha256::digest(&stored)));
        assert_ne!(stored[..64], archive[..64]);
        let mut plaintext = Vec::new();
        Identities::from_file(&identity)
            .unwrap()
            .decrypt_file(&path)
            .unwrap()
            .read_to_end(&mut plaintext)
            .unwrap();
        assert_eq!(plaintext, archive);
    }
}
