//! What a revalidation asks the origin to regenerate: the concrete pages it names, and the
//! Next.js preview-mode id (`preview.previewModeId` in `.next/prerender-manifest.json`) that
//! makes `HEAD <path>` + `x-prerender-revalidate` a regeneration. The id is a secret: it never
//! prints.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::forward::Redacted;
use super::request::{RevalidateRequest, Target};
use crate::cache::key::{encode_path, normalize_path, page_path, split_key};
use crate::cache::pattern::Pattern;
use crate::cache::{Cache, PurgeMode, PurgeRun};

/// Where the Next.js preview-mode id comes from.
#[derive(Debug, Clone)]
pub enum PreviewModeId {
    Fixed(Redacted),
    /// `.next/prerender-manifest.json`, re-read at every revalidation so a rebuild (new id) is
    /// picked up without a restart.
    Manifest(PathBuf),
}

impl PreviewModeId {
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            PreviewModeId::Fixed(id) => Ok(id.0.clone()),
            PreviewModeId::Manifest(path) => read_preview_mode_id(path),
        }
    }
}

/// Reads `preview.previewModeId` from a Next.js `prerender-manifest.json`.
pub fn read_preview_mode_id(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let manifest: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    manifest
        .pointer("/preview/previewModeId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("{} has no preview.previewModeId", path.display()))
}

/// A concrete page to regenerate: the host it was stored under (if known) and its path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Page {
    pub host: Option<String>,
    pub path: String,
}

/// The concrete pages a revalidation names: plain page paths as given (the origin may hold them
/// even when we do not), and for tags, patterns, layouts and `all`, the stored pages the purge
/// selects. Computed before the eviction, which would empty the selection.
pub fn concrete_pages(cache: &Cache, request: &RevalidateRequest) -> Vec<Page> {
    let host = request.host.as_deref();
    let mut seen = HashSet::new();
    let mut pages = Vec::new();
    let mut add = |page: Page| {
        if !is_next_internal(&page.path) && seen.insert(page.clone()) {
            pages.push(page);
        }
    };
    for target in &request.targets {
        match target {
            Target::Page(path) if !Pattern::is_pattern(path) => add(Page {
                host: host.map(str::to_string),
                // Encoded as `purge_target` does: the request line carries no raw spaces or
                // UTF-8.
                path: page_path(&normalize_path(&encode_path(super::without_query(path))))
                    .into_owned(),
            }),
            _ => {
                let count =
                    super::purge_target(cache, target, host, PurgeRun::dry_run(PurgeMode::Hard));
                for key in count.keys {
                    let (key_host, path_and_query) = split_key(&key);
                    let path = path_and_query.split('?').next().unwrap_or("/");
                    add(Page {
                        host: Some(key_host.to_string()).filter(|h| !h.is_empty()),
                        // Encoded as `purge_target` does: the request line carries no raw spaces or
                        // UTF-8.
                        path: page_path(&normalize_path(&encode_path(super::without_query(path))))
                            .into_owned(),
                    });
                }
            }
        }
    }
    pages
}

/// Whether a path is one of Next.js's own files (`/_next/static/…`, `/_next/image`), under a
/// `basePath` too, rather than a page: a layout purge of `/` selects the stored assets and
/// optimised images with the pages, and `HEAD /_next/image` with `x-prerender-revalidate` is a
/// 400 (no `url`), which failed the whole revalidation. No page can live there: `_next` is
/// Next's, and App Router folders starting with `_` are not routes. `/_next/data/<build>/p.json`
/// never gets here, [`page_path`] made it `/p`.
fn is_next_internal(path: &str) -> bool {
    path.split('/').any(|segment| segment == "_next")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let id = PreviewModeId::Fixed(Redacted("abc123".into()));
        assert!(!format!("{id:?}").contains("abc123"));
    }

    #[test]
    fn manifest_id() {
        let dir = std::env::temp_dir().join(format!("isr-edge-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("prerender-manifest.json");
        std::fs::write(&path, r#"{"preview":{"previewModeId":"f00d"}}"#).expect("write");
        assert_eq!(read_preview_mode_id(&path), Ok("f00d".to_string()));
        std::fs::write(&path, r#"{"preview":{}}"#).expect("write");
        assert!(read_preview_mode_id(&path)
            .expect_err("no id")
            .contains("previewModeId"));
        assert!(read_preview_mode_id(&dir.join("missing.json")).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
