//! The TOML configuration file (`--config FILE` or `ISR_EDGE_CONFIG`).
//!
//! Top-level keys are the long flags' names (`cache_size = "256MiB"` is `--cache-size=256MiB`,
//! `true` is a bare flag, an array repeats the flag). They become command-line arguments placed
//! before the real ones, so every flag, present and future, has a file key checked by the same
//! parser. A key is dropped when its flag is on the command line or its environment variable
//! is set: flags > environment > file > defaults. `[[route]]` and `[[origin]]` are read with
//! serde. Every error reads `FILE:LINE: key: message`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Command};
use serde::de;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::cache::pattern::Pattern;
use crate::config::{parse_duration, parse_origin, ConfigError};
use crate::origins::HostOrigin;
use crate::routes::RouteRule;

/// The structured sections, validated.
#[derive(Debug, Clone, Default)]
pub struct FileSections {
    pub routes: Vec<RouteRule>,
    pub origins: Vec<HostOrigin>,
}

/// A scalar key the file set and that was applied (not overridden).
#[derive(Debug, Clone)]
pub struct FileKey {
    /// The clap argument id (`cache_size`).
    pub id: String,
    /// The key as written in the file.
    pub key: String,
    pub line: usize,
}

/// A parsed file: the arguments it contributes and its sections.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub args: Vec<OsString>,
    pub keys: Vec<FileKey>,
    pub sections: FileSections,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {message}")]
    Key {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
}

const SECTIONS: [&str; 2] = ["route", "origin"];
/// Flags that make no sense in the file itself.
const NOT_IN_FILE: [&str; 5] = ["config", "print_config", "check_config", "help", "version"];

/// Reads and parses `path`; environment variables are read from the process.
pub fn read(
    path: &Path,
    command: &Command,
    real_args: &[OsString],
) -> Result<ConfigFile, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let env_is_set = |name: &OsStr| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    parse(path, &text, command, real_args, &env_is_set)
}

/// Parses the file's text. `real_args` are the command-line arguments (without the program
/// name); `env_is_set` says whether an environment variable is set.
pub fn parse(
    path: &Path,
    text: &str,
    command: &Command,
    real_args: &[OsString],
    env_is_set: &dyn Fn(&OsStr) -> bool,
) -> Result<ConfigFile, FileError> {
    let shown = path.display().to_string();
    let table = DeTable::parse(text).map_err(|e| toml_error(&shown, text, &e))?;
    let mut args = Vec::new();
    let mut keys = Vec::new();
    for (key, value) in table.get_ref().iter() {
        let name: &str = key.get_ref();
        // `origin = "http://..."` is the flag; `[[origin]]` (an array) is the section.
        if SECTIONS.contains(&name) && (name != "origin" || value.get_ref().is_array()) {
            continue;
        }
        let line = line_of(text, key.span().start);
        let fail = |message: String| FileError::Key {
            path: shown.clone(),
            line,
            key: name.to_string(),
            message,
        };
        let id = name.replace('-', "_");
        if NOT_IN_FILE.contains(&id.as_str()) {
            return Err(fail("cannot be set in the config file".into()));
        }
        if id.contains("secret") && !id.ends_with("_file") {
            return Err(fail(
                "secrets do not belong in the config file: set REVALIDATE_SECRET or secret_file"
                    .into(),
            ));
        }
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long().is_some_and(|l| l.replace('-', "_") == id))
        else {
            return Err(fail(format!(
                "unknown key; known keys: {}",
                known_keys(command)
            )));
        };
        if arg.is_hide_env_values_set() {
            let env = arg
                .get_env()
                .map(|e| e.to_string_lossy())
                .unwrap_or_default();
            return Err(fail(format!(
                "secrets do not belong in the config file: set {env} instead"
            )));
        }
        let long = arg.get_long().unwrap_or_default();
        if flag_given(real_args, long) || arg.get_env().is_some_and(env_is_set) {
            continue;
        }
        let optional_value = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
        let flags = match value.get_ref() {
            // `--trust-proxy-headers` style: a flag whose value is optional.
            DeValue::Boolean(on) if optional_value => {
                if *on {
                    vec![format!("--{long}")]
                } else {
                    vec![]
                }
            }
            value => flag_args(long, arg.get_action(), value).map_err(fail)?,
        };
        args.extend(flags.into_iter().map(OsString::from));
        keys.push(FileKey {
            id: arg.get_id().to_string(),
            key: name.to_string(),
            line,
        });
    }
    let (sections, default_origin) = sections(&shown, text, table)?;
    if let Some((url, line)) = default_origin {
        let overridden = flag_given(real_args, "origin")
            || command
                .get_arguments()
                .find(|a| a.get_id() == "origin")
                .and_then(|a| a.get_env())
                .is_some_and(env_is_set);
        if !overridden {
            args.push(format!("--origin={url}").into());
            keys.push(FileKey {
                id: "origin".into(),
                key: "origin.url".into(),
                line,
            });
        }
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        args,
        keys,
        sections,
    })
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Whether `--long` (or `--long=...`) is among the real arguments (before a `--`).
pub fn flag_given(real_args: &[OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    let with_value = format!("--{long}=");
    real_args
        .iter()
        .filter_map(|a| a.to_str())
        .take_while(|a| *a != "--")
        .any(|a| a == flag || a.starts_with(&with_value))
}

fn known_keys(command: &Command) -> String {
    let mut names: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| l.replace('-', "_"))
        .filter(|id| !NOT_IN_FILE.contains(&id.as_str()))
        .collect();
    names.extend(SECTIONS.iter().map(|s| format!("[[{s}]]")));
    names.join(", ")
}

fn flag_args(long: &str, action: &ArgAction, value: &DeValue<'_>) -> Result<Vec<String>, String> {
    let bare = || vec![format!("--{long}")];
    let with = |v: String| format!("--{long}={v}");
    match (action, value) {
        (ArgAction::SetTrue, DeValue::Boolean(true))
        | (ArgAction::SetFalse, DeValue::Boolean(false)) => Ok(bare()),
        (ArgAction::SetTrue | ArgAction::SetFalse, DeValue::Boolean(_)) => Ok(vec![]),
        (ArgAction::SetTrue | ArgAction::SetFalse, other) => {
            Err(format!("expects true or false, got {}", other.type_str()))
        }
        (ArgAction::Append, DeValue::Array(items)) => items
            .iter()
            .map(|item| scalar(item.get_ref()).map(with))
            .collect(),
        (ArgAction::Set | ArgAction::Append, other) => Ok(vec![with(scalar(other)?)]),
        _ => Err("cannot be set in the config file".into()),
    }
}

fn scalar(value: &DeValue<'_>) -> Result<String, String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(&digits, i.radix())
                .map(|n| n.to_string())
                .map_err(|e| format!("bad integer: {e}"))
        }
        DeValue::Float(f) => Ok(f.as_str().to_string()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        DeValue::Array(_) => Err("takes one value, not a list".into()),
        other => Err(format!(
            "expects a string or number, got {}",
            other.type_str()
        )),
    }
}

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

/// A TOML or serde error as `FILE:LINE: key: message`, the key read from that line (and its
/// `[[section]]`), since the parser's messages do not always name it.
fn toml_error(path: &str, text: &str, error: &toml::de::Error) -> FileError {
    let line = error.span().map(|s| line_of(text, s.start)).unwrap_or(1);
    let message = error.message().trim().to_string();
    match key_at(text, line) {
        Some(key) => FileError::Key {
            path: path.to_string(),
            line,
            key,
            message,
        },
        None => FileError::Syntax {
            path: path.to_string(),
            line,
            message,
        },
    }
}

/// The key written on `line` (1-based), prefixed by the table it is in: `route.ttl`.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let header = |l: &str| {
        let l = l.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    };
    if let Some(name) = header(here) {
        return Some(name);
    }
    let key = here.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() || here.starts_with('#') {
        return None;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| header(l));
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

/// The sections, and the default origin's URL and line when an `[[origin]]` has no host.
type Sections = (FileSections, Option<(String, usize)>);

fn sections(path: &str, text: &str, table: Spanned<DeTable<'_>>) -> Result<Sections, FileError> {
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
