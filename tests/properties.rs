//! Property tests (proptest) over the parsers and matchers: `Cache-Control` parsing, path
//! normalisation, the revalidation request parser (in process and over HTTP), and the route
//! pattern matcher against a slow reference implementation.

mod support;

use std::sync::OnceLock;

use isr_edge::cache::key::{encode_path, normalize_path};
use isr_edge::cache::pattern::Pattern;
use isr_edge::cache::policy::CacheControl;
use isr_edge::revalidate::request;
use proptest::prelude::*;

// --- Cache-Control ---

fn directive_case(name: &'static str) -> impl Strategy<Value = String> {
    prop::sample::select(vec![name.to_string(), name.to_ascii_uppercase()])
}

proptest! {
    #[test]
    fn cache_control_never_panics(text in ".{0,200}") {
        let _ = CacheControl::parse(&text);
    }

    #[test]
    fn cache_control_reads_what_was_written(
        max_age in prop::option::of(0u64..1_000_000_000),
        s_maxage in prop::option::of(0u64..1_000_000_000),
        swr in prop::option::of(prop::option::of(0u64..100_000_000)),
        sie in prop::option::of(0u64..100_000_000),
        flags in prop::collection::vec(any::<bool>(), 5),
        junk in prop::collection::vec("[a-z]{1,8}(=[a-z0-9]{1,5})?", 0..3),
        name in directive_case("max-age"),
        spaces in " {0,3}",
        shuffle in any::<prop::sample::Index>(),
    ) {
        let mut parts: Vec<String> = Vec::new();
        if let Some(v) = max_age { parts.push(format!("{name}={v}")); }
        if let Some(v) = s_maxage { parts.push(format!("s-maxage=\"{v}\"")); }
        match swr {
            Some(Some(v)) => parts.push(format!("stale-while-revalidate={v}")),
            Some(None) => parts.push("stale-while-revalidate".into()),
            None => {}
        }
        if let Some(v) = sie { parts.push(format!("stale-if-error={v}")); }
        let names = ["no-store", "no-cache", "private", "public", "immutable"];
        for (flag, name) in flags.iter().zip(names) {
            if *flag { parts.push(name.to_string()); }
        }
        // Unknown directives are ignored wherever they appear.
        parts.extend(junk.into_iter().filter(|j| !j.starts_with("max") && !j.starts_with("s")));
        if !parts.is_empty() {
            let at = shuffle.index(parts.len());
            parts.rotate_left(at);
        }
        let text = parts.join(&format!("{spaces},{spaces}"));
        let cc = CacheControl::parse(&text);
        prop_assert_eq!(cc.max_age, max_age, "{}", text);
        prop_assert_eq!(cc.s_maxage, s_maxage, "{}", text);
        prop_assert_eq!(cc.stale_while_revalidate, swr, "{}", text);
        prop_assert_eq!(cc.stale_if_error, sie, "{}", text);
        prop_assert_eq!([cc.no_store, cc.no_cache, cc.private, cc.public, cc.immutable].to_vec(), flags, "{}", text);
    }
}

// --- path normalisation ---

fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,4}",
        Just(".".to_string()),
        Just("..".to_string()),
        Just(String::new()),
        Just("%2e".to_string()),
        Just("%2F".to_string()),
        Just("%41b".to_string()),
        Just("%".to_string()),
        Just("%%34%31".to_string()),
        Just("é".to_string()),
        "[%a-fA-F0-9.]{1,6}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    (prop::collection::vec(path_segment(), 0..8), any::<bool>()).prop_map(|(segments, slash)| {
        format!("/{}{}", segments.join("/"), if slash { "/" } else { "" })
    })
}

proptest! {
    #[test]
    fn normalisation_is_idempotent_and_total(raw in prop_oneof![path(), ".{0,64}"]) {
        let once = normalize_path(&raw);
        prop_assert!(once.starts_with('/'), "{:?} -> {:?}", raw, once);
        prop_assert!(!once.contains("//"), "{:?} -> {:?}", raw, once);
        prop_assert_eq!(normalize_path(&once), once.clone(), "not idempotent for {:?}", raw);
    }

    #[test]
    fn dot_segments_and_doubled_slashes_give_one_key(segments in prop::collection::vec("[a-z0-9]{1,4}", 1..6), at in any::<prop::sample::Index>()) {
        let plain = format!("/{}", segments.join("/"));
        let i = at.index(segments.len());
        let mut with_dot = segments.clone();
        with_dot.insert(i, ".".into());
        let mut with_parent = segments.clone();
        with_parent.insert(i, "x/..".into());
        for variant in [format!("/{}", with_dot.join("/")), format!("/{}", with_parent.join("/")), plain.replace('/', "//")] {
            prop_assert_eq!(normalize_path(&variant), normalize_path(&plain), "{}", variant);
        }
    }
}

/// Pieces of paths that meet at escapes: stray `%`, hex digits of both cases, escapes of
/// reserved, unreserved and non-ASCII bytes, and bytes a URI cannot carry raw.
fn tricky_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[%0-9a-fA-F]{1,3}",
        "[/.]{1,3}",
        Just("%25".to_string()),
        Just("%2e".to_string()),
        Just("%2F".to_string()),
        Just("%c3%a9".to_string()),
        Just("\u{e9}".to_string()),
        Just("\\".to_string()),
        Just(" ".to_string()),
        Just("{|}^\"<>`".to_string()),
        Just("\u{7f}".to_string()),
        "[a-z~_-]{1,3}",
        ".{1,2}",
    ]
}

proptest! {
    /// One key per URL: normalising is idempotent, leaves nothing a URI cannot carry raw, and
    /// a purge input (`encode_path` first, as the control API and route patterns do) meets the
    /// key its request stored, whether the request sent the bytes raw or escaped.
    #[test]
    fn raw_escaped_and_purge_forms_of_a_path_share_one_key(
        pieces in prop::collection::vec(tricky_piece(), 0..10),
        slash in any::<bool>(),
    ) {
        let raw = format!("{}{}", if slash { "/" } else { "" }, pieces.concat());
        let key = normalize_path(&raw);
        prop_assert_eq!(normalize_path(&key), key.clone(), "not idempotent for {:?}", raw);
        prop_assert_eq!(encode_path(&key).into_owned(), key.clone(), "raw bytes kept for {:?}", raw);
        prop_assert_eq!(normalize_path(&encode_path(&raw)), key.clone(), "purge of {:?}", raw);
        if !raw.contains('%') {
            // Escapes written by the client, in either case, are the raw bytes' key.
            let upper = encode_path(&raw).into_owned();
            prop_assert_eq!(normalize_path(&upper), key.clone(), "{:?}", upper);
            let lower = lower_hex(&upper);
            prop_assert_eq!(normalize_path(&lower), key.clone(), "{:?}", lower);
        }
    }
}

/// `%C3%A9` as `%c3%a9`: escapes in lower-case hex, the rest unchanged.
fn lower_hex(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[at + escape.len()..];
    }
    out.push_str(rest);
    out
}

#[test]
fn dot_segment_example() {
    assert_eq!(normalize_path("/a/./b"), normalize_path("/a/b"));
}

// --- the revalidation parser ---

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            "/[a-z/\\[\\].*]{0,12}",
            ".{0,12}",
            Just("\u{0}".to_string())
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let field = prop_oneof![
            Just("secret"),
            Just("path"),
            Just("paths"),
            Just("tag"),
            Just("tags"),
            Just("type"),
            Just("all"),
            Just("mode"),
            Just("profile"),
            Just("warm"),
            Just("dry_run"),
            Just("host"),
            Just("bogus")
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field.prop_map(String::from), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parser_never_panics(value in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..64), query in ".{0,64}") {
        let _ = request::parse_json(value.to_string().as_bytes());
        let _ = request::parse_json(&bytes);
        let _ = request::parse_query(&query);
    }
}

/// One runtime and one proxy for every HTTP case (starting one per case would be slow).
fn edge() -> &'static (tokio::runtime::Runtime, std::net::SocketAddr) {
    static EDGE: OnceLock<(tokio::runtime::Runtime, std::net::SocketAddr)> = OnceLock::new();
    EDGE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let addr = runtime.block_on(async {
            let origin =
                support::Origin::start(|_| support::Reply::ok("page").cc("s-maxage=60")).await;
            let edge = support::Edge::start(&origin.url(), &["--revalidate-rate", "off"]).await;
            let addr = edge.addr;
            // Dropping either would stop it; they serve for the whole test binary.
            std::mem::forget(origin);
            std::mem::forget(edge);
            addr
        });
        (runtime, addr)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn every_http_rejection_is_a_json_4xx(
        mut value in json_value(),
        with_secret in any::<bool>(),
        raw in prop::option::of(prop::collection::vec(any::<u8>(), 0..48)),
    ) {
        if let (true, serde_json::Value::Object(object)) = (with_secret, &mut value) {
            object.insert("secret".into(), support::SECRET.into());
        }
        let body: Vec<u8> = raw.unwrap_or_else(|| value.to_string().into_bytes());
        let (runtime, addr) = edge();
        let response = runtime.block_on(support::send(*addr, "POST", "/api/revalidate", &[("content-type", "application/json")], body.clone()));
        let text = String::from_utf8_lossy(&body).into_owned();
        if response.status == 200 {
            prop_assert_eq!(&response.json()["success"], &serde_json::Value::Bool(true), "{}", text);
        } else {
            prop_assert!((400..500).contains(&response.status), "{} for {}", response.status, text);
            let answer = response.json();
            prop_assert_eq!(&answer["success"], &serde_json::Value::Bool(false), "{}", text);
            prop_assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", text);
        }
    }
}

// --- the pattern matcher ---

fn pattern_segment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a",
        "b",
        "c",
        "[id]",
        "[...rest]",
        "[[...opt]]",
        "*",
        "**",
        "(group)",
        "@slot",
    ])
}

/// Slow reference: a table over (pattern position, path position), filled from the end.
fn reference(pattern: &[&str], path: &[&str], subtree: bool) -> bool {
    let pattern: Vec<&str> = pattern
        .iter()
        .copied()
        .filter(|s| !(s.starts_with('(') || s.starts_with('@')))
        .collect();
    let full = |path: &[&str]| {
        let (m, n) = (pattern.len(), path.len());
        // ok[i][j]: pattern[i..] matches path[j..] exactly.
        let mut ok = vec![vec![false; n + 1]; m + 1];
        ok[m][n] = true;
        for i in (0..m).rev() {
            for j in (0..=n).rev() {
                ok[i][j] = match pattern[i] {
                    "*" | "[id]" => j < n && ok[i + 1][j + 1],
                    "[...rest]" => (j + 1..=n).any(|k| ok[i + 1][k]),
                    "**" | "[[...opt]]" => (j..=n).any(|k| ok[i + 1][k]),
                    literal => j < n && path[j] == literal && ok[i + 1][j + 1],
                };
            }
        }
        ok[0][0]
    };
    if subtree {
        (0..=path.len()).any(|k| full(&path[..k]))
    } else {
        full(path)
    }
}

proptest! {
    #[test]
    fn pattern_matcher_agrees_with_the_reference(
        pattern in prop::collection::vec(pattern_segment(), 0..6),
        path in prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d"]), 0..7),
        subtree in any::<bool>(),
    ) {
        let source = format!("/{}", pattern.join("/"));
        let page = format!("/{}", path.join("/"));
        let parsed = Pattern::parse(&source);
        let matched = parsed.matches(&page, subtree);
        prop_assert_eq!(matched, reference(&pattern, &path, subtree), "{} vs {} (subtree {})", source, page, subtree);
        // The index only scans under the literal prefix: every match must lie there.
        if matched {
            let prefix = parsed.literal_prefix();
            prop_assert!(prefix == "/" || page == prefix || page.starts_with(&format!("{prefix}/")), "{} outside {}", page, prefix);
        }
    }
}

/// Every path of up to five segments over the patterns' letters and one more.
fn all_short_paths() -> Vec<String> {
    let mut paths = vec![String::from("/")];
    let mut last = vec![String::new()];
    for _ in 0..5 {
        last = last
            .iter()
            .flat_map(|p| ["a", "b", "c", "d"].map(|s| format!("{p}/{s}")))
            .collect();
        paths.extend(last.iter().cloned());
    }
    paths
}

proptest! {
    /// `covers` (a route rule that would shadow a later one) is never wrong when it says yes:
    /// refusing a configuration whose later rule does apply to some page would be a bug.
    #[test]
    fn a_covering_pattern_matches_every_page_the_covered_one_does(
        wide in prop::collection::vec(pattern_segment(), 0..5),
        narrow in prop::collection::vec(pattern_segment(), 0..5),
    ) {
        let (wide, narrow) = (
            Pattern::parse(&format!("/{}", wide.join("/"))),
            Pattern::parse(&format!("/{}", narrow.join("/"))),
        );
        prop_assert!(wide.covers(&wide), "{} covers itself", wide.source());
        if wide.covers(&narrow) {
            for page in all_short_paths() {
                prop_assert!(
                    !narrow.matches(&page, false) || wide.matches(&page, false),
                    "{} said to cover {}, but only the latter matches {}",
                    wide.source(), narrow.source(), page
                );
            }
        }
    }
}
