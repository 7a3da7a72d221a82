//! `lab load`: copies images from the host engine into every node's engine (`docker save | docker -H
//! <node> load`), since the lab has no registry and swarm tasks run only what their node has.

use anyhow::Context;

use super::state::LabState;
use crate::command::lab as cmd;

/// The images the offline stack runs: the offline stand-ins and the service images (any tag).
const OFFLINE_REPOSITORIES: [&str; 3] = ["avalon-offline/", "avalon-api:", "avalon-ws:"];

/// The default: every image of the host engine the offline stack uses.
pub fn offline_images(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(str::trim)
        .filter(|image| !image.contains("<none>"))
        .filter(|image| {
            OFFLINE_REPOSITORIES
                .iter()
                .any(|prefix| image.starts_with(prefix))
        })
        .map(str::to_owned)
        .collect()
}

pub fn load(state: &LabState, images: &[String], dry_run: bool) -> anyhow::Result<()> {
    let images = if images.is_empty() {
        offline_images(&cmd::host_images().capture(None)?)
    } else {
        images.to_vec()
    };
    anyhow::ensure!(
        !images.is_empty(),
        "no image to load: the host engine has none of the offline stack's images \
         (`cargo xtask image build`); or name them: `cargo xtask lab load IMAGE…`"
    );
    let save = cmd::save(&images);
    if dry_run {
        for node in &state.nodes {
            eprintln!("$ {save} | {}", cmd::load_into(node));
        }
        return Ok(());
    }
    // Saved once into a file beside the lab, loaded into each node from it: cheaper than a save per node.
    let mut archive = tempfile::NamedTempFile::new_in(super::spec::lab_dir(&state.name))
        .context("creating the image archive")?;
    save.stream(None, archive.as_file_mut())
        .with_context(|| format!("saving {images:?} from the host engine"))?;
    for node in &state.nodes {
        let reader = archive.reopen().context("reading the image archive")?;
        let mut out = Vec::new();
        cmd::load_into(node)
            .stream(Some(Box::new(reader)), &mut out)
            .with_context(|| format!("loading into node {}", node.index))?;
    }
    eprintln!(
        "loaded {} image(s) into {} node(s): {}",
        images.len(),
        state.nodes.len(),
        images.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_offline_stack_images() {
        let listing = "avalon-offline/nginx:1.22\navalon-api:1.4.0\navalon-ws:latest\nrust:1.95\n<none>:<none>\n";
        assert_eq!(
            offline_images(listing),
            [
                "avalon-offline/nginx:1.22",
                "avalon-api:1.4.0",
                "avalon-ws:latest"
            ]
        );
    }
}
