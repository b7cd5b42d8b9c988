//! The structured sections of the configuration file, read with serde: `[[route]]` (validated
//! into [`RouteRule`]s) and `[[origin]]` (per-host origins, each optionally with its own
//! forwarding to the site's app; one without `host` is the default origin). Errors name the
//! file line and the key (`route.ttl`).

use std::time::Duration;

use serde::de;
use serde::Deserialize;
use toml::de::DeTable;
use toml::Spanned;

use super::{line_of, toml_error, FileError, FileSections, SECTIONS};
use crate::cache::key::{canonical_host, encode_path, normalize_path};
use crate::cache::pattern::Pattern;
use crate::config::{parse_duration, parse_origin, parse_revalidate_url, ConfigError};
use crate::origins::HostOrigin;
use crate::revalidate::forward::Redacted;
use crate::revalidate::pages::read_preview_mode_id;
use crate::revalidate::sites::SiteForwarding;
use crate::routes::RouteRule;

/// A duration written as seconds (`ttl = 10`, like Next.js `revalidate: 10`) or text (`"10s"`).
#[derive(Debug, Clone, Copy)]
struct FileDuration(Duration);

impl<'de> Deserialize<'de> for FileDuration {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = FileDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("seconds (10) or a duration (\"10s\", \"5m\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FileDuration, E> {
                let seconds = u64::try_from(v).map_err(|_| E::custom("must not be negative"))?;
                self.visit_u64(seconds)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FileDuration, E> {
                parse_duration(&v.to_string())
                    .map(FileDuration)
                    .map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileDuration, E> {
                parse_duration(v).map(FileDuration).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
struct SectionsFile {
    #[serde(default)]
    route: Vec<Spanned<RouteFile>>,
    #[serde(default)]
    origin: Vec<Spanned<OriginFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    #[serde(rename = "match")]
    pattern: Spanned<String>,
    ttl: Option<FileDuration>,
    stale_while_revalidate: Option<FileDuration>,
    stale_if_error: Option<FileDuration>,
    #[serde(default)]
    bypass: bool,
    tags: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginFile {
    /// Absent: the default origin (the same as the `origin` key / `--origin`).
    host: Option<Spanned<String>>,
    url: Spanned<String>,
    revalidate_url: Option<Spanned<OneOrMore>>,
    revalidate_secret_file: Option<Spanned<String>>,
    next_prerender_manifest: Option<Spanned<String>>,
    // Read only to refuse them by name: secrets do not belong in the file.
    revalidate_secret: Option<Spanned<de::IgnoredAny>>,
    next_preview_mode_id: Option<Spanned<de::IgnoredAny>>,
}

/// A string or a list of strings (`revalidate_url = "..."` or `[...]`, one per app instance).
struct OneOrMore(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMore {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = OneOrMore;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a URL or a list of URLs")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMore, E> {
                Ok(OneOrMore(vec![v.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMore, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMore(items))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The sections, and the default origin's URL and line when an `[[origin]]` has no host.
pub(super) type Sections = (FileSections, Option<(String, usize)>);

pub(super) fn sections(
    path: &str,
    text: &str,
    table: Spanned<DeTable<'_>>,
) -> Result<Sections, FileError> {
    let at = |span: std::ops::Range<usize>, key: &str, message: String| FileError::Key {
        path: path.to_string(),
        line: line_of(text, span.start),
        key: key.to_string(),
        message,
    };
    let span = table.span();
    let table: DeTable<'_> = table
        .into_inner()
        .into_iter()
        .filter(|(key, value)| {
            SECTIONS.contains(&key.get_ref().as_ref()) && value.get_ref().is_array()
        })
        .collect();
    let parsed = SectionsFile::deserialize(toml::Deserializer::from(Spanned::new(span, table)))
        .map_err(|e| toml_error(path, text, &e))?;
    let mut routes: Vec<RouteRule> = Vec::with_capacity(parsed.route.len());
    let mut route_lines = Vec::with_capacity(parsed.route.len());
    for route in parsed.route {
        let span = route.span();
        let route = route.into_inner();
        let source = route.pattern.get_ref();
        if !source.starts_with('/') {
            let message =
                format!("match {source:?} must start with '/', e.g. \"/products/[slug]\"");
            return Err(at(route.pattern.span(), "route.match", message));
        }
        // Rules are matched against the page path, so a rule naming a query (or a fragment,
        // which never reaches a server) would never match: refused rather than ignored.
        if let Some(at_char) = source.find(['?', '#']) {
            let path = &source[..at_char];
            let message = format!(
                "match {source:?}: routes match paths, not query strings or fragments; write \
                 {path:?} (the rule then applies to every query string of that page)"
            );
            return Err(at(route.pattern.span(), "route.match", message));
        }
        if let Err(problem) = Pattern::check(source) {
            let message = format!("match {source:?}: {problem}");
            return Err(at(route.pattern.span(), "route.match", message));
        }
        let (tags_span, tags) = match route.tags {
            Some(tags) => (tags.span(), tags.into_inner()),
            None => (span.clone(), Vec::new()),
        };
        let sets_lifetime = route.ttl.is_some()
            || route.stale_while_revalidate.is_some()
            || route.stale_if_error.is_some();
        if route.bypass && (sets_lifetime || !tags.is_empty()) {
            let message = "bypass = true never stores, so ttl, stale windows and tags do nothing";
            return Err(at(span, "route", message.into()));
        }
        if !route.bypass && !sets_lifetime && tags.is_empty() {
            let message = "sets nothing: give ttl, stale_while_revalidate, stale_if_error, tags or bypass = true";
            return Err(at(span, "route", message.into()));
        }
        if tags.iter().any(|t| {
            t.trim().is_empty()
                || t.trim() != t
                || t.contains(',')
                || t.chars().any(char::is_control)
        }) {
            // A comma would split the tag in `?tags=a,b` purges; spaces around it would keep
            // purges of the trimmed tag (as origins' tag headers are read) from reaching it.
            let message =
                "tags must be non-empty, without commas, control characters or spaces around them"
                    .into();
            return Err(at(tags_span, "route.tags", message));
        }
        // Written as a person writes a path (`/café`, `/a%c3%a9`): matched against requests'
        // paths in the form the cache keys them (`/caf%C3%A9`), as purge patterns are.
        let pattern = Pattern::parse(&normalize_path(&encode_path(source)));
        // First match wins, so such a rule passed --check-config and never applied: a copy
        // left behind, or `/blog/[slug]` written after `/blog/**`.
        if let Some((earlier, line)) = route_lines
            .iter()
            .zip(&routes)
            .find_map(|(line, rule)| rule.pattern.covers(&pattern).then_some((rule, line)))
        {
            let message = format!(
                "match {source:?} never applies: the rule on line {line} (match {:?}) comes \
                 first and matches every page it does; put the narrower rule first",
                earlier.pattern.source()
            );
            return Err(at(route.pattern.span(), "route.match", message));
        }
        route_lines.push(line_of(text, route.pattern.span().start));
        routes.push(RouteRule {
            pattern,
            ttl: route.ttl.map(|d| d.0),
            stale_while_revalidate: route.stale_while_revalidate.map(|d| d.0),
            stale_if_error: route.stale_if_error.map(|d| d.0),
            bypass: route.bypass,
            tags: tags.into_iter().map(Into::into).collect(),
        });
    }
    let mut origins: Vec<HostOrigin> = Vec::with_capacity(parsed.origin.len());
    let mut default = None;
    for origin in parsed.origin {
        let mut origin = origin.into_inner();
        let forwarding = site_forwarding(&mut origin, &at)?;
        let Some(host_field) = origin.host else {
            if let Some(span) = forwarding.1 {
                let message = "the default origin's forwarding is set by the top-level keys origin_revalidate_url, next_prerender_manifest (and ORIGIN_REVALIDATE_SECRET)";
                return Err(at(span, "origin", message.into()));
            }
            if default.is_some() {
                let message = "only one [[origin]] may omit host (it is the default origin)";
                return Err(at(origin.url.span(), "origin.url", message.into()));
            }
            let line = line_of(text, origin.url.span().start);
            default = Some((origin.url.into_inner(), line));
            continue;
        };
        let host = host_field.get_ref().trim().to_ascii_lowercase();
        // As requests are keyed and routed: `shop.example:80` is `shop.example`, else it
        // would match no request (their default port is dropped before the lookup).
        let host = canonical_host(&host).into_owned();
        // Requests name hosts this way too (`limits::valid_host`); anything else (a wildcard,
        // a port past 65535) would match no request.
        if host.is_empty() || !crate::limits::valid_host(&host) {
            let message = format!(
                "{host:?} is not a host name; e.g. \"shop.example\" or \"shop.example:8080\" \
                 (no wildcards: list each host)"
            );
            return Err(at(host_field.span(), "origin.host", message));
        }
        if origins.iter().any(|o| o.host == host) {
            let message = format!("{host:?} is listed twice");
            return Err(at(host_field.span(), "origin.host", message));
        }
        let url = parse_origin(origin.url.get_ref()).map_err(|e| {
            let message = match e {
                ConfigError::Origin(message) => message,
                other => other.to_string(),
            };
            at(origin.url.span(), "origin.url", message)
        })?;
        origins.push(HostOrigin {
            host,
            url,
            forwarding: forwarding.0,
        });
    }
    Ok((FileSections { routes, origins }, default))
}

/// An `[[origin]]`'s forwarding keys, validated and read (the secret file, the manifest's id
/// checked now so a wrong path fails at start); with the span of the first key present.
fn site_forwarding(
    origin: &mut OriginFile,
    at: &impl Fn(std::ops::Range<usize>, &str, String) -> FileError,
) -> Result<(SiteForwarding, Option<std::ops::Range<usize>>), FileError> {
    let secret_message = |key: &str, instead: &str| {
        format!("secrets do not belong in the config file: use {instead} instead of {key}")
    };
    if let Some(field) = &origin.revalidate_secret {
        let message = secret_message("revalidate_secret", "revalidate_secret_file");
        return Err(at(field.span(), "origin.revalidate_secret", message));
    }
    if let Some(field) = &origin.next_preview_mode_id {
        let message = secret_message("next_preview_mode_id", "next_prerender_manifest");
        return Err(at(field.span(), "origin.next_preview_mode_id", message));
    }
    let mut forwarding = SiteForwarding::default();
    let mut first = None;
    if let Some(field) = origin.revalidate_url.take() {
        let span = field.span();
        first = Some(span.clone());
        for text in field.into_inner().0 {
            let url = parse_revalidate_url(&text)
                .map_err(|message| at(span.clone(), "origin.revalidate_url", message))?;
            forwarding.urls.push(url);
        }
    }
    if let Some(field) = origin.revalidate_secret_file.take() {
        let (span, path) = (field.span(), std::path::PathBuf::from(field.into_inner()));
        let key = "origin.revalidate_secret_file";
        if forwarding.urls.is_empty() {
            let message = "does nothing without revalidate_url".to_string();
            return Err(at(span, key, message));
        }
        let text = crate::config::secrets::read_secret_file(&path).map_err(|e| {
            at(
                span.clone(),
                key,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let secret = text.trim();
        if secret.is_empty() || secret.contains('\n') {
            let message = format!("{} must hold one non-empty line", path.display());
            return Err(at(span, key, message));
        }
        forwarding.secret = Some(Redacted(secret.to_string()));
        forwarding.secret_file = Some(path);
        first = first.or(Some(span));
    }
    if let Some(field) = origin.next_prerender_manifest.take() {
        let (span, path) = (field.span(), std::path::PathBuf::from(field.into_inner()));
        read_preview_mode_id(&path)
            .map_err(|message| at(span.clone(), "origin.next_prerender_manifest", message))?;
        forwarding.prerender_manifest = Some(path);
        first = first.or(Some(span));
    }
    Ok((forwarding, first))
}
