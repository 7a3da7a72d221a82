//! A clone's `cargo build` in the shared target directory replaces the binaries cargo places at its top
//! (same names), which other tests and the image build use. Cargo replaces them by unlink + link, so a hard
//! link taken before keeps each original; dropping this puts every original back (or removes what the
//! clone added where nothing was).

use std::path::{Path, PathBuf};

pub struct TopLevelBinaries {
    saved: Vec<(PathBuf, Option<PathBuf>)>,
    _dir: tempfile::TempDir,
}

impl TopLevelBinaries {
    /// `relatives`: paths under `target`, e.g. `release/avalon-api`.
    pub fn save(target: &Path, relatives: &[&str]) -> Self {
        let dir = tempfile::tempdir_in(target).unwrap();
        let saved = relatives
            .iter()
            .enumerate()
            .map(|(index, relative)| {
                let path = target.join(relative);
                let keep = dir.path().join(index.to_string());
                let kept = std::fs::hard_link(&path, &keep).is_ok().then_some(keep);
                (path, kept)
            })
            .collect();
        Self { saved, _dir: dir }
    }
}

impl Drop for TopLevelBinaries {
    fn drop(&mut self) {
        for (path, kept) in &self.saved {
            match kept {
                Some(kept) => {
                    let _ = std::fs::rename(kept, path);
                }
                None => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}
