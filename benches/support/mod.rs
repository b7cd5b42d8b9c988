//! What both benches need: whether this is a full `cargo bench` run, and the process's RSS.

/// `cargo bench` passes `--bench`; `cargo test` does not (criterion then runs each bench once,
/// and the fixtures shrink so the test run stays fast).
pub fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// Resident set size of this process, in bytes (0 where `/proc` is missing).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
