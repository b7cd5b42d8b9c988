//! Cache keys and path normalisation.
//!
//! One function, [`normalize_path`], is used by both the cache key and the purge API, so a purge
//! always finds what the cache stored. [`page_path`] maps every Next.js form of a page (`.rsc`,
//! `.prefetch.rsc`, `.segments/…`, `/_next/data/<build>/….json`, trailing slash, `/index`) to one
//! canonical page path: the key of the purge index.

use std::borrow::Cow;
use std::sync::Arc;

use http::{header, HeaderMap, HeaderName};

/// The primary cache key: `host` + normalised path + `?query`. Vary variants live under it.
pub type Key = Arc<str>;

/// Builds the primary key. The host is lowercased; the query is kept byte for byte (its order can
/// matter to the origin).
pub fn primary_key(host: &str, normalized_path: &str, query: Option<&str>) -> Key {
    primary_key_text(host, normalized_path, query).into()
}

/// [`primary_key`] as a plain string: lookups take `&str`, so a hit needs no shared key.
pub fn primary_key_text(host: &str, normalized_path: &str, query: Option<&str>) -> String {
    let mut key = String::new();
    push_key(&mut key, host, normalized_path, query);
    // Bytes at a time (a char-by-char push re-encoded each one).
    key[..host.len()].make_ascii_lowercase();
    key
}

/// [`primary_key_text`] appended to `key`, for a host [`is_plain_host`] accepted: it has
/// nothing to lowercase.
pub fn push_plain_key(key: &mut String, host: &str, normalized_path: &str, query: Option<&str>) {
    debug_assert!(is_plain_host(host), "{host:?}");
    push_key(key, host, normalized_path, query);
}

/// Host, path and `?query`, as written.
fn push_key(key: &mut String, host: &str, normalized_path: &str, query: Option<&str>) {
    key.reserve(host.len() + normalized_path.len() + query.map_or(0, |q| q.len() + 1));
    key.push_str(host);
    key.push_str(normalized_path);
    if let Some(q) = query {
        key.push('?');
        key.push_str(q);
    }
}

/// The request's host as the cache knows it. RFC 9110 section 4.2.3 makes an `http` authority
/// with an empty or default port (`shop.example:80`, `shop.example:`) the same origin as one
/// without, and a name with the root's trailing dot (`shop.example.`) is the same name (nginx
/// drops it too): they share pages and purges. Other ports name other origins and are kept.
/// Anything that is not a host is returned as written, for the host check to refuse.
pub fn canonical_host(host: &str) -> Cow<'_, str> {
    // Runs on every request: the usual host is checked in one pass from its end (~150
    // instructions a hit went to the full split).
    if is_canonical(host) {
        return Cow::Borrowed(host);
    }
    made_canonical(host)
}

/// [`canonical_host`] without its shortcut.
fn made_canonical(host: &str) -> Cow<'_, str> {
    let (name, port) = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => (&host[..i], Some(&host[i + 1..])),
        _ => (host, None),
    };
    if name.is_empty() || (name.contains(':') && !name.starts_with('[')) {
        return Cow::Borrowed(host);
    }
    let name = without_root_dot(name);
    // The port as a number: `:080` is `:80`, and `:08080` is `:8080`.
    let port = match port.filter(|port| !port.is_empty()) {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(80) => None,
            Ok(number) if port.starts_with('0') => Some(Cow::Owned(number.to_string())),
            _ => Some(Cow::Borrowed(port)),
        },
    };
    match port {
        None => Cow::Borrowed(name),
        Some(port) if name.len() + 1 + port.len() == host.len() => Cow::Borrowed(host),
        Some(port) => Cow::Owned(format!("{name}:{port}")),
    }
}

/// A host name without the root's trailing dot (`shop.example.` is `shop.example`), as
/// [`canonical_host`] keys it; a name that is only a dot, or ends in two, is no name and is
/// kept for the host check to refuse.
pub fn without_root_dot(name: &str) -> &str {
    match name.strip_suffix('.') {
        Some(bare) if !bare.is_empty() && !bare.ends_with('.') => bare,
        _ => name,
    }
}

/// Whether `host` is surely as [`canonical_host`] makes it: a name not ending in a dot or a
/// colon, then no port or a port other than 80 written without leading zeros. False leaves
/// the decision to the full check.
fn is_canonical(host: &str) -> bool {
    let bytes = host.as_bytes();
    let digits = bytes
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let (name, port) = bytes.split_at(bytes.len() - digits);
    match name.split_last() {
        Some((b':', name)) => {
            port.first().is_some_and(|&first| first != b'0')
                && port != b"80"
                && name
                    .last()
                    .is_some_and(|&last| last != b'.' && last != b':')
        }
        _ => bytes.last().is_some_and(|&last| last != b'.') && !bytes.contains(&b':'),
    }
}

/// Whether `host` is already as the cache keys it and as requests are checked for: a host
/// `limits::valid_host` accepts, that [`canonical_host`] leaves as it is and that has no
/// upper-case letter. Most requests' hosts are; for them this one pass stands in for the
/// validity check, the canonical form and the key's lowercasing (three passes, ~300
/// instructions a hit). False leaves the decision to those: IPv6 literals, ports written
/// `:80` or with leading zeros, trailing dots and upper case all go there.
pub fn is_plain_host(host: &str) -> bool {
    let bytes = host.as_bytes();
    let name_end = bytes
        .iter()
        .position(|&b| !PLAIN_NAME_BYTE[usize::from(b)])
        .unwrap_or(bytes.len());
    let (name, port) = bytes.split_at(name_end);
    if name.last().is_none_or(|&last| last == b'.') {
        return false;
    }
    match port.split_first() {
        None => true,
        // A port other than the default one, without leading zeros, at most 65535.
        Some((b':', digits)) => {
            matches!(digits.first(), Some(b'1'..=b'9'))
                && digits != b"80"
                && crate::limits::is_port_number(digits)
        }
        Some(_) => false,
    }
}

/// The bytes `limits::valid_host` accepts in a name, upper-case letters left out.
static PLAIN_NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] =
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_' | b'~');
        byte += 1;
    }
    table
};

/// Splits a primary key back into its host and the path-and-query part.
pub fn split_key(key: &str) -> (&str, &str) {
    match key.find('/') {
        Some(i) => key.split_at(i),
        None => (key, "/"),
    }
}

/// RFC 3986 section 6.2.2 normalisation plus what origins treat as the same resource:
/// unreserved percent-escapes decoded, other escapes upper-cased, `//` collapsed, `.` and `..`
/// resolved. The trailing slash is kept (an origin may redirect one form to the other).
/// Idempotent; never fails: anything that is not a path becomes a path.
pub fn normalize_path(raw: &str) -> String {
    normalized(raw).into_owned()
}

/// [`normalize_path`] without an allocation when `raw` is already normal (the common case on
/// the hit path).
pub fn normalized(raw: &str) -> Cow<'_, str> {
    if is_normal(raw) {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(normalize_slow(raw))
}

/// Whether [`normalize_slow`] would return `raw` unchanged.
///
/// One pass over the bytes: `str::contains` with a string pattern sets up a searcher per call,
/// and the four of them (with two suffix checks) were ~1 % of a hit's CPU. Between two `/`,
/// a segment's bytes are only looked up in [`SEGMENT_BYTE`] (this runs on every byte of every
/// hit's path): one test per byte instead of a match on it.
fn is_normal(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    let mut slash = bytes;
    loop {
        // A segment after a `/` may not be empty (`//`), `.` or `..`; the final one may be empty.
        let segment = &slash[1..];
        if matches!(
            segment,
            [b'/', ..] | [b'.'] | [b'.', b'/', ..] | [b'.', b'.'] | [b'.', b'.', b'/', ..]
        ) {
            return false;
        }
        match segment
            .iter()
            .position(|&byte| !SEGMENT_BYTE[usize::from(byte)])
        {
            None => return true,
            Some(at) if segment[at] == b'/' => slash = &segment[at..],
            // An escape, or a byte sent raw (`/café` as UTF-8 bytes, `/a\b`): escaped as
            // `encode_path` writes purge inputs, so `/café` from a lax client and `/caf%C3%A9`
            // from a browser are one page.
            Some(_) => return false,
        }
    }
}

/// The bytes a normal path's segment keeps as they are: not `%`, not `/` (which ends it), not
/// one [`needs_escape`] says is escaped.
static SEGMENT_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = !needs_escape(b) && b != b'%' && b != b'/';
        byte += 1;
    }
    table
};

fn normalize_slow(raw: &str) -> String {
    let mut decoded = decode_unreserved(raw);
    // A stray `%` can meet decoded digits (`%%34%31` -> `%41`): decode until nothing changes,
    // so normalising a key again gives the same key. Each change shortens it: this ends.
    while decoded.contains('%') {
        match decode_unreserved(&decoded) {
            Cow::Owned(next) if next != *decoded => decoded = Cow::Owned(next),
            _ => break,
        }
    }
    let trailing_slash =
        decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || (trailing_slash && !segments.is_empty()) {
        out.push('/');
    }
    // Bytes a URI cannot carry raw, as purge inputs are written (`encode_path`). Escapes of
    // them are never decoded above, so normalising again changes nothing.
    match encode_path(&out) {
        Cow::Borrowed(_) => out,
        Cow::Owned(encoded) => encoded,
    }
}

/// A byte that cannot appear raw in a URI path: controls, space, non-ASCII (UTF-8), and
/// `"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}` (RFC 3986 section 2).
const fn needs_escape(b: u8) -> bool {
    !b.is_ascii_graphic()
        || matches!(
            b,
            b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
        )
}

/// A path as a person or a backend writes it (`/café`, `/a b`) in the form a request line
/// carries it (`/caf%C3%A9`, `/a%20b`): bytes that cannot appear raw in a URI are
/// percent-encoded (upper-case hex, as [`normalize_path`] writes escapes). Purge inputs go
/// through this before `normalize_path`, so they meet what requests stored.
pub fn encode_path(raw: &str) -> Cow<'_, str> {
    percent_encode(raw, needs_escape)
}

/// `raw` with every byte `escaped` selects written `%XX` (upper-case hex); borrowed when none
/// is.
pub fn percent_encode(raw: &str, escaped: impl Fn(u8) -> bool) -> Cow<'_, str> {
    if !raw.bytes().any(&escaped) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len() + 16);
    for b in raw.bytes() {
        if escaped(b) {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        } else {
            out.push(char::from(b));
        }
    }
    Cow::Owned(out)
}

fn decode_unreserved(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c as char);
                } else {
                    out.push('%');
                    out.push(bytes[i + 1].to_ascii_uppercase() as char);
                    out.push(bytes[i + 2].to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
        }
        // Multi-byte UTF-8 is copied whole: `raw` is a valid str, so char boundaries line up.
        let ch_len = utf8_len(bytes[i]);
        out.push_str(&raw[i..i + ch_len]);
        i += ch_len;
    }
    Cow::Owned(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Whether a cache key's URL names an RSC payload by its path (`.rsc`, as Next.js's
/// `.prefetch.rsc` and `.segments/…segment.rsc` do), not by a request header.
pub fn names_rsc_payload(key: &str) -> bool {
    let path = key.split_once('?').map_or(key, |(path, _)| path);
    path.ends_with(".rsc")
}

/// The canonical page a normalised path belongs to, so a purge of `/blog` reaches `/blog/`,
/// `/blog.rsc`, `/blog.prefetch.rsc`, `/blog.segments/…` and `/_next/data/<build>/blog.json`.
pub fn page_path(normalized: &str) -> Cow<'_, str> {
    let mut p: &str = normalized;
    let mut owned: Option<String> = None;
    if let Some(rest) = p.strip_prefix("/_next/data/") {
        if let Some((_build, page)) = rest.split_once('/') {
            if let Some(page) = page.strip_suffix(".json") {
                owned = Some(format!("/{page}"));
            }
        }
    }
    if let Some(o) = owned.as_deref() {
        p = o;
    }
    if let Some(i) = p.find(".segments/") {
        p = &p[..i];
    } else if let Some(s) = p.strip_suffix(".prefetch.rsc") {
        p = s;
    } else if let Some(s) = p.strip_suffix(".rsc") {
        p = s;
    }
    let p = if p.len() > 1 {
        p.trim_end_matches('/')
    } else {
        p
    };
    let p = if p == "/index" || p.is_empty() {
        "/"
    } else {
        p
    };
    if owned.is_none() && p.len() == normalized.len() {
        Cow::Borrowed(normalized)
    } else {
        Cow::Owned(p.to_string())
    }
}

/// Next.js's implicit tag for the URL of page `page` (`_N_T_/blog/a`), as `revalidatePath`
/// expires it: a page purge also selects the pages stored under another URL that carry it.
pub fn implicit_page_tag(page: &str) -> String {
    format!("_N_T_{page}")
}

/// Next.js's implicit tag for the layout at `page` (`_N_T_/blog/layout`, `_N_T_/layout` for
/// the root): a layout purge also selects the pages stored under another URL that carry it.
pub fn implicit_layout_tag(page: &str) -> String {
    format!("_N_T_{}/layout", page.trim_end_matches('/'))
}

/// At most this many layout tags for one rewrite target (its first segments): the target
/// comes from the request path (`/:path*` rewritten to `/site/:path*`), so its depth is the
/// client's to choose.
const MAX_REWRITE_LAYOUT_TAGS: usize = 8;

/// The implicit tags of the page a Next.js middleware rewrite rendered for this URL
/// (`x-nextjs-rewritten-path`, else `x-middleware-rewrite`), when it is another page than
/// `page`: its own and those of the layouts above it, as Next lists them for that page. Next
/// keeps the rendered page under the target, and a backend revalidates that real path
/// (`/products/a`), never the URL the visitor used (`/deals/today`), so the copy stored under
/// that URL must be reachable from the target, or it stays stale until it expires.
pub fn rewrite_tags(headers: &HeaderMap, page: &str) -> Vec<Box<str>> {
    let target = headers
        .get("x-nextjs-rewritten-path")
        .or_else(|| headers.get("x-middleware-rewrite"))
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return Vec::new();
    };
    // A path, or a full URL naming Next's own address (`http://localhost:3000/products/a`).
    let path = if target.starts_with('/') {
        target.split(['?', '#']).next().unwrap_or("/").to_string()
    } else {
        match target.parse::<http::Uri>() {
            Ok(uri) => uri.path().to_string(),
            Err(_) => return Vec::new(),
        }
    };
    let target = page_path(&normalize_path(&encode_path(&path))).into_owned();
    if target == page {
        return Vec::new();
    }
    let mut tags: Vec<Box<str>> = vec![implicit_page_tag(&target).into()];
    let mut prefix = String::new();
    for segment in target
        .split('/')
        .filter(|s| !s.is_empty())
        .take(MAX_REWRITE_LAYOUT_TAGS)
    {
        prefix.push('/');
        prefix.push_str(segment);
        tags.push(implicit_layout_tag(&prefix).into());
    }
    tags
}

/// The request's value for one header named in a response's `Vary`, in the form variants are
/// compared by. `Accept-Encoding` is folded to a few classes so it does not explode variants.
/// Distinct bytes are distinct values: a value that is not UTF-8 is kept byte for byte (as
/// Latin-1) behind a NUL, which no header value holds, so it meets neither another byte string
/// nor a text value. Decoded lossily, every such byte was U+FFFD, and the variant the origin
/// made for one value answered requests carrying another.
pub fn vary_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<Cow<'a, str>> {
    if name == header::ACCEPT_ENCODING {
        return Some(Cow::Borrowed(encoding_class(headers)));
    }
    let mut values = headers.get_all(name).iter();
    let first = values.next()?.as_bytes().trim_ascii();
    let mut values = values.peekable();
    if values.peek().is_none() {
        if let Ok(text) = std::str::from_utf8(first) {
            return Some(Cow::Borrowed(text));
        }
    }
    let mut joined = first.to_vec();
    // Joined as the origin gets them: HTTP/2 cookie fields with "; " (RFC 9113 section
    // 8.2.3), so an h2 and an h1 browser with the same cookies share one variant.
    let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
    for v in values {
        joined.extend_from_slice(separator);
        joined.extend_from_slice(v.as_bytes().trim_ascii());
    }
    Some(Cow::Owned(match String::from_utf8(joined) {
        Ok(text) => text,
        Err(not_text) => std::iter::once(NOT_TEXT)
            .chain(not_text.into_bytes().into_iter().map(char::from))
            .collect(),
    }))
}

/// What a [`vary_value`] that is not UTF-8 starts with.
pub const NOT_TEXT: char = '\0';

/// Whether the request's `Connection` header lists `name`: such a header is hop-by-hop, never
/// reaches the origin, and the page it gets is the variant for that header's absence.
/// `Accept-Encoding` never is: the edge sends the origin its own (the encoding class).
pub fn named_in_connection(request: &HeaderMap, name: &HeaderName) -> bool {
    name != header::ACCEPT_ENCODING
        && crate::upstream::connection_tokens(request)
            .any(|token| token.eq_ignore_ascii_case(name.as_str().as_bytes()))
}

/// `br,gzip`, `br`, `gzip` or `identity`: the encodings an origin is likely to produce, as the
/// `Accept-Encoding` a fetch for the class sends. A client accepting both (every browser) asks
/// for both: an origin without brotli (Next.js's `next start` compresses with gzip only) must
/// still compress, and a client accepting br alone must never get gzip.
pub fn encoding_class(headers: &HeaderMap) -> &'static str {
    let (mut br, mut gzip) = (false, false);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for coding in text.split(',') {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if refused {
                continue;
            }
            if name.eq_ignore_ascii_case("br") {
                br = true;
            }
            if name.eq_ignore_ascii_case("gzip") {
                gzip = true;
            }
        }
    }
    match (br, gzip) {
        // No space after the comma: re-warming replays the class as the header value, and
        // does not replay values joined with ", " (see `Entry::variant_request`).
        (true, true) => "br,gzip",
        (true, false) => "br",
        (false, true) => "gzip",
        (false, false) => "identity",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn rewrite_tags_name_the_target_page_and_its_layouts() {
        let tags = |name: &'static str, value: &str, page: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_str(value).expect("value"));
            rewrite_tags(&headers, page)
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let target = ["_N_T_/shop/a", "_N_T_/shop/layout", "_N_T_/shop/a/layout"];
        assert_eq!(
            tags(
                "x-middleware-rewrite",
                "http://localhost:3000/shop/a?x=1",
                "/a"
            ),
            target
        );
        assert_eq!(tags("x-nextjs-rewritten-path", "/shop/a/", "/a"), target);
        assert_eq!(tags("x-middleware-rewrite", "/shop/a.rsc", "/a"), target);
        assert_eq!(
            tags("x-middleware-rewrite", "http://localhost:3000/", "/a"),
            ["_N_T_/"]
        );
        // Served from itself (a rewrite to the same page), or nothing readable: no tags.
        assert!(tags("x-middleware-rewrite", "http://localhost:3000/a", "/a").is_empty());
        assert!(tags("x-middleware-rewrite", "not a url", "/a").is_empty());
        // The depth is the client's to choose (`/:path*` rewritten): the first segments only.
        let deep = format!("/site{}", "/x".repeat(100));
        let deep_tags = tags("x-nextjs-rewritten-path", &deep, "/x");
        assert_eq!(
            deep_tags.len(),
            1 + MAX_REWRITE_LAYOUT_TAGS,
            "{deep_tags:?}"
        );
    }

    #[test]
    fn the_fast_normal_check_agrees_with_its_definition_on_every_short_path() {
        let by_definition = |raw: &str| {
            raw.starts_with('/')
                && !raw.contains('%')
                && !raw.contains("//")
                && !raw.contains("/./")
                && !raw.contains("/../")
                && !raw.ends_with("/.")
                && !raw.ends_with("/..")
        };
        let alphabet = ['/', '.', 'a', '%'];
        let mut paths = vec![String::new()];
        for _ in 0..7 {
            let longer: Vec<String> = paths
                .iter()
                .filter(|p| p.len() == paths.last().map_or(0, String::len))
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            paths.extend(longer);
        }
        assert!(paths.len() > 20_000);
        for path in &paths {
            assert_eq!(is_normal(path), by_definition(path), "{path:?}");
            if is_normal(path) {
                assert_eq!(normalize_slow(path), *path);
            }
        }
    }

    #[test]
    fn fast_path_agrees_with_full_normalisation() {
        for raw in [
            "/",
            "/a",
            "/a/",
            "/a/b.rsc",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/a/.",
            "/a/..",
            "/%41",
            "a",
            "",
            "/.",
            "/..",
            "/a/.b/..c",
            "/_next/data/x/y.json",
            "/ü/ß",
        ] {
            assert_eq!(normalized(raw), normalize_slow(raw), "{raw:?}");
        }
    }

    #[test]
    fn normalizes_paths() {
        let table = [
            ("/", "/"),
            ("", "/"),
            ("//a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/b/../c", "/a/c"),
            ("/../../x", "/x"),
            ("/blog/", "/blog/"),
            ("/%7Euser/%61", "/~user/a"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb", "/a%2Fb"),
            ("/%", "/%"),
            ("/%zz", "/%zz"),
            ("/%%34%31", "/A"),
            // Raw bytes a URI cannot carry are escaped, as browsers send them and as purge
            // inputs are written: one key for `/café` from a lax client and from a browser.
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/caf\u{e9}/../x", "/x"),
            ("/a\\b", "/a%5Cb"),
            ("/a%5cb", "/a%5Cb"),
            ("/a/%2E%2E/b", "/b"),
            ("/a/.", "/a/"),
        ];
        for (input, expected) in table {
            let once = normalize_path(input);
            assert_eq!(once, expected, "{input:?}");
            assert_eq!(normalize_path(&once), once, "idempotent for {input:?}");
        }
    }

    #[test]
    fn page_paths() {
        let table = [
            ("/blog", "/blog"),
            ("/blog/", "/blog"),
            ("/blog.rsc", "/blog"),
            ("/blog.prefetch.rsc", "/blog"),
            ("/blog.segments/_tree.segment.rsc", "/blog"),
            ("/_next/data/abc123/blog.json", "/blog"),
            ("/_next/data/abc123/index.json", "/"),
            ("/index", "/"),
            ("/index.rsc", "/"),
            ("/", "/"),
        ];
        for (input, expected) in table {
            assert_eq!(page_path(input), expected, "{input:?}");
        }
    }

    #[test]
    fn purge_inputs_meet_request_forms() {
        let table = [
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a b", "/a%20b"),
            ("/blog/[slug]", "/blog/[slug]"),
            ("/plain", "/plain"),
        ];
        for (input, expected) in table {
            assert_eq!(normalize_path(&encode_path(input)), expected, "{input:?}");
        }
    }

    #[test]
    fn hosts_are_made_canonical() {
        for (written, canonical) in [
            ("shop.example:80", "shop.example"),
            ("shop.example:", "shop.example"),
            ("shop.example.", "shop.example"),
            ("shop.example.:80", "shop.example"),
            ("shop.example.:8080", "shop.example:8080"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("shop.example", "shop.example"),
            ("shop.example:8080", "shop.example:8080"),
            ("shop.example:180", "shop.example:180"),
            ("shop.example:080", "shop.example"),
            ("shop.example:08080", "shop.example:8080"),
            // Not hosts: left for the host check.
            (":80", ":80"),
            ("a::80", "a::80"),
            ("shop.example..", "shop.example.."),
            (".", "."),
            ("", ""),
        ] {
            assert_eq!(canonical_host(written), canonical, "{written}");
        }
    }

    /// The one-pass check never claims a host the full check would change.
    #[test]
    fn the_fast_host_check_agrees_with_the_full_one() {
        let names = [
            "",
            "a",
            "a.",
            "shop.example",
            "shop.example.",
            "10.0.0.1",
            "[::1]",
            ":",
            "a:",
            "a::",
        ];
        let ports = [
            "", ":", ":80", ":080", ":8080", ":08080", ":0", ":99999", ":x",
        ];
        for name in names {
            for port in ports {
                let host = format!("{name}{port}");
                if is_canonical(&host) {
                    assert_eq!(made_canonical(&host), host.as_str(), "{host:?}");
                }
            }
        }
        assert!(is_canonical("127.0.0.1:18394") && is_canonical("shop.example"));
    }

    /// A plain host is one every full check would leave as it is, and the usual ones are plain.
    #[test]
    fn plain_hosts_pass_the_full_checks_unchanged() {
        let alphabet = ['a', 'Z', '0', '1', '8', '5', '.', ':', '[', ']', '/', '-'];
        let mut hosts = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..5 {
            last = last
                .iter()
                .flat_map(|h| alphabet.iter().map(move |c| format!("{h}{c}")))
                .collect();
            hosts.extend(last.iter().cloned());
        }
        for port in [
            "", ":", ":80", ":080", ":8080", ":65535", ":65536", ":99999", ":123456",
        ] {
            for name in [
                "shop.example",
                "shop.example.",
                "Shop.example",
                "[::1]",
                "a_b~c-d",
            ] {
                hosts.push(format!("{name}{port}"));
            }
        }
        let mut plain = 0;
        for host in &hosts {
            if is_plain_host(host) {
                plain += 1;
                assert!(crate::limits::valid_host(host), "{host:?}");
                assert_eq!(canonical_host(host), host.as_str(), "{host:?}");
                assert_eq!(host.to_ascii_lowercase(), *host, "{host:?}");
            }
        }
        assert!(plain > 10_000, "{plain}");
        for host in [
            "127.0.0.1:18394",
            "shop.example",
            "a_b~c-d:8080",
            "x:65535",
            "x:1",
        ] {
            assert!(is_plain_host(host), "{host}");
        }
        for host in [
            "x:65536", "x:080", "x:80", "x:", "x.", ":8080", "", "X", "[::1]",
        ] {
            assert!(!is_plain_host(host), "{host}");
        }
    }

    #[test]
    fn cookie_fields_join_as_the_origin_gets_them() {
        let mut h2 = HeaderMap::new();
        h2.append(header::COOKIE, http::HeaderValue::from_static("a=1"));
        h2.append(header::COOKIE, http::HeaderValue::from_static("b=2"));
        let mut h1 = HeaderMap::new();
        h1.insert(header::COOKIE, http::HeaderValue::from_static("a=1; b=2"));
        assert_eq!(
            vary_value(&h2, &header::COOKIE),
            vary_value(&h1, &header::COOKIE)
        );
        let mut languages = HeaderMap::new();
        languages.append(
            header::ACCEPT_LANGUAGE,
            http::HeaderValue::from_static("fr"),
        );
        languages.append(
            header::ACCEPT_LANGUAGE,
            http::HeaderValue::from_static("en"),
        );
        assert_eq!(
            vary_value(&languages, &header::ACCEPT_LANGUAGE).as_deref(),
            Some("fr, en")
        );
    }

    /// Two requests whose values differ only in bytes that are not UTF-8 are two variants,
    /// and neither is a request whose value is text.
    #[test]
    fn values_that_are_not_text_keep_their_bytes() {
        let value = |bytes: &[&[u8]]| {
            let mut headers = HeaderMap::new();
            for b in bytes {
                headers.append(
                    header::ACCEPT_LANGUAGE,
                    http::HeaderValue::from_bytes(b).expect("value"),
                );
            }
            vary_value(&headers, &header::ACCEPT_LANGUAGE).map(Cow::into_owned)
        };
        assert_ne!(value(&[b"\xff"]), value(&[b"\xfe"]));
        assert_ne!(value(&[b"\xff"]), value(&["\u{fffd}".as_bytes()]));
        assert_ne!(value(&[b"\xe9"]), value(&["\u{e9}".as_bytes()]));
        assert_eq!(value(&[b"a\xff", b"b"]), value(&[b"a\xff, b"]));
        assert_eq!(value(&[b"fr"]).as_deref(), Some("fr"));
    }

    #[test]
    fn keys_split_back() {
        let key = primary_key("Example.COM:8080", "/a/b", Some("x=1"));
        assert_eq!(&*key, "example.com:8080/a/b?x=1");
        assert_eq!(split_key(&key), ("example.com:8080", "/a/b?x=1"));
        assert_eq!(split_key(&primary_key("", "/", None)), ("", "/"));
        let mut plain = String::new();
        push_plain_key(&mut plain, "example.com:8080", "/a/b", Some("x=1"));
        assert_eq!(plain, *key);
    }

    #[test]
    fn encoding_classes() {
        let class = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("valid"),
            );
            encoding_class(&h)
        };
        assert_eq!(class("gzip, deflate, br, zstd"), "br,gzip");
        assert_eq!(class("br, gzip, deflate"), "br,gzip");
        assert_eq!(class("br"), "br");
        assert_eq!(class("gzip"), "gzip");
        assert_eq!(class("br;q=0, gzip"), "gzip");
        assert_eq!(
            class("br;Q=0, gzip"),
            "gzip",
            "the weight name is case-insensitive"
        );
        assert_eq!(class("identity"), "identity");
        assert_eq!(encoding_class(&HeaderMap::new()), "identity");
    }
}
