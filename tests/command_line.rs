//! The binary's command line: help, defaults, and one-line errors naming the flag.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_isr-edge"))
        .args(args)
        .env_remove("ISR_EDGE_ORIGIN")
        .env_remove("REVALIDATE_SECRET")
        .output()
        .expect("run isr-edge");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_documents_every_flag() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--origin",
        "--demo",
        "--secret-file",
        "--revalidate-path",
        "--cache-size",
        "--max-object-size",
        "--default-ttl",
        "--origin-timeout",
        "--stale-if-error",
        "--honor-client-no-cache",
        "--browser-cache-control",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}");
    }
    assert!(
        stdout.contains("256MiB") && stdout.contains("8MiB"),
        "defaults are shown"
    );
}

#[test]
fn bad_values_exit_non_zero_with_one_line_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--origin", "http://127.0.0.1:1", "--cache-size", "huge"],
            "--cache-size",
        ),
        (
            &["--origin", "http://127.0.0.1:1", "--origin-timeout", "soon"],
            "--origin-timeout",
        ),
        (&["--origin", "ftp://x"], "--origin"),
        (
            &["--origin", "http://127.0.0.1:1", "--listen", "nowhere"],
            "--listen",
        ),
        (
            &["--origin", "http://127.0.0.1:1", "--no-such-flag"],
            "--no-such-flag",
        ),
        (&[], "--origin"),
    ];
    for (args, flag) in cases {
        let (code, _, stderr) = run(args);
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "one line for {args:?}: {stderr}"
        );
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

/// Zero passed validation for these and broke serving (`--origin-timeout 0`: 504 "origin did
/// not answer within 0ns" for most requests; `--max-uri-length 0`: 414 for every request;
/// `--cache-size 0`: nothing stored while answers said `stored`, and a purge index growing by
/// one record per URL). Where 0 has a documented meaning it stays accepted.
#[test]
fn zero_is_refused_where_it_cannot_work() {
    for flag in [
        "--origin-timeout",
        "--max-uri-length",
        "--cache-size",
        "--max-object-size",
        "--max-body-size",
        "--header-read-timeout",
        "--origin-idle-timeout",
        "--origin-revalidate-timeout",
        // Was raised to 1 without a word.
        "--revalidate-burst",
    ] {
        let (code, _, stderr) = run(&["--demo", flag, "0", "--check-config"]);
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!("{flag}: must be more than 0")),
            "{flag}: {stderr}"
        );
    }
    let (code, _, stderr) = run(&[
        "--demo",
        "--default-ttl",
        "0",
        "--stale-if-error",
        "0",
        "--max-stale",
        "0",
        "--default-swr",
        "0",
        "--shutdown-timeout",
        "0",
        "--workers",
        "0",
        "--check-config",
    ]);
    assert_eq!(code, 0, "0 means something for these: {stderr}");
}

/// A header-read timeout under 100 ms was raised to 100 ms without a word: the proxy ran with
/// another value than the one it was given.
#[test]
fn a_header_read_timeout_under_100ms_is_refused() {
    for value in ["99ms", "1ms"] {
        let (code, _, stderr) = run(&["--demo", "--header-read-timeout", value, "--check-config"]);
        assert_eq!(code, 2, "{value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{value}: {stderr}");
        assert!(
            stderr.contains("--header-read-timeout: must be at least 100ms"),
            "{value}: {stderr}"
        );
    }
    let (code, _, stderr) = run(&[
        "--demo",
        "--header-read-timeout",
        "100ms",
        "--revalidate-burst",
        "1",
        "--check-config",
    ]);
    assert_eq!(code, 0, "the smallest values accepted: {stderr}");
}

/// A duration past what the clock can hold passed `--check-config` and then panicked the
/// process: `--header-read-timeout 18446744073709551615` at the first connection (every
/// request dropped), `--origin-timeout` at every miss (502), `--shutdown-timeout` at SIGTERM
/// (exit 101). Each is refused at start, naming the flag, the file line and the key.
#[test]
fn durations_the_clock_cannot_hold_are_refused() {
    for flag in [
        "--default-ttl",
        "--origin-timeout",
        "--stale-if-error",
        "--default-swr",
        "--max-stale",
        "--shutdown-timeout",
        "--header-read-timeout",
        "--origin-idle-timeout",
        "--origin-revalidate-timeout",
    ] {
        for value in ["18446744073709551615", "9223372036854775807s", "101years"] {
            let (code, _, stderr) = run(&["--demo", flag, value, "--check-config"]);
            assert_eq!(code, 2, "{flag} {value}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "{flag}: {stderr}");
            assert!(
                stderr.contains(flag) && stderr.contains("at most 100 years"),
                "{flag} {value}: {stderr}"
            );
        }
    }
    let (code, _, stderr) = run(&[
        "--demo",
        "--shutdown-timeout",
        "36500days",
        "--check-config",
    ]);
    assert_eq!(code, 0, "100 years is accepted: {stderr}");

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("isr-edge-long-durations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (text, line, key) in [
        (
            "demo = true\nshutdown_timeout = 9223372036854775807\n",
            2,
            "shutdown_timeout",
        ),
        (
            "demo = true\n[[route]]\nmatch = \"/a\"\nttl = 9223372036854775807\n",
            4,
            "route.ttl",
        ),
    ] {
        let file = dir.join("isr-edge.toml");
        std::fs::write(&file, text).expect("write config");
        let path = file.to_str().expect("path");
        let (code, _, stderr) = run(&["--config", path, "--check-config"]);
        assert_eq!(code, 2, "{text}: {stderr}");
        assert!(
            stderr.contains(&format!("isr-edge.toml:{line}: {key}: "))
                && stderr.contains("at most 100 years"),
            "{text}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--listen 8080`, `:8080` and `localhost:8080` (the forms people write) said only "invalid
/// socket address syntax"; the line now shows what to write instead.
#[test]
fn a_listen_address_that_is_not_ip_and_port_says_what_to_write() {
    for value in ["8080", ":8080", "localhost:8080"] {
        let (code, _, stderr) = run(&["--origin", "http://127.0.0.1:1", "--listen", value]);
        assert_eq!(code, 2, "{value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("--listen") && stderr.contains("e.g. 0.0.0.0:8080"),
            "{value}: {stderr}"
        );
    }
}
