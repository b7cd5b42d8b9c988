//! Parsing a revalidation request, from a JSON body or a query string, into targets and
//! options. Every accepted shape is here; every refusal is a [`BadRequest`] naming what to send
//! instead.

use crate::cache::key::canonical_host;
use crate::cache::pattern::Pattern;
use serde_json::{Map, Value};

use crate::cache::PurgeMode;

/// Most targets one request may name.
pub const MAX_TARGETS: usize = 1000;
/// Longest path or tag accepted.
const MAX_TARGET_LEN: usize = 2048;

/// What to purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A page with all its variants (a Next.js route pattern is allowed).
    Page(String),
    /// A page and everything below it.
    Layout(String),
    Tag(String),
    All,
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Page(_) => "path",
            Target::Layout(_) => "layout",
            Target::Tag(_) => "tag",
            Target::All => "all",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Target::Page(p) | Target::Layout(p) | Target::Tag(p) => p,
            Target::All => "*",
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, Default)]
pub struct RevalidateRequest {
    /// The secret the body or query carried, if any (headers are read separately).
    pub secret: Option<String>,
    pub targets: Vec<Target>,
    pub mode: Option<PurgeMode>,
    /// `None` when the request does not say (then `--warm-on-revalidate` decides).
    pub warm: Option<bool>,
    pub dry_run: bool,
    pub host: Option<String>,
    /// The paths as the client sent them, echoed in `revalidated.paths`.
    pub paths: Vec<String>,
    pub tags: Vec<String>,
}

impl RevalidateRequest {
    pub fn mode(&self) -> PurgeMode {
        self.mode.unwrap_or(PurgeMode::Hard)
    }

    pub fn has_targets(&self) -> bool {
        !self.targets.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad(message: impl Into<String>) -> BadRequest {
    BadRequest(message.into())
}

const FIELDS: &str =
    "secret, path, paths, tag, tags, type, all, mode, profile, warm, dry_run, host";

#[derive(Clone, Copy, PartialEq, Eq)]
enum PathType {
    Page,
    Layout,
}

fn path_type(text: &str, field: &str) -> Result<PathType, BadRequest> {
    match text {
        "page" => Ok(PathType::Page),
        "layout" => Ok(PathType::Layout),
        other => Err(bad(format!(
            "{field} must be \"page\" or \"layout\", got {other:?}"
        ))),
    }
}

fn check_path(path: &str) -> Result<(), BadRequest> {
    if !path.starts_with('/') {
        return Err(bad(format!(
            "path {path:?} must start with '/', e.g. \"/products\""
        )));
    }
    // A bracket that forms no dynamic segment (`/[...]`, `/[]`) would otherwise match every
    // page below it: a typo must not purge a whole site.
    // The query (which purges its page, see `without_query`) may hold brackets of its own.
    let route = super::without_query(path);
    if route.contains(['[', ']']) {
        // As the purge reads it (an intercepting route's `(.)[id]` is its `[id]`).
        Pattern::check(&crate::cache::pattern::url_path(route))
            .map_err(|e| bad(format!("path {path:?}: {e}")))?;
    }
    check_text(path, "path")
}

/// What a Next.js implicit tag names: the route of a layout (`_N_T_/blog/layout`, with all
/// below it) or of a page (`_N_T_/blog/[slug]/page`), both file-system routes, or a URL path
/// (`_N_T_/blog/a`). A route of nothing (`_N_T_/layout`) is the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImplicitTag<'a> {
    Layout(&'a str),
    Page(&'a str),
    Url(&'a str),
}

impl ImplicitTag<'_> {
    pub fn of(tag: &str) -> Option<ImplicitTag<'_>> {
        let implicit = tag.strip_prefix("_N_T_").filter(|t| t.starts_with('/'))?;
        Some(if let Some(route) = implicit.strip_suffix("/layout") {
            ImplicitTag::Layout(if route.is_empty() { "/" } else { route })
        } else if let Some(route) = implicit.strip_suffix("/page") {
            ImplicitTag::Page(if route.is_empty() { "/" } else { route })
        } else {
            ImplicitTag::Url(implicit)
        })
    }
}

/// An implicit tag purges the pages its path names, so its path is checked as a path is:
/// `_N_T_/[...]/page` must not purge every page.
fn check_implicit_tag(tag: &str) -> Result<(), BadRequest> {
    let route = match ImplicitTag::of(tag) {
        None => return Ok(()),
        Some(ImplicitTag::Layout(route) | ImplicitTag::Page(route) | ImplicitTag::Url(route)) => {
            super::without_query(route)
        }
    };
    // Checked as the URL path the purge reaches: route groups and slots name no URL segment,
    // and an intercepting route (`(.)[id]`) names the one it intercepts.
    let checked = crate::cache::pattern::url_path(route);
    if checked.contains(['[', ']']) {
        Pattern::check(&checked).map_err(|e| bad(format!("tag {tag:?}: {e}")))?;
    }
    Ok(())
}

fn check_text(text: &str, what: &str) -> Result<(), BadRequest> {
    if text.trim().is_empty() {
        return Err(bad(format!("{what} must not be empty or blank")));
    }
    if text.len() > MAX_TARGET_LEN {
        return Err(bad(format!("{what} is longer than {MAX_TARGET_LEN} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(bad(format!("{what} {text:?} contains control characters")));
    }
    Ok(())
}

fn target_for(path: String, kind: PathType) -> Target {
    match kind {
        PathType::Page => Target::Page(path),
        PathType::Layout => Target::Layout(path),
    }
}

fn parse_mode(text: &str, field: &str) -> Result<PurgeMode, BadRequest> {
    match text {
        "hard" => Ok(PurgeMode::Hard),
        "soft" | "max" => Ok(PurgeMode::Soft),
        other => Err(bad(format!(
            "{field} must be \"hard\" or \"soft\", got {other:?}"
        ))),
    }
}

/// Parses a JSON body (whatever its `Content-Type` says).
pub fn parse_json(body: &[u8]) -> Result<RevalidateRequest, BadRequest> {
    let value = json_value(body).map_err(|e| bad(unreadable_json(&e)))?;
    let Value::Object(object) = value else {
        return Err(bad(
            "body must be a JSON object like {\"secret\": \"...\", \"paths\": [\"/\"]}",
        ));
    };
    parse_object(&object)
}

/// A JSON body as a value, refused when one of its objects names a field twice (see
/// [`Distinct`]). What every reader of a revalidation body parses it with. A leading UTF-8
/// byte order mark is dropped, as `request.json()` in a Next.js route handler drops it (the
/// Fetch standard decodes bodies with "UTF-8 decode").
pub fn json_value(body: &[u8]) -> Result<Value, serde_json::Error> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    serde_json::from_slice(body).map(|Distinct(value)| value)
}

/// Why a body [`json_value`] refused cannot be read, and what to send instead.
pub fn unreadable_json(error: &serde_json::Error) -> String {
    let example = r#"send {"secret": "...", "paths": ["/"]}"#;
    if error.is_eof() && error.line() == 1 && error.column() == 0 {
        // "EOF while parsing a value" told a caller little about an empty POST.
        format!("body is empty; {example} (or the targets in the query string)")
    } else if error.is_data() {
        // Well-formed JSON, refused for what it says (a field given twice).
        format!("body cannot be read: {error}; {example}")
    } else {
        format!("body is not valid JSON ({error}); {example}")
    }
}

/// A JSON value whose objects name each field once. `serde_json::Value` keeps the last of
/// repeated fields, so `{"secret": "a", "secret": "b"}` would be read one way here and maybe
/// another by a proxy or log in front: such a body is refused instead of guessed at.
struct Distinct(Value);

impl<'de> serde::Deserialize<'de> for Distinct {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Distinct, D::Error> {
        deserializer.deserialize_any(DistinctVisitor)
    }
}

struct DistinctVisitor;

impl<'de> serde::de::Visitor<'de> for DistinctVisitor {
    type Value = Distinct;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut fields: A) -> Result<Distinct, A::Error> {
        let mut object = Map::new();
        while let Some(name) = fields.next_key::<String>()? {
            if object.contains_key(&name) {
                return Err(serde::de::Error::custom(format!(
                    "field {name:?} is given twice"
                )));
            }
            let Distinct(value) = fields.next_value()?;
            object.insert(name, value);
        }
        Ok(Distinct(Value::Object(object)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Distinct, A::Error> {
        let mut list = Vec::new();
        while let Some(Distinct(item)) = items.next_element()? {
            list.push(item);
        }
        Ok(Distinct(Value::Array(list)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Distinct, E> {
        Ok(Distinct(Value::String(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<Distinct, E> {
        Ok(Distinct(Value::String(text)))
    }

    fn visit_bool<E>(self, flag: bool) -> Result<Distinct, E> {
        Ok(Distinct(Value::Bool(flag)))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Distinct, E> {
        Ok(Distinct(Value::from(number)))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Distinct, E> {
        Ok(Distinct(Value::from(number)))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Distinct, E> {
        Ok(Distinct(Value::from(number)))
    }

    fn visit_unit<E>(self) -> Result<Distinct, E> {
        Ok(Distinct(Value::Null))
    }
}

pub fn parse_object(object: &Map<String, Value>) -> Result<RevalidateRequest, BadRequest> {
    if let Some(unknown) = object
        .keys()
        .find(|k| !FIELDS.split(", ").any(|f| f == k.as_str()))
    {
        return Err(bad(format!(
            "unknown field {unknown:?}; accepted fields: {FIELDS}"
        )));
    }
    let mut request = RevalidateRequest::default();
    let string = |field: &str| -> Result<Option<String>, BadRequest> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("{field} must be a string"))),
        }
    };
    let boolean = |field: &str| -> Result<bool, BadRequest> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(format!("{field} must be true or false"))),
        }
    };
    request.secret = string("secret")?;
    let default_type = match string("type")? {
        Some(t) => path_type(&t, "type")?,
        None => PathType::Page,
    };
    let add_path = |value: &Value,
                    field: &str,
                    request: &mut RevalidateRequest|
     -> Result<(), BadRequest> {
        match value {
            Value::String(path) => {
                check_path(path)?;
                push_path(request, path, field);
                request.targets.push(target_for(path.clone(), default_type));
                Ok(())
            }
            Value::Object(entry) => {
                if let Some(unknown) = entry.keys().find(|k| *k != "path" && *k != "type") {
                    return Err(bad(format!("unknown field {unknown:?} in a {field} entry; use {{\"path\": \"/blog\", \"type\": \"layout\"}}")));
                }
                let Some(Value::String(path)) = entry.get("path") else {
                    return Err(bad(format!(
                        "each {field} entry object needs \"path\": a string starting with '/'"
                    )));
                };
                check_path(path)?;
                let kind = match entry.get("type") {
                    None | Some(Value::Null) => default_type,
                    Some(Value::String(t)) => path_type(t, "type")?,
                    Some(_) => return Err(bad("type must be \"page\" or \"layout\"")),
                };
                push_path(request, path, field);
                request.targets.push(target_for(path.clone(), kind));
                Ok(())
            }
            _ => Err(bad(format!(
                "{field} must be a list of strings like [\"/\", \"/products\"]"
            ))),
        }
    };
    // `paths` is kept as sent (the seed's answer echoes it); a `path` already listed there is
    // not listed twice in what is forwarded and answered.
    fn push_path(request: &mut RevalidateRequest, path: &str, field: &str) {
        if field != "path" || !request.paths.iter().any(|listed| listed == path) {
            request.paths.push(path.to_owned());
        }
    }
    // A target field that is `null` is refused, not read as "no target": it is most often a
    // backend serialising a variable it never filled, and a 200 would hide that nothing was
    // purged. (Options such as `type`, `mode` or `warm` may be null: null means the default.)
    match object.get("paths") {
        None => {}
        Some(Value::Null) => {
            return Err(bad(
                "paths must be a list of strings like [\"/\", \"/products\"], not null",
            ))
        }
        Some(Value::Array(items)) => {
            if items.len() > MAX_TARGETS {
                return Err(bad(format!(
                    "too many paths ({}); send at most {MAX_TARGETS} per request",
                    items.len()
                )));
            }
            for item in items {
                add_path(item, "paths", &mut request)?;
            }
        }
        Some(_) => {
            return Err(bad(
                "paths must be a list of strings like [\"/\", \"/products\"]",
            ))
        }
    }
    match object.get("path") {
        None => {}
        Some(Value::Null) => {
            return Err(bad(
                "path must be a string starting with '/' (or a list of them), not null",
            ))
        }
        Some(value @ (Value::String(_) | Value::Object(_))) => {
            add_path(value, "path", &mut request)?
        }
        Some(Value::Array(items)) => {
            for item in items {
                add_path(item, "path", &mut request)?;
            }
        }
        Some(_) => return Err(bad("path must be a string starting with '/'")),
    }
    let add_tag = |value: &Value, request: &mut RevalidateRequest| -> Result<(), BadRequest> {
        let Value::String(tag) = value else {
            return Err(bad("tags must be a list of strings like [\"products\"]"));
        };
        check_text(tag, "tag")?;
        check_implicit_tag(tag)?;
        request.tags.push(tag.clone());
        request.targets.push(Target::Tag(tag.clone()));
        Ok(())
    };
    for field in ["tag", "tags"] {
        match object.get(field) {
            None => {}
            Some(Value::Null) => {
                return Err(bad(format!(
                    "{field} must be a string or a list of strings like [\"products\"], not null"
                )))
            }
            Some(Value::Array(items)) => {
                for item in items {
                    add_tag(item, &mut request)?;
                }
            }
            Some(value @ Value::String(_)) => add_tag(value, &mut request)?,
            Some(_) => {
                return Err(bad(format!(
                    "{field} must be a string or a list of strings"
                )))
            }
        }
    }
    if boolean("all")? {
        request.targets.push(Target::All);
    }
    if request.targets.len() > MAX_TARGETS {
        return Err(bad(format!(
            "too many targets ({}); send at most {MAX_TARGETS} per request",
            request.targets.len()
        )));
    }
    if let Some(mode) = string("mode")? {
        request.mode = Some(parse_mode(&mode, "mode")?);
    }
    if let Some(profile) = string("profile")? {
        // Next.js vocabulary: revalidateTag(tag, "max") = stale-while-revalidate.
        if profile == "max" {
            if request.mode == Some(PurgeMode::Hard) {
                return Err(bad(
                    "mode \"hard\" and profile \"max\" (a soft purge) disagree: send one of them",
                ));
            }
            request.mode = Some(PurgeMode::Soft);
        } else {
            request.mode = Some(request.mode.unwrap_or(PurgeMode::Hard));
        }
    }
    request.warm = match object.get("warm") {
        None | Some(Value::Null) => None,
        Some(_) => Some(boolean("warm")?),
    };
    request.dry_run = boolean("dry_run")?;
    if let Some(host) = string("host")? {
        check_text(&host, "host")?;
        // Pages are stored under the request's `Host`, so anything else (a site URL such as
        // `config('app.url')`, a path) selects nothing: with a default origin that was a 200
        // that purged nothing.
        if !crate::limits::valid_host(&host) {
            return Err(bad(format!(
                "host {host:?} is not a host as requests send it in Host: give the name and an optional port, e.g. \"shop.example\" or \"shop.example:8080\" (no scheme, path or spaces)"
            )));
        }
        request.host = Some(canonical_host(&host.to_ascii_lowercase()).into_owned());
    }
    Ok(request)
}

/// Parses the query-string form (`?secret=..&path=/x&tag=posts`), as the Next.js docs' GET
/// webhooks send it. Repeated `path`/`tag` parameters add up.
pub fn parse_query(query: &str) -> Result<RevalidateRequest, BadRequest> {
    let mut object = Map::new();
    let mut paths: Vec<Value> = Vec::new();
    let mut tags: Vec<Value> = Vec::new();
    for (name, value) in query_params(query) {
        let value = decode_component(value);
        match name.as_str() {
            "path" | "paths" => paths.extend(
                value
                    .split(',')
                    .filter(|v| !v.is_empty())
                    .map(|v| Value::String(v.to_string())),
            ),
            "tag" | "tags" => tags.extend(
                value
                    .split(',')
                    .filter(|v| !v.is_empty())
                    .map(|v| Value::String(v.to_string())),
            ),
            "all" | "warm" | "dry_run" => {
                let flag = Value::Bool(query_switch(&name, &value)?);
                if object.insert(name.clone(), flag).is_some() {
                    return Err(given_twice(&name));
                }
            }
            _ => {
                if object.insert(name.clone(), Value::String(value)).is_some() {
                    return Err(given_twice(&name));
                }
            }
        }
    }
    if !paths.is_empty() {
        object.insert("paths".into(), Value::Array(paths));
    }
    if !tags.is_empty() {
        object.insert("tags".into(), Value::Array(tags));
    }
    parse_object(&object)
}

/// A query switch (`all`, `warm`, `dry_run`): present without a value, or a true or false word
/// in any case (Python's `urlencode` writes `True`). Anything else is refused rather than read
/// as false: `dry_run=True` read so evicted what the caller only meant to count.
fn query_switch(name: &str, value: &str) -> Result<bool, BadRequest> {
    const TRUE: [&str; 5] = ["", "1", "true", "yes", "on"];
    const FALSE: [&str; 4] = ["0", "false", "no", "off"];
    let value = value.trim();
    if TRUE.iter().any(|word| value.eq_ignore_ascii_case(word)) {
        Ok(true)
    } else if FALSE.iter().any(|word| value.eq_ignore_ascii_case(word)) {
        Ok(false)
    } else {
        Err(bad(format!(
            "parameter {name:?} must be true or false (1/0, yes/no, on/off), got {value:?}"
        )))
    }
}

/// A query's parameters in order: each name decoded, each value as written (decoded by the
/// reader that needs it).
fn query_params(query: &str) -> impl Iterator<Item = (String, &str)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_component(name), value)
    })
}

/// Refuses a query giving `secret` twice (its names read by [`query_params`], as for
/// [`parse_query`]), for a request whose targets are in a JSON body: the query's secret still
/// authorizes it, and a proxy or log in front may read the other one.
pub fn check_query_secret(query: &str) -> Result<(), BadRequest> {
    let secrets = query_params(query)
        .filter(|(name, _)| name == "secret")
        .count();
    if secrets > 1 {
        return Err(given_twice("secret"));
    }
    Ok(())
}

/// Only `path` and `tag` add up when repeated; another parameter given twice (two secrets) is
/// refused rather than one of them picked.
fn given_twice(name: &str) -> BadRequest {
    bad(format!(
        "parameter {name:?} is given twice; give it once (only path and tag may repeat)"
    ))
}

/// Whether a GET's query asks for a revalidation (otherwise a GET is the health check). Names
/// are read as [`parse_query`] reads them: `?%73ecret=..&%70ath=/a` answered as the health
/// check purged nothing, with a 200.
pub fn query_requests_revalidation(query: &str) -> bool {
    query_params(query).any(|(name, _)| {
        matches!(
            name.as_str(),
            "secret" | "path" | "paths" | "tag" | "tags" | "all"
        )
    })
}

/// The query's `secret`, its name read as [`parse_query`] reads it (`%73ecret=` too, which
/// was refused as no secret while the same query's targets were read).
pub fn query_secret(query: &str) -> Option<String> {
    query_params(query)
        .find(|(name, _)| name == "secret")
        .map(|(_, value)| decode_component(value))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; invalid escapes
/// are kept as they are.
pub fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_shape() {
        let r = parse_json(br#"{"secret":"s","paths":["/","/products"]}"#).expect("valid");
        assert_eq!(r.secret.as_deref(), Some("s"));
        assert_eq!(
            r.targets,
            [Target::Page("/".into()), Target::Page("/products".into())]
        );
        assert_eq!(r.paths, ["/", "/products"]);
        assert_eq!(r.mode(), PurgeMode::Hard);
    }

    #[test]
    fn richer_shapes() {
        let r = parse_json(br#"{"path":"/a","tags":["t1"],"tag":"t2","type":"layout","paths":[{"path":"/b","type":"page"}],"mode":"soft","all":true}"#)
            .expect("valid");
        assert_eq!(
            r.targets,
            [
                Target::Page("/b".into()),
                Target::Layout("/a".into()),
                Target::Tag("t2".into()),
                Target::Tag("t1".into()),
                Target::All
            ]
        );
        assert_eq!(r.mode(), PurgeMode::Soft);
        assert_eq!(
            parse_json(br#"{"tag":"x","profile":"max"}"#)
                .expect("valid")
                .mode(),
            PurgeMode::Soft
        );
    }

    #[test]
    fn refusals() {
        let cases: &[&[u8]] = &[
            b"{not json",
            b"[1,2]",
            b"\"x\"",
            br#"{"paths":"/"}"#,
            br#"{"paths":[1]}"#,
            br#"{"paths":["no-slash"]}"#,
            br#"{"pahts":["/"]}"#,
            br#"{"paths":["/"],"type":"segment"}"#,
            br#"{"paths":["/"],"mode":"gentle"}"#,
            br#"{"all":"yes"}"#,
            br#"{"paths":null}"#,
            br#"{"path":null}"#,
            br#"{"tags":null}"#,
            br#"{"tag":null,"paths":["/"]}"#,
            br#"{"tag":"x","mode":"hard","profile":"max"}"#,
            br#"{"tags":["  "]}"#,
            br#"{"secret":"a","paths":["/"],"secret":"b"}"#,
            br#"{"paths":[{"path":"/a","path":"/b"}]}"#,
            br#"{"paths":["/"],"host":"https://shop.example"}"#,
            br#"{"paths":["/"],"host":"shop.example/"}"#,
            br#"{"paths":["/"],"host":"shop.example:99999"}"#,
            br#"{"paths":["/"],"host":"shop example"}"#,
        ];
        for body in cases {
            assert!(
                parse_json(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let empty = parse_json(b"").expect_err("empty");
        assert!(empty.0.starts_with("body is empty;"), "{empty}");
        let twice = parse_json(br#"{"secret":"a","secret":"b"}"#).expect_err("ambiguous");
        assert!(
            twice.0.contains(r#"field "secret" is given twice"#),
            "{twice}"
        );
        let many: Vec<String> = (0..1001).map(|i| format!("\"/p{i}\"")).collect();
        let body = format!("{{\"paths\":[{}]}}", many.join(","));
        let err = parse_json(body.as_bytes()).expect_err("too many");
        assert!(err.0.contains("at most 1000"), "{err}");
    }

    #[test]
    fn query_form() {
        let r = parse_query("secret=a%20b&path=/x&path=/y&tag=posts&type=layout").expect("valid");
        assert_eq!(r.secret.as_deref(), Some("a b"));
        assert_eq!(
            r.targets,
            [
                Target::Layout("/x".into()),
                Target::Layout("/y".into()),
                Target::Tag("posts".into())
            ]
        );
        let twice = parse_query("secret=a&path=/x&secret=b").expect_err("ambiguous");
        assert!(
            twice.0.contains(r#"parameter "secret" is given twice"#),
            "{twice}"
        );
        assert!(query_requests_revalidation("secret=x"));
        assert!(query_requests_revalidation("%70ath=/x"));
        assert!(!query_requests_revalidation("foo=bar"));
        assert_eq!(query_secret("a=1&%73ecret=s%20t").as_deref(), Some("s t"));
        assert_eq!(query_secret("secrets=x"), None);
        assert_eq!(decode_component("%zz+%41"), "%zz A");
    }
}
