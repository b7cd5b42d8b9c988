//! `nginx-example/nginx.conf` as shipped, run by the real nginx (TLS with a certificate made by
//! this test) in front of the real proxy and a test origin: a MISS, a HIT, gzip by nginx, the
//! client address passed on, and a revalidation that only backend addresses may send.
//!
//! nginx runs as a child process (`daemon off; master_process off`) with its pid, logs and temp
//! files in a temporary directory; only the listen addresses, the upstream, the certificate and
//! those paths are rewritten. Needs `nginx`, `openssl` and `curl` (`.ci/test.sh` installs them).

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::{Edge, Origin, Reply};
use tokio::process::{Child, Command};

const CONF: &str = include_str!("../nginx-example/nginx.conf");

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("isr-edge-nginx-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(path.join("logs")).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Replaces `from` (which must be in the configuration, so the test notices when the example
/// changes) with `to`.
fn replace(conf: &mut String, from: &str, to: &str) {
    assert!(
        conf.contains(from),
        "nginx-example/nginx.conf no longer contains {from:?}"
    );
    *conf = conf.replace(from, to);
}

fn render(dir: &Path, edge: SocketAddr, http: u16, https: u16) -> String {
    let d = dir.display();
    let mut conf = CONF.to_string();
    replace(&mut conf, "user www-data;\n", "");
    replace(
        &mut conf,
        "pid /run/nginx.pid;",
        &format!("pid {d}/nginx.pid;"),
    );
    replace(
        &mut conf,
        "error_log /var/log/nginx/error.log warn;",
        &format!("error_log {d}/logs/error.log info;"),
    );
    replace(
        &mut conf,
        "access_log /var/log/nginx/access.log;",
        &format!("access_log {d}/logs/access.log;"),
    );
    replace(
        &mut conf,
        "listen 80;",
        &format!("listen 127.0.0.1:{http};"),
    );
    replace(&mut conf, "listen [::]:80;\n", "");
    replace(
        &mut conf,
        "listen 443 ssl http2;",
        &format!("listen 127.0.0.1:{https} ssl http2;"),
    );
    replace(&mut conf, "listen [::]:443 ssl http2;\n", "");
    replace(
        &mut conf,
        "server 127.0.0.1:8080;",
        &format!("server {edge};"),
    );
    replace(
        &mut conf,
        "/etc/ssl/certs/example.com.crt",
        &format!("{d}/cert.pem"),
    );
    replace(
        &mut conf,
        "/etc/ssl/private/example.com.key",
        &format!("{d}/key.pem"),
    );
    // Debian's nginx keeps temp files under /var/lib/nginx; keep the test's own.
    let temps: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("    {t}_temp_path {d}/{t};\n"))
        .collect();
    replace(&mut conf, "http {\n", &format!("http {{\n{temps}"));
    conf
}

fn need(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file();
    assert!(
        found,
        "{tool} is not installed; `bash .ci/test.sh` installs it"
    );
}

fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").is_file() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// A response as curl saw it.
struct Got {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// One HTTPS (or HTTP) request through nginx with curl; `from` is the client source address.
async fn curl(port: u16, scheme: &str, path: &str, from: &str, extra: &[&str]) -> Got {
    let url = format!("{scheme}://example.com:{port}{path}");
    let output = Command::new("curl")
        .args(["-sk", "-i", "--max-time", "10", "--interface", from])
        .args(["--resolve", &format!("example.com:{port}:127.0.0.1")])
        .args(extra)
        .arg(&url)
        .output()
        .await
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Got {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_example_in_front_of_the_proxy() {
    for tool in ["nginx", "openssl", "curl"] {
        need(tool);
    }
    let page = "<html>".to_string() + &"ISR page content. ".repeat(40);
    let body = page.clone();
    let origin = Origin::start(move |r| {
        Reply::ok(format!("{body} render {}", r.count))
            .cc("s-maxage=300")
            .header("content-type", "text/html")
    })
    .await;
    let edge = Edge::start(
        &origin.url(),
        &[
            "--trust-proxy-headers",
            "127.0.0.1",
            "--revalidate-allow",
            "127.0.0.1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
        ],
    )
    .await;

    let dir = TempDir::new();
    let d = dir.0.display().to_string();
    let cert = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=example.com",
        ])
        .args([
            "-keyout",
            &format!("{d}/key.pem"),
            "-out",
            &format!("{d}/cert.pem"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run openssl");
    assert!(
        cert.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&cert.stderr)
    );

    let (http, https) = (free_port(), free_port());
    std::fs::write(
        dir.0.join("nginx.conf"),
        render(&dir.0, edge.addr, http, https),
    )
    .expect("write conf");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "-p".to_string(),
            format!("{d}/"),
            "-c".into(),
            format!("{d}/nginx.conf"),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let check = Command::new(nginx_binary())
        .args(args(&["-t", "-q"]))
        .output()
        .await
        .expect("nginx -t");
    assert!(
        check.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _nginx = Nginx(
        Command::new(nginx_binary())
            .args(args(&["-g", "daemon off; master_process off;"]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start nginx"),
    );
    let up = support::eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", https)).is_ok()
    })
    .await;
    assert!(
        up,
        "nginx did not listen on {https}: {}",
        std::fs::read_to_string(dir.0.join("logs/error.log")).unwrap_or_default()
    );

    // Plain HTTP only redirects.
    let redirect = curl(http, "http", "/page", "127.0.0.1", &[]).await;
    assert_eq!(redirect.status, 301);
    assert_eq!(
        redirect.header("location"),
        format!("https://example.com/page")
    );

    // MISS, then HIT, over HTTPS; nginx compresses what isr-edge stored uncompressed.
    let miss = curl(
        https,
        "https",
        "/page",
        "127.0.0.2",
        &["-H", "X-Forwarded-For: 6.6.6.6"],
    )
    .await;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.header("x-cache"), "MISS");
    assert!(String::from_utf8_lossy(&miss.body).ends_with("render 1"));
    let hit = curl(
        https,
        "https",
        "/page",
        "127.0.0.1",
        &["-H", "Accept-Encoding: gzip"],
    )
    .await;
    assert_eq!(hit.status, 200);
    assert_eq!(hit.header("x-cache"), "HIT");
    assert_eq!(hit.header("content-encoding"), "gzip");
    assert!(hit.body.len() < page.len(), "gzip made it smaller");
    assert_eq!(origin.count("/page"), 1);
    // The origin saw the real client (127.0.0.2) from nginx's one trusted hop, not the forged one,
    // and was asked for an identity body.
    let seen = origin.seen();
    let first = seen.first().expect("origin request");
    let xff = first
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        xff.starts_with("127.0.0.2"),
        "x-forwarded-for at the origin: {xff}"
    );
    assert!(
        !xff.contains("6.6.6.6"),
        "x-forwarded-for at the origin: {xff}"
    );
    assert!(first.headers.get("accept-encoding").is_none());

    // Revalidation: refused by nginx from outside the backend networks, accepted from them.
    let secret = format!(
        "{{\"secret\":\"{}\",\"paths\":[\"/page\"]}}",
        support::SECRET
    );
    let post = [
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data",
        secret.as_str(),
    ];
    let outside = curl(https, "https", "/api/revalidate", "127.0.0.2", &post).await;
    assert_eq!(outside.status, 403);
    let slash = curl(https, "https", "/api/revalidate/", "127.0.0.2", &post).await;
    assert_eq!(slash.status, 403);
    assert_eq!(
        curl(https, "https", "/page", "127.0.0.1", &[])
            .await
            .header("x-cache"),
        "HIT"
    );
    let inside = curl(https, "https", "/api/revalidate", "127.0.0.1", &post).await;
    assert_eq!(
        inside.status,
        200,
        "{}",
        String::from_utf8_lossy(&inside.body)
    );
    let answer: serde_json::Value = serde_json::from_slice(&inside.body).expect("JSON answer");
    assert_eq!(answer["success"], true);
    assert_eq!(answer["evicted"], 1);
    let fresh = curl(https, "https", "/page", "127.0.0.1", &[]).await;
    assert_eq!(fresh.header("x-cache"), "MISS");
    assert!(String::from_utf8_lossy(&fresh.body).ends_with("render 2"));
    assert_eq!(origin.count("/page"), 2);
}
