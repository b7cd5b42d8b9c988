//! Revalidation secrets: several at once (rotation), compared in constant time, never printed.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One or more revalidation secrets (several at once allow rotation without downtime).
/// `Debug` prints only how many there are.
#[derive(Clone, Default)]
pub struct Secrets {
    digests: Vec<[u8; 32]>,
    /// The raw keys, for HMAC signatures only.
    keys: Vec<std::sync::Arc<[u8]>>,
    shortest: usize,
    sample: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets(**** x{})", self.digests.len())
    }
}

/// Reads a file of at most `limit` bytes. A configuration or secret file is small: a path
/// naming a device or an endless file (`/dev/zero`, a FIFO left open) is a mistake, refused
/// instead of read until memory runs out.
pub fn read_bounded(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} KiB: not a file of settings or secrets; check the path",
                limit / 1024
            ),
        ));
    }
    Ok(bytes)
}

/// Reads a file of secrets, without the UTF-8 byte order mark Windows editors put first
/// (Notepad, PowerShell 5's `Set-Content -Encoding UTF8`): kept, it was the start of the
/// first secret, one no backend sends, and the right secret was answered 401.
pub fn read_secret_file(path: &std::path::Path) -> std::io::Result<String> {
    let text = String::from_utf8(read_bounded(path, 1 << 20)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

impl Secrets {
    pub fn from_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Secrets {
        let mut secrets = Secrets::default();
        for line in lines.map(str::trim).filter(|l| !l.is_empty()) {
            secrets.digests.push(Sha256::digest(line.as_bytes()).into());
            secrets.keys.push(line.as_bytes().into());
            secrets.sample |= line.ends_with("change-in-production");
            secrets.shortest = if secrets.digests.len() == 1 {
                line.len()
            } else {
                secrets.shortest.min(line.len())
            };
        }
        secrets
    }

    pub fn is_configured(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Length of the shortest configured secret (for the weak-secret warning).
    pub fn shortest_len(&self) -> usize {
        self.shortest
    }

    /// Whether a secret looks like the seed's sample (`...change-in-production`).
    pub fn has_sample(&self) -> bool {
        self.sample
    }

    /// Checks `X-Signature: sha256=<hex>`: HMAC-SHA256 of `body` keyed with any configured
    /// secret. Every key is tried and compared in constant time (`Mac::verify_slice`).
    pub fn verify_signature(&self, body: &[u8], signature: &str) -> bool {
        use hmac::Mac;
        let Some(expected) = signature
            .trim()
            .strip_prefix("sha256=")
            .and_then(decode_hex)
        else {
            return false;
        };
        let mut matched = false;
        for key in &self.keys {
            let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key) else {
                continue;
            };
            mac.update(body);
            matched |= mac.verify_slice(&expected).is_ok();
        }
        matched
    }

    /// Constant-time check against every configured secret. Digests are compared, so neither
    /// the content nor the length of a secret leaks through timing.
    pub fn verify(&self, candidate: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate).into();
        let mut matched = subtle::Choice::from(0u8);
        for secret in &self.digests {
            matched |= secret.ct_eq(&digest);
        }
        bool::from(matched)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
