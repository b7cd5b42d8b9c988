//! Route patterns for purges: Next.js dynamic segments (`[slug]`, `[...slug]`, `[[...slug]]`),
//! route groups (`(shop)`) and parallel-route slots (`@modal`) that never appear in URLs, and the
//! globs `*` (one segment) and `**` (any depth, including none).

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    OneOrMore,
    ZeroOrMore,
}

/// A parsed pattern. Matching is over normalised page paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
    source: String,
}

impl Pattern {
    /// Whether a path a client wrote needs pattern matching rather than an exact lookup: it has
    /// a dynamic segment (`[slug]`), a glob or a route group (`(shop)`). A slot (`@modal`) is
    /// read as one only inside a pattern (or a file-system path, [`Pattern::is_route_pattern`]):
    /// on its own, `/@alice` is a URL path (profile URLs look like that), and reading it as a
    /// slot made `/@alice` purge `/` (and, as a layout, everything).
    pub fn is_pattern(path: &str) -> bool {
        path.split('/')
            .any(|s| s.starts_with('[') || s == "*" || s == "**" || is_group(s) || intercepts(s))
    }

    /// [`Pattern::is_pattern`] for a Next.js file-system route path (an implicit `_N_T_` tag),
    /// where `(group)` and `@slot` segments are route syntax even without a dynamic segment.
    pub fn is_route_pattern(path: &str) -> bool {
        Pattern::is_pattern(path) || path.split('/').any(is_group_or_slot)
    }

    pub fn parse(source: &str) -> Pattern {
        let segments = url_segments(source)
            .into_iter()
            .map(|s| {
                if s == "*" {
                    Segment::One
                } else if s == "**" || (s.starts_with("[[...") && s.ends_with("]]")) {
                    Segment::ZeroOrMore
                } else if s.starts_with("[...") && s.ends_with(']') {
                    Segment::OneOrMore
                } else if s.starts_with('[') && s.ends_with(']') {
                    Segment::One
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        Pattern {
            segments,
            source: source.to_string(),
        }
    }

    /// Checks a pattern written by an operator (a route rule): brackets must form one of the
    /// dynamic segments, and a bracketed catch-all can only end the pattern, as in Next.js.
    /// The revalidation API stays lenient (a path it cannot read as a pattern matches nothing).
    pub fn check(source: &str) -> Result<(), String> {
        let segments: Vec<&str> = source.split('/').filter(|s| !s.is_empty()).collect();
        for (i, segment) in segments.iter().enumerate() {
            if !segment.contains(['[', ']']) {
                continue;
            }
            let name = segment
                .strip_prefix("[[...")
                .and_then(|s| s.strip_suffix("]]"))
                .or_else(|| {
                    segment
                        .strip_prefix("[...")
                        .and_then(|s| s.strip_suffix(']'))
                })
                .or_else(|| segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')));
            match name {
                Some(name) if !name.is_empty() && !name.contains(['[', ']', '.']) => {}
                _ => {
                    return Err(format!(
                        "segment {segment:?} is not a dynamic segment: use [name], [...name] or \
                         [[...name]]"
                    ))
                }
            }
            let catch_all = segment.starts_with("[...") || segment.starts_with("[[...");
            if catch_all && i + 1 != segments.len() {
                return Err(format!(
                    "catch-all {segment:?} must be the last segment (use ** for any depth in \
                     the middle)"
                ));
            }
        }
        Ok(())
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The literal path before the first dynamic segment: only pages under it can match, so the
    /// index scans that range and nothing else.
    pub fn literal_prefix(&self) -> String {
        let mut prefix = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(s) => {
                    prefix.push('/');
                    prefix.push_str(s);
                }
                _ => break,
            }
        }
        if prefix.is_empty() {
            prefix.push('/');
        }
        prefix
    }

    /// Whether every page `other` matches is matched by this pattern too (a route rule after
    /// this one with that pattern would never apply). Never true when some page matches
    /// `other` only; a few exotic inclusions may read as false.
    pub fn covers(&self, other: &Pattern) -> bool {
        #[derive(PartialEq)]
        enum Symbol<'a> {
            Literal(&'a str),
            One,
            Any,
        }
        // `[...x]` is one segment followed by any number; `[[...x]]` and `**` are any number.
        fn symbols(pattern: &Pattern) -> Vec<Symbol<'_>> {
            let mut out = Vec::new();
            for segment in &pattern.segments {
                match segment {
                    Segment::Literal(s) => out.push(Symbol::Literal(s)),
                    Segment::One => out.push(Symbol::One),
                    Segment::OneOrMore => out.extend([Symbol::One, Symbol::Any]),
                    Segment::ZeroOrMore => out.push(Symbol::Any),
                }
            }
            out
        }
        let (wide, narrow) = (symbols(self), symbols(other));
        // covered[i][j]: wide[i..] matches every path narrow[j..] matches.
        let (n, m) = (wide.len(), narrow.len());
        let mut covered = vec![vec![false; m + 1]; n + 1];
        covered[n][m] = true;
        for i in (0..n).rev() {
            for j in (0..=m).rev() {
                covered[i][j] = match (&wide[i], narrow.get(j)) {
                    // Any number of segments: none of narrow's, or narrow's next symbol too
                    // (whatever it stands for).
                    (Symbol::Any, next) => {
                        covered[i + 1][j] || (next.is_some() && covered[i][j + 1])
                    }
                    (_, None | Some(Symbol::Any)) => false,
                    (Symbol::One, Some(_)) => covered[i + 1][j + 1],
                    (Symbol::Literal(a), Some(b)) => {
                        *b == Symbol::Literal(a) && covered[i + 1][j + 1]
                    }
                };
            }
        }
        covered[0][0]
    }

    /// Whether the concrete page path matches. With `subtree`, a match of any leading part of
    /// the path counts (`layout` purges: the page and everything below it).
    pub fn matches(&self, page_path: &str, subtree: bool) -> bool {
        let parts: Vec<&str> = page_path.split('/').filter(|s| !s.is_empty()).collect();
        match_from(&self.segments, &parts, subtree)
    }
}

/// The URL path a file-system route path names (see [`url_segments`]): `/photos/@modal/(.)[id]`
/// is `/photos/[id]`.
pub fn url_path(route: &str) -> String {
    let mut path = String::new();
    for segment in url_segments(route) {
        path.push('/');
        path.push_str(segment);
    }
    path
}

/// The URL segments of a route path: route groups and slots name none, and an intercepting
/// route names its segment where the route it intercepts is (Next.js's `(.)photo`: the same
/// level, `(..)photo`: one level up, `(..)(..)photo`: two, `(...)photo`: the root). Read as a
/// literal `(.)photo`, an intercepting route's implicit tag purged no page.
fn url_segments(route: &str) -> Vec<&str> {
    let mut segments: Vec<&str> = Vec::new();
    for segment in route
        .split('/')
        .filter(|s| !s.is_empty() && !is_group_or_slot(s))
    {
        let named = if let Some(rest) = segment.strip_prefix("(...)") {
            segments.clear();
            rest
        } else if let Some(rest) = segment.strip_prefix("(..)(..)") {
            segments.truncate(segments.len().saturating_sub(2));
            rest
        } else if let Some(rest) = segment.strip_prefix("(..)") {
            segments.pop();
            rest
        } else if let Some(rest) = segment.strip_prefix("(.)") {
            rest
        } else {
            segment
        };
        if !named.is_empty() {
            segments.push(named);
        }
    }
    segments
}

/// An intercepting route's segment (`(.)photo`, `(..)photo`, `(...)photo`).
fn intercepts(segment: &str) -> bool {
    ["(.)", "(..)", "(...)"]
        .iter()
        .any(|marker| segment.starts_with(marker))
}

fn is_group_or_slot(segment: &str) -> bool {
    is_group(segment) || segment.starts_with('@')
}

fn is_group(segment: &str) -> bool {
    segment.len() > 2 && segment.starts_with('(') && segment.ends_with(')')
}

/// One pass over the pattern, tracking every position in `parts` the segments so far can end
/// at: time is segments x parts. (Backtracking took exponential time in the number of `**`
/// segments, under the index lock.)
fn match_from(pattern: &[Segment], parts: &[&str], subtree: bool) -> bool {
    let one_each = |(segment, part): (&Segment, &&str)| match segment {
        Segment::Literal(literal) => literal == part,
        _ => true,
    };
    if pattern
        .iter()
        .all(|s| matches!(s, Segment::Literal(_) | Segment::One))
    {
        // The usual route rule (`/products/[slug]`): one segment each, nothing to track.
        let fits = parts.len() == pattern.len() || (subtree && parts.len() > pattern.len());
        return fits && pattern.iter().zip(parts).all(one_each);
    }
    let mut reachable = vec![false; parts.len() + 1];
    reachable[0] = true;
    for segment in pattern {
        let mut next = vec![false; parts.len() + 1];
        match segment {
            Segment::Literal(literal) => {
                for (at, part) in parts.iter().enumerate() {
                    next[at + 1] = reachable[at] && part == literal;
                }
            }
            Segment::One => {
                next[1..].copy_from_slice(&reachable[..parts.len()]);
            }
            Segment::OneOrMore | Segment::ZeroOrMore => {
                let zero = matches!(segment, Segment::ZeroOrMore);
                let mut before = false;
                for (at, slot) in next.iter_mut().enumerate() {
                    *slot = before || (zero && reachable[at]);
                    before |= reachable[at];
                }
            }
        }
        if !next.contains(&true) {
            return false;
        }
        reachable = next;
    }
    if subtree {
        reachable.contains(&true)
    } else {
        reachable[parts.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_every_page_the_other_matches() {
        let yes = [
            ("/blog/**", "/blog/[slug]"),
            ("/blog/**", "/blog"),
            ("/blog/**", "/blog/[...slug]"),
            ("/blog/**", "/blog/a/**"),
            ("/blog/[slug]", "/blog/a"),
            ("/blog/[slug]", "/blog/*"),
            ("/blog/[...slug]", "/blog/a/[[...rest]]"),
            ("/(shop)/cart", "/cart"),
            ("/a", "/a"),
            ("/**", "/[lang]/about"),
            ("/[a]/**", "/x/y/[...z]"),
        ];
        for (wide, narrow) in yes {
            assert!(
                Pattern::parse(wide).covers(&Pattern::parse(narrow)),
                "{wide} covers {narrow}"
            );
        }
        let no = [
            ("/blog/[slug]", "/blog/**"),
            ("/blog/[slug]", "/blog"),
            ("/blog/[...slug]", "/blog/**"),
            ("/blog/[...slug]", "/blog"),
            ("/blog/a", "/blog/[slug]"),
            ("/blog/**", "/blogger"),
            ("/a", "/b"),
            ("/[lang]/about", "/**"),
            ("/a/*/c", "/a/**/c"),
        ];
        for (wide, narrow) in no {
            assert!(
                !Pattern::parse(wide).covers(&Pattern::parse(narrow)),
                "{wide} does not cover {narrow}"
            );
        }
    }

    #[test]
    fn an_intercepting_route_names_the_url_it_intercepts() {
        let cases = [
            ("/photos/@modal/(.)[id]", "/photos/7"),
            ("/feed/@modal/(..)photo/[id]", "/photo/7"),
            ("/a/b/@modal/(..)(..)photo/[id]", "/photo/7"),
            ("/a/b/(shop)/@modal/(...)photo/[id]", "/photo/7"),
        ];
        for (route, url) in cases {
            assert!(Pattern::parse(route).matches(url, false), "{route} {url}");
            assert!(
                !Pattern::parse(route).matches("/photos/7/x", false),
                "{route}"
            );
        }
        assert_eq!(url_path("/photos/@modal/(.)[id]"), "/photos/[id]");
        assert_eq!(url_path("/(..)(..)x"), "/x", "no level above the root");
    }

    #[test]
    fn many_globs_match_in_one_pass() {
        let page = format!("/{}", vec!["a"; 24].join("/"));
        let pattern = Pattern::parse(&format!("{}/zz", "/**".repeat(40)));
        assert!(
            !pattern.matches(&page, false),
            "backtracking never returned here"
        );
        assert!(Pattern::parse(&format!("{}/a", "/**".repeat(40))).matches(&page, false));
        assert!(Pattern::parse("/a/[...x]").matches("/a/b/c", false));
        assert!(!Pattern::parse("/a/[...x]").matches("/a", false));
        assert!(Pattern::parse("/a/[[...x]]").matches("/a", false));
        assert!(Pattern::parse("/a/*").matches("/a/b/c", true));
        assert!(!Pattern::parse("/a/*").matches("/a/b/c", false));
        assert!(Pattern::parse("/").matches("/x/y", true));
        assert!(Pattern::parse("/").matches("/", false));
        assert!(!Pattern::parse("/").matches("/x", false));
    }

    #[test]
    fn operator_patterns_are_checked() {
        for good in [
            "/",
            "/products/[slug]",
            "/blog/[...rest]",
            "/docs/[[...path]]",
            "/(shop)/cart/[id]",
            "/a/**/edit",
            "/a/*",
        ] {
            assert_eq!(Pattern::check(good), Ok(()), "{good}");
        }
        for bad in [
            "/products/[slug",
            "/products/slug]",
            "/products/[]",
            "/a/[...x]/b/[...y]",
            "/a/[[...x]]/b",
            "/a/[[x]]",
        ] {
            assert!(Pattern::check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_patterns() {
        let table: &[(&str, &str, bool, bool)] = &[
            ("/blog/[slug]", "/blog/a", false, true),
            ("/blog/[slug]", "/blog", false, false),
            ("/blog/[slug]", "/blog/a/b", false, false),
            ("/blog/[slug]", "/blog/a/b", true, true),
            ("/docs/[...slug]", "/docs", false, false),
            ("/docs/[...slug]", "/docs/a/b/c", false, true),
            ("/docs/[[...slug]]", "/docs", false, true),
            ("/docs/[[...slug]]", "/docs/a/b", false, true),
            ("/(shop)/cart", "/cart", false, true),
            ("/@modal/photo/[id]", "/photo/1", false, true),
            ("/a/*/c", "/a/b/c", false, true),
            ("/a/*/c", "/a/b/x/c", false, false),
            ("/a/**", "/a", false, true),
            ("/a/**/z", "/a/b/c/z", false, true),
            ("/blog/[slug]", "/blogger/a", false, false),
        ];
        for (pattern, path, subtree, expected) in table {
            assert_eq!(
                Pattern::parse(pattern).matches(path, *subtree),
                *expected,
                "{pattern} {path} {subtree}"
            );
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(Pattern::parse("/blog/[slug]").literal_prefix(), "/blog");
        assert_eq!(
            Pattern::parse("/(shop)/cart/[id]").literal_prefix(),
            "/cart"
        );
        assert_eq!(Pattern::parse("/[lang]/x").literal_prefix(), "/");
        assert!(Pattern::is_pattern("/blog/[slug]"));
        assert!(Pattern::is_pattern("/(group)/x"));
        assert!(!Pattern::is_pattern("/@alice"), "a URL path on its own");
        assert!(Pattern::is_route_pattern("/(group)/x"));
        assert!(Pattern::is_route_pattern("/@modal/x"));
        assert!(!Pattern::is_pattern("/blog/a"));
    }
}
