//! The TOML configuration file (`--config FILE` or `ISR_EDGE_CONFIG`).
//!
//! Top-level keys are the long flags' names (`cache_size = "256MiB"` is `--cache-size=256MiB`,
//! `true` is a bare flag, an array repeats the flag). They become command-line arguments placed
//! before the real ones, so every flag, present and future, has a file key checked by the same
//! parser. A key is dropped when its flag is on the command line or its environment variable
//! is set: flags > environment > file > defaults. `[[route]]` and `[[origin]]` are read with
//! serde. Every error reads `FILE:LINE: key: message`.

mod sections;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{ArgAction, Command};
use toml::de::{DeTable, DeValue};

use crate::origins::HostOrigin;
use crate::routes::RouteRule;
use sections::sections;

/// The structured sections, validated.
#[derive(Debug, Clone, Default)]
pub struct FileSections {
    pub routes: Vec<RouteRule>,
    pub origins: Vec<HostOrigin>,
}

/// A scalar key the file set and that was applied (not overridden).
#[derive(Debug, Clone)]
pub struct FileKey {
    /// The clap argument id (`cache_size`).
    pub id: String,
    /// The key as written in the file.
    pub key: String,
    pub line: usize,
}

/// A parsed file: the arguments it contributes and its sections.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub args: Vec<OsString>,
    pub keys: Vec<FileKey>,
    pub sections: FileSections,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {message}")]
    Key {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
}

pub(super) const SECTIONS: [&str; 2] = ["route", "origin"];
/// Flags that make no sense in the file itself.
const NOT_IN_FILE: [&str; 5] = ["config", "print_config", "check_config", "help", "version"];

/// Reads and parses `path`; environment variables are read from the process, except the
/// revalidation secret, which the caller read (`secret_env_set`: it is set and not empty).
pub fn read(
    path: &Path,
    command: &Command,
    real_args: &[OsString],
    secret_env_set: bool,
) -> Result<ConfigFile, FileError> {
    let bytes = super::secrets::read_bounded(path, 16 << 20).map_err(|source| FileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let text =
        String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error()))?;
    let env_is_set = |name: &OsStr| {
        if name == super::SECRET_ENV {
            return secret_env_set;
        }
        std::env::var_os(name).is_some_and(|v| !v.is_empty())
    };
    parse(path, &text, command, real_args, &env_is_set)
}

/// A file that is not UTF-8 (saved as Latin-1 or UTF-16 by an editor), reported at the line of
/// the first bad byte: io's "stream did not contain valid UTF-8" named neither that nor a cure.
fn not_utf8(path: &Path, bytes: &[u8], error: std::str::Utf8Error) -> FileError {
    let at = error.valid_up_to();
    let valid = String::from_utf8_lossy(&bytes[..at]);
    let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let byte = bytes.get(at).copied().unwrap_or_default();
    FileError::Syntax {
        path: path.display().to_string(),
        line: line_of(&valid, valid.len()),
        message: format!(
            "byte 0x{byte:02X} at column {column} is not UTF-8; TOML files are UTF-8 text: \
             save the file as UTF-8"
        ),
    }
}

/// Parses the file's text. `real_args` are the command-line arguments (without the program
/// name); `env_is_set` says whether an environment variable is set.
pub fn parse(
    path: &Path,
    text: &str,
    command: &Command,
    real_args: &[OsString],
    env_is_set: &dyn Fn(&OsStr) -> bool,
) -> Result<ConfigFile, FileError> {
    let shown = path.display().to_string();
    let table = DeTable::parse(text).map_err(|e| toml_error(&shown, text, &e))?;
    let mut args = Vec::new();
    let mut keys = Vec::new();
    // Each setting's first key and line: TOML sees `cache-size` and `cache_size` as two keys.
    let mut settings: Vec<(String, String, usize)> = Vec::new();
    for (key, value) in table.get_ref().iter() {
        let name: &str = key.get_ref();
        let line = line_of(text, key.span().start);
        let fail = |message: String| FileError::Key {
            path: shown.clone(),
            line,
            key: name.to_string(),
            message,
        };
        // `origin = "http://..."` is the flag; `[[origin]]` (an array) is the section.
        let flag_form =
            name == "origin" && !value.get_ref().is_array() && !value.get_ref().is_table();
        if SECTIONS.contains(&name) && !flag_form {
            if !value.get_ref().is_array() {
                // `[route]` or `route = ...` would otherwise be skipped without a word.
                return Err(fail(format!(
                    "a list of sections: write [[{name}]] (two brackets), once per {name}"
                )));
            }
            continue;
        }
        let id = name.replace('-', "_");
        if NOT_IN_FILE.contains(&id.as_str()) {
            return Err(fail("cannot be set in the config file".into()));
        }
        let arg = command
            .get_arguments()
            .find(|a| a.get_long().is_some_and(|l| l.replace('-', "_") == id));
        if id.contains("secret") && !id.ends_with("_file") {
            let hint = match arg.and_then(|a| a.get_env()) {
                Some(env) => format!("set {} instead", env.to_string_lossy()),
                None => "set REVALIDATE_SECRET or secret_file".to_string(),
            };
            return Err(fail(format!(
                "secrets do not belong in the config file: {hint}"
            )));
        }
        let Some(arg) = arg else {
            return Err(fail(format!(
                "unknown key; known keys: {}",
                known_keys(command)
            )));
        };
        let setting = arg.get_id().to_string();
        if let Some((_, first, first_line)) = settings.iter().find(|(id, ..)| *id == setting) {
            // Else the later line won without a word, whichever one the reader meant.
            return Err(fail(format!(
                "the same setting as {first} on line {first_line}; give it once"
            )));
        }
        settings.push((setting, name.to_string(), line));
        if arg.is_hide_env_values_set() {
            let env = arg
                .get_env()
                .map(|e| e.to_string_lossy())
                .unwrap_or_default();
            return Err(fail(format!(
                "secrets do not belong in the config file: set {env} instead"
            )));
        }
        let long = arg.get_long().unwrap_or_default();
        // `secret_file` and REVALIDATE_SECRET are one setting from two sources, so the
        // environment outranks the file for it like for any other key.
        let env_overrides = arg.get_env().is_some_and(env_is_set)
            || (id == "secret_file" && env_is_set(OsStr::new(super::SECRET_ENV)));
        // By its name or an alias (`--tag-header` is `--tag-headers`).
        let names = std::iter::once(long).chain(arg.get_all_aliases().unwrap_or_default());
        if names.into_iter().any(|name| flag_given(real_args, name)) || env_overrides {
            continue;
        }
        let optional_value = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
        let flags = match value.get_ref() {
            // `--trust-proxy-headers` style: a flag whose value is optional.
            DeValue::Boolean(on) if optional_value => {
                if *on {
                    vec![format!("--{long}")]
                } else {
                    vec![]
                }
            }
            // `tag_headers = []`: none, as `--tag-headers ''` says. Passing no argument at all
            // left the default list in force while --print-config named this line.
            DeValue::Array(items) if items.is_empty() && !arg.get_default_values().is_empty() => {
                vec![format!("--{long}=")]
            }
            value => flag_args(long, arg.get_action(), value).map_err(fail)?,
        };
        args.extend(flags.into_iter().map(OsString::from));
        keys.push(FileKey {
            id: arg.get_id().to_string(),
            key: name.to_string(),
            line,
        });
    }
    let (sections, default_origin) = sections(&shown, text, table)?;
    if let Some((url, line)) = default_origin {
        let overridden = flag_given(real_args, "origin")
            || command
                .get_arguments()
                .find(|a| a.get_id() == "origin")
                .and_then(|a| a.get_env())
                .is_some_and(env_is_set);
        if !overridden {
            args.push(format!("--origin={url}").into());
            keys.push(FileKey {
                id: "origin".into(),
                key: "origin.url".into(),
                line,
            });
        }
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        args,
        keys,
        sections,
    })
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Whether `--long` (or `--long=...`) is among the real arguments (before a `--`).
pub fn flag_given(real_args: &[OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    let with_value = format!("--{long}=");
    real_args
        .iter()
        .filter_map(|a| a.to_str())
        .take_while(|a| *a != "--")
        .any(|a| a == flag || a.starts_with(&with_value))
}

fn known_keys(command: &Command) -> String {
    let mut names: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| l.replace('-', "_"))
        .filter(|id| !NOT_IN_FILE.contains(&id.as_str()))
        .collect();
    names.extend(SECTIONS.iter().map(|s| format!("[[{s}]]")));
    names.join(", ")
}

/// Flags whose one value is a comma-separated list (address networks).
const COMMA_LISTS: &[&str] = &["revalidate-allow", "trust-proxy-headers"];

fn flag_args(long: &str, action: &ArgAction, value: &DeValue<'_>) -> Result<Vec<String>, String> {
    let bare = || vec![format!("--{long}")];
    let with = |v: String| format!("--{long}={v}");
    match (action, value) {
        (ArgAction::SetTrue, DeValue::Boolean(true))
        | (ArgAction::SetFalse, DeValue::Boolean(false)) => Ok(bare()),
        (ArgAction::SetTrue | ArgAction::SetFalse, DeValue::Boolean(_)) => Ok(vec![]),
        (ArgAction::SetTrue | ArgAction::SetFalse, other) => {
            Err(format!("expects true or false, got {}", other.type_str()))
        }
        (ArgAction::Append, DeValue::Array(items)) => items
            .iter()
            .map(|item| scalar(item.get_ref()).map(with))
            .collect(),
        // Flags that take one comma-separated list, written in the file as TOML lists are.
        (ArgAction::Set, DeValue::Array(items)) if COMMA_LISTS.contains(&long) => Ok(vec![with(
            items
                .iter()
                .map(|item| scalar(item.get_ref()))
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
        )]),
        (ArgAction::Set | ArgAction::Append, other) => Ok(vec![with(scalar(other)?)]),
        _ => Err("cannot be set in the config file".into()),
    }
}

fn scalar(value: &DeValue<'_>) -> Result<String, String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(&digits, i.radix())
                .map(|n| n.to_string())
                .map_err(|e| format!("bad integer: {e}"))
        }
        DeValue::Float(f) => Ok(f.as_str().to_string()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        DeValue::Array(_) => Err("takes one value, not a list".into()),
        other => Err(format!(
            "expects a string or number, got {}",
            other.type_str()
        )),
    }
}

/// A TOML or serde error as `FILE:LINE: key: message`, the key read from that line (and its
/// `[[section]]`), since the parser's messages do not always name it.
pub(super) fn toml_error(path: &str, text: &str, error: &toml::de::Error) -> FileError {
    let line = error.span().map(|s| line_of(text, s.start)).unwrap_or(1);
    let message = error.message().trim().to_string();
    if let Some(error) = origin_flag_beside_tables(path, text, line, &message) {
        return error;
    }
    match key_at(text, line) {
        Some(key) => FileError::Key {
            path: path.to_string(),
            line,
            key,
            message,
        },
        None => FileError::Syntax {
            path: path.to_string(),
            line,
            message,
        },
    }
}

/// `origin = "..."` at the top and `[[origin]]` tables: to TOML one key given twice, which
/// read `FILE:LINE: origin: duplicate key` at the table's line, naming neither what clashes nor
/// what to write instead. Reported at the `origin =` line, with the way out.
fn origin_flag_beside_tables(
    path: &str,
    text: &str,
    line: usize,
    message: &str,
) -> Option<FileError> {
    if !message.starts_with("duplicate key") {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let section = here
        .strip_prefix("[[")?
        .split("]]")
        .next()?
        .trim()
        .trim_matches('"');
    if section != "origin" {
        return None;
    }
    // The top-level key: before the first table header.
    let flag_line = lines
        .iter()
        .take_while(|l| !l.trim_start().starts_with('['))
        .position(|l| {
            l.split('=')
                .next()
                .is_some_and(|key| key.trim().trim_matches('"') == "origin")
                && l.contains('=')
        })?
        + 1;
    Some(FileError::Key {
        path: path.to_string(),
        line: flag_line,
        key: "origin".to_string(),
        message: format!(
            "cannot be given beside [[origin]] tables (line {line}): write the default origin as an [[origin]] table without host"
        ),
    })
}

/// The key written on `line` (1-based), prefixed by the table it is in: `route.ttl`.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let header = |l: &str| {
        let l = l.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    };
    if let Some(name) = header(here) {
        return Some(name);
    }
    let key = here.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() || here.starts_with('#') {
        return None;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| header(l));
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_lines() {
        let text = "demo = true\n\n[[route]]\nmatch = \"/a\"\nttl = \"soon\"\n";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, text.find("ttl").unwrap_or(0)), 5);
        assert_eq!(key_at(text, 1).as_deref(), Some("demo"));
        assert_eq!(key_at(text, 3).as_deref(), Some("route"));
        assert_eq!(key_at(text, 5).as_deref(), Some("route.ttl"));
        assert_eq!(key_at(text, 2), None);
    }

    #[test]
    fn real_flags_are_found() {
        let args: Vec<OsString> = ["--cache-size=1MiB", "--demo", "--", "--listen"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(flag_given(&args, "cache-size"));
        assert!(flag_given(&args, "demo"));
        assert!(!flag_given(&args, "listen"), "after --");
        assert!(!flag_given(&args, "cache"));
    }
}
