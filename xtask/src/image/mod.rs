//! `cargo xtask image …`: build, publish and move the service images; build the offline base images.

pub mod base;
pub mod build;
pub mod docker;
pub mod service;
pub mod tags;
mod transfer;

use clap::Subcommand;
use xshell::Shell;

#[derive(Subcommand)]
pub enum Image {
    /// Build the avalon-api and avalon-ws images and print tags, id and size.
    Build(build::Build),
    /// Tag and push the images to a registry.
    Push(transfer::Push),
    /// Save images as tarballs with sha256 files, for hosts without registry access.
    Export(transfer::Export),
    /// Verify the sha256 files and load exported tarballs.
    Import(transfer::Import),
    /// Build the offline nginx and redis base images from Debian packages (skipped when up to date).
    Base(base::Base),
}

impl Image {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        match self {
            Image::Build(cmd) => cmd.run(sh),
            Image::Push(cmd) => cmd.run(sh),
            Image::Export(cmd) => cmd.run(sh),
            Image::Import(cmd) => cmd.run(sh),
            Image::Base(cmd) => cmd.run(sh),
        }
    }
}

/// Builds the offline base images unless they are current (used by `up --env offline`).
pub fn base_images(sh: &Shell) -> anyhow::Result<()> {
    base::Base {
        only: None,
        force: false,
        dry_run: false,
        json: false,
    }
    .run(sh)
}
