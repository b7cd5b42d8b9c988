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
