//! The release notes file: the version's changelog section and the images that ship it.

use std::fmt::Write as _;

/// The body of `## [version]` in CHANGELOG.md (without its heading), if the changelog has it.
pub fn changelog_section(changelog: &str, version: &semver::Version) -> Option<String> {
    let heading = format!("## [{version}]");
    let start = changelog.find(&heading)?;
    let after_heading = changelog[start..].find('\n').map(|at| start + at + 1)?;
    let end = changelog[after_heading..]
        .find("\n## ")
        .map_or(changelog.len(), |at| after_heading + at + 1);
    Some(changelog[after_heading..end].trim().to_string())
}

/// Markdown notes; `images` is the image build report, `published` the push or export report.
pub fn render(
    tag: &str,
    section: Option<&str>,
    images: &serde_json::Value,
    published: &serde_json::Value,
    pushed: bool,
) -> String {
    let mut out = format!("# Avalon Ops {tag}\n\n");
    match section {
        Some(section) if !section.is_empty() => {
            let _ = write!(out, "{section}\n\n");
        }
        _ => out.push_str("No changelog section was found for this version.\n\n"),
    }
    out.push_str("## Images\n\n| service | tags | image id | size |\n| --- | --- | --- | --- |\n");
    for image in images["images"].as_array().into_iter().flatten() {
        let tags: Vec<&str> = image["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tag| tag.as_str())
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | `{}` | {} bytes |",
            image["service"].as_str().unwrap_or("?"),
            tags.join("<br>"),
            image["id"].as_str().unwrap_or("?"),
            image["size_bytes"].as_u64().unwrap_or(0),
        );
    }
    if pushed {
        out.push_str("\n## Registry digests\n\n");
        for item in published.as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "- `{}` → `{}`",
                item["reference"].as_str().unwrap_or("?"),
                item["digest"].as_str().unwrap_or("(no digest reported)")
            );
        }
    } else {
        out.push_str(
            "\n## Exported images\n\nLoad on a host without registry access with `cargo xtask image import FILE…` \
             (or `sha256sum -c` then `docker load`).\n\n",
        );
        for item in published.as_array().into_iter().flatten() {
            let file = item["file"].as_str().unwrap_or("?");
            let name = file.rsplit('/').next().unwrap_or(file);
            let _ = writeln!(
                out,
                "- `{name}` sha256 `{}`",
                item["sha256"].as_str().unwrap_or("?")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANGELOG: &str = "# Changelog\n\nintro\n\n## [0.3.0] - 2026-02-01\n\n### Fixes\n\n- b (2222222)\n\n## [0.2.0] - 2026-01-01\n\n### Features\n\n- a (1111111)\n";

    #[test]
    fn finds_only_the_versions_section() {
        let v2 = changelog_section(CHANGELOG, &semver::Version::new(0, 2, 0)).unwrap();
        assert_eq!(v2, "### Features\n\n- a (1111111)");
        let v3 = changelog_section(CHANGELOG, &semver::Version::new(0, 3, 0)).unwrap();
        assert_eq!(v3, "### Fixes\n\n- b (2222222)");
        assert!(changelog_section(CHANGELOG, &semver::Version::new(9, 0, 0)).is_none());
    }

    #[test]
    fn notes_list_images_and_digests() {
        let images = serde_json::json!({"images": [
            {"service": "api", "tags": ["avalon-api:0.2.0", "avalon-api:sha-abc"], "id": "sha256:1", "size_bytes": 8}
        ]});
        let pushed = serde_json::json!([{"reference": "ghcr.io/o/avalon-api:0.2.0", "digest": "ghcr.io/o/avalon-api@sha256:2"}]);
        let notes = render(
            "v0.2.0",
            Some("### Features\n\n- a"),
            &images,
            &pushed,
            true,
        );
        assert!(notes.starts_with("# Avalon Ops v0.2.0\n\n### Features\n\n- a\n\n## Images\n"));
        assert!(
            notes.contains(
                "| api | avalon-api:0.2.0<br>avalon-api:sha-abc | `sha256:1` | 8 bytes |"
            )
        );
        assert!(notes.contains("- `ghcr.io/o/avalon-api:0.2.0` → `ghcr.io/o/avalon-api@sha256:2`"));
    }

    #[test]
    fn exported_notes_name_files_and_checksums() {
        let exported = serde_json::json!([{"file": "/x/.avalon/release/v0.2.0/images/avalon-ws-0.2.0-abc.tar", "sha256": "ff"}]);
        let notes = render(
            "v0.2.0",
            None,
            &serde_json::json!({"images": []}),
            &exported,
            false,
        );
        assert!(notes.contains("No changelog section"));
        assert!(notes.contains("- `avalon-ws-0.2.0-abc.tar` sha256 `ff`"));
    }
}
