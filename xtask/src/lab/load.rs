//! `lab load`: copies images from the host engine into every node's engine (`docker save | docker -H
//! <node> load`), since the lab has no registry and swarm tasks run only what their node has.

use anyhow::Context;

use super::state::LabState;
use crate::command::lab as cmd;

/// The compose variables that name the offline stack's images (docker/compose.yml, compose.offline.yml).
const IMAGE_VARIABLES: [&str; 5] = [
    "AVALON_API_IMAGE",
    "AVALON_WS_IMAGE",
    "NGINX_IMAGE",
    "REDIS_IMAGE",
    "MONGO_IMAGE",
];

/// The images `up --env offline` would run from this checkout: each compose image variable that is set,
/// else the service images at this checkout's build tag (`cargo xtask image build`) and the offline base
/// images (docker/offline/*.json). Split into those the host engine has and those it lacks.
pub fn offline_images(
    variable: &dyn Fn(&str) -> Option<String>,
    build_tag: &str,
    base_images: &[String],
    listing: &str,
) -> (Vec<String>, Vec<String>) {
    let set: Vec<String> = IMAGE_VARIABLES
        .iter()
        .filter_map(|name| variable(name))
        .collect();
    let mut wanted = set;
    if variable("AVALON_API_IMAGE").is_none() {
        wanted.push(format!("avalon-api:{build_tag}"));
    }
    if variable("AVALON_WS_IMAGE").is_none() {
        wanted.push(format!("avalon-ws:{build_tag}"));
    }
    for image in base_images {
        if !wanted.contains(image) {
            wanted.push(image.clone());
        }
    }
    let present: Vec<&str> = listing.lines().map(str::trim).collect();
    wanted
        .into_iter()
        .partition(|image| present.contains(&image.as_str()))
}

fn default_images() -> anyhow::Result<Vec<String>> {
    let sh = xshell::Shell::new()?;
    sh.change_dir(crate::project::root());
    let identity = crate::image::tags::BuildIdentity::from_git(&sh)?;
    let build_tag = format!("{}-{}", identity.version, identity.revision());
    let base: Vec<String> = crate::image::base::load_recipes(None)?
        .into_values()
        .map(|recipe| recipe.image)
        .collect();
    let listing = cmd::host_images().capture(None)?;
    let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let (present, missing) = offline_images(&variable, &build_tag, &base, &listing);
    if !missing.is_empty() {
        eprintln!(
            "warning: the host engine lacks {} (`cargo xtask image build`, `cargo xtask image base`)",
            missing.join(", ")
        );
    }
    Ok(present)
}

pub fn load(state: &LabState, images: &[String], dry_run: bool) -> anyhow::Result<()> {
    let images = if images.is_empty() {
        default_images()?
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
    fn the_default_is_what_the_offline_stack_would_run() {
        let listing = "avalon-offline/nginx:1.22\navalon-api:0.1.0-abc\navalon-ws:0.1.0-abc\navalon-ws:chaos-v2\nmine:1\n";
        let base = [
            "avalon-offline/nginx:1.22".to_owned(),
            "avalon-offline/redis:7".to_owned(),
        ];
        let none = |_: &str| None;
        assert_eq!(
            offline_images(&none, "0.1.0-abc", &base, listing),
            (
                vec![
                    "avalon-api:0.1.0-abc".to_owned(),
                    "avalon-ws:0.1.0-abc".to_owned(),
                    "avalon-offline/nginx:1.22".to_owned()
                ],
                vec!["avalon-offline/redis:7".to_owned()]
            )
        );
        let set = |name: &str| (name == "AVALON_WS_IMAGE").then(|| "avalon-ws:chaos-v2".to_owned());
        let (present, _) = offline_images(&set, "0.1.0-abc", &base, listing);
        assert_eq!(present[0], "avalon-ws:chaos-v2");
        assert!(present.contains(&"avalon-api:0.1.0-abc".to_owned()));
        assert!(!present.contains(&"avalon-ws:0.1.0-abc".to_owned()));
    }
}
