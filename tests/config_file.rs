//! The configuration file: values used, precedence (flags > environment > file), `--print-config`
//! and `--check-config` through the real binary; `[[route]]` rules and `[[origin]]` hosts
//! through the real proxy in front of scripted origins.

mod support;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use isr_edge::config::startup::{self, Startup};
use serde_json::json;
use support::{get, get_with, revalidate, Edge, Origin, Reply, SECRET};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_isr-edge");

/// Writes `text` to a fresh file named `isr-edge.toml` in its own temporary directory.
fn config_file(name: &str, text: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("isr-edge-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("isr-edge.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs the binary with a clean environment plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run isr-edge");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The proxy in front of `origin`, configured by a file holding `text`.
async fn edge_with_file(name: &str, text: &str, origin: &str) -> Edge {
    let path = config_file(name, text);
    edge_from(&["--config", path.to_str().expect("path"), "--origin", origin]).await
}

/// The proxy, in-process, configured exactly as `main` would from these arguments.
async fn edge_from(args: &[&str]) -> Edge {
    // No admin listener: many proxies share this test process.
    let mut argv: Vec<OsString> = vec!["isr-edge".into(), "--admin-listen".into(), "off".into()];
    argv.extend(args.iter().map(OsString::from));
    let config = match startup::load(argv, Some(SECRET.to_string())).expect("valid configuration") {
        Startup::Serve(config) => *config,
        other => panic!("expected a server configuration, got {other:?}"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind edge");
    let addr = listener.local_addr().expect("edge addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        isr_edge::serve(config, listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    Edge {
        addr,
        admin: None,
        app_shutdown: Some(stop),
        task,
    }
}

fn line_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{key} =")))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

/// Boolean environment variables take the usual spellings, `--print-config` shows what they
/// mean, and a bad value is reported under the variable's name: the flag clap would name was
/// never typed.
#[test]
fn environment_booleans_and_their_errors() {
    for (value, on) in [
        ("1", true),
        ("yes", true),
        ("on", true),
        ("0", false),
        ("off", false),
    ] {
        let (code, out, err) = run(
            &["--demo", "--print-config"],
            &[("ISR_EDGE_ACCESS_LOG", value)],
        );
        assert_eq!(code, 0, "{value}: {err}");
        assert!(
            out.contains(&format!("access_log = {on}  # env ISR_EDGE_ACCESS_LOG")),
            "{value}: {out}"
        );
    }
    let (code, _, err) = run(
        &["--demo", "--check-config"],
        &[("ISR_EDGE_LOG_FORMAT", "xml")],
    );
    assert_eq!(code, 2);
    assert!(
        err.starts_with("isr-edge: ISR_EDGE_LOG_FORMAT: invalid value 'xml'")
            && err.contains("text, json"),
        "{err}"
    );
    // Typed on the command line, the flag is named as before.
    let (code, _, err) = run(
        &["--demo", "--log-format", "xml", "--check-config"],
        &[("ISR_EDGE_LOG_FORMAT", "xml")],
    );
    assert_eq!(code, 2);
    assert!(!err.contains("ISR_EDGE_LOG_FORMAT"), "{err}");
}

#[test]
fn precedence_flags_over_env_over_file() {
    let path = config_file(
        "precedence",
        "demo = true\ncache_size = \"64MiB\"\nmax_object_size = \"1MiB\"\nlisten = \"127.0.0.1:7777\"\n",
    );
    let path = path.to_str().expect("utf-8 path");
    let (code, out, err) = run(
        &[
            "--config",
            path,
            "--print-config",
            "--max-object-size",
            "2MiB",
        ],
        &[("ISR_EDGE_LISTEN", "127.0.0.1:9999")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        line_of(&out, "cache_size"),
        "cache_size = \"64MiB\"  # file line 2"
    );
    assert_eq!(
        line_of(&out, "max_object_size"),
        "max_object_size = \"2MiB\"  # flag"
    );
    assert_eq!(
        line_of(&out, "listen"),
        "listen = \"127.0.0.1:9999\"  # env ISR_EDGE_LISTEN"
    );
    assert_eq!(line_of(&out, "demo"), "demo = true  # file line 1");
    assert!(line_of(&out, "default_ttl").ends_with("# default"));
    // A flag given by an alias overrides the file as its name does (found by black-box QA:
    // `--tag-header` was added to the file's list instead).
    let lists = config_file("alias", "demo = true\ntag_headers = [\"x-a\"]\n");
    let lists = lists.to_str().expect("utf-8 path");
    for flag in ["--tag-headers", "--tag-header"] {
        let (code, out, err) = run(&["--config", lists, "--print-config", flag, "x-b"], &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            line_of(&out, "tag_headers"),
            "tag_headers = [\"x-b\"]  # flag",
            "{flag}"
        );
    }
    // ISR_EDGE_CONFIG names the file when --config is absent.
    let (code, out, err) = run(&["--print-config"], &[("ISR_EDGE_CONFIG", path)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        line_of(&out, "cache_size"),
        "cache_size = \"64MiB\"  # file line 2"
    );
}

/// The address lists take a TOML array as `allowed_hosts` and `tag_headers` do, not only the
/// comma-separated string the flag takes (found by black-box QA: an array was refused with
/// "takes one value, not a list").
#[test]
fn address_lists_take_an_array() {
    let path = config_file(
        "cidr-array",
        "demo = true\nrevalidate_allow = [\"10.0.0.0/8\", \"127.0.0.1\"]\ntrust_proxy_headers = [\"127.0.0.1\"]\n",
    );
    let path = path.to_str().expect("utf-8 path");
    let (code, out, err) = run(&["--config", path, "--print-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        line_of(&out, "revalidate_allow"),
        "revalidate_allow = \"10.0.0.0/8,127.0.0.1\"  # file line 2"
    );
    assert_eq!(
        line_of(&out, "trust_proxy_headers"),
        "trust_proxy_headers = \"127.0.0.1\"  # file line 3"
    );
    // Any other single-valued key still refuses a list, naming the key and line.
    let listen = config_file("listen-array", "demo = true\nlisten = [\"127.0.0.1:1\"]\n");
    let (code, _, err) = run(
        &[
            "--config",
            listen.to_str().expect("utf-8 path"),
            "--check-config",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains(":2: listen: takes one value, not a list"),
        "{err}"
    );
}

/// A file saved as Latin-1 (an editor's default on some systems) is reported at the line of its
/// first bad byte, with the cure: io's "stream did not contain valid UTF-8" named neither.
#[test]
fn a_file_that_is_not_utf8_is_reported_at_its_line() {
    let path = config_file("latin1", "");
    std::fs::write(&path, b"demo = true\n# caf\xe9 menu\n").expect("write config");
    let path = path.to_str().expect("path");
    let (code, _, err) = run(&["--config", path, "--check-config"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{path}:2: byte 0xE9 at column 6 is not UTF-8; TOML files are UTF-8 text: save the file as UTF-8"
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `--config` given twice reads the last file, as every flag given twice keeps its last value:
/// the first file was read while --print-config named the second.
#[test]
fn the_last_config_flag_names_the_file_read() {
    let first = config_file("first", "demo = true\ncache_size = \"1MiB\"\n");
    let second = config_file("second", "demo = true\ncache_size = \"2MiB\"\n");
    let (first, second) = (
        first.to_str().expect("path"),
        second.to_str().expect("path"),
    );
    let (code, out, err) = run(
        &["--config", first, "--config", second, "--print-config"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("# config file: {second}\n")), "{out}");
    assert_eq!(
        line_of(&out, "cache_size"),
        "cache_size = \"2MiB\"  # file line 2"
    );
}

#[test]
fn print_config_masks_secrets_and_round_trips() {
    let path = config_file(
        "print",
        "[[origin]]\nurl = \"http://127.0.0.1:3000\"\n\n[[route]]\nmatch = \"/products/[slug]\"\nttl = 10\ntags = [\"products\"]\n\n[[origin]]\nhost = \"shop.example\"\nurl = \"http://127.0.0.1:3001\"\n",
    );
    let secret = "very-secret-value-0123456789";
    let (code, out, err) = run(
        &["--config", path.to_str().expect("path"), "--print-config"],
        &[
            ("REVALIDATE_SECRET", secret),
            ("ORIGIN_REVALIDATE_SECRET", secret),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}");
    assert!(out.contains("configured, ****"), "{out}");
    assert!(
        out.contains("\n# origin_revalidate_secret = \"****\"  # env ORIGIN_REVALIDATE_SECRET\n"),
        "{out}"
    );
    assert!(
        out.contains("match = \"/products/[slug]\"\nttl = \"10s\"\ntags = [\"products\"]"),
        "{out}"
    );
    assert!(out.contains("host = \"shop.example\""), "{out}");
    assert!(
        out.contains("[[origin]]  # default, file line 2\nurl = \"http://127.0.0.1:3000\""),
        "{out}"
    );
    // What it prints is itself a valid configuration file.
    let printed = config_file("printed", &out);
    let (code, checked, err) = run(
        &[
            "--config",
            printed.to_str().expect("path"),
            "--check-config",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(checked.contains("1 routes, 1 host origins"), "{checked}");
}

#[test]
fn revalidate_secret_outranks_the_files_secret_file() {
    let dir = config_file("secret-file", "").with_file_name("secret.txt");
    std::fs::write(&dir, "file-secret-0123456789abcdef\n").expect("secret file");
    let text = format!(
        "demo = true\nsecret_file = {:?}\n",
        dir.display().to_string()
    );
    let path = config_file("secret-file", &text);
    let path = path.to_str().expect("path");
    let env = "env-secret-0123456789abcdef";
    let load = |env_secret: Option<&str>, extra: &[&str]| {
        let mut argv: Vec<OsString> = vec!["isr-edge".into(), "--config".into(), path.into()];
        argv.extend(extra.iter().map(OsString::from));
        match startup::load(argv, env_secret.map(String::from)).expect("valid") {
            Startup::Serve(config) => config.secrets,
            other => panic!("expected a server configuration, got {other:?}"),
        }
    };
    // The binary: the file's key yields to the variable.
    let (code, out, err) = run(
        &["--config", path, "--print-config"],
        &[("REVALIDATE_SECRET", env)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("# secret_file = (not set)"), "{out}");
    let (code, out, err) = run(&["--config", path, "--print-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        line_of(&out, "secret_file").ends_with("# file line 2"),
        "{out}"
    );
    let from_env = load(Some(env), &[]);
    assert!(from_env.verify(env.as_bytes()));
    assert!(!from_env.verify(b"file-secret-0123456789abcdef"));
    let from_file = load(None, &[]);
    assert!(from_file.verify(b"file-secret-0123456789abcdef"));
    // A flag still outranks the variable.
    let flag = load(Some(env), &["--secret-file", dir.to_str().expect("path")]);
    assert!(flag.verify(b"file-secret-0123456789abcdef"));
    assert!(!flag.verify(env.as_bytes()));
}

#[test]
fn print_config_masks_passwords_and_secrets_in_urls() {
    let path = config_file(
        "url-secrets",
        "origin = \"http://127.0.0.1:3000\"\norigin_revalidate_url = [\"http://user:pa55word@127.0.0.1:3000/api/revalidate?secret=qsecret123&x=1\"]\n",
    );
    let (code, out, err) = run(
        &["--config", path.to_str().expect("path"), "--print-config"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("pa55word") && !out.contains("qsecret123"),
        "{out}"
    );
    assert!(
        out.contains("http://user:***@127.0.0.1:3000/api/revalidate?secret=***&x=1"),
        "{out}"
    );
    assert!(
        line_of(&out, "origin_revalidate_url")
            .ends_with("# file line 2; masked: put the real value back before use"),
        "{out}"
    );
    // Credentials in a data-plane origin URL would never be sent: refused, without repeating
    // the password.
    let refused = config_file(
        "origin-credentials",
        "origin = \"http://user:pa55word@127.0.0.1:3000\"\n",
    );
    let (code, _, err) = run(
        &[
            "--config",
            refused.to_str().expect("path"),
            "--check-config",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("credentials in an origin URL are never sent"),
        "{err}"
    );
    assert!(!err.contains("pa55word"), "{err}");
    // Nor does an error about such a URL repeat its secret.
    let bad = config_file(
        "url-secret-error",
        "demo = true\norigin_revalidate_url = [\"ftp://u:pa55word@x/?token=qsecret123\"]\n",
    );
    let (code, _, err) = run(
        &["--config", bad.to_str().expect("path"), "--check-config"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("origin_revalidate_url:"), "{err}");
    assert!(
        !err.contains("pa55word") && !err.contains("qsecret123"),
        "{err}"
    );
}

#[test]
fn check_config_names_file_line_and_key() {
    let good = config_file(
        "good",
        "demo = true\n[[route]]\nmatch = \"/\"\nttl = \"5s\"\n",
    );
    let (code, out, _) = run(
        &["--config", good.to_str().expect("path"), "--check-config"],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("configuration is valid"), "{out}");

    let cases = [
        (
            "unknown",
            "demo = true\n\ncache_sise = \"1MiB\"\n",
            ":3: cache_sise: unknown key",
        ),
        (
            "value",
            "demo = true\ncache_size = \"lots\"\n",
            ":2: cache_size: invalid value 'lots'",
        ),
        (
            "flag",
            "demo = \"yes\"\n",
            ":1: demo: expects true or false",
        ),
        ("toml", "demo = true\nlisten = [\"a\"\n", ":2: listen:"),
        (
            "route",
            "demo = true\n[[route]]\nmatch = \"/a\"\nttl = \"soon\"\n",
            ":4: route.ttl: \"soon\" is not a duration",
        ),
        (
            "field",
            "demo = true\n[[route]]\nmatch = \"/a\"\nttll = 5\n",
            ":4: route.ttll: unknown field `ttll`",
        ),
        (
            "origin",
            "[[origin]]\nhost = \"a.example\"\nurl = \"https://x\"\n",
            ":3: origin.url: https origins are not supported",
        ),
        (
            "conflict",
            "origin = \"http://127.0.0.1:1\"\ndemo = true\n",
            ":1: origin: the argument '--origin",
        ),
        (
            "secret",
            "demo = true\nrevalidate_secret = \"x\"\n",
            ":2: revalidate_secret: secrets do not belong",
        ),
        (
            "forward-secret",
            "demo = true\norigin_revalidate_secret = \"x\"\n",
            ":2: origin_revalidate_secret: secrets do not belong in the config file: set ORIGIN_REVALIDATE_SECRET instead",
        ),
        // Checked after parsing, still reported at the file's line.
        (
            "workers",
            "demo = true\n\nworkers = 5000\n",
            ":3: workers: at most 1024",
        ),
        (
            "connections",
            "demo = true\nmax_connections = 0\n",
            ":2: max_connections: must be at least 1",
        ),
        // Zero where zero cannot work (a 0 s origin timeout answered 504 to most requests).
        (
            "zero-origin-timeout",
            "demo = true\norigin_timeout = \"0\"\n",
            ":2: origin_timeout: must be more than 0",
        ),
        (
            "zero-uri-length",
            "demo = true\n\nmax_uri_length = 0\n",
            ":3: max_uri_length: must be more than 0",
        ),
        (
            "zero-header-read-timeout",
            "demo = true\nheader_read_timeout = 0\n",
            ":2: header_read_timeout: must be more than 0",
        ),
        (
            "zero-revalidate-burst",
            "demo = true\nrevalidate_burst = 0\n",
            ":2: revalidate_burst: must be more than 0",
        ),
        (
            "short-header-read-timeout",
            "demo = true\n\nheader_read_timeout = \"50ms\"\n",
            ":3: header_read_timeout: must be at least 100ms",
        ),
        (
            "zero-cache-size",
            "demo = true\ncache_size = \"0\"\n",
            ":2: cache_size: must be more than 0",
        ),
        (
            "zero-idle-timeout",
            "demo = true\norigin_idle_timeout = \"0s\"\n",
            ":2: origin_idle_timeout: must be more than 0",
        ),
        (
            "tag-headers",
            "demo = true\ntag_headers = [\"bad header\"]\n",
            ":2: tag_headers: \"bad header\" is not a header name",
        ),
        (
            "forward-url",
            "demo = true\norigin_revalidate_url = [\"ftp://x\"]\n",
            ":2: origin_revalidate_url:",
        ),
        // Sections written as one table or a plain value are not skipped silently.
        (
            "route-table",
            "demo = true\n[route]\nmatch = \"/a\"\nttl = 5\n",
            ":2: route: a list of sections: write [[route]]",
        ),
        (
            "duplicate-host",
            "[[origin]]\nhost = \"shop.example\"\nurl = \"http://127.0.0.1:1\"\n\n[[origin]]\nhost = \"Shop.Example\"\nurl = \"http://127.0.0.1:2\"\n",
            ":6: origin.host: \"shop.example\" is listed twice",
        ),
        // The default port is dropped from requests before the lookup: both name one site.
        (
            "duplicate-host-default-port",
            "[[origin]]\nhost = \"shop.example\"\nurl = \"http://127.0.0.1:1\"\n\n[[origin]]\nhost = \"shop.example:80\"\nurl = \"http://127.0.0.1:2\"\n",
            ":6: origin.host: \"shop.example\" is listed twice",
        ),
        // Requests never name these: a wildcard, a port past 65535.
        (
            "wildcard-host",
            "[[origin]]\nhost = \"*.example\"\nurl = \"http://127.0.0.1:1\"\n",
            ":2: origin.host: \"*.example\" is not a host name",
        ),
        (
            "host-port",
            "[[origin]]\nhost = \"b.example:99999\"\nurl = \"http://127.0.0.1:1\"\n",
            ":2: origin.host: \"b.example:99999\" is not a host name",
        ),
        (
            "origin-query",
            "[[origin]]\nhost = \"b.example\"\nurl = \"http://127.0.0.1:1/app?token=x\"\n",
            ":3: origin.url:",
        ),
        (
            "two-defaults",
            "[[origin]]\nurl = \"http://127.0.0.1:1\"\n\n[[origin]]\nurl = \"http://127.0.0.1:2\"\n",
            ":5: origin.url: only one [[origin]] may omit host",
        ),
        // `origin = ...` beside [[origin]] tables: TOML's "duplicate key" at the table named
        // neither the clash nor the way out.
        (
            "origin-flag-and-tables",
            "demo = false\norigin = \"http://127.0.0.1:1\"\n\n[[origin]]\nhost = \"a.example\"\nurl = \"http://127.0.0.1:2\"\n",
            ":2: origin: cannot be given beside [[origin]] tables (line 4): write the default origin as an [[origin]] table without host",
        ),
        (
            "origin-table",
            "[origin]\nurl = \"http://127.0.0.1:1\"\n",
            ":1: origin: a list of sections: write [[origin]]",
        ),
        (
            "route-value",
            "demo = true\nroute = 5\n",
            ":2: route: a list of sections",
        ),
        (
            "pattern",
            "demo = true\n[[route]]\nmatch = \"/products/[slug\"\nttl = 5\n",
            ":3: route.match: match \"/products/[slug\": segment \"[slug\" is not a dynamic segment",
        ),
        // Rules match paths: one with a query could never match (it passed --check-config).
        (
            "query",
            "demo = true\n[[route]]\nmatch = \"/search?q=shoes\"\nttl = 5\n",
            ":3: route.match: match \"/search?q=shoes\": routes match paths, not query strings",
        ),
        // The tags key's line, not the [[route]] line's.
        (
            "route-tags",
            "demo = true\n[[route]]\nmatch = \"/blog/**\"\nttl = 60\ntags = [\"blog\", \"a,b\"]\n",
            ":5: route.tags: tags must be non-empty",
        ),
        (
            "route-tag-spaces",
            "demo = true\n[[route]]\nmatch = \"/blog/**\"\nttl = 60\ntags = [\"products \"]\n",
            ":5: route.tags: tags must be non-empty, without commas, control characters or spaces around them",
        ),
        (
            "catch-all",
            "demo = true\n[[route]]\nmatch = \"/a/[...x]/b\"\nttl = 5\n",
            ":3: route.match: match \"/a/[...x]/b\": catch-all",
        ),
        // A site the allow-list refuses answered 421 to every request.
        (
            "site-not-allowed",
            "allowed_hosts = [\"a.example\"]\n[[origin]]\nhost = \"a.example:8080\"\nurl = \"http://127.0.0.1:1\"\n[[origin]]\nhost = \"b.example\"\nurl = \"http://127.0.0.1:2\"\n",
            ":1: allowed_hosts: does not list \"b.example\", which an [[origin]] serves",
        ),
        // First match wins: a rule every page of which an earlier rule takes never applies.
        (
            "shadowed-route",
            "demo = true\n[[route]]\nmatch = \"/blog/**\"\nttl = 60\n\n[[route]]\nmatch = \"/blog/[slug]\"\nttl = 5\n",
            ":7: route.match: match \"/blog/[slug]\" never applies: the rule on line 3 (match \"/blog/**\") comes first",
        ),
        (
            "repeated-route",
            "demo = true\n[[route]]\nmatch = \"/cart\"\nbypass = true\n[[route]]\nmatch = \"/(shop)/cart\"\nttl = 5\n",
            ":6: route.match: match \"/(shop)/cart\" never applies: the rule on line 3 (match \"/cart\")",
        ),
        // One setting under both spellings: to TOML two keys, so the later line won silently.
        (
            "two-spellings",
            "demo = true\ncache-size = \"1MiB\"\n\ncache_size = \"2MiB\"\n",
            ":4: cache_size: the same setting as cache-size on line 2; give it once",
        ),
    ];
    for (name, text, expected) in cases {
        let path = config_file(name, text);
        let path = path.to_str().expect("path");
        let (code, _, err) = run(&["--config", path, "--check-config"], &[]);
        assert_ne!(code, 0, "{name}: {err}");
        assert!(err.contains(&format!("{path}{expected}")), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
    }
}

#[tokio::test]
async fn route_ttl_stores_headerless_pages() {
    // An origin that sends no caching headers at all (a Laravel/PHP app rendering HTML).
    let origin = Origin::start(|r| Reply::ok(format!("{} #{}", r.path, r.count))).await;
    let edge = edge_with_file(
        "ttl",
        "[[route]]\nmatch = \"/products/[slug]\"\nttl = 60\nstale_while_revalidate = \"30s\"\n",
        &origin.url(),
    )
    .await;
    let first = get(edge.addr, "/products/a").await;
    assert_eq!(first.cache(), "MISS");
    assert_eq!(
        first.header("cache-status"),
        "isr-edge; fwd=miss; stored; ttl=60"
    );
    let second = get(edge.addr, "/products/a").await;
    assert_eq!(
        (second.cache(), second.text().as_str()),
        ("HIT", "/products/a #1")
    );
    assert_eq!(origin.count("/products/a"), 1);
    // Outside the rule nothing changes: no freshness, not stored.
    get(edge.addr, "/about").await;
    let again = get(edge.addr, "/about").await;
    assert_eq!(again.cache(), "MISS");
    assert_eq!(origin.count("/about"), 2);
}

/// A route is written as a person writes a path; browsers send `/café` escaped
/// (`/caf%C3%A9`), some clients raw or in lower-case hex: one rule for all of them.
#[tokio::test]
async fn a_route_written_with_non_ascii_matches_what_browsers_send() {
    let origin = Origin::start(|r| Reply::ok(format!("{} #{}", r.path, r.count))).await;
    let edge = edge_with_file("non-ascii", "[[route]]\nmatch = \"/café/[slug]\"\nttl = 60\n\n[[route]]\nmatch = \"/na%c3%afve\"\nttl = 60\n", &origin.url()).await;
    for page in ["/caf%C3%A9/menu", "/na%C3%AFve"] {
        assert_eq!(get(edge.addr, page).await.cache(), "MISS", "{page}");
        assert_eq!(
            get(edge.addr, page).await.cache(),
            "HIT",
            "{page}: the rule applies"
        );
    }
}

#[tokio::test]
async fn route_ttl_never_stores_private_or_cookies() {
    let origin = Origin::start(|r| match r.path.as_str() {
        "/p/private" => Reply::ok("mine").cc("private"),
        _ => Reply::ok("session").header("set-cookie", "sid=1"),
    })
    .await;
    let edge = edge_with_file(
        "private",
        "[[route]]\nmatch = \"/p/*\"\nttl = 60\n",
        &origin.url(),
    )
    .await;
    for page in ["/p/private", "/p/cookie"] {
        get(edge.addr, page).await;
        let again = get(edge.addr, page).await;
        assert_eq!(again.cache(), "MISS", "{page}");
        assert_eq!(origin.count(page), 2, "{page}");
    }
}

#[tokio::test]
async fn route_bypass_and_first_match_wins() {
    let origin =
        Origin::start(|r| Reply::ok(format!("{} #{}", r.path, r.count)).cc("s-maxage=60")).await;
    let edge = edge_with_file("bypass", "[[route]]\nmatch = \"/products/sale\"\nbypass = true\n\n[[route]]\nmatch = \"/products/[slug]\"\nttl = 5\n", &origin.url()).await;
    get(edge.addr, "/products/sale").await;
    let sale = get(edge.addr, "/products/sale").await;
    assert_eq!(sale.cache(), "BYPASS");
    assert!(
        sale.header("cache-status").contains("detail=route"),
        "{}",
        sale.header("cache-status")
    );
    assert_eq!(origin.count("/products/sale"), 2);
    let first = get(edge.addr, "/products/shoe").await;
    assert!(
        first.header("cache-status").ends_with("ttl=5"),
        "the rule's ttl, not s-maxage"
    );
    assert_eq!(get(edge.addr, "/products/shoe").await.cache(), "HIT");
}

#[tokio::test]
async fn route_tags_are_purgeable() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("{} #{}", r.path, r.count)).header("cache-tag", "origin-tag")
    })
    .await;
    let edge = edge_with_file(
        "tags",
        "[[route]]\nmatch = \"/products/**\"\nttl = 60\ntags = [\"products\", \"summer sale\"]\n",
        &origin.url(),
    )
    .await;
    for page in ["/products/a", "/products/b/c", "/about"] {
        get(edge.addr, page).await;
    }
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "tags": ["products"]})).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["evicted"], 2);
    assert_eq!(get(edge.addr, "/products/a").await.text(), "/products/a #2");
    // The origin's own tags are kept next to the rule's (only /products/a is stored now).
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "tags": ["origin-tag"]})).await;
    assert_eq!(answer.json()["evicted"], 1);
    assert_eq!(get(edge.addr, "/products/a").await.text(), "/products/a #3");
    // A tag may hold spaces, as one from `revalidateTag("summer sale")` does.
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "tags": ["summer sale"]}),
    )
    .await;
    assert_eq!(answer.json()["evicted"], 1, "{}", answer.text());
}

/// `tag_headers = []` reads no tags from the origin's headers, as `--tag-headers ''` does: an
/// empty list passed nothing to the flag, so the default three stayed in force while
/// --print-config named the file's line for them.
#[tokio::test]
async fn an_empty_tag_headers_list_reads_no_tag_headers() {
    let text = "demo = true\ntag_headers = []\n";
    let path = config_file("no-tag-headers", text);
    let (code, out, err) = run(
        &["--config", path.to_str().expect("path"), "--print-config"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        line_of(&out, "tag_headers"),
        "tag_headers = []  # file line 2"
    );
    let origin = Origin::start(|r| {
        Reply::ok(format!("{} #{}", r.path, r.count))
            .cc("s-maxage=60")
            .header("cache-tag", "products")
    })
    .await;
    let edge = edge_with_file("no-tag-headers", "tag_headers = []\n", &origin.url()).await;
    let first = get(edge.addr, "/products/a").await;
    // Not a tag header here, so passed on like any other field.
    assert_eq!(first.header("cache-tag"), "products");
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "tags": ["products"]})).await;
    assert_eq!(answer.json()["evicted"], 0, "{}", answer.text());
    assert_eq!(get(edge.addr, "/products/a").await.cache(), "HIT");
}

#[tokio::test]
async fn origins_by_host_are_cached_separately_and_purged_by_host() {
    let shop =
        Origin::start(|r| Reply::ok(format!("shop {} #{}", r.path, r.count)).cc("s-maxage=60"))
            .await;
    let blog =
        Origin::start(|r| Reply::ok(format!("blog {} #{}", r.path, r.count)).cc("s-maxage=60"))
            .await;
    let other = Origin::start(|r| Reply::ok(format!("default {}", r.path)).cc("s-maxage=60")).await;
    let text = format!(
        "[[origin]]\nhost = \"shop.example\"\nurl = \"{}\"\n\n[[origin]]\nhost = \"Blog.Example\"\nurl = \"{}\"\n\n[[origin]]\nurl = \"{}\"\n",
        shop.url(),
        blog.url(),
        other.url()
    );
    let path = config_file("hosts", &text);
    let edge = edge_from(&["--config", path.to_str().expect("path")]).await;
    let at = |host: &'static str| async move { get_with(edge.addr, "/p", &[("host", host)]).await };
    assert_eq!(at("shop.example").await.text(), "shop /p #1");
    assert_eq!(at("blog.example:8080").await.text(), "blog /p #1");
    assert_eq!(at("unknown.example").await.text(), "default /p");
    assert_eq!(at("shop.example").await.cache(), "HIT");
    assert_eq!(at("blog.example:8080").await.cache(), "HIT");
    assert_eq!((shop.count("/p"), blog.count("/p")), (1, 1));
    assert_eq!(
        shop.seen()[0].headers["host"],
        "shop.example",
        "the origin sees the client's Host"
    );

    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/p"], "host": "shop.example"}),
    )
    .await;
    assert_eq!(answer.json()["evicted"], 1, "{}", answer.text());
    assert_eq!(at("shop.example").await.text(), "shop /p #2");
    assert_eq!(at("blog.example:8080").await.cache(), "HIT");
    assert_eq!(at("unknown.example").await.cache(), "HIT");
    // A host without a port covers every port it was requested on.
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/p"], "host": "blog.example"}),
    )
    .await;
    assert_eq!(answer.json()["evicted"], 1, "{}", answer.text());
    assert_eq!(at("blog.example:8080").await.text(), "blog /p #2");
    assert_eq!(at("shop.example").await.cache(), "HIT");
}

#[tokio::test]
async fn unknown_host_without_default_origin_is_421() {
    let shop = Origin::start(|_| Reply::ok("shop").cc("s-maxage=60")).await;
    let path = config_file(
        "nodefault",
        &format!(
            "[[origin]]\nhost = \"shop.example\"\nurl = \"{}\"\n",
            shop.url()
        ),
    );
    let edge = edge_from(&["--config", path.to_str().expect("path")]).await;
    let misdirected = get_with(edge.addr, "/", &[("host", "elsewhere.example")]).await;
    assert_eq!(misdirected.status, 421);
    assert!(
        misdirected.text().contains("elsewhere.example"),
        "{}",
        misdirected.text()
    );
    assert_eq!(
        get_with(edge.addr, "/", &[("host", "shop.example")])
            .await
            .text(),
        "shop"
    );
    assert_eq!(shop.total(), 1);

    // Revalidation scoped to a host nothing is served for is a mistake (a typo in a deploy
    // script), not a success that purged nothing.
    let typo = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/"], "host": "shpo.example"}),
    )
    .await;
    assert_eq!(typo.status, 400, "{}", typo.text());
    assert_eq!(typo.json()["success"], false);
    let message = typo.json()["message"].as_str().unwrap_or("").to_string();
    assert!(
        message.contains("\"shpo.example\"") && message.contains("configured hosts: shop.example"),
        "{message}"
    );
    assert_eq!(
        get_with(edge.addr, "/", &[("host", "shop.example")])
            .await
            .cache(),
        "HIT",
        "a refused revalidation evicts nothing"
    );
    let scoped = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/"], "host": "Shop.Example"}),
    )
    .await;
    assert_eq!(scoped.status, 200, "{}", scoped.text());
    assert_eq!(scoped.json()["evicted"], 1, "{}", scoped.text());
}

/// `host = "shop.example:80"` passed `--check-config`, but requests lose their default port
/// before the lookup (`shop.example:80` is `shop.example`), so the site answered 421 to every
/// request, with or without `:80`, and a purge scoped to it was refused.
#[tokio::test]
async fn a_site_host_with_the_default_port_serves_that_host() {
    let shop = Origin::start(|r| Reply::ok(format!("shop {}", r.path)).cc("s-maxage=60")).await;
    let path = config_file(
        "default-port-host",
        &format!(
            "[[origin]]\nhost = \"shop.example:80\"\nurl = \"{}\"\n",
            shop.url()
        ),
    );
    let edge = edge_from(&["--config", path.to_str().expect("path")]).await;
    for host in ["shop.example", "shop.example:80"] {
        let page = get_with(edge.addr, "/a", &[("host", host)]).await;
        assert_eq!(page.status, 200, "{host}: {}", page.text());
        assert_eq!(page.text(), "shop /a", "{host}");
    }
    assert_eq!(shop.total(), 1, "one page for both spellings");
    let scoped = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/a"], "host": "shop.example:80"}),
    )
    .await;
    assert_eq!(scoped.status, 200, "{}", scoped.text());
    assert_eq!(scoped.json()["evicted"], 1, "{}", scoped.text());
}

#[tokio::test]
async fn readiness_probes_every_site_origin() {
    let mut shop = Origin::start(|_| Reply::ok("shop")).await;
    // A port nobody listens on any more.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let text = format!(
        "[[origin]]\nhost = \"shop.example\"\nurl = \"{}\"\n\n[[origin]]\nhost = \"blog.example\"\nurl = \"http://{dead}\"\n",
        shop.url()
    );
    let path = config_file("readyz", &text);
    let argv: Vec<OsString> = ["isr-edge", "--config", path.to_str().expect("path")]
        .iter()
        .chain(&["--admin-listen", "127.0.0.1:0"])
        .map(OsString::from)
        .collect();
    let config = match startup::load(argv, Some(SECRET.to_string())).expect("valid") {
        Startup::Serve(config) => *config,
        other => panic!("expected a server configuration, got {other:?}"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind edge");
    let admin_listener = TcpListener::bind(config.admin_listen.expect("admin"))
        .await
        .expect("bind admin");
    let admin = admin_listener.local_addr().expect("admin addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        isr_edge::serve_with_admin(config, listener, Some(admin_listener), async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });

    // One site's origin down: still ready (it is down for every replica alike), and said so.
    let ready = get(admin, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let report = ready.text();
    assert!(report.contains("origin shop.example ("), "{report}");
    assert!(report.contains("): ok"), "{report}");
    assert!(
        report.contains(&format!("origin blog.example ({dead}): refused")),
        "{report}"
    );
    // None reachable: not ready.
    shop.stop();
    let mut last = (0, String::new());
    for _ in 0..50 {
        let answer = get(admin, "/readyz").await;
        last = (answer.status, answer.text());
        if last.0 == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(last.0, 503, "{}", last.1);
    assert!(last.1.contains("no origin reachable"), "{}", last.1);
    let _ = stop.send(());
    let _ = task.await;
}

/// A secret file that holds no secret (empty, or blank lines: a secret not mounted yet) passed
/// `--check-config`, and the proxy started answering every revalidation 503 with a warning to
/// set --secret-file, which was set. A site's `revalidate_secret_file` was refused already.
#[test]
fn a_secret_file_without_a_secret_is_refused() {
    let empty = config_file("empty-secret", "\n  \n");
    let empty = empty.to_str().expect("path");
    let (code, _, err) = run(&["--demo", "--secret-file", empty, "--check-config"], &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--secret-file") && err.contains(empty) && err.contains("holds no secret"),
        "{err}"
    );
    let text = format!("demo = true\nsecret_file = {empty:?}\n");
    let path = config_file("empty-secret-key", &text);
    let path = path.to_str().expect("path");
    let (code, _, err) = run(&["--config", path, "--check-config"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{path}:2: secret_file: ")) && err.contains("holds no secret"),
        "{err}"
    );
    // REVALIDATE_SECRET outranks the file's secret_file, which is then not read.
    let secret = ("REVALIDATE_SECRET", SECRET);
    let (code, _, err) = run(&["--config", path, "--check-config"], &[secret]);
    assert_eq!(code, 0, "{err}");
}

/// A config or secret path naming an endless file (a device, a FIFO) is refused with the path,
/// not read until memory runs out.
#[test]
fn an_endless_file_is_refused_not_read_forever() {
    let (code, _, err) = run(&["--config", "/dev/zero", "--check-config"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("check the path"),
        "{err}"
    );
    let (code, _, err) = run(
        &["--demo", "--secret-file", "/dev/zero", "--check-config"],
        &[],
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("check the path"), "{err}");
}
