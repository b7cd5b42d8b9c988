//! What the origins were told, as the revalidation answer reports it: one [`CallResult`] per
//! call, gathered in a [`Report`]. With per-site forwarding (`[[origin]]` tables with their own
//! forwarding keys), reports of several forwarders are merged and each result names its site.

use serde::Serialize;
use serde_json::{json, Value};

/// The result of one call to the origin, as the answer reports it.
#[derive(Debug, Clone, Serialize)]
pub struct CallResult {
    /// The `[[origin]]` site whose own forwarder made the call; absent for the flag-configured
    /// forwarder, so single-site answers keep their shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub status: Option<u16>,
    pub ok: bool,
    pub error: Option<String>,
    /// The origin's `x-nextjs-cache` (`REVALIDATED` when Next regenerated the page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    /// A redirect's `Location`, for the caller to decide whether to follow it.
    #[serde(skip)]
    pub location: Option<String>,
}

/// Everything the origin was told, for the answer.
#[derive(Debug, Default)]
pub struct Report {
    pub origins: Vec<CallResult>,
    pub regenerated: Vec<CallResult>,
    pub regenerate_skipped: usize,
    /// Why no page was regenerated at all (the id could not be read).
    pub regenerate_error: Option<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.regenerate_error.is_none()
            && self.origins.iter().chain(&self.regenerated).all(|c| c.ok)
    }

    /// Appends `other` (another site's report); its results are labelled with `host`.
    pub fn absorb(&mut self, other: Report, host: Option<&str>) {
        let label = |mut result: CallResult| {
            result.host = host.map(str::to_string);
            result
        };
        self.origins.extend(other.origins.into_iter().map(label));
        self.regenerated
            .extend(other.regenerated.into_iter().map(label));
        self.regenerate_skipped += other.regenerate_skipped;
        if let Some(error) = other.regenerate_error {
            let error = match host {
                Some(host) => format!("{host}: {error}"),
                None => error,
            };
            self.regenerate_error = Some(match self.regenerate_error.take() {
                Some(previous) => format!("{previous}; {error}"),
                None => error,
            });
        }
    }

    /// Adds `origins` / `regenerated` to the answer.
    pub fn write_into(&self, answer: &mut Value) {
        if !self.origins.is_empty() {
            answer["origins"] = json!(self.origins);
        }
        if self.regenerate_error.is_some() || !self.regenerated.is_empty() {
            answer["regenerated"] = json!(self.regenerated);
        }
        if self.regenerate_skipped > 0 {
            answer["regenerate_skipped"] = json!(self.regenerate_skipped);
        }
        if let Some(error) = &self.regenerate_error {
            answer["regenerate_error"] = json!(error);
        }
    }
}

/// A call that got no usable answer.
pub fn failed(error: String) -> CallResult {
    CallResult {
        host: None,
        url: None,
        path: None,
        status: None,
        ok: false,
        error: Some(error),
        cache: None,
        location: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorbed_results_name_their_site_and_errors_add_up() {
        let mut report = Report::default();
        let site = Report {
            origins: vec![failed("down".into())],
            regenerate_error: Some("no manifest".into()),
            regenerate_skipped: 2,
            ..Report::default()
        };
        report.absorb(
            Report {
                regenerate_error: Some("bad id".into()),
                ..Report::default()
            },
            None,
        );
        report.absorb(site, Some("shop.example"));
        assert!(!report.ok());
        assert_eq!(report.origins[0].host.as_deref(), Some("shop.example"));
        assert_eq!(
            report.regenerate_error.as_deref(),
            Some("bad id; shop.example: no manifest")
        );
        let mut answer = json!({});
        report.write_into(&mut answer);
        assert_eq!(answer["origins"][0]["host"], "shop.example");
        assert_eq!(answer["regenerate_skipped"], 2);
        let mut single = json!({});
        Report {
            origins: vec![failed("down".into())],
            ..Report::default()
        }
        .write_into(&mut single);
        assert!(single["origins"][0].get("host").is_none(), "shape kept");
    }
}
