//! Sizes (`256MiB`) and durations (`10s`) as flags and the config file write them.

use std::time::Duration;

/// Parses `256MiB`, `8MiB`, `64KiB`, `1GB`, `1000` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; use e.g. 256MiB, 64KiB or 1000000"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Longest duration accepted anywhere: deadlines are added to the clock, and a sum past what
/// the clock can hold (`18446744073709551615`, "as good as forever") panicked at the first
/// request or at shutdown. A century is longer than any process runs.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Parses `10s`, `500ms`, `24h`, or a plain number of seconds (at most [`MAX_DURATION`]).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("{text:?} is not a duration ({e}); use e.g. 10s, 500ms, 24h"))?,
    };
    if duration > MAX_DURATION {
        return Err(format!(
            "{text:?} is too long: at most 100 years ({} seconds)",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(duration)
}

/// [`parse_duration`] for a deadline, where 0 would fail every attempt at once.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!(
            "{:?} leaves no time at all; give more than 0, e.g. 30s",
            text.trim()
        ));
    }
    Ok(duration)
}
