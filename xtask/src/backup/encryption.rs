//! Optional client-side encryption of archives with age (X25519 recipients). Keys come from files:
//! the host that makes backups holds only public recipients; the private identity is needed only to
//! restore or to verify the contents of an encrypted backup, and can live offline.

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::Path;

use anyhow::{Context, bail};

/// Public keys (`age1…`) an archive is encrypted to; any matching identity can decrypt it.
pub struct Recipients {
    keys: Vec<age::x25519::Recipient>,
}

impl Recipients {
    /// One `age1…` key per line; blank lines and `#` comments are ignored (the format of
    /// `age -R FILE` and of `age-keygen -y` output).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading age recipients file {}", path.display()))?;
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = line.parse::<age::x25519::Recipient>().map_err(|reason| {
                anyhow::anyhow!(
                    "{} line {}: not an age X25519 recipient (age1…): {reason}",
                    path.display(),
                    number + 1
                )
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            bail!("age recipients file {} holds no recipient", path.display());
        }
        Ok(Self { keys })
    }

    /// Wraps `output` so that everything written is encrypted; `finish` must be called.
    pub fn encrypt<W: Write>(&self, output: W) -> anyhow::Result<age::stream::StreamWriter<W>> {
        let encryptor =
            age::Encryptor::with_recipients(self.keys.iter().map(|key| key as &dyn age::Recipient))
                .context("setting up age encryption")?;
        encryptor
            .wrap_output(output)
            .context("writing the age header")
    }
}

/// Private keys (`AGE-SECRET-KEY-1…`) read from an identity file.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity>>,
}

impl Identities {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let file = age::IdentityFile::from_file(path.display().to_string())
            .with_context(|| format!("reading age identity file {}", path.display()))?;
        let keys = file
            .into_identities()
            .with_context(|| format!("parsing age identity file {}", path.display()))?;
        if keys.is_empty() {
            bail!("age identity file {} holds no identity", path.display());
        }
        Ok(Self { keys })
    }

    /// The plaintext of an age-encrypted stream; a wrong key fails here, a damaged payload fails
    /// while reading (age authenticates every chunk).
    pub fn decrypt<R: Read + Send + 'static>(
        &self,
        input: R,
    ) -> anyhow::Result<Box<dyn Read + Send>> {
        let decryptor = age::Decryptor::new_buffered(BufReader::new(input))
            .context("reading the age header")?;
        let reader = decryptor
            .decrypt(
                self.keys
                    .iter()
                    .map(|key| key.as_ref() as &dyn age::Identity),
            )
            .context("decrypting (is this the identity the backup was encrypted to?)")?;
        Ok(Box::new(reader))
    }

    pub fn decrypt_file(&self, path: &Path) -> anyhow::Result<Box<dyn Read + Send>> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        self.decrypt(file)
    }
}

#[cfg(test)]
pub mod tests {
    use std::path::PathBuf;

    use age::secrecy::ExposeSecret;

    use super::*;

    /// Writes a fresh identity and its recipient to `dir`; returns (identity file, recipients file).
    pub fn key_pair(dir: &Path) -> (PathBuf, PathBuf) {
        let identity = age::x25519::Identity::generate();
        let identity_path = dir.join("backup.key");
        let recipients_path = dir.join("backup.pub");
        fs::write(
            &identity_path,
            format!("# test key\n{}\n", identity.to_string().expose_secret()),
        )
        .unwrap();
        fs::write(
            &recipients_path,
            format!("# public\n\n{}\n", identity.to_public()),
        )
        .unwrap();
        (identity_path, recipients_path)
    }

    #[test]
    fn round_trip_through_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let (identity, recipients) = key_pair(dir.path());
        let recipients = Recipients::from_file(&recipients).unwrap();
        let mut writer = recipients.encrypt(Vec::new()).unwrap();
        let plaintext: Vec<u8> = (0..200_000u32).map(|i| (i % 7) as u8).collect();
        writer.write_all(&plaintext).unwrap();
        let ciphertext = writer.finish().unwrap();
        assert_ne!(ciphertext[..100], plaintext[..100]);
        let mut reader = Identities::from_file(&identity)
            .unwrap()
            .decrypt(std::io::Cursor::new(ciphertext))
            .unwrap();
        let mut decrypted = Vec::new();
        reader.read_to_end(&mut decrypted).unwrap();
        assert_eq!(decrypted, plaintext);
    }

    #[test]
    fn the_wrong_identity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, recipients) = key_pair(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (wrong_identity, _) = key_pair(other.path());
        let mut writer = Recipients::from_file(&recipients)
            .unwrap()
            .encrypt(Vec::new())
            .unwrap();
        writer.write_all(b"secret").unwrap();
        let ciphertext = writer.finish().unwrap();
        let identities = Identities::from_file(&wrong_identity).unwrap();
        assert!(
            identities
                .decrypt(std::io::Cursor::new(ciphertext))
                .is_err()
        );
    }

    #[test]
    fn a_bad_recipient_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.txt");
        fs::write(&path, "# ok\nnot-a-key\n").unwrap();
        let error = Recipients::from_file(&path).err().unwrap().to_string();
        assert!(error.contains("line 2"), "{error}");
    }
}
