//! Per-site forwarding: `[[origin]]` tables with their own `revalidate_url`,
//! `revalidate_secret_file` and `next_prerender_manifest`. A revalidation scoped to a host
//! reaches only that site's app (its secret, its preview-mode id, its origin); an unscoped one
//! reaches every site (and the flag-configured forwarder) at once. Also the file keys' errors
//! and `--print-config`, through the real binary.

mod support;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use isr_edge::config::startup::{self, Startup};
use serde_json::{json, Value};
use support::{get_with, revalidate, Edge, Origin, Reply, Seen, SECRET};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_isr-edge");

/// A temporary directory of its own for one test.
fn dir(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("isr-edge-sites-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.to_string_lossy().into_owned()
}

/// A site's Next.js app: pages for GET, its revalidate route for POST, regeneration for HEAD.
async fn site_app(name: &'static str) -> Origin {
    Origin::start(move |r| {
        if r.method == "POST" {
            return Reply::ok(r#"{"revalidated":true}"#).header("content-type", "application/json");
        }
        if r.method == "HEAD" && r.headers.contains_key("x-prerender-revalidate") {
            return Reply::ok("").header("x-nextjs-cache", "REVALIDATED");
        }
        Reply::ok(format!("{name} {} #{}", r.path, r.count)).cc("s-maxage=600")
    })
    .await
}

/// One site's `[[origin]]` table with its forwarding keys, the secret and id written to files.
fn site_table(dir: &Path, host: &str, app: &Origin) -> String {
    let secret = write(dir, &format!("{host}.secret"), &format!("{host}-secret\n"));
    let manifest = json!({"preview": {"previewModeId": format!("{host}-preview-id")}});
    let manifest = write(dir, &format!("{host}.json"), &manifest.to_string());
    format!(
        "[[origin]]\nhost = \"{host}\"\nurl = \"{url}\"\nrevalidate_url = [\"{url}/api/revalidate\"]\nrevalidate_secret_file = \"{secret}\"\nnext_prerender_manifest = \"{manifest}\"\n\n",
        url = app.url()
    )
}

/// The proxy, in-process, configured exactly as `main` would from this file and these flags.
async fn edge_from(config: &str, flags: &[&str]) -> Edge {
    let mut argv: Vec<OsString> = vec!["isr-edge".into(), "--admin-listen".into(), "off".into()];
    argv.extend(["--config", config].iter().chain(flags).map(OsString::from));
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

fn calls(app: &Origin, method: &str) -> Vec<Seen> {
    app.seen()
        .into_iter()
        .filter(|s| s.method == method)
        .collect()
}

fn forwarded_secret(seen: &Seen) -> Value {
    let body: Value = serde_json::from_slice(&seen.body).expect("forwarded body is JSON");
    body["secret"].clone()
}

async fn at(edge: &Edge, host: &str, path: &str) -> support::Resp {
    get_with(edge.addr, path, &[("host", host)]).await
}

#[tokio::test]
async fn a_scoped_revalidation_reaches_only_its_site_and_an_unscoped_one_reaches_all() {
    let (shop, blog) = (site_app("shop").await, site_app("blog").await);
    let dir = dir("scoped");
    let text = site_table(&dir, "shop.example", &shop) + &site_table(&dir, "blog.example", &blog);
    let config = write(&dir, "isr-edge.toml", &text);
    let edge = edge_from(&config, &[]).await;
    for host in ["shop.example", "blog.example"] {
        assert_eq!(at(&edge, host, "/p").await.cache(), "MISS");
        assert_eq!(at(&edge, host, "/p").await.cache(), "HIT");
    }

    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/p"], "host": "shop.example"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(!answer.text().contains("-secret") && !answer.text().contains("preview-id"));
    let answer = answer.json();
    assert_eq!(answer["evicted"], 1);
    let origins = answer["origins"].as_array().expect("origins");
    assert_eq!(origins.len(), 1, "{answer}");
    assert_eq!(origins[0]["host"], "shop.example");
    assert_eq!(origins[0]["url"], format!("{}/api/revalidate", shop.url()));
    let regenerated = answer["regenerated"].as_array().expect("regenerated");
    assert_eq!(regenerated.len(), 1, "{answer}");
    assert_eq!(regenerated[0]["host"], "shop.example");
    assert_eq!(regenerated[0]["cache"], "REVALIDATED");

    let posts = calls(&shop, "POST");
    assert_eq!(posts.len(), 1);
    assert_eq!(forwarded_secret(&posts[0]), "shop.example-secret");
    assert_eq!(
        posts[0].headers["x-revalidate-secret"],
        "shop.example-secret"
    );
    let heads = calls(&shop, "HEAD");
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].path, "/p");
    assert_eq!(
        heads[0].headers["x-prerender-revalidate"],
        "shop.example-preview-id"
    );
    assert_eq!(heads[0].headers["host"], "shop.example");
    assert!(blog.seen().iter().all(|s| s.method == "GET"), "blog untold");
    assert_eq!(at(&edge, "shop.example", "/p").await.cache(), "MISS");
    assert_eq!(at(&edge, "blog.example", "/p").await.cache(), "HIT");

    // Unscoped: both sites, each with its own secret and id; each regenerates its own pages
    // (/only-blog is stored for blog.example only) and the plain path.
    assert_eq!(
        at(&edge, "blog.example", "/only-blog").await.cache(),
        "MISS"
    );
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/p"], "all": true}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    let hosts = |list: &Value| -> Vec<String> {
        let mut hosts: Vec<String> = list
            .as_array()
            .expect("list")
            .iter()
            .map(|r| format!("{} {}", r["host"].as_str().unwrap_or("-"), r["path"]))
            .collect();
        hosts.sort();
        hosts
    };
    assert_eq!(
        hosts(&answer["origins"]),
        ["blog.example null", "shop.example null"]
    );
    assert_eq!(
        hosts(&answer["regenerated"]),
        [
            "blog.example \"/only-blog\"",
            "blog.example \"/p\"",
            "shop.example \"/p\""
        ]
    );
    assert_eq!(
        forwarded_secret(&calls(&blog, "POST")[0]),
        "blog.example-secret"
    );
    assert_eq!(
        forwarded_secret(&calls(&shop, "POST")[1]),
        "shop.example-secret"
    );
    let blog_heads = calls(&blog, "HEAD");
    assert_eq!(blog_heads.len(), 2);
    assert!(blog_heads
        .iter()
        .all(|h| h.headers["x-prerender-revalidate"] == "blog.example-preview-id"));
    assert_eq!(calls(&shop, "HEAD").len(), 2, "never blog's /only-blog");
    assert_eq!(at(&edge, "blog.example", "/p").await.cache(), "MISS");
}

#[tokio::test]
async fn sites_without_keys_use_the_flags_and_failures_give_502() {
    let (shop, blog) = (site_app("shop").await, site_app("blog").await);
    let default_app = site_app("default").await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let dir = dir("flags");
    // blog.example has no forwarding keys: the flag-configured forwarder serves it.
    let text = format!(
        "{}[[origin]]\nhost = \"blog.example\"\nurl = \"{}\"\n\n[[origin]]\nhost = \"down.example\"\nurl = \"{}\"\nrevalidate_url = \"http://{closed}/api/revalidate\"\n",
        site_table(&dir, "shop.example", &shop),
        blog.url(),
        blog.url()
    );
    let config = write(&dir, "isr-edge.toml", &text);
    let default_url = format!("{}/api/revalidate", default_app.url());
    let edge = edge_from(&config, &["--origin-revalidate-url", &default_url]).await;

    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/p"], "host": "blog.example"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(
        answer["origins"],
        json!([{"url": default_url, "status": 200, "ok": true, "error": null}]),
        "the flag forwarder's results keep their shape"
    );
    assert_eq!(calls(&default_app, "POST").len(), 1);
    assert_eq!(forwarded_secret(&calls(&default_app, "POST")[0]), SECRET);
    assert!(calls(&shop, "POST").is_empty());

    assert_eq!(at(&edge, "shop.example", "/p").await.cache(), "MISS");
    assert_eq!(at(&edge, "shop.example", "/p").await.cache(), "HIT");
    let answer = revalidate(edge.addr, json!({"secret": SECRET, "paths": ["/p"]})).await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(answer["success"], false);
    assert_eq!(answer["evicted"], 1, "the local eviction happened anyway");
    let origins = answer["origins"].as_array().expect("origins");
    assert_eq!(origins.len(), 3, "{answer}");
    assert_eq!(origins[0]["host"], Value::Null);
    assert_eq!(origins[0]["ok"], true);
    assert_eq!(origins[1]["host"], "shop.example");
    assert_eq!(origins[1]["ok"], true);
    assert_eq!(origins[2]["host"], "down.example");
    assert_eq!(origins[2]["ok"], false);
    assert!(origins[2]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(calls(&default_app, "POST").len(), 2);
    assert_eq!(calls(&shop, "POST").len(), 1);
    assert_eq!(at(&edge, "shop.example", "/p").await.cache(), "MISS");
}

/// Runs the binary with a clean environment.
fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run isr-edge");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn print_config_masks_the_site_secret_and_bad_keys_name_their_line() {
    let dir = dir("print");
    let secret = write(&dir, "shop.secret", "shop-origin-secret-0123456789\n");
    let manifest = write(&dir, "m.json", r#"{"preview":{"previewModeId":"id-0123"}}"#);
    let text = format!(
        "demo = true\n\n[[origin]]\nhost = \"shop.example\"\nurl = \"http://127.0.0.1:3001\"\nrevalidate_url = \"http://127.0.0.1:3001/api/revalidate\"\nrevalidate_secret_file = \"{secret}\"\nnext_prerender_manifest = \"{manifest}\"\n"
    );
    let path = write(&dir, "isr-edge.toml", &text);
    let (code, out, err) = run(&["--config", &path, "--print-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("shop-origin-secret") && !out.contains("id-0123"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "revalidate_url = [\"http://127.0.0.1:3001/api/revalidate\"]\nrevalidate_secret_file = \"{secret}\"  # configured, ****\nnext_prerender_manifest = \"{manifest}\"\n"
        )),
        "{out}"
    );
    let printed = write(&dir, "printed.toml", &out);
    let (code, checked, err) = run(&["--config", &printed, "--check-config"]);
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(checked.contains("1 host origins"), "{checked}");

    let site = "[[origin]]\nhost = \"a.example\"\nurl = \"http://127.0.0.1:1\"\n";
    let cases = [
        (
            "secret",
            format!("{site}revalidate_secret = \"x\"\n"),
            ":4: origin.revalidate_secret: secrets do not belong in the config file: use revalidate_secret_file",
        ),
        (
            "id",
            format!("{site}next_preview_mode_id = \"x\"\n"),
            ":4: origin.next_preview_mode_id: secrets do not belong",
        ),
        (
            "unknown",
            format!("{site}revalidate_urls = \"x\"\n"),
            ":4: origin.revalidate_urls: unknown field `revalidate_urls`",
        ),
        (
            "url",
            format!("{site}revalidate_url = [\"https://x/api\"]\n"),
            ":4: origin.revalidate_url: \"https://x/api\": expected http://",
        ),
        (
            "file",
            format!("{site}revalidate_url = \"http://a/r\"\nrevalidate_secret_file = \"/nonexistent/s\"\n"),
            ":5: origin.revalidate_secret_file: cannot read /nonexistent/s",
        ),
        (
            "lonely",
            format!("{site}revalidate_secret_file = \"{secret}\"\n"),
            ":4: origin.revalidate_secret_file: does nothing without revalidate_url",
        ),
        (
            "manifest",
            format!("{site}next_prerender_manifest = \"{secret}\"\n"),
            ":4: origin.next_prerender_manifest:",
        ),
        (
            "default",
            "[[origin]]\nurl = \"http://127.0.0.1:1\"\nrevalidate_url = \"http://a/r\"\n".into(),
            ":3: origin: the default origin's forwarding is set by the top-level keys",
        ),
    ];
    for (name, text, expected) in cases {
        let path = write(&dir, &format!("{name}.toml"), &text);
        let (code, _, err) = run(&["--config", &path, "--check-config"]);
        assert_ne!(code, 0, "{name}: {err}");
        assert!(err.contains(&format!("{path}{expected}")), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
        assert!(!err.contains("shop-origin-secret"), "{name}: {err}");
    }
}

/// A site's `revalidate_secret_file` saved with a UTF-8 byte order mark (Windows Notepad): the
/// mark was forwarded as the start of the app's secret, and the app refused every revalidation.
#[tokio::test]
async fn a_site_secret_file_with_a_byte_order_mark_forwards_the_secret_without_it() {
    let shop = site_app("shop").await;
    let dir = dir("bom");
    let secret = write(&dir, "shop.secret", "\u{feff}shop-secret\r\n");
    let text = format!(
        "[[origin]]\nhost = \"shop.example\"\nurl = \"{url}\"\nrevalidate_url = \"{url}/api/revalidate\"\nrevalidate_secret_file = \"{secret}\"\n",
        url = shop.url()
    );
    let config = write(&dir, "isr-edge.toml", &text);
    let edge = edge_from(&config, &[]).await;
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/p"], "host": "shop.example"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let posts = calls(&shop, "POST");
    assert_eq!(posts.len(), 1);
    assert_eq!(forwarded_secret(&posts[0]), "shop-secret");
    assert_eq!(posts[0].headers["x-revalidate-secret"], "shop-secret");
}
