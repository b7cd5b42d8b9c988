//! The structured sections of the configuration file, read with serde: `[[route]]` (validated
//! into [`RouteRule`]s) and `[[origin]]` (per-host origins; one without `host` is the default
//! origin). Errors name the file line and the key (`route.ttl`).

use std::time::Duration;

use serde::de;
use serde::Deserialize;
use toml::de::DeTable;
use toml::Spanned;

use super::{line_of, toml_error, FileError, FileSections, SECTIONS};
use crate::cache::pattern::Pattern;
use crate::config::{parse_duration, parse_origin, ConfigError};
use crate::origins::HostOrigin;
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
                u64::try_from(v)
                    .map(|s| FileDuration(Duration::from_secs(s)))
                    .map_err(|_| E::custom("must not be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FileDuration, E> {
                Ok(FileDuration(Duration::from_secs(v)))
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
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginFile {
    /// Absent: the default origin (the same as the `origin` key / `--origin`).
    host: Option<Spanned<String>>,
    url: Spanned<String>,
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
    let mut routes = Vec::with_capacity(parsed.route.len());
    for route in parsed.route {
        let span = route.span();
        let route = route.into_inner();
        let source = route.pattern.get_ref();
        if !source.starts_with('/') {
            let message =
                format!("match {source:?} must start with '/', e.g. \"/products/[slug]\"");
            return Err(at(route.pattern.span(), "route.match", message));
        }
        let sets_lifetime = route.ttl.is_some()
            || route.stale_while_revalidate.is_some()
            || route.stale_if_error.is_some();
        if route.bypass && (sets_lifetime || !route.tags.is_empty()) {
            let message = "bypass = true never stores, so ttl, stale windows and tags do nothing";
            return Err(at(span, "route", message.into()));
        }
        if !route.bypass && !sets_lifetime && route.tags.is_empty() {
            let message = "sets nothing: give ttl, stale_while_revalidate, stale_if_error, tags or bypass = true";
            return Err(at(span, "route", message.into()));
        }
        if route
            .tags
            .iter()
            .any(|t| t.trim().is_empty() || t.contains([',', ' ']))
        {
            let message = "tags must be non-empty and contain no commas or spaces".into();
            return Err(at(span, "route.tags", message));
        }
        routes.push(RouteRule {
            pattern: Pattern::parse(source),
            ttl: route.ttl.map(|d| d.0),
            stale_while_revalidate: route.stale_while_revalidate.map(|d| d.0),
            stale_if_error: route.stale_if_error.map(|d| d.0),
            bypass: route.bypass,
            tags: route.tags.into_iter().map(Into::into).collect(),
        });
    }
    let mut origins: Vec<HostOrigin> = Vec::with_capacity(parsed.origin.len());
    let mut default = None;
    for origin in parsed.origin {
        let origin = origin.into_inner();
        let Some(host_field) = origin.host else {
            if default.is_some() {
                let message = "only one [[origin]] may omit host (it is the default origin)";
                return Err(at(origin.url.span(), "origin.url", message.into()));
            }
            let line = line_of(text, origin.url.span().start);
            default = Some((origin.url.into_inner(), line));
            continue;
        };
        let host = host_field.get_ref().trim().to_ascii_lowercase();
        if host.is_empty() || host.contains(['/', ' ']) {
            let message = format!("{host:?} is not a host name; e.g. \"shop.example\"");
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
        origins.push(HostOrigin { host, url });
    }
    Ok((FileSections { routes, origins }, default))
}
